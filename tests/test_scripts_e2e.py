"""Handler scripts end to end: a real server, the real bundled python plugin, real jobs.

save -> python.<name> announced -> a job runs it with progress and result; syntax errors refused
with their position and nothing changes; a script that raises or overruns its timeout fails its
job and the plugin stays healthy; a stale save is refused."""

from __future__ import annotations

import json
import os
import time

import grpc
import pytest

from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.pulse.scripts import template

CONFIG = """
[[plugins]]
name = "python"
command = ["{python}", "-m", "pulse_tui.plugins.python"]
"""


@pytest.fixture
async def stub(server_factory):
    srv = server_factory(CONFIG)
    channel = grpc.aio.insecure_channel(srv.address)
    s = op_grpc.OperatorServiceStub(channel)
    s.md = srv.metadata
    s.srv = srv
    yield s
    await channel.close()


async def wait_done(stub, job_id: str, timeout: float = 30.0) -> op.JobDetail:
    """Follow the job over WatchJobs until it finishes (no polling sleeps)."""
    call = stub.WatchJobs(op.WatchJobsRequest(), metadata=stub.md, timeout=timeout)
    try:
        async for ev in call:
            if ev.kind == "heartbeat":
                d = await stub.GetJob(op.GetJobRequest(id=job_id), metadata=stub.md)
                if d.job.status in ("completed", "failed", "cancelled"):
                    return d
            elif ev.job.id == job_id and ev.job.status in ("completed", "failed", "cancelled"):
                return await stub.GetJob(op.GetJobRequest(id=job_id), metadata=stub.md)
    finally:
        call.cancel()
    raise AssertionError("watch ended before the job finished")


async def handler_names(stub) -> set[str]:
    resp = await stub.ListHandlers(op.ListHandlersRequest(), metadata=stub.md)
    return {h.name for h in resp.handlers}


async def test_save_announces_and_runs(stub):
    code = template("vacancies").replace(
        'return {"processed": items}', 'return {"processed": items, "who": payload.get("who")}'
    )
    out = await stub.SaveScript(op.SaveScriptRequest(name="vacancies", code=code), metadata=stub.md)
    assert out.saved, out.error
    assert out.live and out.script.handler == "python.vacancies"
    assert "python.vacancies" in await handler_names(stub)
    listed = await stub.ListScripts(op.ListScriptsRequest(), metadata=stub.md)
    assert [(s.name, s.live) for s in listed.scripts] == [("vacancies", True)]

    job = await stub.Enqueue(
        op.EnqueueRequest(handler="python.vacancies", payload=b'{"items": 4, "who": "ops"}'), metadata=stub.md
    )
    d = await wait_done(stub, job.job.id)
    assert d.job.status == "completed", d.job.error
    assert json.loads(d.result) == {"processed": 4, "who": "ops"}
    assert (d.job.progress_current, d.job.progress_total) == (4, 4)
    assert any("processed 4 item(s)" in e.message for e in d.logs)


async def test_syntax_error_refused_nothing_changes(stub):
    before = await handler_names(stub)
    out = await stub.SaveScript(
        op.SaveScriptRequest(name="broken", code="def run(payload, ctx):\n    return [1,\n"), metadata=stub.md
    )
    assert not out.saved and out.error_line >= 2 and "line" in out.error
    listed = await stub.ListScripts(op.ListScriptsRequest(), metadata=stub.md)
    assert list(listed.scripts) == []
    assert await handler_names(stub) == before


async def test_raising_and_slow_scripts_fail_plugin_stays_healthy(stub):
    raising = "def run(payload, ctx):\n    raise RuntimeError('no vacancies today')\n"
    slow = "import time\n\ndef run(payload, ctx):\n    time.sleep(60)\n"
    for name, code in (("raiser", raising), ("slow", slow)):
        out = await stub.SaveScript(op.SaveScriptRequest(name=name, code=code), metadata=stub.md)
        assert out.saved and out.live, out.error or out.reload_message
    j1 = await stub.Enqueue(op.EnqueueRequest(handler="python.raiser", max_attempts=1), metadata=stub.md)
    d1 = await wait_done(stub, j1.job.id)
    assert d1.job.status == "failed"
    assert "no vacancies today" in d1.job.error
    assert (
        any("Traceback" in e.message or "RuntimeError" in e.message for e in d1.logs)
        or "RuntimeError" in d1.job.error
    )

    t0 = time.monotonic()
    j2 = await stub.Enqueue(
        op.EnqueueRequest(handler="python.slow", max_attempts=1, timeout_secs=2), metadata=stub.md
    )
    d2 = await wait_done(stub, j2.job.id)
    assert d2.job.status == "failed"
    assert "timed out" in d2.job.error or "timeout" in d2.job.error.lower()
    assert time.monotonic() - t0 < 20

    plugin = await stub.GetPlugin(op.GetPluginRequest(name="python"), metadata=stub.md)
    assert plugin.state == "ready" and plugin.restarts == 0
    j3 = await stub.Enqueue(op.EnqueueRequest(handler="python.raiser", max_attempts=1), metadata=stub.md)
    assert (await wait_done(stub, j3.job.id)).job.status == "failed"  # still serving


