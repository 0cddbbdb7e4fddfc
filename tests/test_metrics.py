"""Metrics: counters match what ran (GetStats and the scraped Prometheus text), buckets survive a
restart, two PostgreSQL nodes sum, bad input is refused, the endpoint's auth and address rules."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_security import certs  # noqa: F401  (fixture: a CA and a server certificate)

from pulse_tui.config import Config
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.pulse import metrics
from pulse_tui.pulse.server import PulseServer, ServerError, ServerSettings

NOOP, FAIL = "pulse.noop", "pulse.fail"


def settings(data_dir: Path, **kw) -> ServerSettings:
    return ServerSettings(listen="127.0.0.1:0", data_dir=data_dir, grace=2.0, retention_secs=None, **kw)


class Client:
    def __init__(self, srv: PulseServer, token_file: str = "token") -> None:
        self.srv = srv
        self.channel = grpc.aio.insecure_channel(srv.address)
        self.stub = op_grpc.OperatorServiceStub(self.channel)
        token = (srv.settings.data_dir / token_file).read_text().strip()
        self.token = token
        self.md = (("authorization", f"Bearer {token}"),)

    async def enqueue(self, handler: str, n: int, **kw) -> None:
        for _ in range(n):
            await self.stub.Enqueue(op.EnqueueRequest(handler=handler, **kw), metadata=self.md)

    async def drained(self, timeout: float = 30.0) -> None:
        """Wait until no job is queued or running (a retried check with a deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            c = await self.stub.CountJobs(op.CountJobsRequest(), metadata=self.md)
            if c.by_status["queued"] == 0 and c.by_status["running"] == 0:
                return
            assert time.monotonic() < deadline, f"jobs still pending: {dict(c.by_status)}"
            await asyncio.sleep(0.02)  # poll interval of a retried check

    async def stats(self, **kw) -> op.GetStatsResponse:
        return await self.stub.GetStats(op.GetStatsRequest(**kw), metadata=self.md)

    async def close(self) -> None:
        await self.channel.close()


async def scrape(port: int, token: str | None = None, path: str = "/metrics") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def run_known_jobs(c: Client) -> None:
    """30 completed noop jobs and 20 failing jobs (one attempt each): 50 jobs of two handlers."""
    await c.enqueue(NOOP, 30)
    await c.enqueue(FAIL, 20, max_attempts=1, payload=json.dumps({"error": "as asked"}).encode())
    await c.drained()


async def test_counters_match_what_ran(tmp_path: Path) -> None:
    srv = PulseServer(settings(tmp_path / "d", metrics_listen="127.0.0.1:0"), Config())
    await srv.start()
    c = Client(srv)
    try:
        await run_known_jobs(c)
        resp = await c.stats(window_secs=3600)
        assert resp.enabled and resp.window_secs == 3600 and resp.step_secs == 60
        tot = resp.total.summary
        assert (tot.enqueued, tot.started, tot.completed, tot.failed) == (50, 50, 30, 20)
        assert dict(tot.finished) == {"completed": 30, "failed": 20}
        assert tot.error_pct == pytest.approx(40.0)
        assert sum(tot.run_counts) == 50 and sum(tot.wait_counts) == 50
        assert 0 < tot.run_p50 <= tot.run_p95 <= metrics.BOUNDS[-1]
        # the points of the window add up to the summary
        assert sum(p.enqueued for p in resp.total.points) == 50
        assert sum(p.completed for p in resp.total.points) == 30
        by = {s.handler: s.summary for s in resp.handlers}
        assert (by[NOOP].enqueued, by[NOOP].completed, by[NOOP].failed) == (30, 30, 0)
        assert (by[FAIL].enqueued, by[FAIL].completed, by[FAIL].failed) == (20, 0, 20)
        assert by[FAIL].error_pct == 100.0
        one = await c.stats(handler=FAIL)
        assert [s.handler for s in one.handlers] == [FAIL] and one.total.summary.enqueued == 20

        # the same numbers in the Prometheus text, parsed by prometheus-client
        assert srv.metrics_http is not None
        status, text = await scrape(srv.metrics_http.port)
        assert status == 200
        got = samples(text)
        assert got[("pulse_jobs_enqueued_total", (("handler", NOOP),))] == 30
        assert got[("pulse_jobs_enqueued_total", (("handler", FAIL),))] == 20
        assert got[("pulse_jobs_finished_total", (("handler", NOOP), ("outcome", "completed")))] == 30
        assert got[("pulse_jobs_finished_total", (("handler", FAIL), ("outcome", "failed")))] == 20
        assert got[("pulse_job_run_seconds_count", (("handler", NOOP),))] == 30
        assert got[("pulse_job_wait_seconds_count", (("handler", FAIL),))] == 20
        assert got[("pulse_job_run_seconds_bucket", (("handler", NOOP), ("le", "+Inf")))] == 30
        # gauges come from the last sample: take one now (the loop samples every few seconds)
        await c.enqueue(NOOP, 0)
        await srv.metrics.sample()
        await c.stub.Enqueue(op.EnqueueRequest(handler=NOOP, delay_secs=3600), metadata=c.md)
        await srv.metrics.sample()
        got = samples((await scrape(srv.metrics_http.port))[1])
        assert got[("pulse_jobs", (("handler", NOOP), ("status", "queued")))] == 1
        assert got[("pulse_jobs", (("handler", NOOP), ("status", "due")))] == 0
        assert got[("pulse_oldest_due_job_age_seconds", (("handler", NOOP),))] == 0
        gauges = {g.handler: g for g in (await c.stats()).gauges}
        assert gauges[NOOP].queued == 1 and gauges[NOOP].due == 0
        # wrong paths and methods get clear HTTP errors
        assert (await scrape(srv.metrics_http.port, path="/nope"))[0] == 404
    finally:
        await c.close()
        await srv.stop(0)


async def test_schedule_runs_are_counted(tmp_path: Path) -> None:
    """`pulse_schedule_runs_total{handler, outcome}` counts the runs a real schedule fired."""
    srv = PulseServer(settings(tmp_path / "d", metrics_listen="127.0.0.1:0"), Config())
    await srv.start()
    c = Client(srv)
    try:
        s = await c.stub.CreateSchedule(
            op.CreateScheduleRequest(handler=NOOP, interval_secs=1, run_at_once=True), metadata=c.md
        )
        deadline = time.monotonic() + 20
        while (
            await c.stub.GetSchedule(op.GetScheduleRequest(id=s.id), metadata=c.md)
        ).schedule.run_count < 2:
            assert time.monotonic() < deadline, "the schedule did not run twice"
            await asyncio.sleep(0.05)  # poll interval of a retried check
        await c.stub.PauseSchedule(op.ScheduleIdRequest(id=s.id), metadata=c.md)
        await c.stub.RunSchedule(op.ScheduleIdRequest(id=s.id), metadata=c.md)  # a run-now counts too
        got = await c.stub.GetSchedule(op.GetScheduleRequest(id=s.id), metadata=c.md)
        runs = got.schedule.run_count
        assert runs >= 3 and all(e.job_id for e in got.executions)
        assert srv.metrics_http is not None
        status, text = await scrape(srv.metrics_http.port)
        assert status == 200
        counted = {
            labels: v for (name, labels), v in samples(text).items() if name == "pulse_schedule_runs_total"
        }
        assert counted == {(("handler", NOOP), ("outcome", "enqueued")): runs}
    finally:
        await c.close()
        await srv.stop(0)


async def test_persisted_buckets_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "d"
    srv = PulseServer(settings(data), Config())
    await srv.start()
    c = Client(srv)
    try:
        await run_known_jobs(c)
    finally:
        await c.close()
        await srv.stop(0)  # writes the buckets it still holds
    srv = PulseServer(settings(data), Config())
    await srv.start()
    c = Client(srv)
    try:
        for window, step in ((3600, 0), (86400, 0), (86400, 3600), (30 * 86400, 0)):  # minute and hour rows
            s = (await c.stats(window_secs=window, step_secs=step)).total.summary
            assert (window, s.enqueued, s.completed, s.failed) == (window, 50, 30, 20)
        assert srv.metrics is not None and not srv.metrics.live  # nothing ran in this process
        await c.enqueue(NOOP, 5)
        await c.drained()
        s = (await c.stats()).total.summary
        assert (s.enqueued, s.completed) == (55, 35)
    finally:
        await c.close()
        await srv.stop(0)


async def test_get_stats_refuses_bad_input(tmp_path: Path) -> None:
    srv = PulseServer(settings(tmp_path / "d"), Config())
    await srv.start()
    c = Client(srv, "token.readonly")  # a read-only token may read stats
    try:
        for kw, words in (
            ({"window_secs": 31 * 86400}, "window must be between"),
            ({"window_secs": 30}, "window must be between"),
            ({"window_secs": 3600, "step_secs": 90}, "multiple of 60"),
            ({"window_secs": 7 * 86400, "step_secs": 60}, "multiple of 3600"),
            ({"handler": "x" * 300}, "too long"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await c.stats(**kw)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kw
            assert words in (err.value.details() or ""), (kw, err.value.details())
        ok = await c.stats(window_secs=86400)
        assert ok.step_secs == 720 and len(ok.total.points) == 0  # nothing ran: no points sent
    finally:
        await c.close()
        await srv.stop(0)


async def test_metrics_endpoint_auth(tmp_path: Path) -> None:
    srv = PulseServer(settings(tmp_path / "d", metrics_listen="127.0.0.1:0", metrics_auth=True), Config())
    await srv.start()
    try:
        assert srv.metrics_http is not None
        port = srv.metrics_http.port
        assert (await scrape(port))[0] == 401
        assert (await scrape(port, "0" * 64))[0] == 401
        ro = (srv.settings.data_dir / "token.readonly").read_text().strip()
        status, text = await scrape(port, ro)
        assert status == 200 and "pulse_jobs_enqueued_total" in text or "# HELP pulse_jobs" in text
    finally:
        await srv.stop(0)


async def test_metrics_on_a_non_loopback_address_needs_tls_or_insecure(tmp_path: Path) -> None:
    srv = PulseServer(settings(tmp_path / "d", metrics_listen="0.0.0.0:0"), Config())
    with pytest.raises(ServerError, match="non-loopback address 0.0.0.0:0 without TLS"):
        await srv.start()
    await srv.stop(0)
    assert not (tmp_path / "d" / "pulse.db").exists()  # refused before anything was created


def test_quantile_and_steps() -> None:
    counts = [0] * metrics.NB
    counts[metrics.BOUNDS.index(1.0)] = 10  # ten runs in (0.5, 1.0]
    assert metrics.quantile(counts, 0.5) == pytest.approx(0.75)
    assert metrics.quantile(counts, 1.0) == pytest.approx(1.0)
    assert metrics.quantile([0] * metrics.NB, 0.5) == 0.0
    # with the sum of the samples: no quantile above the largest sample can be (a single 5-minute
    # run in the (300 s, 1800 s] bucket showed as p50 17m30s / p95 28m45s on :stats)
    one = [0] * metrics.NB
    one[metrics.BOUNDS.index(1800.0)] = 1
    assert metrics.quantile(one, 0.5, 301.0) == pytest.approx(301.0)
    assert metrics.quantile(one, 0.95, 301.0) == pytest.approx(301.0)
    mixed = [0] * metrics.NB
    mixed[metrics.BOUNDS.index(1.0)] = 9  # nine runs in (0.5, 1.0], one 400 s run
    mixed[metrics.BOUNDS.index(1800.0)] = 1
    total = 9 * 0.6 + 400.0
    assert metrics.quantile(mixed, 0.5, total) == pytest.approx(metrics.quantile(mixed, 0.5))
    assert 300.0 <= metrics.quantile(mixed, 0.99, total) <= 400.0 + 9 * 0.1  # not 1800 × 0.9
    assert metrics.quantile(counts, 0.5, 7.5) == pytest.approx(0.75)  # the bound does not bite
    assert metrics.choose_step(3600, 0) == (60, 60)
    assert metrics.choose_step(86400, 0) == (720, 60)
    assert metrics.choose_step(30 * 86400, 0) == (21600, 3600)
    assert metrics.choose_step(86400, 3600) == (3600, 3600)  # whole hours come from the hour rows


@pytest.mark.postgres
async def test_two_postgres_nodes_sum(pg_url: str, tmp_path: Path) -> None:
    nodes = []
    for name in ("a", "b"):
        srv = PulseServer(settings(tmp_path / name, db=pg_url, node=name), Config())
        await srv.start()
        nodes.append((srv, Client(srv)))
    (a, ca), (b, cb) = nodes
    try:
        await ca.enqueue(NOOP, 7)
        await cb.enqueue(NOOP, 5)
        await cb.enqueue(FAIL, 3, max_attempts=1)
        await ca.drained()
        assert a.metrics is not None and b.metrics is not None
        assert a.metrics.live[NOOP].enqueued == 7 and b.metrics.live[NOOP].enqueued == 5
        await b.metrics.persist()  # b's rows in the store; a adds its own unwritten buckets
        s = (await ca.stats()).total.summary
        assert (s.enqueued, s.completed, s.failed) == (15, 12, 3)
        s = (await cb.stats()).total.summary  # b does not see a's buckets before a writes them
        assert s.enqueued == 8
        await a.metrics.persist()
        for c in (ca, cb):
            s = (await c.stats()).total.summary
            assert (s.enqueued, s.completed, s.failed) == (15, 12, 3)
        rows = await a._store.load_metrics(60, 0, None)
        assert {(h, d["e"]) for _, h, d in rows} >= {(NOOP, 7), (NOOP, 5)}  # one row per node
        s = (await ca.stats(window_secs=30 * 86400)).total.summary
        assert (s.enqueued, s.completed, s.failed) == (15, 12, 3)
    finally:
        for srv, c in nodes:
            await c.close()
            await srv.stop(0)


def test_config_metrics_keys() -> None:
    from pulse_tui.config import ConfigError, parse_config

    cfg = parse_config('[server]\nmetrics_listen = "127.0.0.1:9464"\nmetrics_auth = true\n')
    st = ServerSettings.from_config(cfg)
    assert (st.metrics_listen, st.metrics_auth) == ("127.0.0.1:9464", True)
    assert parse_config("[server]\n").server.metrics_listen == ""  # off unless asked for
    with pytest.raises(ConfigError, match=r"server.metrics_listen: expected \"host:port\", got '9464'"):
        parse_config('[server]\nmetrics_listen = "9464"\n')
    with pytest.raises(ConfigError, match=r"server.metrics_auth: expected true or false"):
        parse_config('[server]\nmetrics_auth = "yes"\n')


def test_serve_metrics_flag(server_factory) -> None:
    """`pulse-tui serve --metrics 127.0.0.1:0` prints where the endpoint is, and it answers."""
    from pulse_tui.cli import METRICS_PREFIX

    handle = server_factory(extra_args=["--metrics", "127.0.0.1:0"])
    line = next(x for x in handle.output().splitlines() if x.startswith(METRICS_PREFIX))
    url = line.removeprefix(METRICS_PREFIX)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    status, text = asyncio.run(scrape(port))
    assert status == 200
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"pulse_jobs_enqueued", "pulse_job_run_seconds", "pulse_plugin_up"} <= names


def test_grafana_dashboard_uses_exported_names() -> None:
    """Every metric the example dashboard queries is one the endpoint serves."""
    import re

    rec = metrics.Recorder(None)
    rec.enqueued("h")
    rec.started("h", 0.1)
    rec.finished("h", "completed", 0.2)
    rec.gauges["h"] = metrics.Gauges(queued=1)
    rec.plugin_gauges = [metrics.PluginGauge("demo", True, 2)]
    rec.schedule_run("h", "enqueued")
    served = {
        s.name for f in text_string_to_metric_families(metrics.exposition(rec).decode()) for s in f.samples
    }
    doc = json.loads((Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\bpulse_[a-z_]+", e)}
    assert used and used <= served, used - served
    assert "pulse_schedule_runs_total" in used  # the schedule runs panel (issue 16)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))  # Grafana needs distinct panel ids


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_store_adds_sums_and_prunes_buckets(tmp_path: Path, backend: str, request) -> None:
    """add_metrics merges into a node's row; load_metrics returns each node's row; prune drops
    minute rows past 24 h and hour rows past 30 days."""
    from pulse_tui.pulse.store import open_store

    url = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:{tmp_path / 'p.db'}"
    store = open_store(url)
    await store.open()
    try:
        b = metrics.Bucket()
        b.enqueued, b.finished = 2, {"completed": 2}
        now = 10_000_000
        await store.add_metrics("a", [(60, now, "h", b.to_json()), (3600, now, "h", b.to_json())])
        await store.add_metrics("a", [(60, now, "h", b.to_json())])
        await store.add_metrics("b", [(60, now, "h", b.to_json()), (60, now - 90_000, "h", b.to_json())])
        rows = sorted((ts, d["e"]) for ts, _, d in await store.load_metrics(60, 0, "h"))
        assert rows == [(now - 90_000, 2), (now, 2), (now, 4)]
        assert await store.load_metrics(60, 0, "other") == []
        dropped = await store.prune_metrics(now - 86_400, now - 30 * 86_400)
        assert dropped == 1
        assert sorted(d["e"] for _, _, d in await store.load_metrics(60, 0, None)) == [2, 4]
        assert [d["e"] for _, _, d in await store.load_metrics(3600, 0, None)] == [2]
    finally:
        await store.close()


async def test_buckets_follow_the_clock() -> None:
    """Counts land in the minute (and hour) of the roll that saw them; a window's points line up
    with the step and add up to its summary."""
    now = [1_000_000_020.0 + 50]  # 50 s into a minute (and 47 min 50 s into an hour)
    rec = metrics.Recorder(None, clock=lambda: now[0])
    rec.enqueued("h")
    rec.roll()
    now[0] += 20  # the next minute
    rec.enqueued("h")
    rec.enqueued("h")
    rec.finished("h", "timeout", 2.0)
    st = await rec.stats(window=600, step=60)
    assert st.step == 60 and len(st.total.points) == 10
    assert [p.bucket.enqueued for p in st.total.points][-2:] == [1, 2]
    assert all(p.ts % 60 == 0 for p in st.total.points)
    assert st.total.total.enqueued == 3 and st.total.total.failed_total == 1  # timeout counts as failed
    hourly = await rec.stats(window=7200, step=3600)
    assert [p.bucket.enqueued for p in hourly.total.points] == [0, 3]


async def test_many_handlers_get_summaries_without_points() -> None:
    rec = metrics.Recorder(None)
    for i in range(metrics.MAX_HANDLER_SERIES + 1):
        rec.enqueued(f"h{i:03d}")
    st = await rec.stats()
    assert len(st.handlers) == metrics.MAX_HANDLER_SERIES + 1
    assert all(not s.points and s.total.enqueued == 1 for s in st.handlers)
    assert sum(p.bucket.enqueued for p in st.total.points) == metrics.MAX_HANDLER_SERIES + 1
    one = await rec.stats(handler="h007")
    assert [s.handler for s in one.handlers] == ["h007"] and len(one.handlers[0].points) == 60


async def test_metrics_over_tls_on_a_non_loopback_address(tmp_path: Path, certs) -> None:  # noqa: F811
    """With the server's TLS certificate the endpoint may listen beyond loopback; it speaks HTTPS
    only (a plaintext request gets no answer)."""
    import ssl

    st = settings(
        tmp_path / "d",
        metrics_listen="0.0.0.0:0",
        tls_cert=str(certs["server.pem"]),
        tls_key=str(certs["server.key"]),
    )
    srv = PulseServer(st, Config())
    await srv.start()
    try:
        assert srv.metrics_http is not None
        ctx = ssl.create_default_context(cafile=str(certs["ca.pem"]))
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.metrics_http.port, ssl=ctx)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        raw = await reader.read()
        writer.close()
        assert raw.startswith(b"HTTP/1.1 200 OK") and b"pulse_plugin_up" in raw
        status = await asyncio.wait_for(_plaintext_status(srv.metrics_http.port), 10)
        assert status is None
    finally:
        await srv.stop(0)


async def _plaintext_status(port: int) -> int | None:
    try:
        return (await scrape(port))[0]
    except (ConnectionError, IndexError, ValueError):
        return None


async def test_gauges_are_sampled_when_read(tmp_path: Path) -> None:
    """The gauge query runs when a scrape or GetStats reads stale gauges (older than sample_secs),
    not on the recorder's own period: a drain nobody watches pays nothing for it, and readers
    arriving together share one sample."""
    from pulse_tui.pulse.engine import Engine
    from pulse_tui.pulse.handlers import StaticRouter
    from pulse_tui.pulse.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "p.db"))
    await store.open()
    queries: list[float] = []
    read_gauges = store.queue_gauges

    async def counted(now: float) -> dict[str, dict[str, float]]:
        queries.append(now)
        return await read_gauges(now)

    store.queue_gauges = counted  # type: ignore[method-assign]
    rec = metrics.Recorder(store, sample_secs=3600, persist_secs=3600)
    engine = Engine(store, StaticRouter(), retention_secs=None, metrics=rec)  # not started: jobs stay queued
    http = metrics.MetricsHTTPServer(rec, metrics.HTTPSettings("127.0.0.1:0"))
    await http.start()
    try:
        for _ in range(3):
            await engine.enqueue(NOOP, b"{}")
        await rec.start()
        await asyncio.sleep(0)  # the loop's first pass (it used to sample the gauges first thing)
        assert queries == [] and rec.sampled_at == 0.0
        got = samples((await scrape(http.port))[1])
        assert got[("pulse_jobs", (("handler", NOOP), ("status", "queued")))] == 3
        assert got[("pulse_jobs", (("handler", NOOP), ("status", "due")))] == 3
        assert len(queries) == 1 and rec.sampled_at > 0
        await engine.enqueue(NOOP, b"{}")
        assert (await rec.stats()).gauges[NOOP].queued == 3  # younger than sample_secs: kept
        assert len(queries) == 1
        rec.sampled_at -= 3600  # now it is stale: three readers at once share one sample
        answers = await asyncio.gather(rec.stats(), rec.stats(), scrape(http.port))
        assert len(queries) == 2
        assert [a.gauges[NOOP].queued for a in answers[:2]] == [4, 4]
        assert samples(answers[2][1])[("pulse_jobs", (("handler", NOOP), ("status", "queued")))] == 4
    finally:
        await http.stop()
        await rec.stop()
        await store.close()


def test_histograms_bucket_every_value_like_bisect() -> None:
    """The hot path's first-bucket shortcut files every value where a search over BOUNDS would
    (a bound itself in its own bucket, negatives as 0) and sums the same seconds."""
    from bisect import bisect_left

    values = [-1.0, -0.0, 0.0, 1e-9, 0.004999, *metrics.BOUNDS, 0.0050001, 0.3, 1799.0, 1800.5, 1e6]
    rec = metrics.Recorder(None)
    want_counts = [0] * metrics.NB
    for v in values:
        rec.started("h", v)
        rec.finished("h", "completed", v)
        want_counts[bisect_left(metrics.BOUNDS, max(v, 0.0))] += 1
    b = rec.live["h"]
    assert b.wait == b.run == want_counts
    assert b.wait_sum == b.run_sum == pytest.approx(sum(max(v, 0.0) for v in values))
    assert b.started == len(values) and b.finished == {"completed": len(values)}


async def test_slow_gauge_samples_are_spaced_out(tmp_path: Path) -> None:
    """A gauge query that takes long (a big backlog) runs at most 1/SAMPLE_SHARE of the time: the
    next sample waits SAMPLE_SHARE times its duration when that is longer than sample_secs."""
    from pulse_tui.pulse.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "p.db"))
    await store.open()
    now = [1_000_000.0]
    queries: list[float] = []
    read_gauges = store.queue_gauges

    async def slow(at: float) -> dict[str, dict[str, float]]:
        queries.append(at)
        now[0] += 1.0  # the query takes a second of the recorder's clock
        return await read_gauges(at)

    store.queue_gauges = slow  # type: ignore[method-assign]
    rec = metrics.Recorder(store, sample_secs=5, clock=lambda: now[0])
    try:
        await rec.stats()
        assert len(queries) == 1 and rec.sample_cost == 1.0
        now[0] += 10  # past sample_secs, not past SAMPLE_SHARE × 1 s
        await rec.stats()
        assert len(queries) == 1
        now[0] = rec.sampled_at + metrics.SAMPLE_SHARE
        await rec.stats()
        assert len(queries) == 2
    finally:
        await store.close()


