"""latency_enqueue_to_start_p50_ms / _p99_ms: on an idle queue, one job at a time, the time from
calling Engine.enqueue to the handler starting (in-process: Engine + SQLiteStore, a handler that
records time.perf_counter() when it starts). Each job completes before the next is enqueued."""

from __future__ import annotations

import asyncio
import time

from bench.common import Result, main, percentile, temp_dir
from bench.ours import open_engine
from bench.sizes import latency_samples
from pulse_tui.pulse.handlers import HandlerResult, JobContext, StaticRouter
from pulse_tui.pulse.jobs import COMPLETED


class StampHandler:
    name = "bench.stamp"
    plugin = ""

    def __init__(self) -> None:
        self.started: asyncio.Future[float] | None = None

    async def run(self, ctx: JobContext) -> HandlerResult:
        if self.started is not None and not self.started.done():
            self.started.set_result(time.perf_counter())
        return HandlerResult(result=b"{}")


async def measure(samples: int, warmup: int = 20) -> list[float]:
    stamp = StampHandler()
    out: list[float] = []
    with temp_dir("latency") as d:
        store, engine = await open_engine(d / "pulse.db", StaticRouter([stamp]))
        await engine.start()
        watcher = engine.bus.watch()
        loop = asyncio.get_running_loop()
        try:
            for i in range(samples + warmup):
                stamp.started = loop.create_future()
                t0 = time.perf_counter()
                job = await engine.enqueue("bench.stamp", b"{}")
                started = await asyncio.wait_for(stamp.started, 10)
                if i >= warmup:
                    out.append((started - t0) * 1000)
                while True:  # idle queue: wait until this job's completion is stored
                    batch, _ = await asyncio.wait_for(watcher.next_batch(), 10)
                    if any(j.id == job.id and j.status == COMPLETED for j in batch):
                        break
        finally:
            watcher.close()
            await engine.stop(grace=5)
            await store.close()
    return out


def run(quick: bool) -> Result:
    n = latency_samples(quick)
    ms = asyncio.run(measure(n))
    how = (
        f"{n:,} jobs one at a time on an idle in-process engine (SQLite store), enqueue call to handler start"
    )
    return Result(
        figures={
            "latency_enqueue_to_start_p50_ms": percentile(ms, 50),
            "latency_enqueue_to_start_p99_ms": percentile(ms, 99),
        },
        notes={"latency_enqueue_to_start_p50_ms": how, "latency_enqueue_to_start_p99_ms": how},
        params={"samples": n},
        extra={"latency_max_ms": round(max(ms), 2), "latency_mean_ms": round(sum(ms) / len(ms), 3)},
    )


if __name__ == "__main__":
    main(run)
