"""peer_dramatiq_drain_jobs_per_s, peer_celery_drain_jobs_per_s: the separate-process peers on a
real redis-server (bench/infra.py: installed with apt-get if missing, started on a free loopback
port with persistence off). N no-op tasks are enqueued first; the workers then start and the drain
is timed from the first task's start to the N-th task's end (the rule of our plugin path, whose
plugin start-up is not counted either); the time from worker start is kept beside it. CPU seconds
cover the worker processes and redis-server over the drain."""

from __future__ import annotations

from bench.common import Result, main, python_child
from bench.infra import CpuMeter, per_1k, redis_server
from bench.redis_peers import CELERY_PROCESSES, DRAMATIQ_PROCESSES, DRAMATIQ_THREADS
from bench.sizes import drain_n

WHAT = {
    "dramatiq": f"dramatiq, RedisBroker without middleware, {DRAMATIQ_PROCESSES} processes x"
    f" {DRAMATIQ_THREADS} threads",
    "celery": f"Celery, Redis broker, results ignored, prefork pool of {CELERY_PROCESSES} processes",
}


def run(quick: bool, variant: str = "dramatiq") -> Result:
    n = drain_n(quick)
    key = f"peer_{variant}_drain_jobs_per_s"
    with redis_server() as redis:
        child = python_child(["-m", "bench.redis_peers", variant, redis.url, str(n)])
        try:
            m = child.wait_line(r"^PEER_ENQUEUED ([0-9.]+)", timeout=max(120.0, n / 100))
            enqueue_s = float(m.group(1))
            redis_cpu = CpuMeter(redis.pid, include_self=False).start()
            m = child.wait_line(
                r"^PEER_DRAINED ([0-9.]+) ([0-9.]+) ([0-9.]+)", timeout=max(120.0, n / 50) + 30
            )
            redis_s = redis_cpu.stop()
            from_start, from_first, cpu_s = (float(x) for x in m.groups())
        finally:
            child.stop()
    return Result(
        figures={key: n / from_first},
        notes={
            key: f"{WHAT[variant]}; redis-server without persistence; N={n:,} no-op tasks enqueued first;"
            " first task start to the N-th task end (a counter in shared memory)"
        },
        params={"n": n, "system": variant},
        extra={
            f"peer_{variant}_enqueue_jobs_per_s": round(n / enqueue_s),
            f"peer_{variant}_drain_s": round(from_first, 3),
            f"peer_{variant}_from_worker_start_jobs_per_s": round(n / from_start),
        },
        cpu={variant: per_1k(cpu_s + redis_s, n), f"{variant}_redis_share": per_1k(redis_s, n)},
    )


if __name__ == "__main__":
    main(run)
