"""Liquid templates in step configs (DESIGN §5).

A string that is exactly one ``{{ … }}`` keeps the type of its value (number, object, list,
bool, null); text around it makes a string. ``if:`` conditions are evaluated as
``{% if … %}``. Besides the standard filters: ``map`` with an arithmetic expression per item
(a safe evaluator, never ``eval``), ``sum`` and ``json``. Parsed templates are cached per engine.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
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
    #: False for a template that parses but names what does not exist (an unknown filter).
    syntax: bool = True


#: The longest text and the most items a template may produce. python-liquid bounds loops, the
#: output stream and assigned names, but not a filter's work or a lone ``{{ … }}``'s value:
#: ``{{ (1..100000000) }}`` or ``(1..100000000) | join`` took 3 GB and 25 s. Each filter is
#: therefore checked before it runs (its input's length) and after (its result's), and a
#: ``replace`` that would grow past the limit is refused before it allocates.
MAX_TEXT = 1_000_000
MAX_ITEMS = 100_000
#: Filter work allowed in one top-level render or condition: each filter call adds the size of
#: its input and of its result (characters or items; 1 for anything else). Each call is bounded
#: above, but a loop multiplies them: 10,000 ``upcase``s of a 900 KB text took 5 s. The costliest
#: linear filters (``sort``, ``json``) take up to ~50 ns a unit, so a render stops within about
#: half a second (docs/decisions.md). ``uniq`` is quadratic and an arithmetic ``map`` evaluates
#: per item, so they are charged accordingly.
MAX_WORK = 10_000_000
#: Units per item of an arithmetic ``map`` (about 10 µs each, 1 ns a unit for ``upcase``).
_ARITHMETIC_WORK = 500


class _Work:
    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = 0


# Set by the outermost render or condition; nested renders add to the same budget.
_WORK: ContextVar[_Work | None] = ContextVar("flowgate_template_work", default=None)


@contextmanager
def _work_budget() -> Iterator[None]:
    if _WORK.get() is not None:
        yield
        return
    token = _WORK.set(_Work())
    try:
        yield
    finally:
        _WORK.reset(token)


def _size(value: object) -> int:
    sized = isinstance(value, Sized) and not isinstance(value, Mapping)
    return len(value) if sized else 1  # type: ignore[arg-type]  # Sized, checked above


def _charge(name: str, units: int) -> None:
    work = _WORK.get()
    if work is None:
        return
    work.used += units
    if work.used > MAX_WORK:
        raise errors.TemplateError(f"{name}: over the template work limit of {MAX_WORK:,}")


class _LiquidEnvironment(Environment):
    shorthand_indexes = True
    loop_iteration_limit: ClassVar[int | None] = 10_000
    output_stream_limit: ClassVar[int | None] = MAX_TEXT
    context_depth_limit: ClassVar[int] = 30
    local_namespace_limit: ClassVar[int | None] = MAX_TEXT


def _too_big(value: object) -> str | None:
    """Why ``value`` is over the limits, or None."""
    if isinstance(value, str | bytes):
        return f"text of {len(value):,} characters" if len(value) > MAX_TEXT else None
    if isinstance(value, Sized) and not isinstance(value, Mapping) and len(value) > MAX_ITEMS:
        return f"{len(value):,} items"
    return None


def _check_sequence_input(name: str, value: object) -> None:
    if isinstance(value, str | bytes | Mapping):
        return
    reason = _too_big(value)
    if reason is not None:
        raise errors.TemplateError(f"{name}: input of {reason} is over the template limit")


def _check_replace(text: object, args: tuple[object, ...]) -> None:
    """``replace`` multiplies: refuse it when the result would exceed MAX_TEXT."""
    if len(args) < 2:
        return
    source, old, new = str(text), str(args[0]), str(args[1])
    count = source.count(old) if old else len(source) + 1
    if len(source) + count * max(len(new) - len(old), 0) > MAX_TEXT:
        raise errors.TemplateError(f"replace: the result would exceed {MAX_TEXT:,} characters")


def _bounded(name: str, fn: Callable[..., object]) -> Callable[..., object]:
    @functools.wraps(fn)
    def bounded(left: object, *args: object, **kwargs: object) -> object:
        _check_sequence_input(name, left)
        size = _size(left)
        _charge(name, size * size if name == "uniq" else size)  # liquid's uniq is quadratic
        if name == "replace":
            _check_replace(left, args)
        result = fn(left, *args, **kwargs)
        reason = _too_big(result)
        if reason is not None:
            raise errors.TemplateError(f"{name}: a result of {reason} is over the template limit")
        _charge(name, _size(result))
        return result

    return bounded


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
        _charge("map", len(items) * _ARITHMETIC_WORK)
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
        if len(value) > MAX_ITEMS:
            raise errors.TemplateError(f"a list of {len(value):,} items is over the limit")
        return [to_json(v) for v in value]
    return str(value)


class TemplateEngine:
    """Parses, caches and renders templates; one per process (no module-level caches)."""

    def __init__(self, *, strict: bool = False, cache_size: int = 4096) -> None:
        self._env = _LiquidEnvironment(undefined=StrictUndefined if strict else Undefined)
        self._env.add_filter("map", _map)
        self._env.add_filter("sum", _sum)
        self._env.add_filter("json", _json)
        for name, fn in list(self._env.filters.items()):
            self._env.filters[name] = _bounded(name, fn)
        self._cache: OrderedDict[str, BoundTemplate] = OrderedDict()
        self._cache_size = cache_size

    def _parse(self, source: str) -> BoundTemplate:
        found = self._cache.get(source)
        if found is None:
            found = self._env.from_string(source)
            self._cache[source] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(source)  # least recently used goes first
        return found

    def check(self, value: JSON) -> list[TemplateProblem]:
        """Parse every string in a nested value; list the syntax errors and unknown filters
        (never raises). Unknown tags are syntax errors already."""
        problems: list[TemplateProblem] = []
        for path, text in _strings(value, []):
            try:
                template = self._parse(text)
            except LiquidError as exc:
                problems.append(TemplateProblem(path, text, _first_line(exc)))
                continue
            problems += [
                TemplateProblem(path, text, message, syntax=False)
                for message in self._unknown_filters(template)
            ]
        return problems

    def check_condition(self, expr: str) -> str | None:
        # No filter check: Liquid's ``if`` takes no filters, so one is a syntax error already.
        try:
            self._parse(_condition_source(expr))
        except LiquidError as exc:
            return f"Invalid condition {expr!r}: {_first_line(exc)}"
        return None

    def _unknown_filters(self, template: BoundTemplate) -> list[str]:
        """One message per filter the template names that this engine lacks: python-liquid
        would only find out when the step runs (``UnknownFilterError``)."""
        try:
            used = template.filter_names(include_partials=False)
        except (LiquidError, RecursionError):
            return []  # the render reports it, with the step's context
        known = self._env.filters
        return [_unknown_filter(name, known) for name in used if name not in known]

    def render(self, value: JSON, context: Mapping[str, object]) -> JSON:
        """Render every string of a nested value (keys are not templates)."""
        with _work_budget():
            return self._render_value(value, context)

    def _render_value(self, value: JSON, context: Mapping[str, object]) -> JSON:
        if isinstance(value, str):
            return self._render_string(value, context) if _is_template(value) else value
        if isinstance(value, dict):
            return {key: self._render_value(item, context) for key, item in value.items()}
        if isinstance(value, list):
            return [self._render_value(item, context) for item in value]
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
            raise errors.TemplateError(
                f"Template error in {_excerpt(text)}: {exc.message}"
            ) from exc
        except (LiquidError, ArithmeticError, TypeError, ValueError, RecursionError) as exc:
            raise errors.TemplateError(
                f"Template error in {_excerpt(text)}: {_first_line(exc)}"
            ) from exc

    def condition(self, expr: str, context: Mapping[str, object]) -> bool:
        source = _condition_source(expr)
        try:
            with _work_budget():
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


def _unknown_filter(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown filter {name!r}{hint}"


def _excerpt(text: str, limit: int = 200) -> str:
    """A template as quoted in an error message: whole if short, its start otherwise."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


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
