"""The overview (`/ui/overview`): runs per minute and failure rate, the slowest and most failing
workflows.

The window is the last 24 hours as 96 buckets of 15 minutes, aligned on the clock (the newest
bucket is the current, partial one). One aggregate query (``store/insights.py``) reads the
project's runs in the window per bucket and workflow, summed here both ways; the charts are
inline SVG built here, coloured by classes of ``overview.css`` (no inline style: the CSP
forbids it).

Definitions the page states too: *runs per minute* is a bucket's runs (by creation time) over its
15 minutes; a *failure* is a run that ended ``failed`` or ``timed_out`` (``canceled`` is someone's
choice, not a failure), and the *failure rate* is failures over the runs that ended; *slowest* is
the mean (not the median) duration (``completed_at - started_at``) of completed runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from flowgate import clock
from flowgate.service import runs as run_service
from flowgate.store.base import RunStats
from flowgate.store.insights import FAILED_VALUES
from flowgate.ui.pages import current_viewer, ms, render, router, svc_of, to_login

BUCKET = timedelta(minutes=15)
BUCKETS = 96
BUCKET_MS = int(BUCKET.total_seconds() * 1000)
BUCKET_MINUTES = BUCKET.total_seconds() / 60
#: How many workflows each list shows.
TOP = 8

# The charts' geometry, in SVG user units (the SVG scales to the page's width).
WIDTH, HEIGHT = 960.0, 220.0
LEFT, RIGHT, TOP_PAD, BOTTOM = 56.0, 12.0, 12.0, 34.0
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP_PAD - BOTTOM
#: An x-axis label every this many buckets (4 hours).
LABEL_EVERY = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    since: datetime
    until: datetime

    @classmethod
    def ending_at(cls, now: datetime) -> Window:
        last = clock.to_millis(now) // BUCKET_MS
        first = last - BUCKETS + 1
        return cls(
            since=clock.from_millis(first * BUCKET_MS),
            until=clock.from_millis((last + 1) * BUCKET_MS),
        )

    def starts(self) -> list[datetime]:
        return [self.since + BUCKET * i for i in range(BUCKETS)]


@router.get("/overview")
async def overview_page(request: Request) -> Response:
    viewer = await current_viewer(request)
    if viewer is None:
        return to_login(request)
    svc = svc_of(request)
    window = Window.ending_at(svc.clock.now())
    stats = await run_service.run_stats(
        svc, viewer.principal, since=window.since, width=BUCKET, buckets=BUCKETS
    )
    buckets = per_bucket(stats)
    workflows = per_workflow(stats)
    total = sum(b.runs for b in buckets)
    failed = sum(b.failed for b in buckets)
    ended = sum(b.ended for b in buckets)
    return render(
        "overview.html",
        title="Overview",
        section="overview",
        viewer=viewer,
        since=_clock_time(window.since, date=True),
        until=_clock_time(window.until, date=True),
        totals={
            "runs": total,
            "failed": failed,
            "ended": ended,
            "rate": _percent(failed, ended),
            "per_minute": _per_minute(total, BUCKETS * BUCKET_MINUTES),
        },
        empty=total == 0,
        runs_chart=runs_chart(window, buckets),
        failure_chart=failure_chart(window, buckets),
        slowest=slowest(workflows, window),
        failing=most_failing(workflows, window),
        all_runs_url=_runs_url(window),
    )


@dataclass(slots=True, kw_only=True)
class Totals:
    """Runs summed over workflows (a bucket) or over buckets (a workflow)."""

    key: Any
    runs: int = 0
    ended: int = 0
    failed: int = 0
    completed: int = 0
    timed: int = 0
    duration_ms: int = 0

    def add(self, stats: RunStats) -> None:
        self.runs += stats.runs
        self.ended += stats.ended
        self.failed += stats.failed
        self.completed += stats.completed
        self.timed += stats.timed
        self.duration_ms += stats.duration_ms

    @property
    def mean_duration_ms(self) -> float | None:
        return self.duration_ms / self.timed if self.timed else None


def _sum_by(stats: Sequence[RunStats], key: Callable[[RunStats], Any]) -> list[Totals]:
    sums: dict[Any, Totals] = {}
    for row in stats:
        k = key(row)
        total = sums.get(k)
        if total is None:
            total = sums[k] = Totals(key=k)
        total.add(row)
    return list(sums.values())


def per_bucket(stats: Sequence[RunStats]) -> list[Totals]:
    """Totals keyed by bucket start."""
    return _sum_by(stats, lambda row: row.start)


def per_workflow(stats: Sequence[RunStats]) -> list[Totals]:
    """Totals keyed by workflow id."""
    return _sum_by(stats, lambda row: row.workflow_id)


# --- the charts -----------------------------------------------------------------------------


def _by_start(buckets: Sequence[Totals]) -> dict[datetime, Totals]:
    return {b.key: b for b in buckets}


def _x(index: int) -> float:
    return LEFT + PLOT_W * index / BUCKETS


def _y(value: float, top: float) -> float:
    return TOP_PAD + PLOT_H * (1 - value / top)


def nice_ceiling(value: float) -> float:
    """The y axis' top: 1, 2 or 5 times a power of ten, at least ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(round(step * scale, 9) for step in (1, 2, 5, 10) if round(step * scale, 9) >= value)


