"""server_rss_growth_pct_200k: memory of a `pulse-tui serve` process (VmRSS from /proc) after it
has taken and run 200,000 jobs, against after the first 10,000 (quick mode: 2,000 and 12,000).

Jobs are `pulse.noop`, enqueued over gRPC (OperatorService.Enqueue, 64 in flight); at each point
the queue is drained before RSS is read. Retention is off (retention_days = 0), so the store keeps
every job: growth therefore includes SQLite's page cache filling up to its configured size."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from bench.common import Result, main, temp_dir
from bench.serve import Server, enqueue_concurrent
from bench.sizes import rss_growth_points

CHUNK = 10_000


def wait_idle(db: Path, timeout: float) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    deadline = time.monotonic() + timeout
    try:
        while True:
            (busy,) = conn.execute(
                "SELECT COUNT(*) FROM jobs WHERE status IN ('queued','running')"
            ).fetchone()
            if busy == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{busy} jobs still queued or running after {timeout:g}s")
            time.sleep(0.1)
    finally:
        conn.close()


async def measure(srv: Server, base: int, final: int) -> tuple[float, float, float, list[tuple[int, float]]]:
    curve: list[tuple[int, float]] = [(0, srv.rss_mb())]
    enqueue_s = 0.0
    done = 0
    async with srv.channel() as ch:
        stub = srv.operator(ch)
        for target in (base, final):
            while done < target:
                k = min(CHUNK, target - done)
                enqueue_s += await enqueue_concurrent(srv, stub, "pulse.noop", k)
                done += k
                await asyncio.to_thread(wait_idle, srv.db_path, 120)
                curve.append((done, srv.rss_mb()))
    rss_base = next(r for n, r in curve if n == base)
    return rss_base, curve[-1][1], enqueue_s, curve


def run(quick: bool) -> Result:
    base, final = rss_growth_points(quick)
    with temp_dir("rss") as d, Server(d) as srv:
        rss_base, rss_final, enqueue_s, curve = asyncio.run(measure(srv, base, final))
    growth = (rss_final - rss_base) / rss_base * 100
    return Result(
        figures={"server_rss_growth_pct_200k": growth},
        notes={
            "server_rss_growth_pct_200k": f"RSS after {final:,} jobs ({rss_final:.1f} MB) vs after {base:,}"
            f" ({rss_base:.1f} MB); pulse.noop via gRPC Enqueue, drained at each point, retention off"
            + (" (quick: smaller N)" if quick else "")
        },
        params={"base": base, "final": final},
        extra={
            "server_rss_curve_mb": ", ".join(f"{n // 1000}k:{r:.0f}" for n, r in curve),
            "server_rss_run_enqueue_jobs_per_s": round(final / enqueue_s),
        },
    )


if __name__ == "__main__":
    main(run)
