"""metrics_drain_overhead_pct and metrics_scrape_ms_1k_handlers: what the metrics cost.

- Drain overhead: the in-process drain (Engine + SQLiteStore, N `pulse.noop` jobs queued) with the
  metrics recorder off and on — on means the recorder is wired into the engine and its loop runs
  as in `serve`. Every drain starts from a copy of one store file holding the N queued jobs (made
  once: both modes drain the same file, no enqueue phase between drains), after a gc.collect().
  Two drain processes run side by side: each pair is an off drain and an on drain started at the
  same moment, so both see the same load from the rest of the machine (which process has metrics
  on alternates); one pair of off drains is run first and thrown away (warm-up). The figure is the
  median over `PAIRS` pairs of (on CPU s / off CPU s - 1) × 100, CPU of every thread of the drain's
  process (the event loop's and SQLite's): the recorder adds only CPU work, and CPU is what other
  processes' load moves least. Beside it, metrics_drain_wall_overhead_pct: the same median over
  wall time. An off/off run of this harness at load 3–5 on 2 cores gave paired CPU ratios within
  −2.3 … +4.7 % (median −0.1 %) and wall ones within ±5 % (median +1.4 %); drains run one after the
  other instead gave ±8 % CPU and −40 … +100 % wall per pair.
- The parts alone: the hot path (ns per job for the three recorder calls) and one gauge sample on
  the store holding the N queued jobs (the query a scrape or GetStats runs when the gauges are
  older than the sample period; a drain nobody reads does not run it), each also as a share of
  one off drain's CPU.
- Scrape time: a recorder holding 1,000 handlers (counters, both histograms, gauges) scraped over
  HTTP from its MetricsHTTPServer; the median of `SCRAPES` scrapes, the body parsed once to check
  it is well-formed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import Result, main, temp_dir
from bench.infra import CpuMeter, per_1k
from bench.ours import DrainCounter, enqueue_many, open_engine
from bench.sizes import drain_n
from pulse_tui.pulse import metrics

PAIRS = 12
QUICK_PAIRS = 4
HOT_CALLS = 200_000
SCRAPES = 20
HANDLERS = 1000


async def make_store(path: Path, n: int) -> float:
    """The store file every drain copies: n queued pulse.noop jobs. Returns one gauge sample's
    seconds on it (the median of 5)."""
    store, engine = await open_engine(path)
    try:
        await enqueue_many(engine, "pulse.noop", n)
        rec = metrics.Recorder(store)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            await rec.sample()
            times.append(time.perf_counter() - t0)
        assert rec.gauges["pulse.noop"].queued == n, "the gauges missed queued jobs"
    finally:
        await store.close()
    return statistics.median(times)


def copy_store(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")


async def drain_once(
    src: Path, n: int, on: bool, ready: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one drain of a copy of `src`; `ready` is
    awaited once everything is set up, just before the timed part."""
    gc.collect()  # every drain starts with the same collector state (else every other one paid more)
    with temp_dir("metrics") as d:
        copy_store(src, d / "pulse.db")
        store, engine = await open_engine(d / "pulse.db")
        rec = metrics.Recorder(store) if on else None  # serve's periods: fold 5 s, write 30 s
        engine.metrics = rec
        try:
            counter = DrainCounter(engine, n)
            await ready()
            if rec is not None:  # its loop's first pass runs once the drain has started, as in serve
                await rec.start()
            cpu = CpuMeter().start()
            t0 = time.perf_counter()
            await engine.start()
            await counter.wait(timeout=max(60.0, n / 50))
            secs = time.perf_counter() - t0
            cpu_s = cpu.stop()
            if counter.failed:
                raise RuntimeError(f"{len(counter.failed)} no-op jobs failed")
            if rec is not None:
                assert rec.live["pulse.noop"].finished.get("completed") == n, "recorder missed finishes"
        finally:
            await engine.stop(grace=5)
            if rec is not None:
                await rec.stop()
            await store.close()
    return secs, cpu_s


async def worker(src: Path, n: int) -> None:
    """A drain process: per line `off` or `on` on stdin it sets a drain up, says `ready`, waits for
    `go`, drains and prints [wall s, CPU s]; `quit` (or the end of stdin) ends it."""
    loop = asyncio.get_running_loop()

    async def line() -> str:
        return (await loop.run_in_executor(None, sys.stdin.readline)).strip()

    async def ready() -> None:
        print("ready", flush=True)
        if await line() != "go":
            raise RuntimeError("expected go")

    while (mode := await line()) in ("off", "on"):
        print(json.dumps(await drain_once(src, n, mode == "on", ready)), flush=True)