async def test_a_slow_gauge_sample_never_holds_up_a_scrape(tmp_path: Path) -> None:
    """A gauge query slower than a reader will wait (a store behind a lock, a huge backlog) runs
    on as the recorder's one sample: scrapes and GetStats answer with the last gauges meanwhile,
    a reader cancelled by its own deadline does not cancel it, and the next reader after it ends
    gets its figures (it used to be cancelled with each scrape's timeout: /metrics never answered)."""
    from pulse_tui.pulse.engine import Engine
    from pulse_tui.pulse.handlers import StaticRouter
    from pulse_tui.pulse.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "p.db"))
    await store.open()
    gate = asyncio.Event()
    queries: list[float] = []
    read_gauges = store.queue_gauges

    async def held(now: float) -> dict[str, dict[str, float]]:
        queries.append(now)
        await gate.wait()
        return await read_gauges(now)

    store.queue_gauges = held  # type: ignore[method-assign]
    rec = metrics.Recorder(store, sample_secs=3600, persist_secs=3600)
    rec.gauge_wait = 0.05
    engine = Engine(store, StaticRouter(), retention_secs=None, metrics=rec)  # not started: jobs stay queued
    http = metrics.MetricsHTTPServer(rec, metrics.HTTPSettings("127.0.0.1:0", timeout=2.0))
    await http.start()
    try:
        await engine.enqueue(NOOP, b"{}")
        status, body = await scrape(http.port)
        assert status == 200 and "pulse_jobs_enqueued_total" in body
        assert ("pulse_jobs", (("handler", NOOP), ("status", "queued"))) not in samples(body)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(rec.stats(), 0.001)  # a reader cancelled while it waits
        assert (await rec.stats()).sampled_at == 0.0  # the last gauges (none yet), answered at once
        assert len(queries) == 1  # every reader shares the one sample still running
        gate.set()
        assert rec._sample_task is not None
        await rec._sample_task
        assert len(queries) == 1 and rec.sampled_at > 0
        got = samples((await scrape(http.port))[1])
        assert got[("pulse_jobs", (("handler", NOOP), ("status", "queued")))] == 1
    finally:
        gate.set()
        await http.stop()
        await rec.stop()
        await store.close()