def _axes(window: Window, top: float, label: Callable[[float], str]) -> dict[str, Any]:
    """Gridlines at 0, ½ and the top, and an x label every four hours."""
    ticks = [{"y": round(_y(v, top), 1), "label": label(v)} for v in (0.0, top / 2, top)]
    xs = [
        {"x": round(_x(i), 1), "label": _clock_time(start)}
        for i, start in enumerate(window.starts())
        if i % LABEL_EVERY == 0
    ]
    return {
        "y_ticks": ticks,
        "x_ticks": xs,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "base": TOP_PAD + PLOT_H,
    }


def runs_chart(window: Window, buckets: Sequence[Totals]) -> dict[str, Any]:
    found = _by_start(buckets)
    rates = [found[s].runs / BUCKET_MINUTES if s in found else 0.0 for s in window.starts()]
    top = nice_ceiling(max(rates, default=0.0))
    bars = []
    for i, start in enumerate(window.starts()):
        bucket = found.get(start)
        if bucket is None:
            continue
        y = _y(rates[i], top)
        bars.append(
            {
                **_bar_box(i, y),
                "start": clock.to_wire(start),
                "runs": bucket.runs,
                "title": f"{_span_label(start)}: {bucket.runs} run{'s' * (bucket.runs != 1)} "
                f"({_per_minute(bucket.runs, BUCKET_MINUTES)} per minute)",
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "bars": bars,
        "axis_title": "runs per minute",
        **_axes(window, top, _number),
    }


def failure_chart(window: Window, buckets: Sequence[Totals]) -> dict[str, Any]:
    found = _by_start(buckets)
    bars = []
    for i, start in enumerate(window.starts()):
        bucket = found.get(start)
        if bucket is None or bucket.ended == 0:
            continue
        rate = bucket.failed / bucket.ended
        bars.append(
            {
                **_bar_box(i, _y(rate, 1.0)),
                "start": clock.to_wire(start),
                "none_failed": bucket.failed == 0,
                "failed": bucket.failed,
                "ended": bucket.ended,
                "rate": _percent(bucket.failed, bucket.ended),
                "title": f"{_span_label(start)}: {bucket.failed} of {bucket.ended} ended run"
                f"{'s' * (bucket.ended != 1)} failed ({_percent(bucket.failed, bucket.ended)})",
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "bars": bars,
        "axis_title": "failed / ended",
        **_axes(window, 1.0, lambda v: f"{v:.0%}"),
    }


def _bar_box(index: int, y: float, *, minimum: float = 1.0) -> dict[str, float]:
    """A bar's rectangle: a gap of a tenth of its slot; at least ``minimum`` high so a bucket
    with a few runs under a tall axis still shows."""
    slot = PLOT_W / BUCKETS
    base = TOP_PAD + PLOT_H
    height = max(base - y, minimum)
    return {
        "x": round(_x(index) + slot * 0.05, 2),
        "y": round(base - height, 2),
        "w": round(slot * 0.9, 2),
        "h": round(height, 2),
    }


# --- the lists ------------------------------------------------------------------------------


def slowest(workflows: Sequence[Totals], window: Window) -> list[dict[str, Any]]:
    timed = [w for w in workflows if w.timed]
    timed.sort(key=lambda w: (-(w.mean_duration_ms or 0.0), w.key))
    return [
        {
            "workflow_id": w.key,
            "mean": ms(round(w.mean_duration_ms or 0.0)),
            "mean_ms": round(w.mean_duration_ms or 0.0),
            "completed": w.completed,
            "url": _runs_url(window, workflow_id=w.key),
        }
        for w in timed[:TOP]
    ]


def most_failing(workflows: Sequence[Totals], window: Window) -> list[dict[str, Any]]:
    failing = [w for w in workflows if w.failed > 0]
    failing.sort(key=lambda w: (-w.failed, -w.failed / w.ended, w.key))
    return [
        {
            "workflow_id": w.key,
            "failed": w.failed,
            "ended": w.ended,
            "rate": _percent(w.failed, w.ended),
            "url": _runs_url(window, workflow_id=w.key),
            "failed_url": _runs_url(window, workflow_id=w.key, statuses=FAILED_VALUES),
        }
        for w in failing[:TOP]
    ]


def _runs_url(
    window: Window, *, workflow_id: str | None = None, statuses: Sequence[str] = ()
) -> str:
    params = [("createdAfter", clock.to_wire(window.since) or "")]
    if workflow_id is not None:
        params.insert(0, ("workflowId", workflow_id))
    params += [("status", s) for s in statuses]
    return "/ui/runs?" + urlencode(params)


# --- formatting -----------------------------------------------------------------------------


def _percent(part: int, whole: int) -> str | None:
    if whole == 0:
        return None
    share = 100 * part / whole
    return f"{share:.0f}%" if share.is_integer() or share >= 10 else f"{share:.1f}%"


def _per_minute(runs: int, minutes: float) -> str:
    return _number(runs / minutes)


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _clock_time(when: datetime, *, date: bool = False) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC" if date else "%H:%M")


def _span_label(start: datetime) -> str:
    return f"{_clock_time(start)} to {_clock_time(start + BUCKET)} UTC"