class Workers:
    """Two drain processes started together: a pair's off and on drains run at the same time, so
    both see the same load from the rest of the machine."""

    def __init__(self, src: Path, n: int) -> None:
        argv = [sys.executable, "-m", "bench.metrics_cost", "--drain-worker", str(src), str(n)]
        root = Path(__file__).resolve().parents[1]
        self.procs = [
            subprocess.Popen(argv, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]

    def _say(self, p: subprocess.Popen[str], text: str) -> None:
        assert p.stdin is not None
        p.stdin.write(text + "\n")
        p.stdin.flush()

    def _hear(self, p: subprocess.Popen[str]) -> str:
        assert p.stdout is not None
        got = p.stdout.readline().strip()
        if not got:
            raise RuntimeError(f"a drain process ended (exit status {p.wait()})")
        return got

    def pair(self, modes: tuple[str, str]) -> list[tuple[float, float]]:
        """The two drains of `modes` (process 0's, process 1's), timed together."""
        for p, m in zip(self.procs, modes, strict=True):
            self._say(p, m)
        for p in self.procs:
            if self._hear(p) != "ready":
                raise RuntimeError("a drain process did not get ready")
        for p in self.procs:
            self._say(p, "go")
        return [tuple(json.loads(self._hear(p))) for p in self.procs]  # type: ignore[misc]

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError):
                self._say(p, "quit")
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


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


def pct(ratios: list[float]) -> float:
    return round((statistics.median(ratios) - 1) * 100, 2)


def run(quick: bool) -> Result:
    n = max(drain_n(quick), 5000)
    pairs = QUICK_PAIRS if quick else PAIRS
    off: list[tuple[float, float]] = []  # (wall s, CPU s) per drain
    on: list[tuple[float, float]] = []
    with temp_dir("metrics-src") as d:
        src = d / "pulse.db"
        sample_s = asyncio.run(make_store(src, n))
        workers = Workers(src, n)
        try:
            workers.pair(("off", "off"))  # warm-up, not counted
            for r in range(pairs):  # which process drains with metrics on alternates
                a, b = workers.pair(("off", "on") if r % 2 == 0 else ("on", "off"))
                off.append(a if r % 2 == 0 else b)
                on.append(b if r % 2 == 0 else a)
        finally:
            workers.close()
    wall = [b[0] / a[0] for a, b in zip(off, on, strict=True)]
    cpu = [b[1] / a[1] for a, b in zip(off, on, strict=True)]
    wall_overhead, overhead = pct(wall), pct(cpu)
    ms, size, samples = asyncio.run(scrape_ms())
    ns = hot_path_ns()
    off_cpu_job = statistics.median(c for _, c in off) / n
    how = (
        f"N={n:,} pulse.noop in-process drain from a copy of one store file, recorder off vs on (as in serve), "
        f"{pairs} pairs each run side by side in two processes (at the same time), after a warm-up pair; "
        "median of the paired ratios"
    )
    return Result(
        figures={
            "metrics_drain_overhead_pct": overhead,
            "metrics_drain_wall_overhead_pct": wall_overhead,
            "metrics_scrape_ms_1k_handlers": ms,
        },
        notes={
            "metrics_drain_overhead_pct": f"{how} of CPU s of the process (all threads): "
            f"(on / off - 1) × 100 (paired {min(cpu) * 100 - 100:+.1f} … {max(cpu) * 100 - 100:+.1f} %)",
            "metrics_drain_wall_overhead_pct": f"{how} of wall time: (on s / off s - 1) × 100 "
            f"(paired {min(wall) * 100 - 100:+.1f} … {max(wall) * 100 - 100:+.1f} %)",
            "metrics_scrape_ms_1k_handlers": f"median of {SCRAPES} HTTP scrapes of /metrics, {HANDLERS:,} "
            "handlers with counters, run and wait histograms and gauges",
        },
        params={"n": n, "pairs": pairs, "handlers": HANDLERS},
        extra={
            "metrics_paired_wall_overhead_pct": [round((x - 1) * 100, 1) for x in wall],
            "metrics_paired_cpu_overhead_pct": [round((x - 1) * 100, 1) for x in cpu],
            "metrics_off_jobs_per_s": [round(n / w) for w, _ in off],
            "metrics_on_jobs_per_s": [round(n / w) for w, _ in on],
            "metrics_scrape_bytes_1k_handlers": size,
            "metrics_scrape_samples_1k_handlers": samples,
            "metrics_hot_path_ns_per_job": round(ns),
            "metrics_hot_path_pct_of_off_job_cpu": round(ns / 1e9 / off_cpu_job * 100, 2),
            "metrics_gauge_sample_ms": round(sample_s * 1000, 1),
            "metrics_gauge_sample_pct_of_off_drain_cpu": round(sample_s / (off_cpu_job * n) * 100, 2),
        },
        cpu={
            "ours_metrics_off": per_1k(statistics.median(c for _, c in off), n),
            "ours_metrics_on": per_1k(statistics.median(c for _, c in on), n),
        },
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--drain-worker"]:
        asyncio.run(worker(Path(sys.argv[2]), int(sys.argv[3])))
    else:
        main(run)
