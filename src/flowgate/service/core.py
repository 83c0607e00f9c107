"""``Services``: everything a use case needs, built once per process by ``build_services``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from flowgate.clock import Clock
from flowgate.engine.catalog import WorkflowCatalog
from flowgate.engine.definition import DefinitionChecker
from flowgate.engine.executor import RunExecutor
from flowgate.engine.functions import FunctionRegistry, load_functions
from flowgate.engine.netguard import guarded_transport
from flowgate.engine.notifier import InProcessNotifier, Notifier
from flowgate.engine.steps import (
    CheckContext,
    HttpContext,
    SmtpDefaults,
    StepType,
    load_built_in_steps,
)
from flowgate.engine.templating import TemplateEngine
from flowgate.engine.worker import Worker
from flowgate.service.cache import TTLCache
from flowgate.service.ratelimit import RateLimiter
from flowgate.settings import Settings
from flowgate.store import open_store
from flowgate.store.base import KeyRow, ProjectRow, RunStats, Store, WorkflowRow
from flowgate.store.migrate import upgrade_database
from flowgate.vault import Vault

log = logging.getLogger(__name__)


#: How long the overview's settled buckets are reused (``service.runs.run_stats``).
SETTLED_STATS_TTL_SECS = 30.0


@dataclass(kw_only=True)
class Services:
    settings: Settings
    store: Store
    clock: Clock
    notifier: Notifier
    templates: TemplateEngine
    step_types: dict[str, StepType]
    functions: FunctionRegistry
    catalog: WorkflowCatalog
    checker: DefinitionChecker
    executor: RunExecutor
    http: HttpContext
    vault: Vault
    rate_limiter: RateLimiter
    key_cache: TTLCache[str, tuple[KeyRow, ProjectRow]]
    workflow_cache: TTLCache[tuple[str, str], WorkflowRow]
    #: The overview's settled buckets (``service.runs.run_stats``), by project and window.
    stats_cache: TTLCache[tuple[str, datetime, timedelta, int], list[RunStats]] = field(
        default_factory=lambda: TTLCache(ttl=SETTLED_STATS_TTL_SECS, max_size=1_000)
    )
    background: set[asyncio.Task[None]] = field(default_factory=set)
    #: This process's worker, when it runs one: runs started here may go straight to it.
    local_worker: Worker | None = None

    def new_worker(self, concurrency: int) -> Worker:
        return Worker(
            store=self.store,
            clock=self.clock,
            notifier=self.notifier,
            executor=self.executor,
            concurrency=concurrency,
            lease_secs=self.settings.lease_secs,
            poll_interval=self.settings.poll_interval_secs,
        )


def _functions_dir(settings: Settings) -> Path | None:
    """``FLOWGATE_FUNCTIONS_DIR``: its default applies where that folder exists; a folder set
    explicitly must exist (load_functions says so)."""
    folder = settings.functions_dir
    if folder is None or ("functions_dir" not in settings.model_fields_set and not folder.is_dir()):
        return None
    return folder


def build_services(
    settings: Settings, *, clock: Clock | None = None, functions: FunctionRegistry | None = None
) -> Services:
    """Wire the parts together; opens no connection yet. Raises FunctionLoadError when a python
    function module cannot be loaded."""
    store = open_store(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        worker_slots=settings.workers,
    )
    the_clock = clock or Clock()
    notifier = InProcessNotifier()
    templates = TemplateEngine(strict=settings.strict_templates)
    step_types = load_built_in_steps()
    registry = (
        functions
        if functions is not None
        else load_functions(settings.python_modules, functions_dir=_functions_dir(settings))
    )
    catalog = WorkflowCatalog(store)
    http = HttpContext(
        client=httpx.AsyncClient(
            transport=guarded_transport(
                allow_private=settings.http_allow_private,
                allowed=settings.http_allowed_destinations,
            ),
            timeout=settings.http_timeout_secs,
            follow_redirects=False,
            trust_env=False,
        ),
        max_response_bytes=settings.http_max_response_bytes,
        timeout_secs=settings.http_timeout_secs,
    )
    services = Services(
        settings=settings,
        store=store,
        clock=the_clock,
        notifier=notifier,
        templates=templates,
        step_types=step_types,
        functions=registry,
        catalog=catalog,
        checker=DefinitionChecker(
            step_types=step_types, templates=templates, ctx=CheckContext(functions=registry)
        ),
        key_cache=TTLCache(ttl=settings.cache_secs),
        workflow_cache=TTLCache(ttl=settings.cache_secs),
        rate_limiter=RateLimiter(
            clock=the_clock,
            execute_limit=settings.execute_rate_limit,
            read_limit=settings.read_rate_limit,
            # One SQLite process counts exactly in memory; PostgreSQL processes share a table.
            shared=None if store.is_sqlite else store,
            lease_secs=settings.rate_limit_lease_secs,
        ),
        http=http,
        vault=Vault.from_settings(settings.secret_key, settings.data_dir),
        executor=RunExecutor(
            store=store,
            clock=the_clock,
            notifier=notifier,
            catalog=catalog,
            templates=templates,
            step_types=step_types,
            functions=registry,
            http=http,
            lease_secs=settings.lease_secs,
            max_output_bytes=settings.max_output_bytes,
        ),
    )
    from flowgate.service.children import ServiceChildren  # these import this module
    from flowgate.service.connections import ServiceConnections

    services.executor.children = ServiceChildren(services)
    services.executor.connections = ServiceConnections(services)
    services.executor.smtp = SmtpDefaults(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )
    return services


@contextlib.asynccontextmanager
async def running(svc: Services, *, workers: int) -> AsyncIterator[Services]:
    """Check the secret key, migrate, bootstrap, start ``workers`` worker slots; stop them and
    close the store on exit. Raises SecretKeyError before anything else."""
    from flowgate.service.projects import bootstrap

    svc.vault.check()  # an empty or unreadable secret key stops start-up (SecretKeyError)
    await upgrade_database(svc.store)
    await bootstrap(svc)
    tasks = [
        asyncio.create_task(
            svc.store.listen(
                on_work=svc.notifier.work_available,
                on_run_done=svc.notifier.run_finished,
                on_run_changed=svc.notifier.run_changed,
                on_event_changed=svc.notifier.event_announced,
                on_reconnect=svc.notifier.wake_everything,
            ),
            name="notify-listener",
        )
    ]
    if workers > 0:
        from flowgate.service.runs import keep_queues_moving

        svc.local_worker = svc.new_worker(workers)
        tasks.append(asyncio.create_task(svc.local_worker.run(), name="worker"))
        tasks.append(
            asyncio.create_task(
                keep_queues_moving(svc, every=svc.settings.poll_interval_secs * 5),
                name="queue-keeper",
            )
        )
        # Schedules fire where runs are executed; several schedulers on one database start
        # one run per due time (service/scheduler.py).
        from flowgate.service.scheduler import Scheduler

        tasks.append(asyncio.create_task(Scheduler(svc).run(), name="scheduler"))
        from flowgate.service.events import expire_due_waits

        tasks.append(
            asyncio.create_task(
                expire_due_waits(svc, every=svc.settings.poll_interval_secs),
                name="event-expirer",
            )
        )
    from flowgate.service.webhooks import prune_inbox

    tasks.append(
        asyncio.create_task(
            prune_inbox(svc, every=svc.settings.inbox_prune_secs), name="inbox-pruner"
        )
    )
    try:
        yield svc
    finally:
        svc.local_worker = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await svc.http.client.aclose()
        await svc.store.close()
