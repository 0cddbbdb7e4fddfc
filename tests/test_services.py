"""QueueService (QNTX) and OperatorService against a real `pulse-tui serve` process.

Every bad input gets a specific error and leaves the store unchanged (job counts compared).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.protocol import queue_pb2 as qp
from pulse_tui.protocol import queue_pb2_grpc as qp_grpc

FINISHED = {"completed", "failed", "cancelled"}


@pytest.fixture
async def channel(shared_server) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(shared_server.address) as ch:
        yield ch


@pytest.fixture
def queue(channel) -> qp_grpc.QueueServiceStub:
    return qp_grpc.QueueServiceStub(channel)


@pytest.fixture
def ops(channel) -> op_grpc.OperatorServiceStub:
    return op_grpc.OperatorServiceStub(channel)


async def total_jobs(ops, md) -> int:
    return (await ops.CountJobs(op.CountJobsRequest(), metadata=md)).total


async def wait_finished(ops, md, job_id: str, timeout: float = 15.0) -> op.JobDetail:
    """Follow WatchJobs until `job_id` is finished (first event = watch registered)."""

    async def follow() -> op.JobDetail:
        call = ops.WatchJobs(op.WatchJobsRequest(), metadata=md)
        try:
            first = await call.read()
            assert first.kind == "heartbeat"
            detail = await ops.GetJob(op.GetJobRequest(id=job_id), metadata=md)
            status = detail.job.status
            while status not in FINISHED:
                event = await call.read()
                if event.kind == "upsert" and event.job.id == job_id:
                    status = event.job.status
            return await ops.GetJob(op.GetJobRequest(id=job_id), metadata=md)
        finally:
            call.cancel()

    return await asyncio.wait_for(follow(), timeout)


async def expect_code(coro, code: grpc.StatusCode, *fragments: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    assert info.value.code() == code, info.value.details()
    for fragment in fragments:
        assert fragment in info.value.details(), info.value.details()
    return info.value.details()


# ---------------------------------------------------------------- QueueService


async def test_queue_enqueue_get_list(shared_server, queue, ops):
    token = shared_server.token
    job = qp.Job(handler_name="pulse.noop", payload=b'{"a": 1}', source="test")
    resp = await queue.Enqueue(qp.EnqueueRequest(auth_token=token, job=job))
    assert resp.success, resp.error
    done = await wait_finished(ops, shared_server.metadata, resp.job_id)
    assert done.job.status == "completed"

    got = await queue.GetJob(qp.GetJobRequest(auth_token=token, job_id=resp.job_id))
    assert got.success
    assert got.job.handler_name == "pulse.noop"
    assert json.loads(got.job.payload) == {"a": 1}
    assert got.job.status == "completed" and got.job.source == "test"
    assert got.job.created_at > 1_700_000_000 and got.job.completed_at >= got.job.created_at

    listed = await queue.ListJobs(qp.ListJobsRequest(auth_token=token, status="completed", limit=5))
    assert listed.success and 1 <= len(listed.jobs) <= 5
    assert all(j.status == "completed" for j in listed.jobs)
    assert resp.job_id in {j.id for j in (await queue.ListJobs(qp.ListJobsRequest(auth_token=token))).jobs}


@pytest.mark.parametrize(
    ("job", "fragment"),
    [
        (qp.Job(handler_name="pulse.slep", payload=b"{}"), "did you mean 'pulse.sleep'"),
        (qp.Job(handler_name="pulse.noop", payload=b"{not json"), "payload is not JSON"),
        (
            qp.Job(handler_name="pulse.noop", payload=b'"' + b"x" * (1024 * 1024) + b'"'),
            "the limit is 1,048,576",
        ),
        (qp.Job(handler_name="", payload=b"{}"), "handler name is empty"),
        (qp.Job(handler_name="bad name\n", payload=b"{}"), "control characters"),
        (None, "request has no job"),
    ],
)
async def test_queue_enqueue_bad_input_stores_nothing(shared_server, queue, ops, job, fragment):
    before = await total_jobs(ops, shared_server.metadata)
    req = qp.EnqueueRequest(auth_token=shared_server.token)
    if job is not None:
        req.job.CopyFrom(job)
    resp = await queue.Enqueue(req)
    assert not resp.success and fragment in resp.error, resp.error
    assert resp.job_id == ""
    assert await total_jobs(ops, shared_server.metadata) == before


@pytest.mark.parametrize(
    ("token", "fragment"),
    [("", "missing auth token"), ("0" * 64, "invalid auth token"), ("é\x00", "invalid auth token")],
)
async def test_queue_bad_tokens(shared_server, queue, ops, token, fragment):
    before = await total_jobs(ops, shared_server.metadata)
    job = qp.Job(handler_name="pulse.noop", payload=b"{}")
    for resp in (
        await queue.Enqueue(qp.EnqueueRequest(auth_token=token, job=job)),
        await queue.GetJob(qp.GetJobRequest(auth_token=token, job_id="x")),
        await queue.UpdateJob(qp.UpdateJobRequest(auth_token=token, job=qp.Job(id="x", status="cancelled"))),
        await queue.ListJobs(qp.ListJobsRequest(auth_token=token)),
    ):
        assert not resp.success and fragment in resp.error
    assert await total_jobs(ops, shared_server.metadata) == before


async def test_queue_readonly_token(shared_server, queue, ops):
    ro = shared_server.readonly_token
    before = await total_jobs(ops, shared_server.metadata)
    resp = await queue.Enqueue(qp.EnqueueRequest(auth_token=ro, job=qp.Job(handler_name="pulse.noop")))
    assert not resp.success and "read-only token may not enqueue" in resp.error
    listed = await queue.ListJobs(qp.ListJobsRequest(auth_token=ro, limit=1))
    assert listed.success
    upd = await queue.UpdateJob(qp.UpdateJobRequest(auth_token=ro, job=qp.Job(id="x", status="cancelled")))
    assert not upd.success and "read-only" in upd.error
    assert await total_jobs(ops, shared_server.metadata) == before


async def test_queue_list_and_get_bad_input(shared_server, queue):
    t = shared_server.token
    resp = await queue.ListJobs(qp.ListJobsRequest(auth_token=t, status="done"))
    assert not resp.success and "unknown status 'done'" in resp.error
    resp = await queue.ListJobs(qp.ListJobsRequest(auth_token=t, limit=-1))
    assert not resp.success and "limit must not be negative" in resp.error
    resp = await queue.ListJobs(qp.ListJobsRequest(auth_token=t, limit=2_000_000))
    assert resp.success and len(resp.jobs) <= 1000
    got = await queue.GetJob(qp.GetJobRequest(auth_token=t, job_id="nope"))
    assert not got.success and "no job with id 'nope'" in got.error
    got = await queue.GetJob(qp.GetJobRequest(auth_token=t))
    assert not got.success and "job_id is empty" in got.error


async def test_queue_update_job(shared_server, queue, ops):
    t, md = shared_server.token, shared_server.metadata
    # a delayed job stays queued: cancel it through UpdateJob, as QNTX clients do
    queued = (await ops.Enqueue(op.EnqueueRequest(handler="pulse.noop", delay_secs=3600), metadata=md)).job
    bad = await queue.UpdateJob(
        qp.UpdateJobRequest(auth_token=t, job=qp.Job(id=queued.id, status="completed"))
    )
    assert not bad.success and "UpdateJob can cancel" in bad.error
    prog = await queue.UpdateJob(
        qp.UpdateJobRequest(auth_token=t, job=qp.Job(id=queued.id, progress=qp.Progress(current=1, total=2)))
    )
    assert not prog.success and "not running" in prog.error
    ok = await queue.UpdateJob(
        qp.UpdateJobRequest(auth_token=t, job=qp.Job(id=queued.id, status="cancelled"))
    )
    assert ok.success, ok.error
    got = await queue.GetJob(qp.GetJobRequest(auth_token=t, job_id=queued.id))
    assert got.job.status == "cancelled"
    again = await queue.UpdateJob(
        qp.UpdateJobRequest(auth_token=t, job=qp.Job(id=queued.id, status="cancelled"))
    )
    assert again.success  # already cancelled: nothing to change
    missing = await queue.UpdateJob(
        qp.UpdateJobRequest(auth_token=t, job=qp.Job(id="nope", status="cancelled"))
    )
    assert not missing.success and "no job with id 'nope'" in missing.error
    weird = await queue.UpdateJob(qp.UpdateJobRequest(auth_token=t, job=qp.Job(id=queued.id, status="zzz")))
    assert not weird.success and "unknown status 'zzz'" in weird.error


async def test_queue_cancel_finished_refused(shared_server, queue, ops):
    t, md = shared_server.token, shared_server.metadata
    job = (await ops.Enqueue(op.EnqueueRequest(handler="pulse.noop"), metadata=md)).job
    await wait_finished(ops, md, job.id)
    resp = await queue.UpdateJob(qp.UpdateJobRequest(auth_token=t, job=qp.Job(id=job.id, status="cancelled")))
    assert not resp.success and "already finished" in resp.error


# ---------------------------------------------------------------- OperatorService: auth


async def test_operator_auth(shared_server, ops):
    req = op.ServerInfoRequest()
    await expect_code(ops.GetServerInfo(req), grpc.StatusCode.UNAUTHENTICATED, "missing authorization")
    await expect_code(
        ops.GetServerInfo(req, metadata=(("authorization", "Bearer nope"),)),
        grpc.StatusCode.UNAUTHENTICATED,
        "invalid auth token",
    )
    await expect_code(
        ops.GetServerInfo(req, metadata=(("authorization", "Basic abc"),)),
        grpc.StatusCode.UNAUTHENTICATED,
        "Bearer",
    )
    info = await ops.GetServerInfo(req, metadata=shared_server.readonly_metadata)
    assert info.read_only and "pulse.sleep" in info.builtin_handlers
    info = await ops.GetServerInfo(req, metadata=shared_server.metadata)
    assert not info.read_only and info.listen == shared_server.address and info.store.startswith("sqlite:")


async def test_operator_readonly_refused_on_mutations(shared_server, ops):
    ro, md = shared_server.readonly_metadata, shared_server.metadata
    before = await total_jobs(ops, md)
    denied = grpc.StatusCode.PERMISSION_DENIED
    await expect_code(ops.Enqueue(op.EnqueueRequest(handler="pulse.noop"), metadata=ro), denied, "read-only")
    await expect_code(ops.CancelJobs(op.JobSelector(ids=["x"]), metadata=ro), denied)
    await expect_code(ops.RetryJobs(op.JobSelector(ids=["x"]), metadata=ro), denied)
    await expect_code(ops.ReloadPlugin(op.PluginNameRequest(name="demo"), metadata=ro), denied)
    await expect_code(ops.SetPluginEnabled(op.SetPluginEnabledRequest(name="demo"), metadata=ro), denied)
    # reads work
    await ops.ListJobs(op.ListJobsRequest(limit=1), metadata=ro)
    await ops.ListHandlers(op.ListHandlersRequest(), metadata=ro)
    assert await total_jobs(ops, md) == before


# ---------------------------------------------------------------- OperatorService: jobs


@pytest.mark.parametrize(
    ("req", "fragment"),
    [
        (op.EnqueueRequest(handler="pulse.nop"), "did you mean 'pulse.noop'"),
        (op.EnqueueRequest(handler="nothing.like.it"), "handlers list"),
        (op.EnqueueRequest(handler="pulse.noop", payload=b"[1,"), "payload is not JSON"),
        (op.EnqueueRequest(handler="pulse.noop", payload=b"1" * (1024 * 1024 + 1)), "the limit is"),
        (op.EnqueueRequest(handler="pulse.noop", max_attempts=-1), "max_attempts"),
        (op.EnqueueRequest(handler="pulse.noop", timeout_secs=-5), "timeout must not be negative"),
        (op.EnqueueRequest(handler="pulse.noop", delay_secs=-1), "delay"),
        (op.EnqueueRequest(handler="pulse.noop", priority=10**6), "priority"),
    ],
)
async def test_operator_enqueue_bad_input_stores_nothing(shared_server, ops, req, fragment):
    md = shared_server.metadata
    before = await total_jobs(ops, md)
    await expect_code(ops.Enqueue(req, metadata=md), grpc.StatusCode.INVALID_ARGUMENT, fragment)
    assert await total_jobs(ops, md) == before


async def test_operator_reads_bad_input(shared_server, ops):
    md = shared_server.metadata
    bad = grpc.StatusCode.INVALID_ARGUMENT
    await expect_code(
        ops.ListJobs(op.ListJobsRequest(filter=op.JobFilter(statuses=["done"])), metadata=md),
        bad,
        "unknown status",
    )
    await expect_code(
        ops.ListJobs(op.ListJobsRequest(limit=-1), metadata=md), bad, "limit must not be negative"
    )
    await expect_code(ops.ListJobs(op.ListJobsRequest(offset=-3), metadata=md), bad, "offset")
    await expect_code(ops.CountJobs(op.CountJobsRequest(cap=-1), metadata=md), bad, "cap")
    await expect_code(ops.GetJob(op.GetJobRequest(id=""), metadata=md), bad, "job id is empty")
    await expect_code(ops.GetJob(op.GetJobRequest(id="nope"), metadata=md), grpc.StatusCode.NOT_FOUND, "nope")


async def test_operator_enqueue_detail_and_pagination(shared_server, ops):
    md = shared_server.metadata
    ids = []
    for i in range(5):
        resp = await ops.Enqueue(
            op.EnqueueRequest(
                handler="pulse.sleep",
                payload=json.dumps({"seconds": 0.05, "steps": 2}).encode(),
                source=f"page-{i}",
            ),
            metadata=md,
        )
        ids.append(resp.job.id)
        assert resp.job.status == "queued" and resp.job.seq > 0
    detail = await wait_finished(ops, md, ids[-1])
    assert detail.job.status == "completed"
    assert (detail.job.progress_current, detail.job.progress_total) == (2, 2)
    assert json.loads(detail.result) == {"slept": 0.05, "steps": 2}
    assert [a.outcome for a in detail.attempts] == ["completed"]
    assert any("slept" in e.message for e in detail.logs)

    flt = op.JobFilter(handler="pulse.sleep")
    page1 = await ops.ListJobs(op.ListJobsRequest(filter=flt, limit=3), metadata=md)
    assert len(page1.jobs) == 3 and page1.has_more
    page2 = await ops.ListJobs(
        op.ListJobsRequest(filter=flt, limit=3, after_seq=page1.next_after_seq), metadata=md
    )
    seqs = [j.seq for j in [*page1.jobs, *page2.jobs]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    counts = await ops.CountJobs(op.CountJobsRequest(filter=flt), metadata=md)
    assert counts.total >= 5 and set(counts.by_status) >= {"queued", "completed"}


async def test_operator_cancel_and_retry(shared_server, ops):
    md = shared_server.metadata
    before = await total_jobs(ops, md)
    queued = (await ops.Enqueue(op.EnqueueRequest(handler="pulse.noop", delay_secs=3600), metadata=md)).job
    failing = (
        await ops.Enqueue(
            op.EnqueueRequest(handler="pulse.fail", payload=b'{"error": "boom"}', max_attempts=1), metadata=md
        )
    ).job
    done = (await ops.Enqueue(op.EnqueueRequest(handler="pulse.noop"), metadata=md)).job
    assert (await wait_finished(ops, md, failing.id)).job.status == "failed"
    assert (await wait_finished(ops, md, done.id)).job.status == "completed"

    dry = await ops.CancelJobs(op.JobSelector(ids=[queued.id, done.id, "nope"], dry_run=True), metadata=md)
    assert list(dry.affected_ids) == [queued.id] and dry.matched == 3
    errors = {f.id: f.error for f in dry.failures}
    assert "already finished" in errors[done.id] and "no job with id 'nope'" in errors["nope"]
    assert (await ops.GetJob(op.GetJobRequest(id=queued.id), metadata=md)).job.status == "queued"

    resp = await ops.CancelJobs(op.JobSelector(ids=[queued.id, done.id, "nope"]), metadata=md)
    assert list(resp.affected_ids) == [queued.id] and len(resp.failures) == 2
    assert (await ops.GetJob(op.GetJobRequest(id=queued.id), metadata=md)).job.status == "cancelled"

    retry = await ops.RetryJobs(op.JobSelector(ids=[failing.id, done.id]), metadata=md)
    assert list(retry.affected_ids) == [failing.id]
    assert "completed jobs are not retried" in retry.failures[0].error
    again = await wait_finished(ops, md, failing.id)
    assert again.job.status == "failed" and again.job.retry_count == 1
    assert [a.outcome for a in again.attempts] == ["failed", "failed"]  # history kept, same id
    assert await total_jobs(ops, md) == before + 3

    bad = grpc.StatusCode.INVALID_ARGUMENT
    await expect_code(ops.CancelJobs(op.JobSelector(limit=-1), metadata=md), bad, "limit")
    await expect_code(
        ops.CancelJobs(op.JobSelector(filter=op.JobFilter(statuses=["nope"])), metadata=md),
        bad,
        "unknown status",
    )


async def test_operator_bulk_by_filter(shared_server, ops):
    md = shared_server.metadata
    for _ in range(3):
        await ops.Enqueue(
            op.EnqueueRequest(handler="pulse.noop", delay_secs=3600, source="bulk"), metadata=md
        )
    flt = op.JobFilter(statuses=["queued"], handler="pulse.noop")
    dry = await ops.CancelJobs(op.JobSelector(filter=flt, limit=2, dry_run=True), metadata=md)
    assert dry.matched == 2 and dry.truncated and len(dry.affected_ids) == 2
    resp = await ops.CancelJobs(op.JobSelector(filter=flt, limit=100), metadata=md)
    assert resp.matched >= 3 and not resp.truncated and not resp.failures
    left = await ops.CountJobs(op.CountJobsRequest(filter=op.JobFilter(handler="pulse.noop")), metadata=md)
    assert left.by_status["queued"] == 0


async def test_operator_retry_running_refused(inproc_server):
    md = inproc_server.metadata
    async with grpc.aio.insecure_channel(inproc_server.address) as ch:
        ops = op_grpc.OperatorServiceStub(ch)
        job = (
            await ops.Enqueue(
                op.EnqueueRequest(handler="pulse.sleep", payload=b'{"seconds": 5}'), metadata=md
            )
        ).job
        call = ops.WatchJobs(op.WatchJobsRequest(), metadata=md)
        await call.read()
        status = (await ops.GetJob(op.GetJobRequest(id=job.id), metadata=md)).job.status
        while status != "running":
            status = (await call.read()).job.status
        resp = await ops.RetryJobs(op.JobSelector(ids=[job.id]), metadata=md)
        assert (
            not resp.affected_ids and "only failed or cancelled jobs can be retried" in resp.failures[0].error
        )
        cancel = await ops.CancelJobs(op.JobSelector(ids=[job.id]), metadata=md)
        assert list(cancel.affected_ids) == [job.id]
        detail = await ops.GetJob(op.GetJobRequest(id=job.id), metadata=md)
        assert detail.job.status == "cancelled" and detail.attempts[-1].outcome == "cancelled"
        call.cancel()


async def test_watch_jobs_events_and_heartbeat(inproc_server):
    inproc_server.server.operator.heartbeat_secs = 0.2
    md = inproc_server.metadata
    async with grpc.aio.insecure_channel(inproc_server.address) as ch:
        ops = op_grpc.OperatorServiceStub(ch)
        await expect_code(ops.WatchJobs(op.WatchJobsRequest()).read(), grpc.StatusCode.UNAUTHENTICATED)
        call = ops.WatchJobs(op.WatchJobsRequest(filter=op.JobFilter(handler="pulse.sleep")), metadata=md)
        assert (await call.read()).kind == "heartbeat"
        await ops.Enqueue(op.EnqueueRequest(handler="pulse.noop"), metadata=md)  # filtered out
        job = (
            await ops.Enqueue(
                op.EnqueueRequest(handler="pulse.sleep", payload=b'{"seconds": 0.2, "steps": 2}'), metadata=md
            )
        ).job
        seen: list[str] = []
        while not seen or seen[-1] != "completed":
            event = await asyncio.wait_for(call.read(), 10)
            if event.kind == "upsert":
                assert event.job.handler == "pulse.sleep" and event.job.id == job.id
                seen.append(event.job.status)
        assert seen[0] == "queued" and "running" in seen
        # idle: heartbeats keep coming
        assert (await asyncio.wait_for(call.read(), 5)).kind == "heartbeat"
        call.cancel()


# ---------------------------------------------------------------- plugins, handlers, health, reflection


async def test_plugins_handlers_scripts_without_host(shared_server, ops):
    md = shared_server.metadata
    assert list((await ops.ListPlugins(op.ListPluginsRequest(), metadata=md)).plugins) == []
    nf = grpc.StatusCode.NOT_FOUND
    await expect_code(
        ops.GetPlugin(op.GetPluginRequest(name="demo"), metadata=md), nf, "no plugin named 'demo'"
    )
    await expect_code(ops.ReloadPlugin(op.PluginNameRequest(name="demo"), metadata=md), nf)
    await expect_code(ops.SetPluginEnabled(op.SetPluginEnabledRequest(name="demo"), metadata=md), nf)
    handlers = (await ops.ListHandlers(op.ListHandlersRequest(), metadata=md)).handlers
    names = {h.name for h in handlers}
    assert {"pulse.noop", "pulse.sleep", "pulse.fail"} <= names
    assert all(h.builtin for h in handlers if h.name.startswith("pulse."))
    assert not (await ops.ListHandlers(op.ListHandlersRequest(conflicts_only=True), metadata=md)).handlers
    assert not (await ops.ListScripts(op.ListScriptsRequest(), metadata=md)).scripts  # none saved yet


async def test_health_and_reflection(shared_server, channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "protocol.QueueService", "pulse.operator.v1.OperatorService"):
        resp = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = refl.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    resp = await call.read()
    await call.done_writing()
    names = {s.name for s in resp.list_services_response.service}
    assert {"protocol.QueueService", "pulse.operator.v1.OperatorService", "grpc.health.v1.Health"} <= names