async def test_stopping_with_a_gauge_sample_running_answers_its_readers(tmp_path: Path) -> None:
    """stop() cancels a running gauge sample: a reader waiting for it answers with the last gauges
    (it got a stray CancelledError), and no sample starts after stop() against a store about to
    close. A recorder without a store yet (the server binds /metrics before it opens the store)
    samples nothing, so its first gauges come once the store is there."""
    from pulse_tui.pulse.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "p.db"))
    await store.open()
    gate = asyncio.Event()
    entered = asyncio.Event()
    queries: list[float] = []
    read_gauges = store.queue_gauges

    async def held(now: float) -> dict[str, dict[str, float]]:
        queries.append(now)
        entered.set()
        await gate.wait()
        return await read_gauges(now)

    store.queue_gauges = held  # type: ignore[method-assign]
    rec = metrics.Recorder(None, sample_secs=3600, persist_secs=3600)
    rec.gauge_wait = 30.0  # the reader is still waiting when stop() comes
    try:
        await rec.stats()
        assert queries == [] and rec.sampled_at == 0.0  # no store: nothing sampled, nothing stamped
        rec.store = store
        await rec.start()
        reader = asyncio.create_task(rec.stats())
        await entered.wait()
        await rec.stop()
        assert (await reader).sampled_at == 0.0  # answered, with the last gauges
        await rec.stats()
        assert len(queries) == 1  # nothing started after stop()
    finally:
        gate.set()
        await store.close()


