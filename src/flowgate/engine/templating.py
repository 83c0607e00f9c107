"""Liquid templates in step configs (DESIGN §5).

A string that is exactly one ``{{ … }}`` keeps the type of its value (number, object, list,
bool, null); text around it makes a string. ``if:`` conditions are evaluated as
``{% if … %}``. Besides the standard filters: ``map`` with an arithmetic expression per item
(a safe evaluator, never ``eval``), ``sum`` and ``json``. Parsed templates are cached per engine.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

import orjson
import simpleeval
from liquid import Environment, StrictUndefined, Undefined
from liquid.builtin.filters.array import map_ as liquid_map
from liquid.builtin.output import OutputNode
from liquid.context import RenderContext
from liquid.exceptions import LiquidError
from liquid.template import BoundTemplate

from flowgate import errors
from flowgate.types import JSON

_PLAIN_PATH = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$")
_STEP_REFERENCE = re.compile(r"\bsteps\.([A-Za-z0-9_-]+)|\bsteps\[['\"]([A-Za-z0-9_-]+)['\"]\]")
_MARKERS = ("{{", "{%")
_ARITHMETIC_NODES = ("BinOp", "UnaryOp", "Constant", "Name", "Expr")


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    path: list[str | int]
    expression: str
    message: str


class _LiquidEnvironment(Environment):
    shorthand_indexes = True
    loop_iteration_limit: ClassVar[int | None] = 10_000
    output_stream_limit: ClassVar[int | None] = 1_000_000
    context_depth_limit: ClassVar[int] = 30
    local_namespace_limit: ClassVar[int | None] = 1_000_000


def _arithmetic(expression: str, item: object) -> object:
    names = item if isinstance(item, Mapping) else {"item": item}
    evaluator = simpleeval.SimpleEval(names=dict(names), functions={})
    evaluator.operators = {
        op: fn
        for op, fn in simpleeval.DEFAULT_OPERATORS.items()
        if op.__name__ in ("Add", "Sub", "Mult", "Div", "Mod", "USub", "UAdd")
    }
    evaluator.ATTR_INDEX_FALLBACK = False
    try:
        return evaluator.eval(expression)
    except Exception as exc:
        raise errors.TemplateError(f"cannot evaluate {expression!r}: {exc}") from exc


def _map(sequence: object, key: object) -> list[object]:
    """Liquid's ``map``, plus ``map: 'quantity * price'`` evaluated per item."""
    if isinstance(key, str) and not _PLAIN_PATH.match(key.strip()):
        items = sequence if isinstance(sequence, list) else [sequence]
        return [_arithmetic(key, item) for item in items]
    return liquid_map(sequence, key)  # type: ignore[no-any-return]


def _sum(sequence: object, key: object = None) -> int | float:
    items = sequence if isinstance(sequence, list) else [sequence]
    if key is not None and not isinstance(key, Undefined):
        items = [item.get(str(key)) if isinstance(item, Mapping) else None for item in items]
    total = sum(
        (Decimal(str(value)) for value in items if _is_number(value)),
        Decimal(0),
    )
    return int(total) if total == total.to_integral_value() else float(total)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _json(value: object) -> str:
    return orjson.dumps(to_json(value)).decode()


def to_json(value: object) -> JSON:
    """A template result as a plain JSON value: no Decimal, no Undefined, no drops."""
    if value is None or isinstance(value, Undefined):
        return None
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | range):
        return [to_json(v) for v in value]
    return str(value)


class TemplateEngine:
    """Parses, caches and renders templates; one per process (no module-level caches)."""

    def __init__(self, *, strict: bool = False, cache_size: int = 4096) -> None:
        self._env = _LiquidEnvironment(undefined=StrictUndefined if strict else Undefined)
        self._env.add_filter("map", _map)
        self._env.add_filter("sum", _sum)
        self._env.add_filter("json", _json)
        self._cache: OrderedDict[str, BoundTemplate] = OrderedDict()
        self._cache_size = cache_size

    def _parse(self, source: str) -> BoundTemplate:
        found = self._cache.get(source)
        if found is None:
            found = self._env.from_string(source)
            self._cache[source] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return found

    def check(self, value: JSON) -> list[TemplateProblem]:
        """Parse every string in a nested value; list the syntax errors (never raises)."""
        problems: list[TemplateProblem] = []
        for path, text in _strings(value, []):
            try:
                self._parse(text)
            except LiquidError as exc:
                problems.append(TemplateProblem(path, text, _first_line(exc)))
        return problems

    def check_condition(self, expr: str) -> str | None:
        try:
            self._parse(_condition_source(expr))
        except LiquidError as exc:
            return f"Invalid condition {expr!r}: {_first_line(exc)}"
        return None

    def render(self, value: JSON, context: Mapping[str, object]) -> JSON:
        """Render every string of a nested value (keys are not templates)."""
        if isinstance(value, str):
            return self._render_string(value, context) if _is_template(value) else value
        if isinstance(value, dict):
            return {key: self.render(item, context) for key, item in value.items()}
        if isinstance(value, list):
            return [self.render(item, context) for item in value]
        return value

    def _render_string(self, text: str, context: Mapping[str, object]) -> JSON:
        try:
            template = self._parse(text)
            whole = _lone_output(template)
            if whole is not None:
                render_context = RenderContext(template, globals=dict(context))
                return to_json(whole.expression.evaluate(render_context))
            return template.render(**context)
        except errors.TemplateError as exc:
            raise errors.TemplateError(f"Template error in {text!r}: {exc.message}") from exc
        except (LiquidError, ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            raise errors.TemplateError(f"Template error in {text!r}: {_first_line(exc)}") from exc

    def condition(self, expr: str, context: Mapping[str, object]) -> bool:
        source = _condition_source(expr)
        try:
            return self._parse(source).render(**context) == "1"
        except errors.TemplateError as exc:
            raise errors.TemplateError(f"Condition {expr!r}: {exc.message}") from exc
        except (LiquidError, ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            raise errors.TemplateError(f"Condition {expr!r}: {_first_line(exc)}") from exc

    def referenced_steps(self, value: JSON) -> set[str]:
        found: set[str] = set()
        for _, text in _strings(value, []):
            for match in _STEP_REFERENCE.finditer(text):
                found.add(match.group(1) or match.group(2))
        return found


def _is_template(text: str) -> bool:
    return any(marker in text for marker in _MARKERS)


def _strings(value: JSON, path: list[str | int]) -> list[tuple[list[str | int], str]]:
    if isinstance(value, str):
        return [(path, value)] if _is_template(value) else []
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _strings(v, [*path, k])]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _strings(v, [*path, i])]
    return []


def _lone_output(template: BoundTemplate) -> OutputNode | None:
    """The output node if the template is one ``{{ … }}`` with only whitespace around it."""
    outputs = [node for node in template.nodes if isinstance(node, OutputNode)]
    if len(outputs) != 1:
        return None
    others = [node for node in template.nodes if node is not outputs[0]]
    if all(str(node).strip() == "" for node in others):
        return outputs[0]
    return None


def _condition_source(expr: str) -> str:
    inner = expr.strip()
    if inner.startswith("{{") and inner.endswith("}}"):
        inner = inner[2:-2].strip()
    return "{% if " + inner + " %}1{% endif %}"


def _first_line(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return str(message).splitlines()[0] if message else type(exc).__name__
