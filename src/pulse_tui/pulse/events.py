"""Job events: one event per state change, fanned out to watchers without slowing the engine.

`EventBus.publish(job)` is synchronous and O(1) whatever the number of watchers: it appends the
job snapshot to one shared log and wakes only the watchers that are asleep waiting for the next
event (each wakes once, however many events follow before it runs). Every watcher keeps a cursor
into that log; its consumer (the WatchJobs stream) takes everything past its cursor at once,
applies its filter there, and coalesces many changes to one job into the job's latest state.

The log is trimmed to the slowest watcher's cursor. A watcher that stops reading can hold back at
most `max_pending` events: past that it is marked `resync`, its cursor jumps to the end and the
client is told to refetch instead. Checking that costs O(watchers) once every `CHECK_EVERY`
events, not per event.

Published Job objects are snapshots: the engine never mutates a job after publishing it, so all
watchers share them (and may share whatever they derive from them; see `Watcher.next_batch`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

from pulse_tui.pulse.jobs import Job, JobFilter

CHECK_EVERY = 1024  # events between two checks for watchers that fell behind / log trims


class Watcher:
    __slots__ = ("_bus", "filter", "_cursor", "_event", "resync", "max_pending", "closed", "dropped")

    def __init__(self, bus: EventBus, flt: JobFilter | None, max_pending: int) -> None:
        self._bus = bus
        self.filter = None if flt is None or flt == JobFilter() else flt  # any field set filters
        self._cursor = bus._end  # absolute index of the next event this watcher has not taken
        self._event = asyncio.Event()
        self.resync = False
        self.max_pending = max_pending
        self.closed = False
        self.dropped = 0

    def _wants(self, job: Job) -> bool:
        return wanted(self.filter, job)

    @property
    def pending(self) -> int:
        """Events published since this watcher last took a batch (before filtering/coalescing)."""
        return self._bus._end - self._cursor

    async def next_batch(self, timeout: float | None = None) -> tuple[list[Job], bool]:
        """Wait for changes; return (jobs, resync). On timeout returns ([], False).

        `jobs` holds each changed job once, in the order of its latest change."""
        bus = self._bus
        while True:
            if self.resync:
                self.resync = False
                self._cursor = bus._end
                return [], True
            if self._cursor < bus._end:
                break
            if self.closed:
                return [], False
            self._event.clear()
            bus._sleepers.append(self)
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                return [], False
            finally:
                if not self._event.is_set():
                    bus._forget_sleeper(self)
        log = bus._log
        start = self._cursor - bus._base
        self._cursor = bus._end
        latest: dict[str, Job] = {}
        if self.filter is None:
            for job in log[start:] if start else log:
                latest.pop(job.id, None)
                latest[job.id] = job
        else:
            wants = self._wants
            for job in log[start:] if start else log:
                if wants(job):
                    latest.pop(job.id, None)
                    latest[job.id] = job
        return list(latest.values()), False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._remove(self)
            self._event.set()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aiter__(self) -> AsyncIterator[tuple[list[Job], bool]]:
        while not self.closed:
            yield await self.next_batch()


def wanted(flt: JobFilter | None, job: Job) -> bool:
    """Whether a watcher with filter `flt` (None: every job) is told about this change."""
    if flt is None:
        return True
    if flt.payload and not job.payload:  # snapshots carry no payload: let the viewer decide
        flt = replace(flt, payload="")
    if flt.matches(job):
        return True
    # a job leaving the filter's view still matters to the viewer (e.g. running -> completed on
    # a "running" tab): whether the watcher saw it before is not knowable cheaply, so
    # status-only filters pass every status change of a matching handler/text through.
    return bool(flt.statuses) and _matches_ignoring_status(flt, job)


def _matches_ignoring_status(flt: JobFilter, job: Job) -> bool:
    # published snapshots carry no payload (watchers fetch it): a payload filter passes them through
    return replace(flt, statuses=(), payload="").matches(job)


class EventBus:
    def __init__(self, max_pending: int = 20_000) -> None:
        self._watchers: list[Watcher] = []
        self._sleepers: list[Watcher] = []  # watchers waiting for the next event
        self._log: list[Job] = []  # events from absolute index _base on
        self._base = 0
        self._next_check = CHECK_EVERY
        self.max_pending = max_pending
        self.published = 0

    @property
    def _end(self) -> int:
        return self._base + len(self._log)

    def publish(self, job: Job) -> None:
        self.published += 1
        if not self._watchers:
            return
        self._log.append(job)
        if self._sleepers:
            self._wake()
        if len(self._log) >= self._next_check:
            self._check()

    def publish_many(self, jobs: list[Job]) -> None:
        self.published += len(jobs)
        if not self._watchers or not jobs:
            return
        self._log.extend(jobs)
        if self._sleepers:
            self._wake()
        if len(self._log) >= self._next_check:
            self._check()

    def _wake(self) -> None:
        sleepers, self._sleepers = self._sleepers, []
        for w in sleepers:
            w._event.set()

    def _forget_sleeper(self, w: Watcher) -> None:
        try:
            self._sleepers.remove(w)
        except ValueError:
            pass

    def _check(self) -> None:
        """Mark watchers that fell more than their max_pending behind; trim the log."""
        end = self._end
        for w in self._watchers:
            behind = end - w._cursor
            if behind > w.max_pending:
                w.dropped += behind
                w._cursor = end
                if not w.resync:
                    w.resync = True
                    w._event.set()
        self._trim()
        self._next_check = len(self._log) + CHECK_EVERY

    def _trim(self) -> None:
        low = min((w._cursor for w in self._watchers), default=self._end)
        drop = low - self._base
        if drop > 0:
            if drop >= len(self._log):
                self._log = []
            else:
                del self._log[:drop]
            self._base = low

    def resync_all(self) -> None:
        """Tell every watcher to refetch (jobs were deleted: there is no event for a row gone)."""
        for w in self._watchers:
            w.resync = True
            w._event.set()

    def watch(self, flt: JobFilter | None = None, max_pending: int | None = None) -> Watcher:
        w = Watcher(self, flt, max_pending or self.max_pending)
        self._watchers.append(w)
        return w

    def _remove(self, w: Watcher) -> None:
        try:
            self._watchers.remove(w)
        except ValueError:
            pass
        self._forget_sleeper(w)
        if not self._watchers:
            self._base = self._end
            self._log = []
        else:
            self._trim()

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)
