"""Compiled workflow versions, cached per process: a version never changes once written."""

from __future__ import annotations

from collections import OrderedDict

from flowgate.engine.definition import CompiledWorkflow, compile_workflow
from flowgate.store.base import Store
from flowgate.types import JSONObject


class WorkflowCatalog:
    def __init__(self, store: Store, *, max_size: int = 1024) -> None:
        self._store = store
        self._max_size = max_size
        self._compiled: OrderedDict[tuple[str, str, int], CompiledWorkflow] = OrderedDict()

    def compiled(
        self, project_id: str, workflow_id: str, version: int, definition: JSONObject
    ) -> CompiledWorkflow:
        """The compiled form of a version whose definition the caller already holds."""
        key = (project_id, workflow_id, version)
        found = self._compiled.get(key)
        if found is None:
            found = compile_workflow(workflow_id, version, definition)
            self._compiled[key] = found
            if len(self._compiled) > self._max_size:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(key)
        return found

    async def get(self, project_id: str, workflow_id: str, version: int) -> CompiledWorkflow:
        """The compiled form of a stored version; raises ``LookupError`` if it does not exist."""
        found = self._compiled.get((project_id, workflow_id, version))
        if found is not None:
            return found
        row = await self._store.get_workflow_version(project_id, workflow_id, version)
        if row is None:
            raise LookupError(f"workflow {workflow_id} has no version {version}")
        return self.compiled(project_id, workflow_id, version, row["definition"])
