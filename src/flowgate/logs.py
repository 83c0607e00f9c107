"""Structured logs: stdlib ``logging`` everywhere, rendered by structlog as JSON or console.

Each record carries the current request id (a context variable set by the API middleware), the
run and workflow ids while a worker executes a run (``bind_run``), and whatever the caller put in
``extra``. Secrets and payloads are never logged.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

import structlog

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)


#: ``(run_id, workflow_id)`` of the run this task is executing, or None.
_run_var: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "run", default=None
)


@contextlib.contextmanager
def bind_run(run_id: str, workflow_id: str) -> Iterator[None]:
    """Every record logged inside (by this task, and tasks it starts) names the run."""
    token = _run_var.set((run_id, workflow_id))
    try:
        yield
    finally:
        _run_var.reset(token)


class _ContextFilter(logging.Filter):
    """Adds the request id and the executing run's ids, unless the record names its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        run = _run_var.get()
        if run is not None:
            if not hasattr(record, "run_id"):
                record.run_id = run[0]
            if not hasattr(record, "workflow_id"):
                record.workflow_id = run[1]
        return True


def _drop_color_message(
    _logger: object, _name: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """uvicorn adds an ANSI-coloured copy of its message; the rendered log needs one."""
    event.pop("color_message", None)
    return event


def configure_logging(level: str = "info", fmt: str | None = None) -> None:
    """Install one root handler; ``fmt`` None means console on a terminal, else JSON."""
    use_console = fmt == "console" or (fmt is None and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(),
            _drop_color_message,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every outbound request's full URL at INFO: a Slack webhook URL is a credential,
    # and env values end up in query strings.
    for noisy in ("uvicorn.access", "alembic.runtime.migration", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
