"""inproc_{full,normal}_drain_jobs_per_s: our engine draining N no-op jobs in-process (Engine +
SQLiteStore + StaticRouter) with the store at durability full or normal, N enqueued first, timed
from engine.start() until the N-th job ran (counted in the handler, as the peers count in their
task) and every job's end is committed to SQLite (a count query). CPU: this process."""

from __future__ import annotations

import asyncio
import time

from bench.common import Result, main, temp_dir
from bench.infra import CpuMeter, per_1k
from bench.ours import counting_router, durability_note, enqueue_many, open_engine, wait_finished
from bench.sizes import drain_n


async def drain(n: int, durability: str) -> tuple[float, float, dict]:
    with temp_dir("inproc") as d:
        router, noop = counting_router(n)
        store, engine = await open_engine(d / "pulse.db", router, durability=durability)
        try:
            enqueue_s = await enqueue_many(engine, noop.name, n)
            commits0 = store.commits
            cpu = CpuMeter().start()
            t0 = time.perf_counter()
            await engine.start()
            await wait_finished(engine, noop, timeout=max(60.0, n / 50))
            drain_s = time.perf_counter() - t0
            cpu_s = cpu.stop()
            stats = {"commits_during_drain": store.commits - commits0, "cpu_s": cpu_s}
        finally:
            await engine.stop(grace=5)
            await store.close()
    return drain_s, enqueue_s, stats


def run(quick: bool, variant: str = "full") -> Result:
    n = drain_n(quick)
    drain_s, enqueue_s, stats = asyncio.run(drain(n, variant))
    key = f"inproc_{variant}_drain_jobs_per_s"
    note = (
        f"N={n:,} no-op jobs, engine defaults (concurrency 128), {durability_note(variant)}, enqueued"
        " first; timed from engine.start() to the N-th run (counted in the handler) with every end committed"
    )
    figures = {key: n / drain_s}
    notes = {key: note}
    if variant == "full":  # the key of earlier runs: the store's default durability
        figures["inproc_drain_jobs_per_s"] = n / drain_s
        notes["inproc_drain_jobs_per_s"] = note
    cpu_s = stats.pop("cpu_s")
    return Result(
        figures=figures,
        notes=notes,
        params={"n": n, "durability": variant},
        extra={
            f"inproc_{variant}_enqueue_jobs_per_s": round(n / enqueue_s),
            f"inproc_{variant}_drain_s": round(drain_s, 3),
            **{f"inproc_{variant}_{k}": v for k, v in stats.items()},
        },
        cpu={f"ours_inproc_{variant}": per_1k(cpu_s, n)},
    )


if __name__ == "__main__":
    main(run)
