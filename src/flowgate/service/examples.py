"""What ``make run`` adds on start: the example workflows, and a banner with the key to use."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from flowgate import errors
from flowgate.documents import DocumentError, document_paths, read_document
from flowgate.service.auth import DEFAULT_PROJECT_ID, Principal
from flowgate.service.core import Services
from flowgate.service.projects import BOOTSTRAP_KEY_ID, DEFAULT_ORG_ID
from flowgate.service.workflows import apply_workflow

log = logging.getLogger(__name__)

ADMIN = Principal(
    key_id=BOOTSTRAP_KEY_ID,
    project_id=DEFAULT_PROJECT_ID,
    org_id=DEFAULT_ORG_ID,
    scopes=frozenset({"admin"}),
    rate_limit_per_minute=None,
    is_bootstrap=True,
)


async def load_examples(svc: Services, folder: Path) -> list[str]:
    """Apply and activate every workflow document in ``folder``; returns their ids."""
    loaded = []
    for path in document_paths(folder):
        try:
            body = read_document(path)
            if not isinstance(body, dict):
                raise DocumentError(f"{path}: a workflow document must be a mapping")
            row = await apply_workflow(svc, ADMIN, body)
        except (DocumentError, errors.FlowgateError) as exc:
            log.error("examples.invalid", extra={"path": str(path), "error": str(exc)})
            continue
        loaded.append(row["id"])
    return loaded


async def after_start(svc: Services, *, examples: Path | None, show_key: bool) -> None:
    loaded = await load_examples(svc, examples) if examples is not None else []
    if not show_key:
        return
    base = svc.settings.base_url
    key = svc.settings.admin_key or "<set FLOWGATE_ADMIN_KEY>"
    body = (
        '{"input": {"customerId": "c1", "items": [{"product": "a", "quantity": 2, "price": 10}, '
        '{"product": "b", "quantity": 1, "price": 5.5}]}}'
    )
    order = body.removeprefix('{"input": ').removesuffix("}")
    lines = [
        "",
        f"flowgate is running on {base}",
        f"  admin API key:  {key}",
        f"  runs monitor:   {base}/ui",
        f"  API docs:       {base}/docs",
        f"  examples:       {', '.join(loaded) or 'none'}",
        "",
        "Start a run:",
        f"  curl -s -X POST {base}/api/v1/workflows/wf_order_total/run \\",
        f'    -H "x-api-key: {key}" -H "Content-Type: application/json" \\',
        f"    -d '{body}'",
        "Then look at it:",
        f'  curl -s {base}/api/v1/runs/<runId> -H "x-api-key: {key}"',
        "",
        "Or with the CLI (in this checkout it reads the URL and key from .flowgate/dev.env;",
        "elsewhere, first):",
        f"  export FLOWGATE_URL={base} FLOWGATE_API_KEY={key}",
        f"  .venv/bin/flowgate run wf_order_total --input '{order}' --wait",
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
