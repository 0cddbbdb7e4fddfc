"""What a plugin sends back, and the names it announces: a real `serve` with the real demo plugin and
a hostile plugin written with the generated stubs (tests/plugins/hostile.py).

- a reply's progress/cost follow UpdateJob's rules (negatives refused, current > total clamped);
- a non-JSON result and an undecodable reply fail the attempt as `protocol_error` (not retried),
  with one log line and no traceback;
- errors and log messages are capped; a ListJobs page fits gRPC's default 4 MiB receive limit even
  with 20 MB errors;
- announced names with `/`, whitespace, control or bidi characters, or empty, are refused and the
  plugin's state says so; the rest register;
- with 10,000 announced handlers a mistyped enqueue stays cheap.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import grpc
import pytest
from conftest import start_server_process
from plugins.harness import HERE

from pulse_tui.cli import main
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.pulse import jobs
from pulse_tui.pulse.services import PAGE_BYTES, fit_page, operator_job

CONFIG = f"""
[[plugins]]
name = "demo"
command = ["{{python}}", "-m", "pulse_tui.plugins.demo"]

[[plugins]]
name = "hostile"
command = ["{{python}}", {json.dumps(str(HERE / "hostile.py"))}]
"""

DEFAULT_LIMIT = 4 * 1024 * 1024  # gRPC's default receive limit: what a client that sets nothing gets


async def wait_for(fn, predicate, timeout: float = 30.0):
    """Call `fn` until `predicate(result)` (bounded)."""
    async with asyncio.timeout(timeout):
        while not predicate(value := await fn()):
            await asyncio.sleep(0.05)
    return value


class Api:
    def __init__(self, srv) -> None:
        self.srv = srv
        # no options: the default 4 MiB receive limit, as any client that sets nothing has
        self.channel = grpc.aio.insecure_channel(srv.address)
        self.stub = op_grpc.OperatorServiceStub(self.channel)
        self.md = srv.metadata

    async def plugin(self, name: str) -> op.Plugin:
        return await self.stub.GetPlugin(op.GetPluginRequest(name=name), metadata=self.md)

    async def ready(self, name: str, timeout: float = 30.0) -> op.Plugin:
        return await wait_for(lambda: self.plugin(name), lambda p: p.state == "ready", timeout)

    async def enqueue(self, handler: str, payload: bytes = b"{}", **kw) -> str:
        resp = await self.stub.Enqueue(
            op.EnqueueRequest(handler=handler, payload=payload, **kw), metadata=self.md
        )
        return resp.job.id

    async def get(self, job_id: str) -> op.JobDetail:
        return await self.stub.GetJob(op.GetJobRequest(id=job_id), metadata=self.md)

    async def done(self, job_id: str, timeout: float = 30.0) -> op.JobDetail:
        return await wait_for(
            lambda: self.get(job_id), lambda d: d.job.status in ("completed", "failed", "cancelled"), timeout
        )


@pytest.fixture(scope="module")
def replies_server(tmp_path_factory):
    """One server for the module: each test sends its own jobs (a start with two plugins and the
    stop cost more than most of these tests)."""
    handle = start_server_process(tmp_path_factory.mktemp("replies"), CONFIG)
    yield handle
    handle.stop()


@pytest.fixture
async def api(replies_server):
    a = Api(replies_server)
    await a.ready("demo")
    await a.ready("hostile")
    yield a
    await a.channel.close()


# ---------------------------------------------------------------- names (item 8)


async def test_hostile_names_refused_rest_register_and_routes_stay_theirs(api):
    p = await api.plugin("hostile")
    refused = list(p.refused_handlers)
    assert len(refused) == 6, refused
    for name, why in [
        ("demo/demo.echo", "'/'"),
        ("pulse/pulse.noop", "'/'"),
        ("two words", "whitespace"),
        ("bell\x07", "control character"),
        ("evil\u202eoge.", "bidi override"),
        ("", "empty"),
    ]:
        assert any(r.startswith(f"{name!r}: ") and why in r for r in refused), (name, refused)
    assert "ok.echo" in p.handlers and not any("/" in h for h in p.handlers)

    # the qualified routes stay with their owners
    demo_job = await api.enqueue("demo/demo.echo", b'{"x": 1}')
    d = await api.done(demo_job)
    assert d.job.status == "completed" and d.job.plugin == "demo", d.job
    noop = await api.done(await api.enqueue("pulse/pulse.noop"))
    assert noop.job.status == "completed" and noop.job.plugin == "", noop.job
    ok = await api.done(await api.enqueue("hostile/ok.echo", b'{"y": 2}'))
    assert ok.job.status == "completed" and json.loads(ok.result) == {"y": 2}

    # nothing routes the refused names
    for bad in ("two words", "bell\x07"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await api.enqueue(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_cli_shows_refused_names(api, monkeypatch, capsys):
    monkeypatch.delenv("PULSE_TOKEN", raising=False)
    monkeypatch.setenv("PULSE_CONFIG", str(api.srv.config_path))
    conn = ["--connect", api.srv.address, "--token-file", str(api.srv.token_file)]
    assert await asyncio.to_thread(main, ["plugins", "list", "--json", *conn]) == 0
    doc = json.loads(capsys.readouterr().out)
    hostile = next(p for p in doc["plugins"] if p["name"] == "hostile")
    assert len(hostile["refused_handlers"]) == 6
    assert await asyncio.to_thread(main, ["plugins", "list", *conn]) == 0
    assert "hostile: refused handler names: 'demo/demo.echo': contains '/'" in capsys.readouterr().out


# ---------------------------------------------------------------- the reply (items 4-6)


async def test_final_reply_progress_and_cost_follow_updatejob_rules(api):
    bad = await api.done(await api.enqueue("bad.progress", max_attempts=1))
    assert bad.job.status == "completed"
    assert (bad.job.progress_current, bad.job.progress_total, bad.job.cost_actual) == (0, 0, 0.0), bad.job
    warns = [e.message for e in bad.logs if e.level == "warn" and e.stage == "pulse"]
    assert any("progress must not be negative (got -3/-3)" in m for m in warns), warns
    assert any("cost must be a non-negative finite number (got -5.0)" in m for m in warns), warns

    over = await api.done(await api.enqueue("over.progress", max_attempts=1))
    assert over.job.status == "completed"
    assert (over.job.progress_current, over.job.progress_total, over.job.cost_actual) == (100, 100, 2.5)
    assert any("progress 500/100; stored as 100/100" in e.message for e in over.logs)


async def test_result_that_is_not_json_fails_the_attempt_as_protocol_error(api):
    d = await api.done(await api.enqueue("binary.result", max_attempts=3))
    assert d.job.status == "failed", d.job
    assert [a.outcome for a in d.attempts] == [jobs.OUTCOME_PROTOCOL_ERROR]  # not retried
    assert d.job.error.startswith(
        "plugin hostile sent an ExecuteJobResponse that has a result that is not JSON"
    )
    assert d.result == b""  # nothing stored


async def test_undecodable_reply_is_one_clear_error_without_traceback(api):
    d = await api.done(await api.enqueue("bad.utf8", max_attempts=3))
    assert d.job.status == "failed", d.job
    assert [a.outcome for a in d.attempts] == [jobs.OUTCOME_PROTOCOL_ERROR]
    assert d.job.error.startswith("plugin hostile sent an ExecuteJobResponse that cannot be decoded: "), (
        d.job.error
    )
    out = api.srv.output()
    assert "Traceback" not in out, out[-3000:]
    assert "AttributeError" not in out
    lines = [line for line in out.splitlines() if "cannot be decoded" in line]
    assert len(lines) == 1, lines


# ---------------------------------------------------------------- sizes (item 7)


async def test_20mb_errors_are_capped_and_a_list_page_fits_the_default_client_limit(api):
    ids = [await api.enqueue("big.error", max_attempts=1) for _ in range(4)]
    for job_id in ids:
        d = await api.done(job_id, timeout=60.0)
        assert d.job.status == "failed"
        assert len(d.job.error.encode()) <= jobs.MAX_ERROR_BYTES
        assert d.job.error.startswith("EEEE") and "bytes cut)" in d.job.error
        assert d.attempts[0].error == d.job.error
        big = [e for e in d.logs if e.message.startswith("LLLL")]
        assert big and len(big[0].message.encode()) <= jobs.MAX_LOG_MESSAGE_BYTES
    page = await api.stub.ListJobs(op.ListJobsRequest(limit=1000), metadata=api.md)
    assert {j.id for j in page.jobs} >= set(ids)
    size = page.ByteSize()
    assert size < DEFAULT_LIMIT
    rss = next(
        int(line.split()[1]) // 1024
        for line in open(f"/proc/{api.srv.process.proc.pid}/status")
        if line.startswith("VmRSS:")
    )
    print(
        f"\n[list page] ListJobs with four 20 MB errors: {size:,} bytes for {len(page.jobs)} jobs; server RSS {rss} MB"
    )


def test_rows_stored_before_the_cap_still_fit_a_page():
    """A row written before errors were capped (20 MB error) is cut when converted; a page stops
    at PAGE_BYTES whatever the rows hold, and says there is more."""
    huge = jobs.Job(id="old", handler="h", error="E" * (20 * 1024 * 1024))
    msg = operator_job(huge)
    assert msg.ByteSize() < jobs.MAX_ERROR_BYTES + 1024 and "bytes cut" in msg.error
    rows = [operator_job(jobs.Job(id=f"j{i}", handler="h", error="x" * 8000)) for i in range(1000)]
    page, cut = fit_page(rows)
    assert cut and 0 < len(page) < 1000
    assert sum(r.ByteSize() + 6 for r in page) <= PAGE_BYTES
    assert fit_page(rows[:3]) == (rows[:3], False)


# ---------------------------------------------------------------- did you mean (item 12)


async def test_mistyped_enqueue_with_10k_handlers_is_cheap(server_factory):
    srv = server_factory(CONFIG.replace('hostile.py"]', 'hostile.py"]\nenv = { HOSTILE_MANY = "10000" }'))
    a = Api(srv)
    try:
        p = await a.ready("hostile", timeout=60.0)
        assert len(p.handlers) == 10_006
        times = []
        for i in range(20):
            t = time.perf_counter()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await a.enqueue(f"gen.handlr{i:05d}")  # one letter missing
            times.append(time.perf_counter() - t)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"did you mean 'gen.handler{19:05d}'" in err.value.details(), err.value.details()
        median = statistics.median(times)
        print(f"\n[did you mean] mistyped enqueue with 10,006 handlers: median {median * 1000:.1f} ms")
        assert median < 0.1, times  # was ~250-550 ms with a difflib scan of every route
    finally:
        await a.channel.close()
