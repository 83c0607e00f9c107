"""Per-step env (Shipyard's vessel overrides): the dialect's reading of the body, the service's
resolution of step names to ids, and the env a step sees in the engine."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from flowgate import errors
from flowgate.api.dialects.shipyard import parse_overrides
from flowgate.engine import executor
from flowgate.engine.redact import Redactor
from flowgate.service import runs


def test_parse_overrides_empty_body_has_neither_env_nor_step_env() -> None:
    assert parse_overrides(b"") == (None, None)
    assert parse_overrides(b" \n") == (None, None)
    assert parse_overrides(b"{}") == (None, None)


def test_parse_overrides_null_drops_a_name_and_empty_string_sets_it_empty() -> None:
    body = (
        b'{"environment_variable_overrides": {"A": "1", "B": null, "C": ""},'
        b' "vessel_overrides": [{"name": "load", "environment_variable_overrides": {"X": null}},'
        b' {"name": "load", "environment_variable_overrides": {"Y": "y"}}, {"name": "Extract"}]}'
    )

    env, step_env = parse_overrides(body)

    assert env == {"A": "1", "C": ""}
    # A vessel named twice merges; one without overrides is kept so that its name is checked.
    assert step_env == {"load": {"Y": "y"}, "Extract": {}}


@pytest.mark.parametrize(
    "body",
    [
        b'"text"',
        b'{"environment_variable_overrides": {"A": 1.5}}',
        b'{"environment_variable_overrides": "A=1"}',
        b'{"vessel_overrides": [{"name": ""}]}',
        b'{"vessel_overrides": ["load"]}',
        b'{"vessel_overrides": [{"name": "load", "extra": 1}]}',
        b'{"fleet": "x"}',
    ],
)
def test_parse_overrides_wrong_shapes_are_invalid_requests(body: bytes) -> None:
    with pytest.raises(errors.InvalidRequest):
        parse_overrides(body)


def _workflow(*steps: tuple[str, str | None]) -> Any:
    return SimpleNamespace(steps=tuple(SimpleNamespace(id=i, name=n) for i, n in steps))


def test_step_env_keys_resolve_by_id_then_by_exact_name() -> None:
    workflow = _workflow(("extract", "Load"), ("load", "Load it"))

    resolved = runs._step_env_by_id(
        workflow, {"load": {"A": "by id"}, "Load it": {"B": "by name"}, "extract": {}}
    )

    # "load" is an id (the name "Load" of another step does not matter); empty entries go.
    assert resolved == {"load": {"A": "by id", "B": "by name"}}


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("Load", "Unknown step 'Load': no step of the workflow has this id or name"),
        ("Same", "Ambiguous step 'Same': several steps have this name; name the step by its id"),
    ],
)
def test_step_env_unknown_or_ambiguous_step_is_invalid_request(ref: str, message: str) -> None:
    workflow = _workflow(("load", "Same"), ("extract", "Same"))

    with pytest.raises(errors.InvalidRequest) as raised:
        runs._step_env_by_id(workflow, {ref: {"A": "1"}})

    assert raised.value.message == message
    assert raised.value.details == [{"path": ["stepEnv", ref], "message": message.split(": ")[1]}]


def test_step_env_none_or_empty_is_none() -> None:
    assert runs._step_env_by_id(_workflow(("a", None)), None) is None
    assert runs._step_env_by_id(_workflow(("a", None)), {"a": {}}) is None


RUN: Any = {"env": {"REGION": "eu", "MODE": "m"}, "step_env": {"load": {"REGION": "", "K": "k3y!"}}}


def test_env_for_overlays_only_the_steps_own_entry() -> None:
    assert executor._env_for(RUN, "load") == {"REGION": "", "MODE": "m", "K": "k3y!"}
    assert executor._env_for(RUN, "extract") is RUN["env"]
    assert executor._env_for({**RUN, "step_env": None}, "load") is RUN["env"]


def test_env_values_feed_the_redactor_with_step_env_values() -> None:
    redact = Redactor(executor._env_values(RUN))

    assert redact("key k3y! in eu") == "key *** in ***"
