"""peer_huey_drain_jobs_per_s: huey (SqliteHuey, consumer with 4 thread workers) draining N no-op
tasks. The tasks are enqueued first; then huey's consumer starts in a child process and the clock
runs from `consumer.start()` until huey has signalled SIGNAL_COMPLETE for all N."""

from __future__ import annotations

import time

from bench.common import Result, main, python_child, temp_dir
from bench.huey_app import make
from bench.sizes import drain_n

WORKERS = 4


def run(quick: bool) -> Result:
    n = drain_n(quick)
    with temp_dir("huey") as d:
        db = str(d / "huey.db")
        huey, noop = make(db)
        t0 = time.perf_counter()
        for _ in range(n):
            noop()
        enqueue_s = time.perf_counter() - t0
        assert huey.pending_count() == n, huey.pending_count()
        huey.storage.close()
        child = python_child(["-m", "bench.huey_app", db, str(n), str(WORKERS)])
        try:
            m = child.wait_line(r"^HUEY_DRAINED ([0-9.]+)", timeout=max(60.0, n / 100) + 10)
            drain_s = float(m.group(1))
        finally:
            child.stop()
    return Result(
        figures={"peer_huey_drain_jobs_per_s": n / drain_s},
        notes={
            "peer_huey_drain_jobs_per_s": f"huey SqliteHuey, {WORKERS} thread workers, N={n:,} no-op tasks"
            " enqueued first, timed from consumer.start() to the N-th SIGNAL_COMPLETE",
        },
        params={"n": n, "workers": WORKERS},
        extra={"peer_huey_enqueue_jobs_per_s": round(n / enqueue_s), "peer_huey_drain_s": round(drain_s, 3)},
    )


if __name__ == "__main__":
    main(run)
