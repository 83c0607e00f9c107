"""Templates checked when a workflow is written: unknown filters and tags are found then, with
the path of the template and a hint, not when a run reaches the step."""

from __future__ import annotations

import pytest

from flowgate.engine.templating import TemplateEngine, TemplateProblem

ENGINE = TemplateEngine()


def test_check_unknown_filter_names_it_with_closest_known() -> None:
    problems = ENGINE.check({"mapping": {"n": "{{ input.n | tims: 2 }}"}})

    assert problems == [
        TemplateProblem(
            ["mapping", "n"],
            "{{ input.n | tims: 2 }}",
            "unknown filter 'tims' (did you mean 'times'?)",
            syntax=False,
        )
    ]


def test_check_unknown_filters_each_reported_inside_loops_and_lists() -> None:
    source = "{% for x in input.xs %}{{ x | upcase | zzqx }}{% endfor %}{{ 1 | frob }}"

    problems = ENGINE.check({"a": ["plain", source]})

    assert [(p.path, p.message) for p in problems] == [
        (["a", 1], "unknown filter 'zzqx'"),
        (["a", 1], "unknown filter 'frob'"),
    ]


def test_check_unknown_tag_is_a_syntax_problem() -> None:
    [problem] = ENGINE.check("{% shout %}hi{% endshout %}")

    assert problem.syntax is True
    assert "unexpected tag 'shout'" in problem.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ input.items | map: 'quantity * price' | sum | times: 1.08 | round: 2 }}",
        "{{ input | json }}",
        "{{ input.name | default: 'x' | downcase | append: '!' }}",
        "{% include 'elsewhere' %}",
        "no template at all",
    ],
)
def test_check_known_filters_and_partials_pass(source: str) -> None:
    assert ENGINE.check(source) == []


def test_check_condition_with_filter_is_refused_as_syntax() -> None:
    message = ENGINE.check_condition("input.a | nope")

    assert message == "Invalid condition 'input.a | nope': expected end of expression, found '|'"


def test_check_condition_plain_comparison_passes() -> None:
    assert ENGINE.check_condition("steps.calculate-total.output.total > 100") is None