async def test_idle_connections_cannot_take_every_descriptor() -> None:
    """Anyone who reaches the metrics port (it needs no token by default) could open connections
    and send nothing: each was held for the request timeout (10 s), with no limit on how many, so
    a few hundred took every descriptor the server had (the gRPC port then accepted no one, and
    the log filled with `accept() out of system resource`). Past `max_connections` a connection
    is now answered 503 and closed at once; once they go, scrapes are served again."""
    rec = metrics.Recorder(None)
    http = metrics.MetricsHTTPServer(rec, metrics.HTTPSettings("127.0.0.1:0", max_connections=2))
    await http.start()
    idle: list[asyncio.StreamWriter] = []
    try:
        for _ in range(2):
            idle.append((await asyncio.open_connection("127.0.0.1", http.port))[1])
        async with asyncio.timeout(5):
            while http.open < 2:  # the server has taken both
                await asyncio.sleep(0.005)
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        async with asyncio.timeout(5):  # answered at once, not after the 10 s request timeout
            answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 ") and answer.endswith(b"too many connections\n"), answer
        assert http.turned_away == 1 and http.open == 2
        for w in idle:
            w.close()
        async with asyncio.timeout(5):
            while http.open:
                await asyncio.sleep(0.005)
        status, body = await scrape(http.port)
        assert status == 200 and "pulse_jobs_enqueued_total" in body
    finally:
        for w in idle:
            w.close()
        await http.stop()


