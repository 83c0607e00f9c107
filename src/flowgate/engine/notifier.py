"""How waiting parts learn that something happened, without polling the database in a loop.

``InProcessNotifier`` serves one process (SQLite, or tests). A PostgreSQL implementation will
deliver the same signals across processes with LISTEN/NOTIFY behind the same interface.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol


class Notifier(Protocol):
    def work_available(self) -> None:
        """New runs may be claimable: wake the workers."""

    def on_work(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (cheap, non-blocking) whenever work may be available."""

    def schedules_changed(self) -> None:
        """A schedule trigger was written in this process: its scheduler looks again."""

    def on_schedules(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (cheap, non-blocking) whenever schedules may have changed."""

    def run_finished(self, run_id: str) -> None:
        """A run reached a terminal status: wake whoever waits on it."""

    def watch_run(self, run_id: str) -> RunWatch:
        """Start listening for the end of ``run_id``; use before reading its status."""

    def wake_everything(self) -> None:
        """Signals may have been missed (a lost connection): wake workers and every waiter."""


class RunWatch:
    """A subscription to one run's end; a context manager that unsubscribes on exit."""

    def __init__(self, run_id: str, release: Callable[[RunWatch], None]) -> None:
        self.run_id = run_id
        self.event = asyncio.Event()
        self._release = release

    async def wait(self, seconds: float) -> bool:
        """True if the run ended within ``seconds``."""
        try:
            await asyncio.wait_for(self.event.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def __enter__(self) -> RunWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release(self)


class InProcessNotifier:
    """Signals within one event loop."""

    def __init__(self) -> None:
        self._work_callbacks: list[Callable[[], None]] = []
        self._schedule_callbacks: list[Callable[[], None]] = []
        self._watches: dict[str, set[RunWatch]] = defaultdict(set)

    def work_available(self) -> None:
        for callback in self._work_callbacks:
            callback()

    def on_work(self, callback: Callable[[], None]) -> None:
        self._work_callbacks.append(callback)

    def schedules_changed(self) -> None:
        for callback in self._schedule_callbacks:
            callback()

    def on_schedules(self, callback: Callable[[], None]) -> None:
        self._schedule_callbacks.append(callback)

    def run_finished(self, run_id: str) -> None:
        for watch in self._watches.get(run_id, ()):
            watch.event.set()

    def wake_everything(self) -> None:
        self.work_available()
        self.schedules_changed()
        for watchers in self._watches.values():
            for watch in watchers:
                watch.event.set()

    def watch_run(self, run_id: str) -> RunWatch:
        watch = RunWatch(run_id, self._release)
        self._watches[run_id].add(watch)
        return watch

    def _release(self, watch: RunWatch) -> None:
        watchers = self._watches.get(watch.run_id)
        if watchers is not None:
            watchers.discard(watch)
            if not watchers:
                del self._watches[watch.run_id]
