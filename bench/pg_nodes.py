"""pg_one_node_jobs_per_s, pg_two_nodes_jobs_per_s, pg_two_vs_one_ratio: `pulse-tui serve` on a
shared PostgreSQL store, one node against two.

A real PostgreSQL server is started for the measure (tests/pg.py: initdb into a temp dir, postgres
on 127.0.0.1 and a free port; as root both run as the `postgres` user). For each variant a fresh
database is created and one or two `pulse-tui serve` nodes are started on it (`db =
"postgresql://…?pulse_node=a"` in each node's config), each with the bundled demo plugin. Once
every node routes `demo.echo`, N jobs are enqueued over gRPC through node A (OperatorService.Enqueue,
64 in flight) and the drain is timed end to end: first enqueue to the last `completed_at` in the
database (the database is polled to see the end). Every job must be completed exactly once
(attempts = 1); the share of jobs each node ran comes from the node of each job row (a completed
attempt is kept in its job row).

The two-node figure is about correctness at speed and the cost of sharing a queue: on a machine
with few cores the two nodes, their two plugins, PostgreSQL and the client share the same CPUs, so
a second node cannot add throughput there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import Result, main, scrub, temp_dir
from bench.serve import DEMO_PLUGIN, Server, enqueue_concurrent, wait_handler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg import PgServer, PgUnavailable, start_pg

HANDLER = "demo.echo"
IN_FLIGHT = 64
REPS = 2  # runs of each variant; the best is kept (the machine may be shared)
KEYS = ("pg_one_node_jobs_per_s", "pg_two_nodes_jobs_per_s", "pg_two_vs_one_ratio")


def pg_n(quick: bool) -> int:
    return 1_000 if quick else 5_000


async def wait_drained(db: asyncpg.Connection, n: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = dict(await db.fetch("SELECT status, count(*) FROM jobs GROUP BY status"))
        if counts.get("queued", 0) + counts.get("running", 0) == 0 and sum(counts.values()) >= n:
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"not drained within {timeout:g}s: {counts}")
        await asyncio.sleep(0.05)


async def drain(nodes: list[Server], url: str, n: int) -> dict[str, Any]:
    a = nodes[0]
    async with a.channel() as channel:
        stub = a.operator(channel)
        for node in nodes:
            async with node.channel() as ch:
                await wait_handler(node, node.operator(ch), HANDLER, timeout=60)
        db = await asyncpg.connect(url)
        try:
            t0 = time.time()
            enqueue_s = await enqueue_concurrent(a, stub, HANDLER, n, in_flight=IN_FLIGHT)
            counts = await wait_drained(db, n, timeout=max(60.0, n / 50))
            last = await db.fetchval("SELECT max(completed_at) FROM jobs")
            bad = await db.fetchval("SELECT count(*) FROM jobs WHERE status <> 'completed' OR attempts <> 1")
            if counts.get("completed", 0) != n or bad:
                raise RuntimeError(f"expected {n} jobs completed once each, got {counts} ({bad} not)")
            per_node = dict(await db.fetch("SELECT node, count(*) FROM jobs GROUP BY node"))
        finally:
            await db.close()
    secs = last - t0
    return {"secs": secs, "enqueue_s": enqueue_s, "per_node": per_node}


def run_variant(pg: PgServer, nodes: int, n: int) -> dict[str, Any]:
    url = pg.create_database()
    with temp_dir("pg-nodes") as d, ExitStack() as stack:
        servers = []
        for name in "ab"[:nodes]:
            (d / name).mkdir()
            srv = Server(d / name, plugins=DEMO_PLUGIN, db=f"{url}?pulse_node={name}")
            stack.callback(srv.stop)
            servers.append(srv.start())
        out = asyncio.run(drain(servers, url, n))
    share = {name: round(out["per_node"].get(name, 0) / n, 3) for name in "ab"[:nodes]}
    return {**out, "share": share}


def unavailable(why: str) -> Result:
    why = " ".join(scrub(why).split())[:400]  # one line (the server log tail may follow)
    return Result(
        figures={k: None for k in KEYS},
        notes={k: f"PostgreSQL not available: {why}" for k in KEYS},
    )


def run(quick: bool) -> Result:
    n = pg_n(quick)
    try:
        pg = start_pg()
    except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
        return unavailable(str(exc))
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    try:
        for _ in range(REPS):  # interleaved, each on a fresh database; the best of each is kept
            for nodes in (1, 2):
                runs[nodes].append(run_variant(pg, nodes, n))
    finally:
        pg.stop()
        shutil.rmtree(pg.base, ignore_errors=True)
    one, two = (min(runs[k], key=lambda r: r["secs"]) for k in (1, 2))
    one_rate, two_rate = n / one["secs"], n / two["secs"]
    cores = os.cpu_count()
    how = (
        f"N={n:,} demo.echo jobs enqueued over gRPC through node A ({IN_FLIGHT} in flight); each node"
        " is `pulse-tui serve` + the demo plugin on one fresh PostgreSQL database; first enqueue to"
        f" last completion, every job completed exactly once; best of {REPS}"
    )
    caveat = f"{cores} cores here, shared by both nodes, both plugins, PostgreSQL and the client"
    if cores is not None and cores <= 2:
        caveat += (
            ": a second node cannot add throughput on this machine, so this shows correctness at"
            " speed and the overhead of sharing the queue, not scaling"
        )
    return Result(
        figures={
            "pg_one_node_jobs_per_s": one_rate,
            "pg_two_nodes_jobs_per_s": two_rate,
            "pg_two_vs_one_ratio": two_rate / one_rate,
        },
        notes={
            "pg_one_node_jobs_per_s": f"{how}; one node",
            "pg_two_nodes_jobs_per_s": f"{how}; two nodes, jobs run by node A"
            f" {two['share']['a']:.0%}, node B {two['share']['b']:.0%} (jobs per node)",
            "pg_two_vs_one_ratio": f"two nodes / one node; {caveat}",
        },
        params={"n": n, "in_flight": IN_FLIGHT, "reps": REPS, "cores": cores},
        extra={
            "pg_one_node_drain_s": round(one["secs"], 3),
            "pg_two_nodes_drain_s": round(two["secs"], 3),
            "pg_one_node_enqueue_s": round(one["enqueue_s"], 3),
            "pg_two_nodes_enqueue_s": round(two["enqueue_s"], 3),
            "pg_two_nodes_share": two["share"],
            "pg_one_node_samples_jobs_per_s": [round(n / r["secs"]) for r in runs[1]],
            "pg_two_nodes_samples_jobs_per_s": [round(n / r["secs"]) for r in runs[2]],
        },
    )


if __name__ == "__main__":
    main(run)
