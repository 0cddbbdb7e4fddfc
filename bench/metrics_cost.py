"""metrics_drain_overhead_pct and metrics_scrape_ms_1k_handlers: what the metrics cost.

- Drain overhead: the in-process drain (Engine + SQLiteStore, N `pulse.noop` jobs, enqueued first)
  with the metrics recorder off and on — on means the recorder is wired into the engine and its
  sampling/persisting loop runs as in `serve` (a first gauge sample as the drain starts).
  Off and on runs alternate in one process (off-on, then on-off, …: neither always goes first),
  `REPS` of each; the best of each is compared, and the overhead is (off rate / on rate - 1) × 100,
  reported with the on/off ratio of the same run. Target ≤ 3 %. On a shared machine run-to-run noise is larger
  than the effect, so the hot path is also timed alone (ns per job for the three recorder calls)
  and shown as a share of one job's time in the best "off" run.
- Scrape time: a recorder holding 1,000 handlers (counters, both histograms, gauges) scraped over
  HTTP from its MetricsHTTPServer; the median of `SCRAPES` scrapes, the body parsed once to check
  it is well-formed.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from bench.common import Result, main, temp_dir
from bench.ours import DrainCounter, enqueue_many, open_engine
from bench.sizes import drain_n
from pulse_tui.pulse import metrics

REPS = 5
HOT_CALLS = 200_000
SCRAPES = 20
HANDLERS = 1000


async def drain_once(n: int, on: bool) -> float:
    with temp_dir("metrics") as d:
        store, engine = await open_engine(d / "pulse.db")
        rec = metrics.Recorder(store) if on else None  # serve's periods: sample 5 s, write 30 s
        engine.metrics = rec
        try:
            await enqueue_many(engine, "pulse.noop", n)
            counter = DrainCounter(engine, n)
            if rec is not None:
                await rec.start()
            t0 = time.perf_counter()
            await engine.start()
            await counter.wait(timeout=max(60.0, n / 50))
            secs = time.perf_counter() - t0
            if counter.failed:
                raise RuntimeError(f"{len(counter.failed)} no-op jobs failed")
            if rec is not None:
                assert rec.live["pulse.noop"].finished.get("completed") == n, "recorder missed finishes"
        finally:
            await engine.stop(grace=5)
            if rec is not None:
                await rec.stop()
            await store.close()
    return n / secs


async def scrape_ms() -> tuple[float, int, int]:
    from prometheus_client.parser import text_string_to_metric_families

    rec = metrics.Recorder(None)
    for i in range(HANDLERS):
        h = f"team{i % 37}.handler-{i:04d}"
        for k in range(20):
            rec.enqueued(h)
            rec.started(h, 0.001 * k)
            rec.finished(h, "completed" if k % 5 else "failed", 0.01 * k)
        rec.gauges[h] = metrics.Gauges(queued=i % 7, due=i % 3, running=i % 2, oldest_due_age=float(i % 60))
    srv = metrics.MetricsHTTPServer(rec, metrics.HTTPSettings("127.0.0.1:0"))
    await srv.start()
    times = []
    body = b""
    try:
        for _ in range(SCRAPES):
            t0 = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
            await writer.drain()
            body = await reader.read()
            writer.close()
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        await srv.stop()
    text = body.partition(b"\r\n\r\n")[2].decode()
    samples = sum(len(f.samples) for f in text_string_to_metric_families(text))
    return statistics.median(times), len(body), samples


def hot_path_ns() -> float:
    """Nanoseconds the recorder adds per job (enqueued + started + finished), measured alone."""
    rec = metrics.Recorder(None)
    names = [f"h{i}" for i in range(8)]
    t0 = time.perf_counter()
    for i in range(HOT_CALLS):
        h = names[i & 7]
        rec.enqueued(h)
        rec.started(h, 0.002)
        rec.finished(h, "completed", 0.03)
    return (time.perf_counter() - t0) / HOT_CALLS * 1e9


def run(quick: bool) -> Result:
    n = max(drain_n(quick), 5000)
    off: list[float] = []
    on: list[float] = []
    for r in range(REPS):
        for metrics_on in (False, True) if r % 2 == 0 else (True, False):
            (on if metrics_on else off).append(asyncio.run(drain_once(n, metrics_on)))
    overhead = (max(off) / max(on) - 1) * 100
    ms, size, samples = asyncio.run(scrape_ms())
    ns = hot_path_ns()
    return Result(
        figures={"metrics_drain_overhead_pct": overhead, "metrics_scrape_ms_1k_handlers": ms},
        notes={
            "metrics_drain_overhead_pct": f"N={n:,} pulse.noop in-process drain, recorder off vs on "
            f"(with its sampling loop), alternating in one process, best of {REPS} each; (off/on - 1) × 100; "
            f"on/off = {max(on) / max(off):.3f} in this run",
            "metrics_scrape_ms_1k_handlers": f"median of {SCRAPES} HTTP scrapes of /metrics, {HANDLERS:,} "
            "handlers with counters, run and wait histograms and gauges",
        },
        params={"n": n, "reps": REPS, "handlers": HANDLERS},
        extra={
            "metrics_on_over_off_ratio": round(max(on) / max(off), 3),
            "metrics_off_jobs_per_s": [round(x) for x in off],
            "metrics_on_jobs_per_s": [round(x) for x in on],
            "metrics_scrape_bytes_1k_handlers": size,
            "metrics_scrape_samples_1k_handlers": samples,
            "metrics_paired_overhead_pct_median": round(
                statistics.median((a / b - 1) * 100 for a, b in zip(off, on, strict=True)), 1
            ),
            "metrics_hot_path_ns_per_job": round(ns),
            "metrics_hot_path_pct_of_off_job": round(ns / (1e9 / max(off)) * 100, 2),
        },
    )


if __name__ == "__main__":
    main(run)
