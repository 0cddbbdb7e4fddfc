"""End to end: Engine + SQLite store + Registry + PluginHost + the real QueueService, with the
real bundled plugins. Progress travels plugin -> QueueService.UpdateJob -> engine -> store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass

import grpc
import pytest
from plugins.harness import module

from pulse_tui.config import PluginConfig
from pulse_tui.protocol import queue_pb2_grpc
from pulse_tui.pulse import jobs
from pulse_tui.pulse.auth import Authenticator
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.host import READY, PluginHost
from pulse_tui.pulse.registry import Registry
from pulse_tui.pulse.services import QueueService, ServiceContext
from pulse_tui.pulse.store.sqlite import SQLiteStore


@dataclass
class Stack:
    engine: Engine
    host: PluginHost
    registry: Registry

    async def until(self, job_id: str, predicate, timeout: float = 20.0) -> jobs.Job:
        """Poll the store until the job satisfies `predicate` (bounded; no fixed sleeps)."""
        async with asyncio.timeout(timeout):
            while not predicate(job := await self.engine.get_job(job_id)):
                await asyncio.sleep(0.02)
        return job

    async def done(self, job_id: str, timeout: float = 20.0) -> jobs.Job:
        return await self.until(job_id, lambda j: j.status in jobs.FINISHED, timeout)


@pytest.fixture
async def stack(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    store = SQLiteStore(str(tmp_path / "pulse.db"))
    await store.open()
    configs = [
        PluginConfig(name="demo", command=module("pulse_tui.plugins.demo")),
        PluginConfig(
            name="python", command=module("pulse_tui.plugins.python"), config={"scripts_dir": str(scripts)}
        ),
    ]
    registry = Registry([c.name for c in configs])
    engine = Engine(store, registry, concurrency=64, backoff_base=0.05, backoff_cap=0.2, retention_secs=None)
    auth = Authenticator("a" * 64, "b" * 64)
    server = grpc.aio.server()
    queue_pb2_grpc.add_QueueServiceServicer_to_server(
        QueueService(ServiceContext(engine=engine, auth=auth)), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    host = PluginHost(
        configs,
        registry,
        queue_endpoint=f"127.0.0.1:{port}",
        token_for=auth.issue_plugin_token,
        on_routes_changed=engine.routes_changed,
        running_jobs=engine.running_jobs,
        health_interval=0.5,
        backoff_base=0.1,
        grace_secs=10.0,
    )
    await engine.start()
    await host.start()
    try:
        yield Stack(engine, host, registry), scripts
    finally:
        await engine.stop(1.0)
        await host.stop()
        await server.stop(0)
        await store.close()


async def test_sleep_progress_persisted_then_completed(stack):
    s, _ = stack
    job = await s.engine.enqueue("demo.sleep", b'{"seconds": 1.2, "steps": 6}')
    mid = await s.until(job.id, lambda j: j.status == jobs.RUNNING and 0 < j.progress_current < 6)
    assert mid.progress_total == 6  # came through UpdateJob while running
    done = await s.done(job.id)
    assert done.status == jobs.COMPLETED and (done.progress_current, done.progress_total) == (6, 6)
    assert json.loads(done.result)["steps"] == 6 and done.plugin == "demo" and done.plugin_version == "1.0.0"
    detail = await s.engine.get_detail(job.id)
    assert [a.outcome for a in detail.attempts] == [jobs.OUTCOME_COMPLETED]
    assert any(e.message == "slept 1.2s in 6 steps" for e in detail.logs)


async def test_sigkill_mid_job_restarts_and_retry_completes(stack):
    s, _ = stack
    pid = s.host.get("demo").pid
    job = await s.engine.enqueue("demo.sleep", b'{"seconds": 1.0, "steps": 10}', max_attempts=3)
    await s.until(job.id, lambda j: j.status == jobs.RUNNING and j.progress_current > 0)
    os.kill(pid, signal.SIGKILL)
    done = await s.done(job.id)
    assert done.status == jobs.COMPLETED, done.error
    detail = await s.engine.get_detail(job.id)
    assert [a.outcome for a in detail.attempts] == [jobs.OUTCOME_UNAVAILABLE, jobs.OUTCOME_COMPLETED]
    state = s.host.get("demo")
    assert state.state == READY and state.restarts == 1 and state.pid != pid
    assert json.loads(done.result)["pid"] == state.pid


async def test_hot_reload_with_50_running_jobs_loses_none(stack):
    s, _ = stack
    ids = [(await s.engine.enqueue("demo.sleep", b'{"seconds": 1.0, "steps": 4}')).id for _ in range(50)]
    async with asyncio.timeout(20):
        while len(s.engine.running_jobs("demo")) < 50:
            await asyncio.sleep(0.02)
    old_pid = s.host.get("demo").pid
    result = await s.host.reload("demo")
    assert result.drained == 50 and result.added == () and result.removed == ()
    assert result.plugin.pid != old_pid
    finished = [await s.done(i) for i in ids]
    assert [j.status for j in finished] == [jobs.COMPLETED] * 50
    assert all(j.attempts == 1 for j in finished)  # drained on the old instance, none retried
    assert {json.loads(j.result)["pid"] for j in finished} == {old_pid}
    after = await s.done((await s.engine.enqueue("demo.echo", b"{}")).id)
    assert after.status == jobs.COMPLETED


async def test_new_script_appears_after_reload(stack):
    s, scripts = stack
    with pytest.raises(Exception, match="python.greet"):
        await s.engine.enqueue("python.greet", b"{}")
    (scripts / "greet.py").write_text(
        "def run(payload, ctx):\n    ctx.progress(1, 1)\n    return 'hi ' + payload['who']\n"
    )
    result = await s.host.reload("python")
    assert result.added == ("python.greet",)
    done = await s.done((await s.engine.enqueue("python.greet", b'{"who": "op"}')).id)
    assert done.status == jobs.COMPLETED and json.loads(done.result) == "hi op"
    failing = await s.engine.enqueue(
        "python.script", b'{"code": "def run(p, ctx):\\n    raise KeyError(1)\\n"}', max_attempts=1
    )
    done = await s.done(failing.id)
    assert done.status == jobs.FAILED and done.error == "KeyError: 1"


async def test_measure_plugin_round_trip_overhead(stack, capsys):
    """Round trip per job through a plugin vs a built-in (reported, loosely asserted)."""
    s, _ = stack
    echo = s.registry.resolve("demo.echo")
    from pulse_tui.pulse.handlers import JobContext

    n = 200
    job = jobs.Job(id="m", handler="demo.echo", payload=b"{}")
    ctx = JobContext(job, 1, 30.0, lambda c, t: None, lambda e: None, lambda c: None)
    t0 = time.perf_counter()
    for _ in range(n):
        await echo.run(ctx)
    proxy_ms = (time.perf_counter() - t0) / n * 1000

    async def drain(handler: str) -> float:
        t0 = time.perf_counter()
        ids = [(await s.engine.enqueue(handler, b"{}")).id for _ in range(n)]
        for i in ids:
            await s.done(i)
        return (time.perf_counter() - t0) / n * 1000

    plugin_ms = await drain("demo.echo")
    builtin_ms = await drain("pulse.noop")
    with capsys.disabled():
        print(
            f"\n[plugin overhead] sequential proxy ExecuteJob: {proxy_ms:.2f} ms/call; "
            f"engine {n} jobs: demo.echo {plugin_ms:.2f} ms/job vs pulse.noop {builtin_ms:.2f} ms/job"
        )
    assert proxy_ms < 50
