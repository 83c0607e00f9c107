"""docs/workflows.md's examples and the README tour's workflow (issue 11), run as written:
each ```yaml block marked ``<!-- example: NAME -->`` is created through the API (several
documents separated by ``---``: all created, the last one run; a draft is activated, as
``flowgate apply`` does), run with the ```json block marked ``<!-- input -->`` after it (``{}``
without one), and the run's output compared with the block marked ``<!-- output -->`` (or its
error with ``<!-- error -->``). Blocks marked ``<!-- connection -->`` are created with
``POST /api/v1/connections`` first. Outbound URLs point at the loopback stand-in of
``tests/targets.py``; in expected values ``…`` matches any text. The doc must show every step
type, action and filter flowgate has in a run example."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from flowgate.engine.actions import load_actions
from flowgate.engine.steps import load_built_in_steps
from flowgate.engine.templating import TemplateEngine
from flowgate.settings import Settings
from tests import recipes, targets
from tests.pg import free_port

DOC = recipes.DOCS / "workflows.md"
ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(
    r"^(?:<!-- (?P<marker>[^\n]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S
)
#: What the doc calls, and where the test sends it instead (``{target}``: the loopback stand-in).
_STAND_INS = {
    "https://hooks.slack.com/services/T000/B000/XXXX": "{target}/echo",
    "https://echo.example.test": "{target}",
    "https://api.stripe.com": "{target}",
}


@dataclass
class Example:
    name: str
    yaml: str
    input: Any = field(default_factory=dict)
    output: Any = None
    error: Any = None


@dataclass
class Doc:
    examples: list[Example]
    connections: list[str]
    unmarked: list[str]


def _parse(text: str) -> Doc:
    doc = Doc(examples=[], connections=[], unmarked=[])
    for match in _BLOCK.finditer(text):
        marker, lang, body = match["marker"] or "", match["lang"], match["body"]
        if lang == "yaml" and marker.startswith("example: "):
            doc.examples.append(Example(marker.removeprefix("example: "), body))
        elif lang == "yaml" and marker != "fragment":
            doc.unmarked.append(body)
        elif lang == "json" and marker == "connection":
            doc.connections.append(body)
        elif lang == "json" and marker in ("input", "output", "error"):
            assert doc.examples, f"a `{marker}` block before any example: {body}"
            setattr(doc.examples[-1], marker, json.loads(body))
    return doc


DOCUMENTED = _parse(DOC.read_text())
#: The README's tour: a workflow a newcomer writes, applies with ``flowgate apply`` and runs.
TOUR = _parse((ROOT / "README.md").read_text())
EXAMPLES = {example.name: example for example in [*DOCUMENTED.examples, *TOUR.examples]}


def _stand_in(text: str, target: str) -> str:
    for real, local in _STAND_INS.items():
        text = text.replace(real, local.format(target=target))
    return text


def _matches(expected: Any, actual: Any) -> bool:
    """JSON equality, where ``…`` in an expected string matches any text."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(_matches(value, actual[key]) for key, value in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    if isinstance(expected, str) and "…" in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split("…"))
        return isinstance(actual, str) and re.fullmatch(pattern, actual, re.S) is not None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return bool(expected == actual)


class _Inbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.recipients += envelope.rcpt_tos
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings], smtp: tuple[int, _Inbox]) -> Settings:
    return make_settings(
        http_allow_private=True,
        smtp_host="127.0.0.1",
        smtp_port=smtp[0],
        smtp_from="orders@flowgate.test",
        functions_dir=ROOT / "functions",
        secret_key="docs-language-secret",
    )


async def _finished_run(client: httpx.AsyncClient, workflow_id: str, run_input: Any) -> Any:
    started = await client.post(
        f"/api/v1/workflows/{workflow_id}/run",
        json={"input": run_input},
        headers={"x-api-wait": "true"},
    )
    assert started.status_code in (200, 202), started.text
    run = started.json()["data"]
    for _ in range(6):  # a run that outlasts x-api-wait: long-poll until it ends
        if run["status"] not in ("queued", "pending", "running", "waiting"):
            return run
        polled = await client.get(f"/api/v1/runs/{run['id']}", params={"waitSecs": 10})
        run = polled.json()["data"]
    raise AssertionError(f"run {run['id']} did not end: {run['status']}")


def test_docs_language_every_yaml_block_runs_or_is_a_fragment() -> None:
    assert DOCUMENTED.unmarked == []
    assert TOUR.unmarked == []
    assert [example.name for example in TOUR.examples] == ["tour"]
    names = [example.name for example in [*DOCUMENTED.examples, *TOUR.examples]]
    assert len(names) == len(set(names)), names
    for example in EXAMPLES.values():
        assert (example.output is None) != (example.error is None), example.name


def test_docs_language_expected_values_are_compared_strictly() -> None:
    assert _matches({"id": "<…@flowgate>", "n": 1}, {"id": "<1.2@flowgate>", "n": 1.0})
    assert not _matches({"id": "<…@flowgate>"}, {"id": "<1.2@flowgate.test>"})
    assert not _matches({"n": 1}, {"n": True})
    assert not _matches({"n": 1}, {"n": 1, "extra": None})
    assert not _matches([1, 2], [2, 1])


def test_docs_language_shows_every_step_type_and_action() -> None:
    text = "\n".join(example.yaml for example in DOCUMENTED.examples)
    types = set(re.findall(r"\btype: (\w+)", text))
    actions = set(re.findall(r"\baction: ([\w.]+)", text))

    assert set(load_built_in_steps()) <= types
    assert set(load_actions()) <= actions


def test_docs_language_shows_every_filter() -> None:
    text = "\n".join(example.yaml for example in DOCUMENTED.examples)
    filters = TemplateEngine()._env.filters  # the engine's own registry: what templates may use

    missing = [name for name in filters if not re.search(rf"\|\s*{name}\b", text)]

    assert missing == []


@pytest.mark.parametrize("name", list(EXAMPLES))
async def test_docs_language_example_gives_the_documented_result(
    name: str, client: httpx.AsyncClient, target: str
) -> None:
    example = EXAMPLES[name]
    targets.HITS.clear()
    targets.STRIPE_REQUESTS.clear()
    for connection in DOCUMENTED.connections:
        created = await client.post(
            "/api/v1/connections", json=json.loads(_stand_in(connection, target))
        )
        assert created.status_code == 201, created.text
    workflow_id = ""
    for document in re.split(r"^---$", _stand_in(example.yaml, target), flags=re.M):
        created = await client.post(
            "/api/v1/workflows", content=document, headers={"content-type": "application/yaml"}
        )
        assert created.status_code == 201, created.text
        workflow_id = created.json()["data"]["id"]
        if created.json()["data"]["status"] == "draft":  # as `flowgate apply` does
            activated = await client.post(f"/api/v1/workflows/{workflow_id}/activate")
            assert activated.status_code == 200, activated.text

    run = await _finished_run(client, workflow_id, example.input)

    if example.error is not None:
        assert run["status"] == "failed"
        assert _matches(example.error, run["error"]), run["error"]
    else:
        assert run["status"] == "completed", run["error"]
        assert _matches(example.output, run["output"]), run["output"]
    if name == "retry":  # the doc says the step shows its third attempt
        assert run["steps"][0]["attempt"] == 3