async def test_stale_save_refused(stub):
    first = await stub.SaveScript(
        op.SaveScriptRequest(name="shared", code=template("shared")), metadata=stub.md
    )
    v1 = first.script.version
    mine = await stub.SaveScript(
        op.SaveScriptRequest(name="shared", code=template("shared") + "# A\n", base_version=v1),
        metadata=stub.md,
    )
    assert mine.saved
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SaveScript(
            op.SaveScriptRequest(name="shared", code=template("shared") + "# B\n", base_version=v1),
            metadata=stub.md,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "saved by someone else" in err.value.details()
    got = await stub.GetScript(op.GetScriptRequest(name="shared"), metadata=stub.md)
    assert got.code.endswith("# A\n")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SaveScript(
            op.SaveScriptRequest(name="shared", code="x", base_version=got.version),
            metadata=stub.srv.readonly_metadata,
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


SNOOP = """
import os, resource


def run(payload, ctx):
    out = {"uid": os.geteuid(), "cwd": os.getcwd(), "env": sorted(os.environ)}
    for key in ("token", "db"):
        try:
            with open(payload[key], "rb") as f:
                f.read(1)
            out[key] = "read"
        except OSError as exc:
            out[key] = type(exc).__name__
    out["limits"] = {
        n: resource.getrlimit(getattr(resource, n))[0]
        for n in ("RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CPU")
    }
    with open("scratch.txt", "w") as f:  # the private working directory is writable
        f.write("x")
    return out
"""


@pytest.mark.skipif(
    os.geteuid() != 0, reason="scripts drop to an unprivileged user only when the server runs as root"
)
async def test_script_cannot_read_the_token_and_runs_confined(stub):
    """A saved script runs as `nobody` with a scrubbed environment, a private working directory
    and resource limits: it cannot read <data_dir>/token or the database."""
    data = stub.srv.data_dir
    out = await stub.SaveScript(op.SaveScriptRequest(name="snoop", code=SNOOP), metadata=stub.md)
    assert out.saved and out.live, out.error
    payload = json.dumps({"token": str(data / "token"), "db": str(data / "pulse.db")}).encode()
    job = await stub.Enqueue(
        op.EnqueueRequest(handler="python.snoop", payload=payload, max_attempts=1, timeout_secs=30),
        metadata=stub.md,
    )
    d = await wait_done(stub, job.job.id)
    assert d.job.status == "completed", d.job.error
    seen = json.loads(d.result)
    assert seen["uid"] != 0
    assert seen["token"] == "PermissionError" and seen["db"] == "PermissionError", seen
    assert not any("TOKEN" in k or k.startswith("PULSE") for k in seen["env"]), seen["env"]
    assert set(seen["env"]) <= {
        "PATH",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "HOME",
        "TMPDIR",
        "PYTHONIOENCODING",
        "PYTHONDONTWRITEBYTECODE",
    }, seen["env"]
    assert os.path.basename(seen["cwd"]).startswith("pulse-script-")
    assert not os.path.exists(seen["cwd"])  # removed when the job ended
    limits = seen["limits"]
    assert limits["RLIMIT_AS"] == 1024 << 20 and limits["RLIMIT_FSIZE"] == 64 << 20
    assert limits["RLIMIT_NOFILE"] == 256 and 30 < limits["RLIMIT_CPU"] <= 40


async def test_first_server_start_seeds_the_example_script(server_factory):
    """`make run`'s promise: with `example_script = true` the first start's scripts dir holds
    hello.py and python.hello runs (the server's own script store must not create the folder
    first, which made the plugin think it already existed and seed nothing)."""
    srv = server_factory(CONFIG + 'config = { example_script = "true" }\n')
    channel = grpc.aio.insecure_channel(srv.address)
    s = op_grpc.OperatorServiceStub(channel)
    s.md = srv.metadata
    try:
        # an enqueue naming a handler not announced yet waits for the starting plugin
        resp = await s.Enqueue(
            op.EnqueueRequest(handler="python.hello", payload=b'{"name": "op"}'), metadata=s.md
        )
        d = await wait_done(s, resp.job.id)
        assert d.job.status == "completed", d.job.error
        assert json.loads(d.result) == {"greeting": "hello, op"}
        scripts = await s.ListScripts(op.ListScriptsRequest(), metadata=s.md)
        assert [x.name for x in scripts.scripts] == ["hello"]
    finally:
        await channel.close()
