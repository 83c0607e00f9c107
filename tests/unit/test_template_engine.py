"""Templates (DESIGN §5): types kept, seed figures exact, no way into Python internals."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowgate import errors
from flowgate.engine.templating import TemplateEngine

ENGINE = TemplateEngine()
ITEMS = [
    {"product": "a", "quantity": 2, "price": 10},
    {"product": "b", "quantity": 1, "price": 5.5},
]
CONTEXT = {
    "input": {"items": ITEMS, "n": 3, "name": "Ada"},
    "steps": {"calculate-total": {"output": {"total": 200}}},
    "env": {"REGION": "eu"},
    "run": {"id": "run_1"},
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_lone_expression_keeps_the_value_type(value: object) -> None:
    assert ENGINE.render("{{ input.v }}", {"input": {"v": value}}) == value


@given(st.text(max_size=60))
def test_render_of_any_text_raises_only_template_errors(text: str) -> None:
    with contextlib.suppress(errors.TemplateError):
        ENGINE.render(text, CONTEXT)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{input.items | map: 'quantity * price' | sum}}", 25.5),
        ("{{input.items | map: 'quantity * price' | sum | times: 1.08}}", 27.54),
        ("{{input.items | map: 'quantity * price' | sum | times: 0.08}}", 2.04),
        ("{{input.items.0.product}}", "a"),
        ("{{steps.calculate-total.output.total}}", 200),
        ("Invoice #{{run.id}}", "Invoice #run_1"),
        ("{{ input.items | map: 'product' }}", ["a", "b"]),
        ("{{ input.items | map: 'product' | json }}", '["a","b"]'),
        ("{{ env.REGION | upcase }}", "EU"),
        ("{{ nothing }}", None),
        ("x{{ nothing }}y", "xy"),
        ("{{ 10 | divided_by: 4.0 | round: 2 }}", 2.5),
    ],
)
def test_render_documented_examples(template: str, expected: object) -> None:
    assert ENGINE.render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{input.__class__}}",
        "{{input.items.__len__}}",
        "{{ input.__dict__ }}",
        "{{ run.id.__class__ }}",
    ],
)
def test_python_internals_are_unreachable(template: str) -> None:
    assert ENGINE.render(template, CONTEXT) is None


def test_map_expression_cannot_call_functions() -> None:
    with pytest.raises(errors.TemplateError, match="__import__"):
        ENGINE.render("{{ input.items | map: '__import__(1)' }}", CONTEXT)


def test_strict_undefined_is_an_error() -> None:
    with pytest.raises(errors.TemplateError):
        TemplateEngine(strict=True).render("{{ input.missing.deeper }}", CONTEXT)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("steps.calculate-total.output.total > 100", True),
        ("{{ input.n > 10 }}", False),
        ("input.name == 'Ada' and input.n >= 3", True),
        ("input.items contains 'x'", False),
    ],
)
def test_conditions_with_and_without_braces(condition: str, expected: bool) -> None:
    assert ENGINE.condition(condition, CONTEXT) is expected


def test_check_lists_syntax_errors_with_paths() -> None:
    problems = ENGINE.check({"a": "{{ x | }}", "b": ["ok", "{% if %}"], "c": "plain"})

    assert [p.path for p in problems] == [["a"], ["b", 1]]


def test_referenced_steps_finds_hyphenated_ids() -> None:
    refs = ENGINE.referenced_steps({"a": "{{steps.calculate-total.output.x}} {{ steps.b.output }}"})

    assert refs == {"calculate-total", "b"}


def test_loop_limit_stops_runaway_templates() -> None:
    with pytest.raises(errors.TemplateError):
        ENGINE.render("{% for i in (1..100000) %}{{ i }}{% endfor %}", CONTEXT)
