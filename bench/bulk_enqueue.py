"""bulk_enqueue_sqlite_jobs_per_s, bulk_enqueue_pg_jobs_per_s, peer_pgqueuer_enqueue_jobs_per_s:
many jobs per call.

Ours: OperatorService.EnqueueMany of BATCH `pulse.noop` jobs per call, one call at a time, from
this process to a `pulse-tui serve` child (SQLite in its data dir at durability full, or the
PostgreSQL server of the run), timed client side over N jobs: validation, one transaction per
call, ids back. The jobs are delayed an hour so the server does not run them meanwhile (pgqueuer
has no worker running either). pgqueuer: `Queries.enqueue` with lists of BATCH jobs on asyncpg in
this process, on the same PostgreSQL server. Secondary: Engine.enqueue_many on PostgresStore in
this process (no gRPC hop, as pgqueuer); and both on PostgreSQL with a different payload per job
(`{"i": n}`: no two requests alike, so each is validated on its own). Best of REPS, interleaved;
every run is listed.
"""

from __future__ import annotations

import asyncio
import time

from bench.common import Result, main, temp_dir
from bench.infra import PgInfo, create_database, pg_server
from bench.ours import durability_note
from bench.serve import Server
from pulse_tui.protocol import operator_pb2 as op

BATCH = 10_000
REPS = 3


def bulk_n(quick: bool) -> int:
    return 20_000 if quick else 100_000


def varied_payloads() -> list[bytes]:
    return [b'{"i": %d}' % i for i in range(BATCH)]


async def ours(srv: Server, n: int, varied: bool = False) -> float:
    md = srv.metadata()
    if varied:
        jobs = [
            op.EnqueueRequest(handler="pulse.noop", delay_secs=3600, payload=p) for p in varied_payloads()
        ]
    else:
        jobs = [op.EnqueueRequest(handler="pulse.noop", delay_secs=3600)] * BATCH
    req = op.EnqueueManyRequest(jobs=jobs)
    async with srv.channel() as ch:
        stub = srv.operator(ch)
        await stub.EnqueueMany(op.EnqueueManyRequest(jobs=list(req.jobs)[:100]), metadata=md)  # warm up
        t0 = time.perf_counter()
        for _ in range(n // BATCH):
            resp = await stub.EnqueueMany(req, metadata=md, timeout=120)
            assert len(resp.ids) == BATCH
        return time.perf_counter() - t0


async def pgqueuer(url: str, n: int, varied: bool = False) -> float:
    import asyncpg
    from pgqueuer import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(url)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        await queries.enqueue(["noop"] * 100, [None] * 100, [0] * 100)  # warm up
        payloads: list[bytes | None] = list(varied_payloads()) if varied else [None] * BATCH
        t0 = time.perf_counter()
        for _ in range(n // BATCH):
            ids = await queries.enqueue(["noop"] * BATCH, payloads, [0] * BATCH)
            assert len(ids) == BATCH
        return time.perf_counter() - t0
    finally:
        await conn.close()


async def ours_inproc_pg(url: str, n: int) -> float:
    """Secondary: Engine.enqueue_many on PostgresStore in this process (like pgqueuer: no gRPC hop)."""
    from pulse_tui.pulse.engine import Engine
    from pulse_tui.pulse.handlers import StaticRouter
    from pulse_tui.pulse.store.postgres import PostgresStore

    store = PostgresStore(url)
    await store.open()
    try:
        engine = Engine(store, StaticRouter(), retention_secs=None)
        specs = [{"handler": "pulse.noop", "delay_secs": 3600.0}] * BATCH
        await engine.enqueue_many(specs[:100])
        t0 = time.perf_counter()
        for _ in range(n // BATCH):
            await engine.enqueue_many(specs)
        return time.perf_counter() - t0
    finally:
        await store.close()


def one_ours_pg_inproc(info: PgInfo, n: int, rep: int) -> float:
    async def go() -> float:
        url = await create_database(info, f"bench_bulk_inproc_{rep}")
        return await ours_inproc_pg(url, n)

    return asyncio.run(go())


def one_ours_sqlite(n: int) -> float:
    with temp_dir("bulk") as d, Server(d, durability="full") as srv:
        return asyncio.run(ours(srv, n))


def one_ours_pg(info: PgInfo, n: int, rep: int, varied: bool = False) -> float:
    url = asyncio.run(create_database(info, f"bench_bulk_ours_{'v' if varied else ''}{rep}"))
    with temp_dir("bulk-pg") as d, Server(d, db=url) as srv:
        return asyncio.run(ours(srv, n, varied))


def one_pgqueuer(info: PgInfo, n: int, rep: int, varied: bool = False) -> float:
    async def go() -> float:
        url = await create_database(info, f"bench_bulk_pgq_{'v' if varied else ''}{rep}")
        return await pgqueuer(url, n, varied)

    return asyncio.run(go())


def run(quick: bool) -> Result:
    n = bulk_n(quick)
    reps = 2 if quick else REPS
    runs: dict[str, list[float]] = {
        "sqlite": [],
        "pg": [],
        "pgqueuer": [],
        "pg_inproc": [],
        "pg_varied": [],
        "pgqueuer_varied": [],
    }
    with pg_server() as info:
        for rep in range(reps):
            runs["sqlite"].append(one_ours_sqlite(n))
            runs["pg"].append(one_ours_pg(info, n, rep))
            runs["pgqueuer"].append(one_pgqueuer(info, n, rep))
            runs["pg_inproc"].append(one_ours_pg_inproc(info, n, rep))
            runs["pg_varied"].append(one_ours_pg(info, n, rep, varied=True))
            runs["pgqueuer_varied"].append(one_pgqueuer(info, n, rep, varied=True))
    best = {k: n / min(v) for k, v in runs.items()}
    how = f"N={n:,} jobs in calls of {BATCH:,}, best of {reps} interleaved"
    return Result(
        figures={
            "bulk_enqueue_sqlite_jobs_per_s": best["sqlite"],
            "bulk_enqueue_pg_jobs_per_s": best["pg"],
            "peer_pgqueuer_enqueue_jobs_per_s": best["pgqueuer"],
        },
        notes={
            "bulk_enqueue_sqlite_jobs_per_s": f"OperatorService.EnqueueMany over gRPC into `pulse-tui serve` on"
            f" SQLite ({durability_note('full')}); {how}",
            "bulk_enqueue_pg_jobs_per_s": f"OperatorService.EnqueueMany over gRPC into `pulse-tui serve` on"
            f" PostgreSQL; {how}",
            "peer_pgqueuer_enqueue_jobs_per_s": f"pgqueuer Queries.enqueue (lists) on asyncpg, same PostgreSQL"
            f" server; {how}",
        },
        params={"n": n, "batch": BATCH, "reps": reps},
        extra={
            "bulk_enqueue_runs_jobs_per_s": {k: [round(n / s) for s in v] for k, v in runs.items()},
            "bulk_enqueue_pg_vs_pgqueuer": round(best["pg"] / best["pgqueuer"], 2),
            "bulk_enqueue_pg_inproc_jobs_per_s": round(best["pg_inproc"]),
            "bulk_enqueue_pg_inproc_vs_pgqueuer": round(best["pg_inproc"] / best["pgqueuer"], 2),
            "bulk_enqueue_pg_varied_jobs_per_s": round(best["pg_varied"]),
            "bulk_enqueue_pg_varied_vs_pgqueuer_varied": round(
                best["pg_varied"] / best["pgqueuer_varied"], 2
            ),
        },
    )


if __name__ == "__main__":
    main(run)
