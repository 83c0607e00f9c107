"""Templates cannot make a step use unbounded memory or time (DESIGN §7): python-liquid's own
limits cover loops, the output stream and assigned names; flowgate bounds every filter's input
and result and a lone ``{{ … }}``'s value. Each case here took seconds and gigabytes before."""

from __future__ import annotations

import pytest

from flowgate import errors
from flowgate.engine.templating import MAX_ITEMS, MAX_TEXT, TemplateEngine

ENGINE = TemplateEngine()


@pytest.mark.parametrize(
    "template",
    [
        "{{ (1..100000000) }}",
        "{% assign s = (1..100000000) | join: ',' %}{{ s | size }}",
        "{{ (1..100000000) | reverse | first }}",
        "{{ (1..30000000) | sort | first }}",
        "{{ (1..30000000) | map: 'item * 2' | first }}",
    ],
)
def test_template_over_a_huge_range_fails_before_allocating(template: str) -> None:
    with pytest.raises(errors.TemplateError, match="over the"):
        ENGINE.render(template, {})


def test_template_replace_that_multiplies_past_the_limit_fails() -> None:
    text = "a" * 2_000
    growing = "{{ input.text | replace: 'a', input.long }}"

    with pytest.raises(errors.TemplateError, match="replace: the result would exceed"):
        ENGINE.render(growing, {"input": {"text": text, "long": "b" * 1_000}})


def test_template_appends_past_the_text_limit_fail() -> None:
    chain = "{{ input.s" + " | append: input.s" * 5 + " }}"

    with pytest.raises(errors.TemplateError, match="over the template limit"):
        ENGINE.render(chain, {"input": {"s": "x" * (MAX_TEXT // 4)}})


def test_template_within_limits_keeps_working() -> None:
    rendered = ENGINE.render(
        "{{ (1..1000) | join: ',' | size }}|{{ input.s | replace: 'a', 'bb' }}",
        {"input": {"s": "aa"}},
    )

    assert rendered == "3892|bbbb"
    assert ENGINE.render("{{ input.items | size }}", {"input": {"items": [0] * MAX_ITEMS}}) == (
        MAX_ITEMS
    )


def test_template_error_quotes_a_long_template_by_its_start() -> None:
    template = "{{ (1..100000000) }}" + " " * 1_000

    with pytest.raises(errors.TemplateError) as raised:
        ENGINE.render(template, {})

    assert len(raised.value.message) < 400


def test_template_loop_of_filters_over_a_large_input_fails_on_the_work_limit() -> None:
    loop = "{% for i in (1..10000) %}{% assign t = input.s | upcase | size %}{% endfor %}"

    with pytest.raises(errors.TemplateError, match="template work limit") as raised:
        ENGINE.render(loop, {"input": {"s": "x" * 900_000}})

    assert raised.value.code == "TEMPLATE_ERROR"


def test_template_strings_of_one_value_share_the_work_limit() -> None:
    three = "{% for i in (1..3) %}{% assign t = input.s | upcase %}{% endfor %}done"
    context = {"input": {"s": "x" * 900_000}}
    assert ENGINE.render(three, context) == "done"

    with pytest.raises(errors.TemplateError, match="template work limit"):
        ENGINE.render({"a": three, "b": [three]}, context)


def test_template_work_limit_is_per_render() -> None:
    template = "{% for i in (1..5) %}{% assign t = input.s | upcase %}{% endfor %}{{ t | size }}"
    context = {"input": {"s": "x" * 900_000}}

    for _ in range(3):
        assert ENGINE.render(template, context) == "900000"
