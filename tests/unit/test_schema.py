"""``engine/schema.py``: linear-time patterns, write-time schema problems, no crash (DESIGN §7)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from flowgate.engine.schema import MAX_PROBLEMS, InputValidator, SchemaProblem, check_schema
from flowgate.types import JSON

EVIL = "^(a+)+$"

_REGEX_REFUSED = (
    "is not a regular expression the linear-time engine accepts "
    "(lookaround and backreferences are not supported)"
)


def _nested(depth: int) -> JSON:
    schema: JSON = {"type": "string"}
    for _ in range(depth):
        schema = {"items": schema}
    return schema


@pytest.mark.parametrize(
    ("schema", "value", "failures"),
    [
        ({"properties": {"s": {"pattern": EVIL}}}, {"s": "a" * 34 + "!"}, 1),
        ({"properties": {"s": {"pattern": EVIL}}}, {"s": "a" * 9_999 + "!"}, 1),
        ({"patternProperties": {EVIL: {"type": "integer"}}}, {"a" * 34 + "!": "x"}, 0),
    ],
    ids=["pattern-35", "pattern-10000", "patternProperties-35"],
)
def test_input_validator_exponential_pattern_finishes(
    schema: JSON, value: JSON, failures: int
) -> None:
    # A backtracking engine holds the GIL for minutes here, so the guard is a child process
    # with a generous timeout rather than a thread.
    code = textwrap.dedent(f"""
        from flowgate.engine.schema import InputValidator
        _, problems = InputValidator({schema!r}).validate({value!r})
        print(len(problems))
    """)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=10, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail("validating against an exponential pattern did not finish within 10 s")
    assert done.stdout.strip() == str(failures)


@pytest.mark.parametrize(
    ("schema", "path", "pattern"),
    [
        ({"properties": {"a": {"pattern": "(?=x)a"}}}, ["properties", "a", "pattern"], "(?=x)a"),
        ({"properties": {"a": {"pattern": "("}}}, ["properties", "a", "pattern"], "("),
        ({"patternProperties": {"(a)\\1": {}}}, ["patternProperties", "(a)\\1"], "(a)\\1"),
    ],
    ids=["lookahead", "unbalanced", "backreference"],
)
def test_check_schema_regex_the_linear_engine_refuses_returns_problem_at_its_path(
    schema: JSON, path: list[str | int], pattern: str
) -> None:
    assert check_schema(schema) == [SchemaProblem(path, f"{pattern!r} {_REGEX_REFUSED}")]


def test_check_schema_dangling_local_ref_returns_problem() -> None:
    schema: JSON = {"properties": {"a": {"$ref": "#/$defs/nope"}}}

    assert check_schema(schema) == [
        SchemaProblem([], "unusable schema: Pointer '/$defs/nope' does not exist")
    ]


@pytest.mark.parametrize("depth", [200, 300, 20_000])
def test_check_schema_deeply_nested_returns_problem(depth: int) -> None:
    assert check_schema(_nested(depth)) == [
        SchemaProblem([], "is nested more than 128 levels deep")
    ]


def test_check_schema_more_than_64_distinct_regexes_returns_problem() -> None:
    schema: JSON = {"properties": {f"p{i}": {"pattern": f"^x{i}$"} for i in range(65)}}

    assert check_schema(schema) == [SchemaProblem([], "has more than 64 distinct regexes")]


def test_input_validator_stored_schema_with_lookahead_reports_problem() -> None:
    validator = InputValidator({"properties": {"a": {"pattern": "(?=x)x"}}})

    assert validator.validate({"a": "x"}) == (
        {"a": "x"},
        [
            SchemaProblem(
                [],
                f"inputSchema cannot be used: properties/a/pattern: '(?=x)x' {_REGEX_REFUSED}",
            )
        ],
    )


def test_input_validator_input_nested_511_deep_returns_no_problem() -> None:
    value: JSON = 1
    for _ in range(511):
        value = {"a": value}

    validated, problems = InputValidator({"type": "object"}).validate(value)

    assert validated is value
    assert problems == []


def test_input_validator_many_failures_on_a_huge_value_reports_the_first_briefly() -> None:
    # 1,000 failing keywords, each of which jsonschema-rs built with a copy of the 60,000 items
    # (12 s on the event loop): now only the first failure is built, its message cut short.
    many = [{"type": "string", "minLength": i} for i in range(1_000)]
    validator = InputValidator({"properties": {"a": {"allOf": many}}})

    _validated, problems = validator.validate({"a": list(range(60_000))})

    assert problems == [SchemaProblem(["a"], repr(list(range(60_000)))[:199] + "…")]


def test_input_validator_reports_at_most_max_problems() -> None:
    validator = InputValidator({"items": {"type": "string"}})

    _validated, problems = validator.validate(list(range(MAX_PROBLEMS + 10)))

    assert problems == [
        SchemaProblem([i], f"{i} is not of type 'string'")
        for i in sorted(range(MAX_PROBLEMS), key=str)  # paths sort as text
    ]


def test_input_validator_message_shows_a_large_value_by_its_start() -> None:
    value = {"a": "x" * 1_000, "b": [[1, 2]] * 1_000}  # jsonschema-rs sorts keys

    _validated, problems = InputValidator({"properties": {"v": {"type": "string"}}}).validate(
        {"v": value}
    )

    assert problems == [SchemaProblem(["v"], repr(value)[:199] + "…")]


def test_input_validator_message_of_a_small_value_is_its_whole_repr() -> None:
    value = {"a": {}, "b": [1, 2.5, None, True], "c": [], "d": 'it\'s "q"'}

    _validated, problems = InputValidator({"properties": {"v": {"type": "string"}}}).validate(
        {"v": value}
    )

    assert problems == [SchemaProblem(["v"], f"{value!r} is not of type 'string'")]
