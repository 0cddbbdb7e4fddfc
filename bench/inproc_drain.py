"""inproc_drain_jobs_per_s: our engine draining N `pulse.noop` jobs in-process (Engine +
SQLiteStore + StaticRouter), N enqueued first, timed from engine.start() until every job is
completed (counted from the engine's event bus, so each job's finish is committed to SQLite)."""

from __future__ import annotations

import asyncio
import time

from bench.common import Result, main, temp_dir
from bench.ours import DrainCounter, enqueue_many, open_engine
from bench.sizes import drain_n


async def drain(n: int) -> tuple[float, float, dict]:
    with temp_dir("inproc") as d:
        store, engine = await open_engine(d / "pulse.db")
        try:
            enqueue_s = await enqueue_many(engine, "pulse.noop", n)
            counter = DrainCounter(engine, n)
            commits0 = store.commits
            t0 = time.perf_counter()
            await engine.start()
            await counter.wait(timeout=max(60.0, n / 50))
            drain_s = time.perf_counter() - t0
            if counter.failed:
                raise RuntimeError(f"{len(counter.failed)} no-op jobs failed")
            stats = {"commits_during_drain": store.commits - commits0}
        finally:
            await engine.stop(grace=5)
            await store.close()
    return drain_s, enqueue_s, stats


def run(quick: bool) -> Result:
    n = drain_n(quick)
    drain_s, enqueue_s, stats = asyncio.run(drain(n))
    return Result(
        figures={"inproc_drain_jobs_per_s": n / drain_s},
        notes={
            "inproc_drain_jobs_per_s": f"N={n:,} pulse.noop jobs, engine defaults (concurrency 128), enqueued first;"
            " timed from engine.start() to the last job's completed event"
        },
        params={"n": n},
        extra={
            "inproc_enqueue_jobs_per_s": round(n / enqueue_s),
            "inproc_drain_s": round(drain_s, 3),
            **stats,
        },
    )


if __name__ == "__main__":
    main(run)
