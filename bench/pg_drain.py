"""pg_inproc_drain_jobs_per_s, peer_pgqueuer_drain_jobs_per_s, peer_procrastinate_drain_jobs_per_s:
draining N no-op jobs on the same PostgreSQL server (bench/infra.py: tests/pg.py's throwaway
cluster, one per `python -m bench` run), each system in a fresh database, all in this process.

- ours: Engine + PostgresStore (defaults: concurrency 128, batch claims, group-committed ends);
- pgqueuer: QueueManager on asyncpg (SKIP LOCKED + LISTEN/NOTIFY), batch_size 100 (its faster
  setting measured in issue 19; batch 10 was 2.3x slower), mode drain;
- procrastinate: App on its psycopg connector, an async worker with concurrency 16, jobs kept
  (delete_jobs="never", its default).

N jobs are enqueued first; the clock runs from the worker's start to the N-th completion (a
counter in each system's task; ours then also waits until every end is committed). CPU: this process and every PostgreSQL process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.common import Result, main
from bench.infra import CpuMeter, PgInfo, create_database, per_1k, pg_server
from bench.sizes import drain_n

PGQ_BATCH = 100
PROCRASTINATE_CONCURRENCY = 16


async def ours(url: str, n: int, cpu: CpuMeter) -> float:
    from bench.ours import counting_router, wait_finished
    from pulse_tui.pulse.engine import Engine
    from pulse_tui.pulse.store.postgres import PostgresStore

    store = PostgresStore(url)
    await store.open()
    router, noop = counting_router(n)
    engine = Engine(store, router, retention_secs=None)
    try:
        for i in range(0, n, 10_000):
            await engine.enqueue_many([{"handler": noop.name}] * min(10_000, n - i))
        cpu.start()
        t0 = time.perf_counter()
        await engine.start()
        await wait_finished(engine, noop, timeout=max(120.0, n / 50))
        secs = time.perf_counter() - t0
        cpu.stop()
        return secs
    finally:
        await engine.stop(grace=5)
        await store.close()


async def pgqueuer(url: str, n: int, cpu: CpuMeter) -> float:
    import asyncpg
    from pgqueuer import AsyncpgDriver, QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(url)
    try:
        driver = AsyncpgDriver(conn)
        queries = Queries(driver)
        await queries.install()
        for i in range(0, n, 10_000):
            k = min(10_000, n - i)
            await queries.enqueue(["noop"] * k, [None] * k, [0] * k)
        qm = QueueManager(queries)
        done = asyncio.Event()
        count = 0

        @qm.entrypoint("noop")
        async def noop(job: object) -> None:
            nonlocal count
            count += 1
            if count >= n:
                done.set()

        cpu.start()
        t0 = time.perf_counter()
        runner = asyncio.create_task(qm.run(batch_size=PGQ_BATCH, mode=QueueExecutionMode.drain))
        await _until(done, runner, max(120.0, n / 50))
        secs = time.perf_counter() - t0
        cpu.stop()
        qm.shutdown.set()
        await asyncio.wait_for(runner, 30)
        return secs
    finally:
        await conn.close()


async def procrastinate(url: str, n: int, cpu: CpuMeter) -> float:
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=url))
    done = asyncio.Event()
    count = 0

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for i in range(0, n, 10_000):
            await noop.batch_defer_async(*([{}] * min(10_000, n - i)))
        cpu.start()
        t0 = time.perf_counter()
        runner = asyncio.create_task(
            app.run_worker_async(
                queues=["bench"],
                concurrency=PROCRASTINATE_CONCURRENCY,
                wait=True,
                install_signal_handlers=False,
            )
        )
        await _until(done, runner, max(120.0, n / 50))
        secs = time.perf_counter() - t0
        cpu.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return secs


async def _until(done: asyncio.Event, runner: asyncio.Task, timeout: float) -> None:
    waiter = asyncio.create_task(done.wait())
    finished, _ = await asyncio.wait({waiter, runner}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in finished:
        waiter.cancel()
        if runner in finished:
            runner.result()  # raises the worker's error
            raise RuntimeError("the worker stopped before every job ran")
        raise TimeoutError(f"not drained within {timeout:g}s")


SYSTEMS: dict[str, tuple[str, str, Callable[[str, int, CpuMeter], Awaitable[float]]]] = {
    "ours": ("pg_inproc_drain_jobs_per_s", "our Engine in-process on PostgresStore", ours),
    "pgqueuer": (
        "peer_pgqueuer_drain_jobs_per_s",
        f"pgqueuer QueueManager, batch_size {PGQ_BATCH}",
        pgqueuer,
    ),
    "procrastinate": (
        "peer_procrastinate_drain_jobs_per_s",
        f"procrastinate async worker, concurrency {PROCRASTINATE_CONCURRENCY}",
        procrastinate,
    ),
}


async def measure(info: PgInfo, variant: str, n: int) -> tuple[float, float]:
    url = await create_database(info, f"bench_{variant}")
    cpu = CpuMeter(info.pid)
    secs = await SYSTEMS[variant][2](url, n, cpu)
    return secs, cpu.seconds


def run(quick: bool, variant: str = "ours") -> Result:
    n = drain_n(quick)
    key, what, _ = SYSTEMS[variant]
    with pg_server() as info:
        secs, cpu_s = asyncio.run(measure(info, variant, n))
    return Result(
        figures={key: n / secs},
        notes={
            key: f"{what}; N={n:,} no-op jobs enqueued first, worker start to the N-th completion; one"
            " PostgreSQL server for all three (tests/pg.py settings: fsync off, synchronous_commit off)"
        },
        params={"n": n, "system": variant},
        extra={f"{key.removesuffix('_jobs_per_s')}_s": round(secs, 3)},
        cpu={f"pg_{variant}": per_1k(cpu_s, n)},
    )


if __name__ == "__main__":
    main(run)
