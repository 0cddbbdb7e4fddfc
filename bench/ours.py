"""Helpers that build our side in-process: a SQLite store + engine, bulk enqueue, drain waits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.handlers import HandlerResult, JobContext, Router, StaticRouter, builtin_handlers
from pulse_tui.pulse.jobs import COMPLETED, FAILED, JobFilter
from pulse_tui.pulse.store.sqlite import SQLiteStore

ENQUEUE_CHUNK = 500  # enqueues in flight at once (the store groups them into one commit)

# The store's durability setting ("full": synchronous=FULL, every group commit synced; "normal":
# synchronous=NORMAL); every figure of ours says which it ran at.
DURABILITIES = ("full", "normal")


def durability_note(durability: str) -> str:
    if durability not in DURABILITIES:
        raise ValueError(f"durability must be one of {DURABILITIES}, got {durability!r}")
    return f"store durability={durability}"


async def open_engine(
    path: Path, router: Router | None = None, *, durability: str = "full", **engine_kw: object
) -> tuple[SQLiteStore, Engine]:
    store = SQLiteStore(str(path), durability=durability)
    await store.open()
    engine = Engine(store, router or StaticRouter(), retention_secs=None, **engine_kw)  # type: ignore[arg-type]
    return store, engine


async def enqueue_many(engine: Engine, handler: str, n: int, payload: bytes = b"{}") -> float:
    """Enqueue n jobs through Engine.enqueue with ENQUEUE_CHUNK in flight; returns seconds."""
    t0 = time.perf_counter()
    left = n
    while left:
        k = min(ENQUEUE_CHUNK, left)
        await asyncio.gather(*(engine.enqueue(handler, payload) for _ in range(k)))
        left -= k
    return time.perf_counter() - t0


class DrainCounter:
    """Counts jobs reaching a finished status, from the engine's event bus."""

    def __init__(self, engine: Engine, n: int) -> None:
        self.n = n
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self._watcher = engine.bus.watch(max_pending=10_000_000)

    async def wait(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.done) + len(self.failed) < self.n:
                batch, resync = await self._watcher.next_batch()
                if resync:
                    raise RuntimeError("event watcher fell behind; counts are unreliable")
                for job in batch:
                    if job.status == COMPLETED:
                        self.done.add(job.id)
                    elif job.status == FAILED:
                        self.failed.add(job.id)
        self._watcher.close()


class CountingNoop:
    """`bench.noop`: the no-op job, counting its runs in the handler, as the peers count theirs in
    their task (a shared counter). No event-bus watcher is attached, so the engine makes no job
    snapshots for watchers (as in production with nobody watching)."""

    name = "bench.noop"
    plugin = ""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.done = asyncio.Event()

    async def run(self, ctx: JobContext) -> HandlerResult:
        self.count += 1
        if self.count >= self.n:
            self.done.set()
        return HandlerResult(result=b"{}")


def counting_router(n: int) -> tuple[StaticRouter, CountingNoop]:
    noop = CountingNoop(n)
    return StaticRouter([*builtin_handlers(), noop]), noop


async def wait_finished(engine: Engine, noop: CountingNoop, timeout: float) -> None:
    """Until the N-th run of `noop` and then every job's end committed to the store."""
    n = noop.n
    async with asyncio.timeout(timeout):
        await noop.done.wait()
        while True:
            counts = await engine.count_jobs(JobFilter(), cap=n + 1)
            if counts.get(COMPLETED, 0) + counts.get(FAILED, 0) >= n:
                break
            await asyncio.sleep(0.001)  # a poll of the store, a few ms at most after the last run
    if counts.get(FAILED, 0):
        raise RuntimeError(f"{counts[FAILED]} no-op jobs failed")
