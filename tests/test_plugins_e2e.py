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
    auth: Authenticator

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
        revoke_token=auth.revoke_plugin_token,
        on_routes_changed=engine.routes_changed,
        running_jobs=engine.running_jobs,
        health_interval=0.5,
        backoff_base=0.1,
        grace_secs=10.0,
    )
    await engine.start()
    await host.start()
    try:
        yield Stack(engine, host, registry, auth), scripts
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
    # caught in a crash it did not cause on its own: interrupted, re-run, not charged
    assert [a.outcome for a in detail.attempts] == [jobs.OUTCOME_INTERRUPTED, jobs.OUTCOME_COMPLETED]
    assert (done.run_attempts, done.interruptions, done.crashes) == (1, 1, 0)
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
    assert result.drained + result.draining == 50 and result.added == () and result.removed == ()
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


async def _watch_progress(s: Stack, job_id: str, seen: list[tuple[int, int, int]]) -> None:
    """Record (attempts, progress_current, progress_total) of a job as watchers see it, until the
    watchers see it end."""
    with s.engine.bus.watch() as watcher:
        while True:
            batch, _ = await watcher.next_batch(timeout=1.0)
            mine = [j for j in batch if j.id == job_id]
            seen.extend((j.attempts, j.progress_current, j.progress_total) for j in mine)
            if any(j.status in jobs.FINISHED for j in mine):
                return


async def test_job_running_across_reloads_completes_on_its_first_attempt(stack):
    """Issue 13.2: a reload never cuts a running job short; the old instance drains it."""
    s, _ = stack
    seen: list[tuple[int, int, int]] = []
    s.host.grace_secs = 0.5  # bounds a stop, never a reload: the job outlives it by far
    job = await s.engine.enqueue("demo.sleep", b'{"seconds": 6, "steps": 60}', max_attempts=1)
    watcher = asyncio.create_task(_watch_progress(s, job.id, seen))
    try:
        await s.until(job.id, lambda j: j.status == jobs.RUNNING and j.progress_current > 0)
        first_pid = s.host.get("demo").pid
        results = [await s.host.reload("demo") for _ in range(3)]  # three used to fail it (3/3)
        # the first old instance keeps the job; the instances started meanwhile had none
        assert [r.draining for r in results] == [1, 0, 0]
        state = s.host.get("demo")
        assert state.pid not in (0, first_pid) and state.draining_instances == 1
        assert state.draining_jobs == 1 and state.state_text == "ready; old instance draining (1 job)"
        # new work goes to the new instance at once
        echo = await s.done((await s.engine.enqueue("demo.echo", b"{}")).id)
        assert echo.status == jobs.COMPLETED
        done = await s.done(job.id)
        await asyncio.wait_for(watcher, 10)  # the watchers saw the end too
    finally:
        watcher.cancel()
    assert done.status == jobs.COMPLETED, done.error
    assert done.attempts == 1 and done.run_attempts == 1 and done.interruptions == 0
    assert json.loads(done.result)["pid"] == first_pid
    progress = [c for a, c, _ in seen if a == 1]
    assert progress == sorted(progress) and progress[-1] == 60, progress  # never backwards
    assert all(a == 1 for a, _, _ in seen)
    state = await s.host.wait_for("demo", lambda p: p.draining_instances == 0, 10)
    assert state.state_text == READY


async def test_neighbour_survives_a_crash_and_the_crasher_fails_after_three(stack):
    """Issue 13.3: a healthy job caught in another job's plugin crash is not charged; the job
    running at three crashes in a row is the likely cause and fails as `crashed`."""
    s, _ = stack
    sleeper = await s.engine.enqueue("demo.sleep", b'{"seconds": 2, "steps": 20}', max_attempts=1)
    await s.until(sleeper.id, lambda j: j.status == jobs.RUNNING and j.progress_current > 0)
    crasher = await s.engine.enqueue("demo.crash", b'{"after": 0.3}', max_attempts=3)
    crashed = await s.done(crasher.id, timeout=60)
    slept = await s.done(sleeper.id, timeout=60)

    assert slept.status == jobs.COMPLETED, slept.error
    assert slept.run_attempts == 1 and slept.interruptions >= 1  # charged 1/1, interruptions apart
    outcomes = [a.outcome for a in (await s.engine.get_detail(sleeper.id)).attempts]
    assert outcomes[-1] == jobs.OUTCOME_COMPLETED
    assert set(outcomes[:-1]) == {jobs.OUTCOME_INTERRUPTED}

    assert crashed.status == jobs.FAILED
    assert "crashed its plugin demo 3 times in a row" in crashed.error
    detail = await s.engine.get_detail(crasher.id)
    assert [a.outcome for a in detail.attempts] == [
        jobs.OUTCOME_INTERRUPTED,
        jobs.OUTCOME_INTERRUPTED,
        jobs.OUTCOME_CRASHED,
    ]
    assert (crashed.run_attempts, crashed.interruptions, crashed.crashes) == (1, 2, 3)
    # an operator retry starts a clean run
    retried = await s.engine.retry(crasher.id)
    assert (retried.run_attempts, retried.interruptions, retried.crashes) == (0, 0, 0)


async def test_plugin_tokens_are_revoked_on_disable_and_after_a_reload_drains(stack):
    """Issue 18.11: a token belongs to one plugin instance and dies with it."""
    from pulse_tui.pulse.errors import Unauthenticated

    s, _ = stack
    plugin = s.host._plugin("demo")
    old_token = plugin.current.token
    assert s.auth.identify(old_token).plugin == "demo"
    job = await s.engine.enqueue("demo.sleep", b'{"seconds": 1.5, "steps": 15}', max_attempts=1)
    await s.until(job.id, lambda j: j.status == jobs.RUNNING and j.progress_current > 0)
    await s.host.reload("demo")
    new_token = plugin.current.token
    assert new_token != old_token
    assert s.auth.identify(old_token).plugin == "demo"  # draining: still reports progress
    done = await s.done(job.id)
    assert done.status == jobs.COMPLETED and done.progress_current == 15
    await s.host.wait_for("demo", lambda p: p.draining_instances == 0, 10)
    with pytest.raises(Unauthenticated):
        s.auth.identify(old_token)
    assert s.auth.identify(new_token).plugin == "demo"
    await s.host.set_enabled("demo", False)
    with pytest.raises(Unauthenticated):
        s.auth.identify(new_token)
