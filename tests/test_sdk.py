"""The SDK, driven only by the raw generated stubs (as any QNTX-protocol host would)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import grpc
import pytest
from plugins.harness import plugin_process, queue_recorder, script, wait_until

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc
from pulse_tui.sdk import Plugin


@pytest.fixture
async def plug():
    async with queue_recorder() as (recorder, queue_endpoint):
        async with plugin_process(script("sdkplugin.py")) as (proc, port):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = domain_pb2_grpc.DomainPluginServiceStub(channel)
                init = await stub.Initialize(
                    domain_pb2.InitializeRequest(
                        queue_endpoint=queue_endpoint, auth_token="tok-1", config={"greeting": "hi"}
                    )
                )
                yield stub, init, recorder, proc


def request(handler: str, payload: object = None, job_id: str = "j1", timeout: int | None = None):
    req = domain_pb2.ExecuteJobRequest(
        job_id=job_id,
        handler_name=handler,
        payload=json.dumps(payload if payload is not None else {}).encode(),
    )
    if timeout is not None:
        req.timeout_secs = timeout
    return req


async def test_metadata_initialize_schema_health(plug):
    stub, init, _, _ = plug
    meta = await stub.Metadata(domain_pb2.Empty())
    assert (meta.name, meta.version, meta.description) == ("testplug", "2.5", "test plugin")
    assert "t.echo" in init.handler_names and "t.progress" in init.handler_names
    [sched] = init.schedules  # declared with plugin.schedule (QNTX ScheduleInfo)
    assert (sched.handler_name, sched.interval_seconds, sched.enabled_by_default) == ("t.echo", 3600, False)
    assert sched.description == "hourly echo"
    schema = await stub.ConfigSchema(domain_pb2.Empty())
    assert schema.fields["greeting"].default_value == "hello"
    health = await stub.Health(domain_pb2.Empty())
    assert health.healthy and health.message == "ok"


async def test_endpoints_and_config_constraints(plug):
    stub, init, recorder, _ = plug
    assert "t.endpoints" in init.handler_names
    resp = await stub.ExecuteJob(request("t.endpoints"))
    endpoints = json.loads(resp.result)
    assert set(endpoints) == {
        "queue",
        "schedule",
        "ats_store",
        "file_service",
        "llm",
        "embedding",
        "vector_search",
        "ground",
        "search",
        "fetch",
    }
    assert endpoints["queue"].startswith("127.0.0.1:") and endpoints["ats_store"] == ""
    schema = await stub.ConfigSchema(domain_pb2.Empty())
    assert schema.fields["extra_handlers"].element_type == "string"
    assert schema.fields["greeting"].pattern == ""


async def test_execute_echo_and_config(plug):
    stub, *_ = plug
    resp = await stub.ExecuteJob(request("t.echo", {"a": [1, 2]}, job_id="abc"))
    assert resp.success, resp.error
    assert json.loads(resp.result) == {"payload": {"a": [1, 2]}, "job_id": "abc", "handler": "t.echo"}
    assert resp.plugin_version == "2.5"
    resp = await stub.ExecuteJob(request("t.greet", {"name": "ann"}))
    assert json.loads(resp.result) == "hi, ann"
    resp = await stub.ExecuteJob(request("t.sync"))
    assert json.loads(resp.result) == {"thread": True}


async def test_progress_is_coalesced_and_logs_returned(plug):
    stub, _, recorder, _ = plug
    resp = await stub.ExecuteJob(request("t.progress", {"n": 10000, "linger": 0.6}, job_id="p1"))
    assert resp.success and json.loads(resp.result) == 10000
    assert (resp.progress_current, resp.progress_total) == (10000, 10000)
    assert [(e.level, e.message, e.stage, json.loads(e.metadata)) for e in resp.log_entries] == [
        ("info", "done counting", "count", {"n": 10000})
    ]
    await wait_until(lambda: recorder.updates, event=recorder.changed)
    assert 1 <= len(recorder.updates) <= 10, len(recorder.updates)
    first = recorder.updates[0]
    assert first.auth_token == "tok-1" and first.job.id == "p1" and first.job.progress.total == 10000


async def test_progress_failures_never_fail_the_job(plug):
    stub, _, recorder, _ = plug
    recorder.fail = True
    resp = await stub.ExecuteJob(request("t.progress", {"n": 50, "linger": 0.3}))
    assert resp.success and json.loads(resp.result) == 50


async def test_exception_gives_error_and_traceback(plug):
    stub, *_ = plug
    resp = await stub.ExecuteJob(request("t.boom"))
    assert not resp.success and resp.error == "RuntimeError: kaboom"
    levels = [(e.level, e.stage) for e in resp.log_entries]
    assert ("error", "exception") in levels
    assert "Traceback" in resp.log_entries[-1].message and "kaboom" in resp.log_entries[-1].message
    resp = await stub.ExecuteJob(request("t.badresult"))
    assert not resp.success and "not JSON-serialisable" in resp.error
    # the plugin is still fine
    assert (await stub.ExecuteJob(request("t.echo"))).success


async def test_unknown_handler_and_bad_payload(plug):
    stub, *_ = plug
    resp = await stub.ExecuteJob(request("t.nope"))
    assert not resp.success and "no handler 't.nope'" in resp.error and "t.echo" in resp.error
    resp = await stub.ExecuteJob(
        domain_pb2.ExecuteJobRequest(job_id="x", handler_name="t.echo", payload=b"{nope")
    )
    assert not resp.success and "payload is not JSON" in resp.error


async def test_cancel_sets_ctx_cancelled(plug, tmp_path):
    stub, *_ = plug
    marker = tmp_path / "marker"
    call = stub.ExecuteJob(request("t.wait", {"marker": str(marker)}))
    await wait_until(lambda: marker.exists() and marker.read_text() == "started", timeout=5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_until(lambda: marker.read_text().startswith("cancelled"), timeout=5)
    assert marker.read_text() == "cancelled=True"


async def test_timeout_secs_enforced_by_plugin(plug, tmp_path):
    stub, *_ = plug
    marker = tmp_path / "marker"
    resp = await stub.ExecuteJob(request("t.wait", {"marker": str(marker)}, timeout=1))
    assert not resp.success and resp.error.startswith("timeout:")
    assert marker.read_text() == "cancelled=True"


async def test_dynamic_handlers_replaced_at_each_initialize(plug):
    stub, *_ = plug
    init = await stub.Initialize(domain_pb2.InitializeRequest(config={"extra_handlers": "x.one,x.two"}))
    assert {"x.one", "x.two"} <= set(init.handler_names)
    assert (await stub.ExecuteJob(request("x.two", {"k": 1}))).success
    init = await stub.Initialize(domain_pb2.InitializeRequest(config={"extra_handlers": "x.three"}))
    assert "x.one" not in init.handler_names and "x.three" in init.handler_names


async def test_shutdown_exits_process(plug):
    stub, _, _, proc = plug
    await stub.Shutdown(domain_pb2.Empty())
    async with asyncio.timeout(10):
        assert await proc.wait() == 0


def test_declaration_errors():
    p = Plugin("x")
    p.handler("a.b")(lambda ctx, payload: None)
    with pytest.raises(ValueError, match="already registered"):
        p.handler("a.b")
    with pytest.raises(ValueError):
        p.handler("p/q")
    with pytest.raises(ValueError):
        Plugin("bad/name")
    p.schedule("a.b", 90)
    with pytest.raises(ValueError, match="already declared"):
        p.schedule("a.b", "5m")
    with pytest.raises(ValueError, match="'soon' is not a duration"):
        p.schedule("c.d", "soon")
    with pytest.raises(ValueError, match="at least 1 second"):
        p.schedule("c.d", 0)


async def test_example_plugin_runs(tmp_path):
    example = Path(__file__).resolve().parent.parent / "examples" / "greeter_plugin.py"
    async with plugin_process([sys.executable, str(example)]) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = domain_pb2_grpc.DomainPluginServiceStub(channel)
            init = await stub.Initialize(domain_pb2.InitializeRequest(config={"greeting": "hey"}))
            assert list(init.handler_names) == ["greeter.hello"]
            resp = await stub.ExecuteJob(request("greeter.hello", {"names": ["a", "b"]}))
            assert json.loads(resp.result) == {"greetings": ["hey, a", "hey, b"]}
            assert (resp.progress_current, resp.progress_total) == (2, 2)


async def test_handlers_that_wait_after_their_first_step():
    """A handler's first step runs at once; one that then waits continues in its own task with the
    same results, errors and cancellation flag as before (in-process plugin, raw stub)."""
    p = Plugin("steps")
    gate = asyncio.Event()
    seen: dict[str, bool] = {}

    @p.handler("s.now")
    async def now(ctx, payload):
        return {"at_once": payload["n"] * 2}

    @p.handler("s.steps")
    async def steps(ctx, payload):
        total = 0
        for i in range(3):
            await asyncio.sleep(0)
            total += i
        await gate.wait()
        return {"total": total, "value": await asyncio.sleep(0, result=payload["n"])}

    @p.handler("s.late_boom")
    async def late_boom(ctx, payload):
        await asyncio.sleep(0)
        raise ValueError("late")

    @p.handler("s.swallow")
    async def swallow(ctx, payload):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["cancelled"] = ctx.cancelled
            return "kept going"  # the call is over all the same

    server = await p.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = domain_pb2_grpc.DomainPluginServiceStub(channel)
            resp = await stub.ExecuteJob(request("s.now", {"n": 4}))
            assert resp.success and json.loads(resp.result) == {"at_once": 8}
            pending = asyncio.ensure_future(stub.ExecuteJob(request("s.steps", {"n": 5})))
            await wait_until(lambda: server.servicer.running, timeout=5)
            assert not pending.done()
            gate.set()
            resp = await pending
            assert resp.success and json.loads(resp.result) == {"total": 3, "value": 5}
            resp = await stub.ExecuteJob(request("s.late_boom"))
            assert not resp.success and resp.error == "ValueError: late"
            trace = resp.log_entries[-1].message
            assert "Traceback" in trace and "late_boom" in trace
            call = stub.ExecuteJob(request("s.swallow", job_id="c1"))
            await wait_until(lambda: "c1" in server.servicer.running, timeout=5)
            call.cancel()  # the host gives up on the call: the handler sees ctx.cancelled first
            await wait_until(lambda: not server.servicer.running, timeout=5)
            assert seen == {"cancelled": True}
    finally:
        await server.stop(0)
