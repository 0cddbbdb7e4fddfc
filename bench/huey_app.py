"""The peer's side of the comparison: a SqliteHuey app with one no-op task, and its consumer.

`python -m bench.huey_app DB N` runs huey's own Consumer (4 thread workers, as huey documents:
`huey.create_consumer(workers=4, worker_type="thread")`) in this process, counts huey's
SIGNAL_COMPLETE signals, and prints `HUEY_DRAINED <seconds>` when N tasks have completed, timed
from just before `consumer.start()`.
"""

from __future__ import annotations

import sys
import threading
import time

from huey import SqliteHuey, signals


def make(path: str) -> tuple[SqliteHuey, object]:
    huey = SqliteHuey(name="bench", filename=path)

    @huey.task(name="bench.noop")
    def noop() -> None:
        return None

    return huey, noop


def consume(path: str, n: int, workers: int = 4) -> float:
    huey, _ = make(path)
    done = threading.Event()
    lock = threading.Lock()
    count = 0

    @huey.signal(signals.SIGNAL_COMPLETE)
    def on_complete(signal: str, task: object, *args: object, **kwargs: object) -> None:
        nonlocal count
        with lock:
            count += 1
            if count >= n:
                done.set()

    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=False)
    t0 = time.perf_counter()
    consumer.start()
    limit = max(60.0, n / 100)
    if not done.wait(limit):
        consumer.stop()
        raise SystemExit(f"huey completed only {count} of {n} tasks in {limit:g} s")
    elapsed = time.perf_counter() - t0
    consumer.stop(graceful=True)
    return elapsed


if __name__ == "__main__":
    # import by module name so the task is registered as `bench.huey_app.bench.noop`, the name the
    # enqueuing process used (huey prefixes task names with the defining module)
    from bench.huey_app import consume

    secs = consume(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 4)
    print(f"HUEY_DRAINED {secs:.6f}", flush=True)
