"""Batched plugin execution (pulse/batch.py, BatchExecService) end to end: Engine + SQLite store +
QueueService + PluginHost with a real SDK plugin subprocess, and a raw unary-only plugin."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from plugins.harness import script

from pulse_tui.config import PluginConfig
from pulse_tui.protocol import domain_pb2, queue_pb2_grpc
from pulse_tui.pulse import jobs
from pulse_tui.pulse.auth import Authenticator
from pulse_tui.pulse.batch import BatchCaller, BatchDeadline
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.host import PluginHost
from pulse_tui.pulse.registry import Registry
from pulse_tui.pulse.services import QueueService, ServiceContext
from pulse_tui.pulse.store.sqlite import SQLiteStore


@dataclass
class Stack:
    engine: Engine
    host: PluginHost
    tmp: Path

    def batch(self, plugin: str = "batchplug") -> BatchCaller | None:
        inst = self.host._plugins[plugin].current
        assert inst is not None
        return inst.batch

    async def until(self, job_id: str, predicate, timeout: float = 20.0) -> jobs.Job:
        async with asyncio.timeout(timeout):  # bounded polling of the store, no fixed sleeps
            while not predicate(job := await self.engine.get_job(job_id)):
                await asyncio.sleep(0.02)
        return job

    async def done(self, *ids: str, timeout: float = 20.0) -> list[jobs.Job]:
        return [await self.until(i, lambda j: j.status in jobs.FINISHED, timeout) for i in ids]

    async def enqueue(self, *specs: dict) -> list[str]:
        found = await self.engine.enqueue_many(
            [{**s, "payload": json.dumps(s.get("payload", {})).encode()} for s in specs]
        )
        return [j.id for j in found]


async def _file_says(path: Path, text: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not (path.exists() and path.read_text().startswith(text)):
            await asyncio.sleep(0.02)


BATCHPLUG = PluginConfig(name="batchplug", command=script("batchplug.py"))
UNARY_ONLY = [
    PluginConfig(name="unaryplug", command=script("unaryplug.py")),
    # the same SDK plugin as batchplug with batching turned off in its config: the unary path
    PluginConfig(
        name="batchplug2", command=script("batchplug.py"), env={"BATCHPLUG_NAME": "batchplug2"}, batch=False
    ),
]


async def _stack(tmp_path: Path, configs: list[PluginConfig]):
    store = SQLiteStore(str(tmp_path / "pulse.db"))
    await store.open()
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
        backoff_base=0.05,
        grace_secs=5.0,
    )
    await engine.start()
    await host.start()
    try:
        yield Stack(engine, host, tmp_path)
    finally:
        await engine.stop(1.0)
        await host.stop()
        await server.stop(0)
        await store.close()


@pytest.fixture
async def stack(tmp_path):
    async for s in _stack(tmp_path, [BATCHPLUG]):
        yield s


@pytest.fixture
async def unary_stack(tmp_path):
    async for s in _stack(tmp_path, UNARY_ONLY):
        yield s


async def test_batch_outcomes_per_job_and_a_failing_batchmate(stack):
    s = stack
    batch = s.batch()
    assert batch is not None, "an SDK plugin offers BatchExecService"
    specs = []
    for i in range(40):
        if i % 8 == 3:
            specs.append({"handler": "b.fail", "payload": {"n": i}, "max_attempts": 1})
        else:
            specs.append({"handler": "b.echo", "payload": {"n": i}})
    ids = await s.enqueue(*specs)
    done = await s.done(*ids)
    for spec, job in zip(specs, done, strict=True):
        detail = await s.engine.get_detail(job.id)
        assert job.plugin == "batchplug" and job.plugin_version == "3.1"
        if spec["handler"] == "b.fail":
            assert job.status == jobs.FAILED and job.error == f"RuntimeError: fail {spec['payload']['n']}"
            assert [a.outcome for a in detail.attempts] == [jobs.OUTCOME_FAILED]
            assert [e.message for e in detail.logs if e.level == "info"] == [f"failing {job.id}"]
        else:
            assert job.status == jobs.COMPLETED, (job.status, job.error)
            assert json.loads(job.result) == {"job_id": job.id, "payload": spec["payload"]}
            assert [a.outcome for a in detail.attempts] == [jobs.OUTCOME_COMPLETED]
            assert [(e.message, e.stage) for e in detail.logs] == [(f"echo {job.id}", "echo")]
    # the jobs went many to a message (claimed together, written together)
    assert batch.jobs == 40 and batch.messages < 20, (batch.jobs, batch.messages)
    assert batch.in_flight == 0


async def test_batch_progress_cancel_and_timeout_of_one_job(stack):
    s = stack
    cancel_marker, timeout_marker = s.tmp / "cancel", s.tmp / "timeout"
    ids = await s.enqueue(
        {"handler": "b.hang", "payload": {"marker": str(cancel_marker)}},
        {
            "handler": "b.hang",
            "payload": {"marker": str(timeout_marker)},
            "timeout_secs": 1,
            "max_attempts": 1,
        },
        *({"handler": "b.echo", "payload": {"n": i}} for i in range(6)),
    )
    to_cancel, to_time_out, echoes = ids[0], ids[1], ids[2:]
    # progress of a running job in a batch reaches the store (UpdateJob, per job)
    running = await s.until(to_cancel, lambda j: j.status == jobs.RUNNING and j.progress_current == 1)
    assert running.progress_total == 4
    await _file_says(cancel_marker, "started")
    for job in await s.done(*echoes):
        assert job.status == jobs.COMPLETED  # batchmates of a hanging job are not held back
    await s.engine.cancel(to_cancel)
    (cancelled,) = await s.done(to_cancel)
    assert cancelled.status == jobs.CANCELLED and cancelled.error == "cancelled by operator"
    await _file_says(cancel_marker, "cancelled=True")  # the plugin's handler was cancelled
    (timed_out,) = await s.done(to_time_out)
    assert timed_out.status == jobs.FAILED
    detail = await s.engine.get_detail(to_time_out)
    assert [a.outcome for a in detail.attempts] == [jobs.OUTCOME_TIMEOUT]
    await _file_says(timeout_marker, "cancelled=True")
    assert s.batch().in_flight == 0


async def test_plugin_crash_during_a_batch_interrupts_every_job_without_charge(stack):
    s = stack
    markers = [s.tmp / f"gate{i}" for i in range(4)]
    ids = await s.enqueue(*({"handler": "b.gate", "payload": {"marker": str(m)}} for m in markers))
    for m in markers:
        await _file_says(m, "")
    pid = int(markers[0].read_text())
    assert all(int(m.read_text()) == pid for m in markers)
    before = s.batch()
    assert before is not None and before.in_flight == 4
    os.kill(pid, signal.SIGKILL)
    for job in await s.done(*ids, timeout=30):
        assert job.status == jobs.COMPLETED, (job.status, job.error)
        assert json.loads(job.result)["pid"] != pid  # ran again on the restarted plugin
        assert (job.run_attempts, job.interruptions, job.crashes) == (1, 1, 0)
        detail = await s.engine.get_detail(job.id)
        assert [a.outcome for a in detail.attempts] == [jobs.OUTCOME_INTERRUPTED, jobs.OUTCOME_COMPLETED]
        assert "was killed by SIGKILL" in detail.attempts[0].error
    assert s.batch() is not before  # the new instance has its own stream


async def test_unary_only_plugin_and_batch_false_use_execute_job(unary_stack):
    s = unary_stack
    assert s.batch("unaryplug") is None  # BatchExecService is UNIMPLEMENTED there
    assert s.batch("batchplug2") is None  # offered, but `batch = false` in its config
    ids = await s.enqueue(
        {"handler": "u.echo", "payload": {"a": 1}},
        {"handler": "u.echo", "payload": {"a": 2}},
        {"handler": "batchplug2/b.echo", "payload": {"b": 1}},
    )
    first, second, sdk = await s.done(*ids)
    assert (first.status, json.loads(first.result)) == (jobs.COMPLETED, {"a": 1})
    assert (second.status, json.loads(second.result)) == (jobs.COMPLETED, {"a": 2})
    # one unary call per job: the raw plugin counted two ExecuteJob calls
    assert {first.plugin_version, second.plugin_version} == {"0.2.0+call1", "0.2.0+call2"}
    assert sdk.status == jobs.COMPLETED and json.loads(sdk.result)["payload"] == {"b": 1}


async def test_a_call_past_its_deadline_fails_and_the_plugin_cancels_the_job(stack):
    """BatchCaller's own deadline (the engine's timeout normally fires first): the call fails with
    BatchDeadline, the plugin is told to cancel, and nothing stays in flight."""
    s = stack
    (warm,) = await s.enqueue({"handler": "b.echo", "payload": {"n": 0}})
    await s.done(warm)
    caller = s.batch()
    assert caller is not None
    marker = s.tmp / "deadline"
    request = domain_pb2.ExecuteJobRequest(
        job_id="direct-deadline", handler_name="b.hang", payload=json.dumps({"marker": str(marker)}).encode()
    )
    with pytest.raises(BatchDeadline):
        await caller.execute(request, 0.5)
    await _file_says(marker, "cancelled=True")
    assert caller.in_flight == 0
