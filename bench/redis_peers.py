"""The separate-process peers on Redis: dramatiq and Celery, each in its own child process.

`python -m bench.redis_peers SYSTEM REDIS_URL N` (SYSTEM dramatiq or celery) enqueues N no-op
tasks, then forks the workers and prints
`PEER_DRAINED <from worker start s> <from first task start s> <cpu s>` once N tasks have run.
Completions are counted in a counter in shared memory (inherited by the forked workers); the
task body is the no-op plus that count. CPU is this process and its workers (the caller adds
redis-server's).

- dramatiq: RedisBroker without middleware, 2 worker processes x 8 threads (dramatiq's default
  threads per process), `Worker(broker, worker_threads=8)` in each.
- Celery: Redis broker, results ignored, one worker (`app.Worker`) with the prefork pool of 2
  processes (one per core), heartbeat/mingle/gossip off; everything else default.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time

CTX = multiprocessing.get_context("fork")
DONE = CTX.Value("q", 0)
FIRST = CTX.Value("d", 0.0)


def _count() -> None:
    if FIRST.value == 0.0:
        with FIRST.get_lock():
            if FIRST.value == 0.0:
                FIRST.value = time.time()
    with DONE.get_lock():
        DONE.value += 1


# ---------------------------------------------------------------- dramatiq

DRAMATIQ_PROCESSES = 2
DRAMATIQ_THREADS = 8


def dramatiq_broker(url: str):
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url, middleware=[])
    dramatiq.set_broker(broker)

    @dramatiq.actor(actor_name="noop", queue_name="bench")
    def noop() -> None:
        _count()

    return broker, noop


def dramatiq_worker(url: str) -> None:
    import dramatiq

    broker, _ = dramatiq_broker(url)
    worker = dramatiq.Worker(broker, worker_threads=DRAMATIQ_THREADS)
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    worker.start()
    while not stop:
        time.sleep(0.05)
    worker.stop()
    os._exit(0)


def dramatiq_enqueue(url: str, n: int) -> None:
    broker, noop = dramatiq_broker(url)
    broker.flush_all()
    for _ in range(n):
        noop.send()
    broker.close()


def dramatiq_start(url: str) -> list[CTX.Process]:  # type: ignore[name-defined]
    procs = [CTX.Process(target=dramatiq_worker, args=(url,)) for _ in range(DRAMATIQ_PROCESSES)]
    for p in procs:
        p.start()
    return procs


# ---------------------------------------------------------------- Celery

CELERY_PROCESSES = 2


def celery_app(url: str):
    from celery import Celery

    app = Celery("bench", broker=url)
    app.conf.update(
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        task_default_queue="bench",
    )

    @app.task(name="noop")
    def noop() -> None:
        _count()

    return app, noop


def celery_worker(url: str) -> None:
    app, _ = celery_app(url)
    worker = app.Worker(
        concurrency=CELERY_PROCESSES,
        pool="prefork",
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    )
    worker.start()
    os._exit(0)


def celery_enqueue(url: str, n: int) -> None:
    app, noop = celery_app(url)
    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                noop.apply_async(producer=producer)


def celery_start(url: str) -> list[CTX.Process]:  # type: ignore[name-defined]
    p = CTX.Process(target=celery_worker, args=(url,))
    p.start()
    return [p]


SYSTEMS = {"dramatiq": (dramatiq_enqueue, dramatiq_start), "celery": (celery_enqueue, celery_start)}


def main() -> None:
    from bench.infra import CpuMeter

    system, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    enqueue, start = SYSTEMS[system]
    t_enq = time.perf_counter()
    enqueue(url, n)
    print(f"PEER_ENQUEUED {time.perf_counter() - t_enq:.6f}", flush=True)
    cpu = CpuMeter(os.getpid(), include_self=False).start()
    t0_wall = time.time()
    t0 = time.perf_counter()
    procs = start(url)
    limit = max(120.0, n / 50)
    try:
        while DONE.value < n:  # poll the shared counter
            if time.perf_counter() - t0 > limit:
                raise SystemExit(f"{system} ran only {DONE.value} of {n} tasks in {limit:g} s")
            time.sleep(0.002)
        end = time.perf_counter()
        end_wall = time.time()
        cpu_s = cpu.stop()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(20)
            if p.is_alive():
                p.kill()
    first = FIRST.value or t0_wall
    print(f"PEER_DRAINED {end - t0:.6f} {end_wall - first:.6f} {cpu_s:.4f}", flush=True)


if __name__ == "__main__":
    main()
