"""peer_huey_{full,normal,process}_drain_jobs_per_s: huey draining N no-op tasks.

- full: SqliteHuey as shipped (SQLite synchronous=FULL, WAL), 4 thread workers;
- normal: the same at synchronous=NORMAL (a three-line storage subclass), 4 thread workers;
- process: SqliteHuey at FULL with 4 process workers (jobs in separate processes, like our plugin
  path, dramatiq and Celery).

The tasks are enqueued first; then huey's consumer starts in a child process and the clock runs
from `consumer.start()` until N tasks have completed (huey's SIGNAL_COMPLETE). CPU seconds are
the consumer process and its workers over the same span."""

from __future__ import annotations

import time

from bench.common import Result, main, python_child, temp_dir
from bench.huey_app import make
from bench.infra import per_1k
from bench.sizes import drain_n

WORKERS = 4
VARIANTS = {
    "full": ("full", "thread", "SqliteHuey as shipped (synchronous=FULL, WAL), 4 thread workers"),
    "normal": ("normal", "thread", "SqliteHuey at synchronous=NORMAL (WAL), 4 thread workers"),
    "process": ("full", "process", "SqliteHuey as shipped (synchronous=FULL, WAL), 4 process workers"),
}


def run(quick: bool, variant: str = "full") -> Result:
    durability, worker_type, what = VARIANTS[variant]
    key = f"peer_huey_{variant}_drain_jobs_per_s"
    n = drain_n(quick)
    with temp_dir("huey") as d:
        db = str(d / "huey.db")
        huey, noop = make(db, durability)
        t0 = time.perf_counter()
        for _ in range(n):
            noop()
        enqueue_s = time.perf_counter() - t0
        assert huey.pending_count() == n, huey.pending_count()
        huey.storage.close()
        child = python_child(["-m", "bench.huey_app", db, str(n), str(WORKERS), durability, worker_type])
        try:
            m = child.wait_line(r"^HUEY_DRAINED ([0-9.]+) ([0-9.]+)", timeout=max(60.0, n / 100) + 10)
            drain_s, cpu_s = float(m.group(1)), float(m.group(2))
        finally:
            child.stop()
    figures = {key: n / drain_s}
    notes = {
        key: f"huey {what}, N={n:,} no-op tasks enqueued first, timed from consumer.start() to the N-th"
        " SIGNAL_COMPLETE"
    }
    if variant == "full":  # the key of earlier runs
        figures["peer_huey_drain_jobs_per_s"] = n / drain_s
        notes["peer_huey_drain_jobs_per_s"] = notes[key]
    return Result(
        figures=figures,
        notes=notes,
        params={"n": n, "workers": WORKERS, "worker_type": worker_type, "durability": durability},
        extra={
            f"peer_huey_{variant}_enqueue_jobs_per_s": round(n / enqueue_s),
            f"peer_huey_{variant}_drain_s": round(drain_s, 3),
        },
        cpu={f"huey_{variant}": per_1k(cpu_s, n)},
    )


if __name__ == "__main__":
    main(run)
