"""The peer's side of the comparison: a SqliteHuey app with one no-op task, and its consumer.

Durability: huey's SqliteStorage leaves SQLite at its default `synchronous=FULL` (2) in WAL mode
and commits every operation; `NormalSqliteHuey` is the same with `synchronous=NORMAL` (1), to
compare with our store at the same setting.

`python -m bench.huey_app DB N WORKERS DURABILITY TYPE` runs huey's own Consumer
(`huey.create_consumer(workers=WORKERS, worker_type=TYPE)`, TYPE thread or process) in this
process, counts completed tasks (huey's SIGNAL_COMPLETE, counted in a counter shared with forked
worker processes) and prints `HUEY_DRAINED <seconds> <cpu seconds>` when N tasks have completed,
timed from just before `consumer.start()`; CPU is this process and its worker processes.
"""

from __future__ import annotations

import multiprocessing
import sys
import time

from huey import SqliteHuey, signals
from huey.storage import SqliteStorage


class NormalSqliteStorage(SqliteStorage):
    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


class NormalSqliteHuey(SqliteHuey):
    storage_class = NormalSqliteStorage


def make(path: str, durability: str = "full") -> tuple[SqliteHuey, object]:
    cls = NormalSqliteHuey if durability == "normal" else SqliteHuey
    # busy timeout 30 s instead of 5: with process workers on a loaded machine a worker can wait
    # longer than 5 s for the write lock, and huey then loses that task ("database is locked")
    huey = cls(name="bench", filename=path, timeout=30)

    @huey.task(name="bench.noop")
    def noop() -> None:
        return None

    return huey, noop


def consume(path: str, n: int, workers: int, durability: str, worker_type: str) -> tuple[float, float]:
    from bench.infra import CpuMeter

    huey, _ = make(path, durability)
    done = multiprocessing.get_context("fork").Value("q", 0)  # shared with forked process workers

    @huey.signal(signals.SIGNAL_COMPLETE)
    def on_complete(signal: str, task: object, *args: object, **kwargs: object) -> None:
        with done.get_lock():
            done.value += 1

    consumer = huey.create_consumer(workers=workers, worker_type=worker_type, periodic=False)
    limit = max(60.0, n / 100)
    import os

    cpu = CpuMeter(os.getpid(), include_self=False).start()
    t0 = time.perf_counter()
    consumer.start()
    while done.value < n:  # poll a shared counter (process workers can't set an Event here)
        if time.perf_counter() - t0 > limit:
            consumer.stop()
            raise SystemExit(f"huey completed only {done.value} of {n} tasks in {limit:g} s")
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    cpu_s = cpu.stop()
    consumer.stop(graceful=True)
    return elapsed, cpu_s


if __name__ == "__main__":
    # import by module name so the task is registered as `bench.huey_app.bench.noop`, the name the
    # enqueuing process used (huey prefixes task names with the defining module)
    from bench.huey_app import consume

    secs, cpu_s = consume(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    print(f"HUEY_DRAINED {secs:.6f} {cpu_s:.4f}", flush=True)
