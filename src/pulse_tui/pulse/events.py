"""Job events: one event per state change, fanned out to watchers without slowing the engine.

`EventBus.publish(job)` is synchronous and O(number of watchers): it drops the job snapshot into
each matching watcher's pending dict (keyed by job id, so many changes to one job coalesce into
its latest state) and sets that watcher's event. A watcher's consumer (the WatchJobs stream)
takes the whole dict at once. A watcher that stops reading can therefore hold at most one entry
per distinct job; past `max_pending` entries it is marked `resync` and cleared, so its memory is
bounded and the client is told to refetch instead.

Published Job objects are snapshots: the engine never mutates a job after publishing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pulse_tui.pulse.jobs import Job, JobFilter


class Watcher:
    __slots__ = ("_bus", "filter", "_pending", "_event", "resync", "max_pending", "closed", "dropped")

    def __init__(self, bus: EventBus, flt: JobFilter | None, max_pending: int) -> None:
        self._bus = bus
        self.filter = flt if flt and (flt.statuses or flt.handler or flt.text) else None
        self._pending: dict[str, Job] = {}
        self._event = asyncio.Event()
        self.resync = False
        self.max_pending = max_pending
        self.closed = False
        self.dropped = 0

    def offer(self, job: Job) -> None:
        if self.filter is not None and not self.filter.matches(job):
            # a job leaving the filter's view still matters to the viewer (e.g. running -> completed
            # on a "running" tab): forward it if the watcher saw it before is not knowable cheaply,
            # so status-only filters pass every status change of a matching handler/text through.
            if not (self.filter.statuses and _matches_ignoring_status(self.filter, job)):
                return
        if self.resync:
            self.dropped += 1
            return
        pending = self._pending
        if len(pending) >= self.max_pending and job.id not in pending:
            pending.clear()
            self.resync = True
            self.dropped += 1
        else:
            pending[job.id] = job
        self._event.set()

    async def next_batch(self, timeout: float | None = None) -> tuple[list[Job], bool]:
        """Wait for changes; return (jobs, resync). On timeout returns ([], False)."""
        if not self._pending and not self.resync:
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                return [], False
        self._event.clear()
        batch = list(self._pending.values())
        self._pending = {}
        resync, self.resync = self.resync, False
        return batch, resync

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._remove(self)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aiter__(self) -> AsyncIterator[tuple[list[Job], bool]]:
        while not self.closed:
            yield await self.next_batch()


def _matches_ignoring_status(flt: JobFilter, job: Job) -> bool:
    if flt.handler and job.handler != flt.handler:
        return False
    if flt.text:
        t = flt.text.lower()
        return t in job.id.lower() or t in job.handler.lower() or t in job.error.lower()
    return True


class EventBus:
    def __init__(self, max_pending: int = 20_000) -> None:
        self._watchers: list[Watcher] = []
        self.max_pending = max_pending
        self.published = 0

    def publish(self, job: Job) -> None:
        self.published += 1
        for w in self._watchers:
            w.offer(job)

    def publish_many(self, jobs: list[Job]) -> None:
        self.published += len(jobs)
        for w in self._watchers:
            for job in jobs:
                w.offer(job)

    def resync_all(self) -> None:
        """Tell every watcher to refetch (jobs were deleted: there is no event for a row gone)."""
        for w in self._watchers:
            w._pending.clear()
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

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)