async def test_every_read_sees_every_observation_made_before_it() -> None:
    """A scrape, a snapshot or GetStats (`stats`) right after an observation counts it, for several
    handlers and outcomes interleaved, and observing again after a read adds to what was read (a
    recorder that kept observations aside to add them later must add them before any read)."""
    from bisect import bisect_left

    rec = metrics.Recorder(None)
    outcomes = ["completed", "failed", "timeout"]
    want: dict[str, dict] = {}
    for i in range(300):
        h = f"h{i % 3}"
        w, r = (i % 7) * 0.004, (i % 11) * 0.37
        rec.started(h, w)
        rec.finished(h, outcomes[i % len(outcomes) if i % 5 else 0], r)
        d = want.setdefault(h, {"s": 0, "f": {}, "w": [0] * metrics.NB, "r": [0] * metrics.NB})
        d["s"] += 1
        o = outcomes[i % len(outcomes) if i % 5 else 0]
        d["f"][o] = d["f"].get(o, 0) + 1
        d["w"][bisect_left(metrics.BOUNDS, w)] += 1
        d["r"][bisect_left(metrics.BOUNDS, r)] += 1
    rec.started("h0", 0.001)  # started, not ended yet
    want["h0"]["s"] += 1
    want["h0"]["w"][0] += 1

    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.exposition(rec).decode())
        for s in f.samples
    }
    for h, d in want.items():
        for o, n in d["f"].items():
            assert scraped[("pulse_jobs_finished_total", (("handler", h), ("outcome", o)))] == n
        assert scraped[("pulse_job_wait_seconds_count", (("handler", h),))] == d["s"]
        assert scraped[("pulse_job_run_seconds_count", (("handler", h),))] == sum(d["f"].values())
    rec.started("h1", 0.2)  # after the scrape: the snapshot sees it
    want["h1"]["s"] += 1
    want["h1"]["w"][bisect_left(metrics.BOUNDS, 0.2)] += 1
    snap = rec.snapshot()
    for h, d in want.items():
        b = snap.live[h]
        assert (b.started, b.finished, b.wait, b.run) == (d["s"], d["f"], d["w"], d["r"])
    rec.finished("h2", "cancelled", 0.01)  # and GetStats sees this one
    want["h2"]["f"]["cancelled"] = 1
    want["h2"]["r"][bisect_left(metrics.BOUNDS, 0.01)] += 1
    st = await rec.stats(window=600)
    got = {s.handler: s.total for s in st.handlers}
    for h, d in want.items():
        b = got[h]
        assert (b.started, b.finished, b.wait, b.run) == (d["s"], d["f"], d["w"], d["r"])
    assert st.total.total.started == sum(d["s"] for d in want.values())


