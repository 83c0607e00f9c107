"""How waiting parts learn that something happened, without polling the database in a loop.

``InProcessNotifier`` serves one process. Other processes' signals reach it through the store's
``listen`` (PostgreSQL LISTEN/NOTIFY), wired in ``service/core.running``; on SQLite everything
happens in this process, so whoever makes a change here says so here.

Two kinds of subscription: ``watch_run`` waits once for a run's end (long-polls), and
``watch_changes`` is woken on every change of some topics (a run, an event key) for as long as
it is held (live streams). A woken watcher re-reads what it watches; a signal only says "look".
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Protocol


def run_topic(run_id: str) -> str:
    """What a run's change watchers subscribe to."""
    return f"run:{run_id}"


def event_topic(project_id: str, event_key: str) -> str:
    """What an event key's change watchers subscribe to."""
    return event_topic_of(f"{project_id}:{event_key}")


def event_topic_of(scope: str) -> str:
    """The topic of an event announcement from the store, whose payload (``scope``) is
    ``"{project_id}:{event_key}"``: used whole, never split (a project id may hold ``:``)."""
    return f"event:{scope}"


class Notifier(Protocol):
    def work_available(self) -> None:
        """New runs may be claimable: wake the workers."""

    def on_work(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (cheap, non-blocking) whenever work may be available."""

    def runs_created(self) -> None:
        """Runs were created that no worker needs to be told of (this process's worker took
        them as they were inserted): wake what lists runs, not the workers."""

    def on_runs_created(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (cheap, non-blocking) when runs may have been created: on
        ``runs_created`` and on ``work_available``, which every other new run announces."""

    def schedules_changed(self) -> None:
        """A schedule trigger was written in this process: its scheduler looks again."""

    def on_schedules(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (cheap, non-blocking) whenever schedules may have changed."""

    def waits_opened(self) -> None:
        """Event waits were opened in this process: its expirer looks at their deadlines."""

    def on_waits(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (cheap, non-blocking) whenever waits were opened here."""

    def run_finished(self, run_id: str) -> None:
        """A run reached a terminal status: wake whoever waits on it."""

    def watch_run(self, run_id: str) -> RunWatch:
        """Start listening for the end of ``run_id``; use before reading its status."""

    def run_changed(self, run_id: str) -> None:
        """A run's status or steps changed (committed): wake its change watchers."""

    def event_changed(self, project_id: str, event_key: str) -> None:
        """An event trigger of this key changed (committed): wake its change watchers."""

    def event_announced(self, scope: str) -> None:
        """The store announced a change of the event key ``scope`` (``project:key``)."""

    def watch_changes(self, topics: Iterable[str]) -> ChangeWatch:
        """Start listening for changes of ``topics``; use before the first read."""

    def change_watchers(self) -> int:
        """How many change watchers are held (streams open in this process)."""

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
            async with asyncio.timeout(seconds):
                await self.event.wait()
        except TimeoutError:
            return False
        return True

    def __enter__(self) -> RunWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release(self)


class ChangeWatch:
    """A subscription to the changes of some topics; a context manager that unsubscribes on
    exit. Unlike ``RunWatch`` it is re-armed by each ``wait``, so it serves a whole stream."""

    def __init__(self, topics: frozenset[str], release: Callable[[ChangeWatch], None]) -> None:
        self.topics = topics
        self._changed = asyncio.Event()
        self._release = release

    def notify(self) -> None:
        self._changed.set()

    async def wait(self, seconds: float) -> bool:
        """True if something changed since the last ``wait`` (or within ``seconds``). A change
        that comes while the caller re-reads is kept for the next call, so none is missed."""
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    def __enter__(self) -> ChangeWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release(self)


class InProcessNotifier:
    """Signals within one event loop."""

    def __init__(self) -> None:
        self._work_callbacks: list[Callable[[], None]] = []
        self._created_callbacks: list[Callable[[], None]] = []
        self._schedule_callbacks: list[Callable[[], None]] = []
        self._wait_callbacks: list[Callable[[], None]] = []
        self._watches: dict[str, set[RunWatch]] = defaultdict(set)
        self._change_watches: dict[str, set[ChangeWatch]] = defaultdict(set)

    def work_available(self) -> None:
        for callback in self._work_callbacks:
            callback()
        self.runs_created()

    def on_work(self, callback: Callable[[], None]) -> None:
        self._work_callbacks.append(callback)

    def runs_created(self) -> None:
        for callback in self._created_callbacks:
            callback()

    def on_runs_created(self, callback: Callable[[], None]) -> None:
        self._created_callbacks.append(callback)

    def schedules_changed(self) -> None:
        for callback in self._schedule_callbacks:
            callback()

    def on_schedules(self, callback: Callable[[], None]) -> None:
        self._schedule_callbacks.append(callback)

    def waits_opened(self) -> None:
        for callback in self._wait_callbacks:
            callback()

    def on_waits(self, callback: Callable[[], None]) -> None:
        self._wait_callbacks.append(callback)

    def run_finished(self, run_id: str) -> None:
        for watch in self._watches.get(run_id, ()):
            watch.event.set()
        self.run_changed(run_id)

    def run_changed(self, run_id: str) -> None:
        self._changed(run_topic(run_id))

    def event_changed(self, project_id: str, event_key: str) -> None:
        self._changed(event_topic(project_id, event_key))

    def event_announced(self, scope: str) -> None:
        self._changed(event_topic_of(scope))

    def _changed(self, topic: str) -> None:
        for watch in self._change_watches.get(topic, ()):
            watch.notify()

    def wake_everything(self) -> None:
        self.work_available()
        self.schedules_changed()
        self.waits_opened()
        for watchers in self._watches.values():
            for watch in watchers:
                watch.event.set()
        for changes in self._change_watches.values():
            for change in changes:
                change.notify()

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

    def watch_changes(self, topics: Iterable[str]) -> ChangeWatch:
        watch = ChangeWatch(frozenset(topics), self._release_changes)
        for topic in watch.topics:
            self._change_watches[topic].add(watch)
        return watch

    def change_watchers(self) -> int:
        return len({watch for watches in self._change_watches.values() for watch in watches})

    def _release_changes(self, watch: ChangeWatch) -> None:
        for topic in watch.topics:
            watchers = self._change_watches.get(topic)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._change_watches[topic]
