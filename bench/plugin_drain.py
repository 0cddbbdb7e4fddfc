"""plugin_unary_drain_jobs_per_s (and plugin_drain_jobs_per_s, its earlier key) and
plugin_batched_drain_jobs_per_s: our server draining N `demo.echo` jobs (a no-op that returns its
payload) through the bundled demo plugin, a real subprocess, every job's start and end persisted
in SQLite. Variant `unary`: the plugin is configured `batch = false`, so every job is one unary
ExecuteJob call (the path of any QNTX plugin). Variant `batched`: the default, jobs go over the
plugin's BatchExecService stream (pulse/batch.py), with the server's defaults (`[server] prefetch`
0). Variant `batched_prefetch` (plugin_batched_prefetch_drain_jobs_per_s, a secondary figure): the
same with `[server] prefetch = 128`, jobs claimed ahead of a free slot.

N jobs are written to the server's SQLite file first (through Engine.enqueue, so they are exactly
what the server would have stored); then `pulse-tui serve` starts with the demo plugin configured.
The drain time is taken from the store: first attempt start to last completion (so the plugin's
process start-up is not counted, as huey's consumer start-up is not). Completion is detected by
reading the SQLite file (cheap) rather than asking the server. The store runs at durability
full. CPU: the server and the plugin process, from the first job's start to the end.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from bench.common import Result, main, temp_dir
from bench.infra import CpuMeter, per_1k, proc_cpu
from bench.ours import durability_note, enqueue_many, open_engine
from bench.serve import DEMO_PLUGIN, Server
from bench.sizes import drain_n
from pulse_tui.pulse.handlers import HandlerResult, JobContext, StaticRouter

HANDLER = "demo.echo"
CONCURRENCY = 128  # the server's default (`[server] concurrency`), every variant
PREFETCH = 128  # `[server] prefetch` of variant batched_prefetch (the others: the default, 0)


class _StandIn:
    """Lets the pre-fill engine accept `demo.echo` (the server's registry routes it to the plugin)."""

    name = HANDLER
    plugin = "demo"

    async def run(self, ctx: JobContext) -> HandlerResult:  # never called: the engine is not started
        raise AssertionError("not run")


async def prefill(db: Path, n: int) -> None:
    store, engine = await open_engine(db, StaticRouter([_StandIn()]))
    try:
        await enqueue_many(engine, HANDLER, n)
    finally:
        await store.close()


def wait_started(db: Path, timeout: float) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    deadline = time.monotonic() + timeout
    try:
        while not conn.execute("SELECT 1 FROM jobs WHERE started_at > 0 LIMIT 1").fetchone():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no job started within {timeout:g}s")
            time.sleep(0.01)
    finally:
        conn.close()


def wait_drained(db: Path, n: int, timeout: float) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    deadline = time.monotonic() + timeout
    try:
        while True:
            counts = dict(conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
            if counts.get("queued", 0) + counts.get("running", 0) == 0 and sum(counts.values()) >= n:
                return counts
            if time.monotonic() > deadline:
                raise TimeoutError(f"not drained within {timeout:g}s: {counts}")
            time.sleep(0.1)
    finally:
        conn.close()


def drain_window(db: Path) -> tuple[float, float]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        first, last = conn.execute("SELECT MIN(started_at), MAX(completed_at) FROM jobs").fetchone()
        return first, last
    finally:
        conn.close()


def measure(n: int, variant: str = "unary") -> tuple[float, dict]:
    plugins = DEMO_PLUGIN + ("batch = false\n" if variant == "unary" else "")
    with temp_dir("plugin") as d:
        prefetch = PREFETCH if variant == "batched_prefetch" else None
        srv = Server(d, plugins=plugins, durability="full", concurrency=CONCURRENCY, prefetch=prefetch)
        asyncio.run(prefill(srv.db_path, n))
        t0 = time.time()
        with srv:
            assert srv.child is not None
            wait_started(srv.db_path, timeout=60)
            cpu = CpuMeter(srv.child.pid, include_self=False).start()
            server_cpu0 = proc_cpu(srv.child.pid)
            counts = wait_drained(srv.db_path, n, timeout=max(60.0, n / 100))
            server_cpu = proc_cpu(srv.child.pid) - server_cpu0
            cpu_s = cpu.stop()
            wall = time.time() - t0
        first, last = drain_window(srv.db_path)
        if counts.get("completed", 0) != n:
            raise RuntimeError(f"expected {n} completed, got {counts}")
    return last - first, {
        "plugin_wall_incl_startup_s": round(wall, 2),
        "cpu_s": cpu_s,
        # the server process alone, and the plugin (the rest of its tree), CPU s per 1,000 jobs
        "server_cpu_s_per_1k": per_1k(server_cpu, n),
        "plugin_cpu_s_per_1k": per_1k(cpu_s - server_cpu, n),
    }


def run(quick: bool, variant: str = "unary") -> Result:
    n = drain_n(quick)
    secs, extra = measure(n, variant)
    cpu_s = extra.pop("cpu_s")
    how = (
        "unary ExecuteJob per job (plugin configured `batch = false`, as any QNTX plugin)"
        if variant == "unary"
        else "batched: BatchExecService.ExecuteBatch stream, the jobs claimable at once per message"
        + (f"; [server] prefetch = {PREFETCH}" if variant == "batched_prefetch" else "")
    )
    note = (
        f"N={n:,} demo.echo jobs through `pulse-tui serve` + the demo plugin subprocess ({how},"
        f" over 127.0.0.1), concurrency {CONCURRENCY} (the server default), {durability_note('full')};"
        " first start to last completion, from the store"
    )
    if variant == "unary":
        keys = ("plugin_unary_drain_jobs_per_s", "plugin_drain_jobs_per_s")  # the second: issue 7's key
    elif variant == "batched_prefetch":
        keys = ("plugin_batched_prefetch_drain_jobs_per_s",)
    else:
        keys = ("plugin_batched_drain_jobs_per_s",)
    return Result(
        figures={k: n / secs for k in keys},
        notes={k: note for k in keys},
        params={
            "n": n,
            "durability": "full",
            "path": variant,
            "concurrency": CONCURRENCY,
            "prefetch": PREFETCH if variant == "batched_prefetch" else 0,
        },
        extra={
            f"plugin_{variant}_drain_s": round(secs, 3),
            **{f"{k}_{variant}": v for k, v in extra.items()},
        },
        cpu={f"ours_plugin_{variant}": per_1k(cpu_s, n)},
    )


if __name__ == "__main__":
    main(run)
