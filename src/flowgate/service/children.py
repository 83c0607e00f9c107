"""Child runs for ``run_workflow`` steps: the engine asks, the one ``start_run`` path answers."""

from __future__ import annotations

from flowgate import errors
from flowgate.engine.steps import StepFailure
from flowgate.service.auth import acting_for_project
from flowgate.service.core import Services
from flowgate.service.runs import StartRun, start_run
from flowgate.types import JSON, JSONObject


class ServiceChildren:
    def __init__(self, svc: Services) -> None:
        self._svc = svc

    async def start(
        self, *, parent: str, project_id: str, key: str, workflow: str, input: JSON
    ) -> JSONObject:
        principal = await acting_for_project(
            self._svc, project_id, key_id=f"run:{parent}", scopes=frozenset({"workflows:execute"})
        )
        command = StartRun(
            workflow=workflow,
            input=input,
            idempotency_key=key,
            source="workflow",
            parent_run_id=parent,
        )
        try:
            started = await start_run(self._svc, principal, command)
        except errors.FlowgateError as exc:
            raise StepFailure(f"Cannot start {workflow!r}: {exc.message}") from exc
        return {"id": started.run["id"], "status": started.run["status"]}

    async def get(self, run_id: str) -> JSONObject | None:
        run = await self._svc.store.get_run(None, run_id)
        if run is None:
            return None
        return {
            "id": run["id"],
            "status": run["status"],
            "output": run["output"],
            "error": run["error"],
        }
