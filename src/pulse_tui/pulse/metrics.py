"""Metrics: per-handler rates and latencies, kept cheaply on the hot path and persisted in buckets.

One set of numbers feeds both the console (OperatorService.GetStats) and Prometheus:

- Hot path: the engine calls `enqueued`, `started` and `finished` on a `Recorder`. Each call bumps
  counters of one per-handler `Bucket` (cumulative since this process started) — a dict lookup, a
  bisect into fixed histogram bounds (skipped for the first bucket) and a few integer additions;
  about 0.15 µs a call. No store write, no task, no lock.
- Every `sample_secs` the recorder's loop folds what changed since the last fold into the
  per-minute and per-hour buckets waiting to be written (`roll`).
- The gauges (jobs per status and the oldest due job's age from one grouped store query; plugins
  up from the host) are sampled when they are read — a scrape or GetStats — if the last sample is
  older than `sample_secs` (`refresh_gauges`). The query visits every live job (about 10 ms per
  20,000 queued on SQLite), so a server nobody watches does not run it, readers arriving together
  share one sample, and samples are spaced so that they take at most 1/`SAMPLE_SHARE` of the time
  (a 0.5 s query on a backlog of a million jobs runs every 25 s, not every 5 s).
- Every `persist_secs` (and at stop) the waiting buckets are added to the store's `metric_buckets`
  table, one row per (node, step, bucket start, handler). Each node adds only to its own rows, so
  nodes sharing a PostgreSQL store never contend; readers sum the rows of every node. Minute rows
  are kept for 24 h, hour rows for 30 days.
- `stats()` answers GetStats: the store's rows plus this node's not-yet-written buckets, summed per
  step over a window, with rates, error share and histogram percentiles.
- `PulseCollector` turns the cumulative buckets and the last gauge sample into Prometheus metric
  families (prometheus-client writes the exposition format); `MetricsHTTPServer` serves them,
  writing the text in a worker thread from a `Snapshot` taken on the event loop.

Wait time is measured from when a job became due (`run_at`: its enqueue, delay or retry backoff)
to the start of the attempt; run time from the attempt's start to its end.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import ssl
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pulse_tui.pulse.errors import PulseError, ValidationError

log = logging.getLogger("pulse.metrics")

# Histogram upper bounds (seconds) for run and wait time; the last bucket is +Inf. Stored buckets
# are per-bucket counts in this order: changing the bounds needs a migration of metric_buckets.
# Few bounds on purpose: a scrape writes one line per bound, handler and histogram.
BOUNDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
)  # fmt: skip
NB = len(BOUNDS) + 1
_B0 = BOUNDS[0]

MINUTE = 60
HOUR = 3600
MINUTE_KEEP = 24 * HOUR  # per-minute rows are kept this long
HOUR_KEEP = 30 * 86400  # per-hour rows
MAX_POINTS = 1500  # points per series in one GetStats answer
MAX_HANDLER_SERIES = 200  # beyond this many handlers, per-handler series carry no points
FAILED_OUTCOMES = frozenset({"failed", "timeout", "plugin_unavailable", "crashed"})  # count towards error %
GAUGE_STATUSES = ("queued", "due", "running", "paused")
SAMPLE_SHARE = 50  # gauge samples are at least this many times their own duration apart
GAUGE_WAIT_SECS = 1.0  # a reader of the gauges waits at most this long for a fresh sample


class Bucket:
    """Counters and histograms of one handler over some span (cumulative, a minute or an hour)."""

    __slots__ = ("enqueued", "started", "finished", "run", "run_sum", "wait", "wait_sum")

    def __init__(self) -> None:
        self.enqueued = 0
        self.started = 0
        self.finished: dict[str, int] = {}
        self.run = [0] * NB  # per-bucket counts (not cumulative)
        self.run_sum = 0.0
        self.wait = [0] * NB
        self.wait_sum = 0.0

    def copy(self) -> Bucket:
        b = Bucket()
        b.add(self)
        return b

    def add(self, o: Bucket) -> None:
        self.enqueued += o.enqueued
        self.started += o.started
        for k, v in o.finished.items():
            self.finished[k] = self.finished.get(k, 0) + v
        self.run = [a + b for a, b in zip(self.run, o.run, strict=True)]
        self.wait = [a + b for a, b in zip(self.wait, o.wait, strict=True)]
        self.run_sum += o.run_sum
        self.wait_sum += o.wait_sum

    def minus(self, o: Bucket) -> Bucket:
        d = Bucket()
        d.enqueued = self.enqueued - o.enqueued
        d.started = self.started - o.started
        d.finished = {
            k: v - o.finished.get(k, 0) for k, v in self.finished.items() if v != o.finished.get(k, 0)
        }
        d.run = [a - b for a, b in zip(self.run, o.run, strict=True)]
        d.wait = [a - b for a, b in zip(self.wait, o.wait, strict=True)]
        d.run_sum = self.run_sum - o.run_sum
        d.wait_sum = self.wait_sum - o.wait_sum
        return d

    def add_json(self, d: dict[str, Any]) -> None:
        """add(Bucket.from_json(d)) without the intermediate bucket (GetStats sums many rows)."""
        self.enqueued += int(d.get("e", 0))
        self.started += int(d.get("s", 0))
        fin = self.finished
        for k, v in d.get("f", {}).items():
            fin[k] = fin.get(k, 0) + int(v)
        for counts, name in ((self.run, "r"), (self.wait, "w")):
            for k, v in enumerate(d.get(name, ())):
                if v and k < NB:
                    counts[k] += int(v)
        self.run_sum += float(d.get("rs", 0.0))
        self.wait_sum += float(d.get("ws", 0.0))

    @property
    def empty(self) -> bool:
        return not (self.enqueued or self.started or self.finished)

    @property
    def finished_total(self) -> int:
        return sum(self.finished.values())

    @property
    def failed_total(self) -> int:
        return sum(v for k, v in self.finished.items() if k in FAILED_OUTCOMES)

    def to_json(self) -> dict[str, Any]:
        return {
            "e": self.enqueued,
            "s": self.started,
            "f": self.finished,
            "r": self.run,
            "rs": self.run_sum,
            "w": self.wait,
            "ws": self.wait_sum,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Bucket:
        b = cls()
        b.enqueued = int(d.get("e", 0))
        b.started = int(d.get("s", 0))
        b.finished = {str(k): int(v) for k, v in dict(d.get("f", {})).items()}
        for name in ("r", "w"):
            counts = [int(x) for x in d.get(name, ())][:NB]
            counts += [0] * (NB - len(counts))
            setattr(b, "run" if name == "r" else "wait", counts)
        b.run_sum = float(d.get("rs", 0.0))
        b.wait_sum = float(d.get("ws", 0.0))
        return b


def quantile(counts: list[int], q: float, total: float | None = None) -> float:
    """The q-quantile of a histogram (per-bucket counts over BOUNDS), interpolated linearly within
    its bucket like Prometheus' histogram_quantile. 0 when empty; the last finite bound when the
    quantile falls in the +Inf bucket.

    With `total` (the sum of the samples) no quantile exceeds what the largest sample can be: the
    sum less the lowest the other samples can be (their buckets' lower bounds). A lone 301 s run in
    the (300 s, 1800 s] bucket is then 301 s, not a p50 of 1050 s."""
    n_all = sum(counts)
    if n_all == 0:
        return 0.0
    rank = q * n_all
    seen = 0
    value = BOUNDS[-1]
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i < len(BOUNDS):
                lo = BOUNDS[i - 1] if i > 0 else 0.0
                value = lo + (BOUNDS[i] - lo) * max(0.0, rank - seen) / n
            break
        seen += n
    if total is None:
        return value
    lows = [BOUNDS[i - 1] if i > 0 else 0.0 for i in range(NB)]
    top = max(i for i, n in enumerate(counts) if n)
    largest = total - sum(lo * n for lo, n in zip(lows, counts, strict=True)) + lows[top]
    return max(0.0, min(value, largest))


@dataclass(slots=True)
class Gauges:
    """One handler's sampled gauges."""

    queued: int = 0
    due: int = 0
    running: int = 0
    paused: int = 0
    oldest_due_age: float = 0.0


@dataclass(slots=True)
class PluginGauge:
    name: str
    up: bool
    restarts: int


@dataclass(slots=True)
class Point:
    ts: float
    bucket: Bucket


@dataclass(slots=True)
class Series:
    handler: str  # "" = every handler together
    points: list[Point]
    total: Bucket


@dataclass(slots=True)
class Stats:
    now: float
    window: int
    step: int
    total: Series
    handlers: list[Series]
    gauges: dict[str, Gauges]
    plugins: list[PluginGauge]
    sampled_at: float


def _floor(t: float, step: int) -> int:
    return int(t // step) * step


def choose_step(window: int, step: int) -> tuple[int, int]:
    """Validate (window, step) in seconds; 0 picks defaults. Returns the step and the base step
    (60: minute rows, 3600: hour rows) it is built from."""
    window = window or HOUR
    if window < MINUTE or window > HOUR_KEEP:
        raise ValidationError(f"window must be between 60 s and 30 days, got {window} s")
    base = MINUTE if window <= MINUTE_KEEP else HOUR
    if not step:  # about 120 points at most: enough for a graph or a sparkline
        step = base * max(1, math.ceil(window / (120 * base)))
    if base == MINUTE and step % HOUR == 0:
        base = HOUR  # whole hours: the hour rows hold the same counts in 60× fewer rows
    if step < base or step % base:
        raise ValidationError(
            f"step must be a multiple of {base} s for a {window} s window (minute buckets are kept "
            f"24 h, hour buckets 30 days), got {step} s"
        )
    if window // step > MAX_POINTS:
        raise ValidationError(f"window/step gives {window // step} points; at most {MAX_POINTS}")
    return step, base


@dataclass(slots=True)
class Snapshot:
    live: dict[str, Bucket]
    gauges: dict[str, Gauges]
    plugin_gauges: list[PluginGauge]
    schedule_runs: dict[tuple[str, str], int] = field(default_factory=dict)


class Recorder:
    """Per-handler counters and histograms for this node. See the module docstring."""

    def __init__(
        self,
        store: Any = None,
        *,
        node: str = "",
        sample_secs: float = 5.0,
        persist_secs: float = 30.0,
        plugins: Callable[[], Iterable[PluginGauge]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.node = node
        self.sample_secs = sample_secs
        self.persist_secs = persist_secs
        self.plugins = plugins
        self.clock = clock
        self.live: dict[str, Bucket] = {}  # cumulative since start (Prometheus counters)
        self._folded: dict[str, Bucket] = {}  # `live` as of the last roll
        self._pending: dict[tuple[int, int, str], Bucket] = {}  # (step, ts, handler) not yet written
        self._lock = asyncio.Lock()  # a read of store + pending never overlaps a write of pending
        self._sample_task: asyncio.Task[None] | None = None  # the gauge sample readers share
        self.gauge_wait = GAUGE_WAIT_SECS  # a reader waits this long for a sample, then answers
        self._failed_at = 0.0  # when the last failed gauge sample started
        self._stopped = False
        self.gauges: dict[str, Gauges] = {}
        self.plugin_gauges: list[PluginGauge] = []
        # (handler, outcome) → schedule runs fired by this node's ticker (cumulative since start)
        self.schedule_runs: dict[tuple[str, str], int] = {}
        self.sampled_at = 0.0
        self.sample_cost = 0.0  # seconds the last gauge sample took
        self._task: asyncio.Task[None] | None = None
        self._last_persist = 0.0
        self._last_prune = 0.0
        self.persist_errors = 0

    # ---------------------------------------------------------------- hot path
    def snapshot(self) -> Snapshot:
        """A copy of what a scrape shows, taken on the event loop so the exposition can be written
        in a thread while jobs keep changing the live buckets."""
        return Snapshot(
            {h: b.copy() for h, b in self.live.items()},
            dict(self.gauges),
            list(self.plugin_gauges),
            dict(self.schedule_runs),
        )

    def _bucket(self, handler: str) -> Bucket:
        b = self.live.get(handler)
        if b is None:
            b = self.live[handler] = Bucket()
        return b

    def enqueued(self, handler: str) -> None:
        b = self.live.get(handler) or self._bucket(handler)
        b.enqueued += 1

    def started(self, handler: str, wait: float) -> None:
        b = self.live.get(handler) or self._bucket(handler)
        b.started += 1
        if wait <= _B0:  # most waits: the first bucket, no search (a negative wait counts as 0)
            b.wait[0] += 1
            if wait > 0:
                b.wait_sum += wait
        else:
            b.wait[bisect_left(BOUNDS, wait)] += 1
            b.wait_sum += wait

    def finished(self, handler: str, outcome: str, run: float) -> None:
        b = self.live.get(handler) or self._bucket(handler)
        fin = b.finished
        if outcome in fin:
            fin[outcome] += 1
        else:
            fin[outcome] = 1
        if run <= _B0:
            b.run[0] += 1
            if run > 0:
                b.run_sum += run
        else:
            b.run[bisect_left(BOUNDS, run)] += 1
            b.run_sum += run

    def schedule_run(self, handler: str, outcome: str) -> None:
        """A schedule run fired: `outcome` is `enqueued` (a job was enqueued), `skipped` (overlap),
        `failed` (no job could be enqueued), or `inactive` (its handler was gone, so the schedule
        was marked inactive instead). Labelled by handler, not schedule id, so 10,000
        schedules do not make 10,000 series."""
        key = (handler, outcome)
        self.schedule_runs[key] = self.schedule_runs.get(key, 0) + 1

    # ---------------------------------------------------------------- folding & persisting
    def roll(self, now: float | None = None) -> None:
        """Fold what changed since the last roll into the minute and hour buckets of `now`."""
        now = self.clock() if now is None else now
        minute, hour = _floor(now, MINUTE), _floor(now, HOUR)
        for handler, cur in self.live.items():
            prev = self._folded.get(handler)
            delta = cur.minus(prev) if prev is not None else cur.copy()
            if delta.empty:
                continue
            self._folded[handler] = cur.copy()
            for key in ((MINUTE, minute, handler), (HOUR, hour, handler)):
                into = self._pending.get(key)
                if into is None:
                    self._pending[key] = delta.copy()
                else:
                    into.add(delta)

    async def persist(self) -> None:
        """Add the waiting buckets to the store (kept for the next try if the write fails)."""
        if self.store is None:
            return
        async with self._lock:
            self.roll()
            if not self._pending:
                return
            rows = [(step, ts, h, b.to_json()) for (step, ts, h), b in self._pending.items()]
            await self.store.add_metrics(self.node, rows)
            self._pending.clear()
            self._last_persist = self.clock()

    async def sample(self) -> None:
        """Sample the gauges: jobs per handler and status, oldest due age, plugins up."""
        now = self.clock()
        if self.store is not None:
            raw = await self.store.queue_gauges(now)
            self.gauges = {
                h: Gauges(
                    queued=v.get("queued", 0),
                    due=v.get("due", 0),
                    running=v.get("running", 0),
                    paused=v.get("paused", 0),
                    oldest_due_age=max(0.0, now - v["oldest_due"]) if v.get("oldest_due") else 0.0,
                )
                for h, v in raw.items()
            }
        if self.plugins is not None:
            self.plugin_gauges = list(self.plugins())
        self.sampled_at = now

    def _gauges_fresh(self) -> bool:
        age = self.clock() - max(self.sampled_at, self._failed_at)
        return age < max(self.sample_secs, self.sample_cost * SAMPLE_SHARE)

    async def refresh_gauges(self) -> None:
        """Sample the gauges unless the last sample is younger than `sample_secs` (or than
        SAMPLE_SHARE times its own duration, if longer). The sample is one task of the recorder's
        that readers arriving together share; a reader waits for it at most `gauge_wait` seconds
        and then answers with the last gauges (`sampled_at` says how old they are), so a slow
        query (a huge backlog, a store behind a lock) never holds up a scrape or GetStats, and a
        reader cancelled by its own deadline does not cancel the sample. A failed sample leaves
        the last gauges in place and is tried again after `sample_secs`."""
        if self._stopped or self.store is None or self._gauges_fresh():
            return  # (no store yet: the server binds /metrics before it opens the store)
        task = self._sample_task
        if task is None or task.done():
            task = self._sample_task = asyncio.create_task(self._sample_once(), name="pulse-metrics-gauges")
        # neither raises the sample's end (stop() may cancel it) nor cancels it when this reader
        # is cancelled or stops waiting: the last gauges answer, the next reader gets the sample
        await asyncio.wait({task}, timeout=self.gauge_wait)

    async def _sample_once(self) -> None:
        t0 = self.clock()
        try:
            await self.sample()
        except asyncio.CancelledError:  # the recorder stopped
            self._failed_at = t0
            raise
        except PulseError as exc:
            self._failed_at = t0
            self.persist_errors += 1
            log.warning("sampling the metric gauges failed (%s)", exc.message)
        except Exception:
            self._failed_at = t0
            self.persist_errors += 1
            log.exception("sampling the metric gauges failed")
        finally:  # a failed sample's time spaces the next one out too
            self.sample_cost = max(0.0, self.clock() - t0)

    async def start(self) -> None:
        self._stopped = False
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="pulse-metrics")

    async def stop(self) -> None:
        self._stopped = True  # no gauge sample starts after this (the store is about to close)
        sample, self._sample_task = self._sample_task, None
        if sample is not None and not sample.done():
            sample.cancel()
            await asyncio.gather(sample, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.persist()
        except PulseError as exc:
            log.warning("could not write the last metric buckets (%s)", exc.message)
        except Exception:
            log.exception("could not write the last metric buckets")

    async def _loop(self) -> None:
        self._last_persist = self.clock()
        while True:
            try:
                now = self.clock()
                self.roll(now)
                if now - self._last_persist >= self.persist_secs:
                    await self.persist()
                if self.store is not None and now - self._last_prune >= HOUR:
                    await self.store.prune_metrics(now - MINUTE_KEEP - MINUTE, now - HOUR_KEEP - HOUR)
                    self._last_prune = now
            except asyncio.CancelledError:
                raise
            except PulseError as exc:  # the store said why (disk full, damaged): no traceback
                self.persist_errors += 1
                log.warning("writing metrics failed (%s); retrying next period", exc.message)
            except Exception:
                self.persist_errors += 1
                log.exception("writing metrics failed; retrying next period")
            await asyncio.sleep(self.sample_secs)  # the sampling period

    # ---------------------------------------------------------------- reading
    async def stats(self, handler: str = "", window: int = 0, step: int = 0) -> Stats:
        """Series over the last `window` seconds in `step`-second points, summed over every node."""
        if len(handler) > 200:
            raise ValidationError("handler filter is too long (200 characters at most)")
        window = window or HOUR
        step, base = choose_step(window, step)
        await self.refresh_gauges()
        now = self.clock()
        end = _floor(now, step) + step
        start = end - window
        start = _floor(start, step)
        async with self._lock:
            self.roll(now)
            rows: list[tuple[int, str, dict[str, Any]]] = []
            if self.store is not None:
                rows = await self.store.load_metrics(base, start, handler or None)
            rows.extend(
                (ts, h, b.to_json())
                for (st, ts, h), b in self._pending.items()
                if st == base and ts >= start and (not handler or h == handler)
            )
        gauges = {h: g for h, g in self.gauges.items() if not handler or h == handler}
        npoints = (end - start) // step
        # summing thousands of rows is CPU work: off the event loop
        total, handlers = await asyncio.to_thread(_aggregate, rows, start, step, npoints, bool(handler))
        for h in gauges:
            if h not in handlers:
                handlers[h] = Series(h, [], Bucket())
        return Stats(
            now=now,
            window=window,
            step=step,
            total=total,
            handlers=[handlers[h] for h in sorted(handlers)],
            gauges=gauges,
            plugins=list(self.plugin_gauges),
            sampled_at=self.sampled_at,
        )


def _aggregate(
    rows: list[tuple[int, str, dict[str, Any]]], start: int, step: int, npoints: int, points: bool
) -> tuple[Series, dict[str, Series]]:
    """Sum rows (of every node) into `npoints` steps from `start`: the total series with points and
    one series per handler — with points only for one handler or at most MAX_HANDLER_SERIES."""
    points = points or len({h for _, h, _ in rows}) <= MAX_HANDLER_SERIES
    total_pts = [Bucket() for _ in range(npoints)]
    per: dict[str, Series] = {}
    for ts, h, data in rows:
        i = (ts - start) // step
        if not 0 <= i < npoints:
            continue
        total_pts[i].add_json(data)
        s = per.get(h)
        if s is None:
            pts = [Point(float(start + k * step), Bucket()) for k in range(npoints)] if points else []
            s = per[h] = Series(h, pts, Bucket())
        s.total.add_json(data)
        if points:
            s.points[i].bucket.add_json(data)
    grand = Bucket()
    for b in total_pts:
        grand.add(b)
    total = Series("", [Point(float(start + k * step), b) for k, b in enumerate(total_pts)], grand)
    return total, per


# ---------------------------------------------------------------- Prometheus


class PulseCollector:
    """A prometheus-client collector over a Recorder's cumulative buckets and last gauge sample
    (or a Snapshot of them)."""

    def __init__(self, recorder: Recorder | Snapshot) -> None:
        self.recorder = recorder

    def describe(self) -> list[Any]:
        return []  # families depend on the handlers seen; collected at scrape time

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        rec = self.recorder
        live = sorted(rec.live.items())
        enq = CounterMetricFamily("pulse_jobs_enqueued", "Jobs enqueued on this node", labels=["handler"])
        fin = CounterMetricFamily(
            "pulse_jobs_finished", "Attempts ended on this node, by outcome", labels=["handler", "outcome"]
        )
        run = HistogramMetricFamily("pulse_job_run_seconds", "Attempt run time", labels=["handler"])
        wait = HistogramMetricFamily(
            "pulse_job_wait_seconds", "Time from due (enqueue, delay or backoff) to start", labels=["handler"]
        )
        bounds = [_le(b) for b in BOUNDS] + ["+Inf"]
        for h, b in live:
            enq.add_metric([h], b.enqueued)
            for outcome, n in sorted(b.finished.items()):
                fin.add_metric([h, outcome], n)
            for fam, counts, total in ((run, b.run, b.run_sum), (wait, b.wait, b.wait_sum)):
                cum, acc = [], 0
                for le, n in zip(bounds, counts, strict=True):
                    acc += n
                    cum.append((le, acc))
                fam.add_metric([h], cum, total)
        yield enq
        yield fin
        yield run
        yield wait
        jobs = GaugeMetricFamily(
            "pulse_jobs",
            "Jobs per handler and status (due: queued and due now)",
            labels=["handler", "status"],
        )
        oldest = GaugeMetricFamily(
            "pulse_oldest_due_job_age_seconds", "Age of the oldest due queued job", labels=["handler"]
        )
        for h, g in sorted(rec.gauges.items()):
            for status in GAUGE_STATUSES:
                jobs.add_metric([h, status], getattr(g, status))
            oldest.add_metric([h], g.oldest_due_age)
        yield jobs
        yield oldest
        up = GaugeMetricFamily("pulse_plugin_up", "1 when the plugin is ready and healthy", labels=["plugin"])
        restarts = CounterMetricFamily("pulse_plugin_restarts", "Plugin restarts", labels=["plugin"])
        for p in sorted(rec.plugin_gauges, key=lambda p: p.name):
            up.add_metric([p.name], 1.0 if p.up else 0.0)
            restarts.add_metric([p.name], p.restarts)
        yield up
        yield restarts
        sched = CounterMetricFamily(
            "pulse_schedule_runs",
            "Schedule runs fired on this node, by outcome (enqueued, skipped, failed, inactive)",
            labels=["handler", "outcome"],
        )
        for (h, outcome), n in sorted(rec.schedule_runs.items()):
            sched.add_metric([h, outcome], n)
        yield sched


def _le(bound: float) -> str:
    return repr(float(bound))


def exposition(recorder: Recorder | Snapshot) -> bytes:
    """The Prometheus text format of a recorder's metrics (written by prometheus-client)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PulseCollector(recorder))
    return generate_latest(registry)


@dataclass(slots=True)
class HTTPSettings:
    listen: str
    tls_cert: str = ""
    tls_key: str = ""
    tokens: Callable[[str], bool] | None = None  # bearer check; None = open
    timeout: float = 10.0
    max_header_bytes: int = 16 * 1024
    # connections served at once; more are answered 503 and closed (each one waits up to `timeout`
    # for its request, so without a cap anyone could hold every descriptor the server has; over
    # TLS a connection counts from the end of its handshake, itself bounded by `timeout`)
    max_connections: int = 64


TURN_AWAY_READ_SECS = 0.5  # how long a turned-away connection's request is read before closing
TURN_AWAY_MAX = 256  # connections being turned away at once; past it they are closed unanswered


class MetricsHTTPServer:
    """GET /metrics over HTTP(S) on asyncio. The exposition itself comes from prometheus-client;
    this only carries it: one request per connection, a bounded header, an optional bearer token."""

    def __init__(self, recorder: Recorder, settings: HTTPSettings) -> None:
        self.recorder = recorder
        self.settings = settings
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self.scrapes = 0
        self.open = 0  # connections being served
        self.turned_away = 0  # connections answered 503 because `max_connections` were open
        self._turning_away = 0  # of those, the ones still being answered
        self._tasks: set[asyncio.Task[None]] = set()  # one per connection, cancelled by stop()
        self._stopping = False
        self._tls: ssl.SSLContext | None = None

    async def start(self) -> None:
        from pulse_tui.pulse.server import ServerError, split_host_port

        s = self.settings
        host, port = split_host_port(s.listen, "metrics address")
        self._tls = None
        if s.tls_cert and s.tls_key:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(s.tls_cert, s.tls_key)
        try:
            # over TLS a connection is counted once its handshake is done (asyncio runs it before
            # `_serve`; each is bounded by `timeout`). Starting TLS after counting would lose a
            # ClientHello the stream had already read.
            self._server = await asyncio.start_server(
                self._serve,
                host or "0.0.0.0",
                port,
                ssl=self._tls,
                ssl_handshake_timeout=s.timeout if self._tls is not None else None,
            )
        except OSError as exc:
            raise ServerError(
                f"cannot serve metrics on {s.listen}: {exc.strerror or exc}; pick another with --metrics HOST:PORT"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and end the connections still open (on Python 3.11 closing the server
        leaves them: a connection idle at stop outlived it, and its task was cancelled only as
        the loop closed, with a traceback on stderr)."""
        if self._server is None:
            return
        self._stopping = True  # a connection accepted but not yet served ends at its first step
        self._server.close()
        while self._tasks:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:  # from Python 3.12 this waits for connections, one in a TLS handshake included
            async with asyncio.timeout(1.0):
                await self._server.wait_closed()
        except TimeoutError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.open >= self.settings.max_connections:
                await self._turn_away(reader, writer)
                return
            self.open += 1
            try:
                await self._serve_one(reader, writer)
            finally:
                self.open -= 1
        except asyncio.CancelledError:  # stop(): the connection goes with the server
            writer.close()
        finally:
            self._tasks.discard(task)

    async def _turn_away(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer 503 and close. The request a scraper already sent is read first, briefly: closing
        with it unread resets the connection, and the client never sees the 503. At most
        TURN_AWAY_MAX are being turned away at once; past that they are closed at once."""
        self.turned_away += 1
        if self.turned_away == 1 or self.turned_away % 1000 == 0:
            log.warning(
                "metrics: %d connections are open; turned away %d so far (503)", self.open, self.turned_away
            )
        if self._turning_away >= TURN_AWAY_MAX:
            writer.close()
            return
        self._turning_away += 1
        try:
            body = b"too many connections\n"
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            if writer.can_write_eof():  # not over TLS
                writer.write_eof()
            async with asyncio.timeout(TURN_AWAY_READ_SECS):
                while len(await reader.read(self.settings.max_header_bytes)):
                    pass
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._turning_away -= 1
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.settings.timeout):
                status, body, ctype = await self._answer(reader)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n"
            )
            if status.startswith("401"):
                head += 'WWW-Authenticate: Bearer realm="pulse"\r\n'
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes, str]:
        text = "text/plain; charset=utf-8"
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return "431 Request Header Fields Too Large", b"header too large\n", text
        if len(raw) > self.settings.max_header_bytes:
            return "431 Request Header Fields Too Large", b"header too large\n", text
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return "400 Bad Request", b"bad request line\n", text
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"only GET /metrics\n", text
        if target not in ("/metrics", "/"):
            return "404 Not Found", b"metrics are at /metrics\n", text
        if self.settings.tokens is not None:
            auth = ""
            for line in lines[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "authorization":
                    auth = v.strip()
            if not self._authorized(auth):
                return "401 Unauthorized", b"missing or wrong bearer token\n", text
        from prometheus_client import CONTENT_TYPE_LATEST

        self.scrapes += 1
        await self.recorder.refresh_gauges()
        body = await asyncio.to_thread(exposition, self.recorder.snapshot())
        return "200 OK", (b"" if method == "HEAD" else body), CONTENT_TYPE_LATEST

    def _authorized(self, header: str) -> bool:
        check = self.settings.tokens
        assert check is not None
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return check(value.strip())
        if scheme.lower() == "basic":  # Prometheus' basic_auth: any user name, the token as password
            try:
                _, _, pw = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            return check(pw)
        return False