async def test_a_scraper_turned_away_reads_its_503() -> None:
    """A connection past the cap was answered and closed with its request unread, which resets the
    connection: a scraper that had sent its GET (Prometheus, curl) got a reset instead of the 503.
    The request is read (briefly) before the close now."""
    rec = metrics.Recorder(None)
    http = metrics.MetricsHTTPServer(rec, metrics.HTTPSettings("127.0.0.1:0", max_connections=1))
    await http.start()
    idle = (await asyncio.open_connection("127.0.0.1", http.port))[1]
    try:
        async with asyncio.timeout(5):
            while http.open < 1:
                await asyncio.sleep(0.005)
        statuses = await asyncio.gather(*(_plaintext_status(http.port) for _ in range(10)))
        assert statuses == [503] * 10 and http.turned_away == 10
    finally:
        idle.close()
        await http.stop()


async def test_stop_ends_the_connections_still_open() -> None:
    """Closing the listening server left its connections open (Python 3.11): one idle at stop
    outlived the server, and its task was cancelled only as the loop closed, printing a traceback
    on the server's stderr. stop() now ends them."""
    rec = metrics.Recorder(None)
    http = metrics.MetricsHTTPServer(rec, metrics.HTTPSettings("127.0.0.1:0"))
    await http.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
    try:
        async with asyncio.timeout(5):
            while http.open < 1:
                await asyncio.sleep(0.005)
        await http.stop()
        assert http.open == 0
        async with asyncio.timeout(5):  # closed by the server, not left to the request timeout
            assert await reader.read() == b""
    finally:
        writer.close()
