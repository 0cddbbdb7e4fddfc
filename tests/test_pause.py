"""Pause and resume: jobs (OperatorService and QNTX's QueueService.UpdateJob) and whole handlers,
against a real in-process server on 127.0.0.1 (SQLite). Store-level behaviour on both backends is
in test_store.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from pulse_tui.client import ClientError, PulseClient, job_filter
from pulse_tui.config import Config
from pulse_tui.protocol import queue_pb2 as qp
from pulse_tui.protocol import queue_pb2_grpc as qg
from pulse_tui.pulse.server import PulseServer, ServerSettings


@asynccontextmanager
async def running(
    data_dir: Path, config: Config | None = None, **kw
) -> AsyncIterator[tuple[PulseServer, PulseClient]]:
    kw.setdefault("retention_secs", None)
    settings = ServerSettings(listen="127.0.0.1:0", data_dir=data_dir, grace=1.0, **kw)
    srv = PulseServer(settings, config or Config())
    await srv.start()
    token = (data_dir / "token").read_text().strip()
    try:
        async with PulseClient(srv.address, token) as client:
            await client.probe()
            yield srv, client
    finally:
        await srv.stop(0)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Poll a condition through the API (each check is a round trip; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)


async def test_pause_and_resume_a_queued_job_by_operator_service(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as (_, client):
        a = await client.enqueue("pulse.noop", {}, delay_secs=3600)  # delayed: stays queued
        b = await client.enqueue("pulse.noop", {}, delay_secs=3600)
        dry = await client.pause_jobs([a.id], dry_run=True)
        assert list(dry.affected_ids) == [a.id]
        assert (await client.get_job(a.id)).job.status == "queued"
        resp = await client.pause_jobs([a.id])
        assert list(resp.affected_ids) == [a.id] and not resp.failures
        job = (await client.get_job(a.id)).job
        assert job.status == "paused" and job.pause_reason == "user_requested"
        again = await client.pause_jobs([a.id])
        assert "already paused" in again.failures[0].error
        # "all matching the filter": b only (a is paused, not queued)
        by_filter = await client.pause_jobs(flt=job_filter(["queued"], handler="pulse.noop"))
        assert list(by_filter.affected_ids) == [b.id]
        resumed = await client.resume_jobs(flt=job_filter(["paused"]))
        assert sorted(resumed.affected_ids) == sorted([a.id, b.id])
        after = (await client.get_job(a.id)).job
        assert after.status == "queued" and after.pause_reason == "" and after.seq == a.seq
        assert after.run_at == pytest.approx(a.run_at)  # still delayed
        not_paused = await client.resume_jobs([a.id])
        assert "only paused jobs can be resumed" in not_paused.failures[0].error


async def test_pausing_running_or_finished_jobs_is_refused_clearly(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as (_, client):
        slow = await client.enqueue("pulse.sleep", {"seconds": 30})
        done = await client.enqueue("pulse.noop", {})

        async def status(job_id: str, want: str) -> bool:
            return (await client.get_job(job_id)).job.status == want

        await until(lambda: status(slow.id, "running"), "the sleep job runs")
        await until(lambda: status(done.id, "completed"), "the noop job completes")
        resp = await client.pause_jobs([slow.id, done.id])
        errors = {f.id: f.error for f in resp.failures}
        assert "running job cannot be paused; cancel it instead" in errors[slow.id]
        assert "already finished" in errors[done.id]
        assert not resp.affected_ids
        await client.cancel(slow.id)


async def test_qntx_update_job_pauses_and_resumes_with_pulse_state(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as (srv, client):
        token = client.token
        async with grpc.aio.insecure_channel(srv.address) as ch:
            stub = qg.QueueServiceStub(ch)
            await client.pause_handler("pulse.noop")  # new jobs are held: none runs before we look
            r = await stub.Enqueue(
                qp.EnqueueRequest(auth_token=token, job=qp.Job(handler_name="pulse.noop", payload=b"{}"))
            )
            assert r.success
            g = await stub.GetJob(qp.GetJobRequest(auth_token=token, job_id=r.job_id))
            assert g.job.status == "paused" and g.job.pulse_state.is_paused
            assert g.job.pulse_state.pause_reason == "handler_paused"
            u = await stub.UpdateJob(
                qp.UpdateJobRequest(auth_token=token, job=qp.Job(id=r.job_id, status="queued"))
            )
            assert not u.success and "resume the handler" in u.error
            await client.resume_handler("pulse.noop")
            await until(lambda: _q_status(stub, token, r.job_id, "completed"), "the released job completes")

            # a delayed job via OperatorService so it is surely queued when UpdateJob arrives
            late = await client.enqueue("pulse.noop", {}, delay_secs=3600)
            u = await stub.UpdateJob(
                qp.UpdateJobRequest(auth_token=token, job=qp.Job(id=late.id, status="paused"))
            )
            assert u.success, u.error
            lst = await stub.ListJobs(qp.ListJobsRequest(auth_token=token, status="paused"))
            assert [(j.id, j.pulse_state.is_paused, j.pulse_state.pause_reason) for j in lst.jobs] == [
                (late.id, True, "user_requested")
            ]
            u = await stub.UpdateJob(
                qp.UpdateJobRequest(auth_token=token, job=qp.Job(id=late.id, status="queued"))
            )
            assert u.success, u.error
            g = await stub.GetJob(qp.GetJobRequest(auth_token=token, job_id=late.id))
            assert g.job.status == "queued" and not g.job.pulse_state.is_paused
            assert g.job.pulse_state.pause_reason == ""
            # the read-only token may not pause
            ro = (srv.settings.data_dir / "token.readonly").read_text().strip()
            u = await stub.UpdateJob(
                qp.UpdateJobRequest(auth_token=ro, job=qp.Job(id=late.id, status="paused"))
            )
            assert not u.success and "read-only" in u.error.lower()


async def _q_status(stub: qg.QueueServiceStub, token: str, job_id: str, want: str) -> bool:
    g = await stub.GetJob(qp.GetJobRequest(auth_token=token, job_id=job_id))
    return g.job.status == want


async def test_paused_handler_holds_100_jobs_while_another_runs_then_drains_fifo(tmp_path: Path) -> None:
    # one pulse.noop at a time, so the start order is the claim order
    async with running(tmp_path / "d", handler_limits={"pulse.noop": 1}) as (_, client):
        h = await client.pause_handler("pulse.noop")
        assert h.paused and h.pause_reason == "user_requested" and h.paused_at > 0 and h.changed_jobs == 0
        ids = await client.enqueue_many([client_req("pulse.noop", i) for i in range(100)])
        other = await client.enqueue("pulse.sleep", {"seconds": 0})

        async def other_done() -> bool:
            return (await client.get_job(other.id)).job.status == "completed"

        await until(other_done, "the other handler's job runs")
        counts = await client.count_jobs(job_filter(handler="pulse.noop"))
        assert counts.by_status["paused"] == 100 and counts.by_status.get("completed", 0) == 0
        page = await client.list_jobs(job_filter(["paused"]), limit=5)
        assert all(j.pause_reason == "handler_paused" for j in page.jobs)
        listed = {x.name: x for x in await client.list_handlers()}
        assert listed["pulse.noop"].paused and listed["pulse.noop"].paused_jobs == 100
        assert not listed["pulse.sleep"].paused
        with pytest.raises(ClientError, match="resume the handler"):  # held by the handler
            await client.resume(ids[0])
        h = await client.resume_handler("pulse.noop")
        assert not h.paused and h.changed_jobs == 100

        async def drained() -> bool:
            c = await client.count_jobs(job_filter(handler="pulse.noop"))
            return c.by_status.get("completed", 0) == 100

        await until(drained, "the 100 held jobs complete", timeout=30)
        started = await client.list_jobs(
            job_filter(handler="pulse.noop"), limit=100, oldest_first=True, sort_by="started"
        )
        assert [j.id for j in started.jobs] == ids  # FIFO: the order they were enqueued in


def client_req(handler: str, i: int):
    from pulse_tui.protocol import operator_pb2 as op

    return op.EnqueueRequest(handler=handler, payload=f'{{"i": {i}}}'.encode())


async def test_handler_pause_survives_a_restart_and_holds_new_jobs(tmp_path: Path) -> None:
    data = tmp_path / "d"
    async with running(data) as (_, client):
        await client.pause_handler("pulse.noop")
        held = await client.enqueue("pulse.noop", {})
        assert held.status == "paused" and held.pause_reason == "handler_paused"
        with pytest.raises(ClientError, match="no handler named 'pulse.nope'"):
            await client.pause_handler("pulse.nope")
    async with running(data) as (_, client):
        listed = {x.name: x for x in await client.list_handlers()}
        assert listed["pulse.noop"].paused
        new = await client.enqueue("pulse.noop", {})
        assert new.status == "paused" and new.pause_reason == "handler_paused"
        await client.resume_handler("pulse.noop")

        async def both_done() -> bool:
            return [(await client.get_job(j)).job.status for j in (held.id, new.id)] == ["completed"] * 2

        await until(both_done, "both held jobs run after the resume")


async def test_read_only_token_cannot_pause(tmp_path: Path) -> None:
    async with running(tmp_path / "d") as (srv, _):
        ro = (srv.settings.data_dir / "token.readonly").read_text().strip()
        async with PulseClient(srv.address, ro) as client:
            await client.probe()
            for call in (
                client.pause_jobs(["x"]),
                client.resume_jobs(["x"]),
                client.pause_handler("pulse.noop"),
                client.resume_handler("pulse.noop"),
            ):
                with pytest.raises(ClientError, match="(?i)read-only") as e:
                    await call
                assert e.value.code == "PERMISSION_DENIED"


async def test_compat_client_pauses_and_resumes_through_queue_service(tmp_path: Path) -> None:
    from pulse_tui.client import COMPAT

    async with running(tmp_path / "d") as (_, client):
        job = await client.enqueue("pulse.noop", {}, delay_secs=3600)
        client.mode = COMPAT  # what the console does against a QueueService-only server (QNTX)
        assert client.can("pause") and not client.can("pause-handlers")
        resp = await client.pause_jobs([job.id])
        assert list(resp.affected_ids) == [job.id], resp.failures
        got = (await client.get_job(job.id)).job
        assert got.status == "paused" and got.pause_reason == "user_requested"
        again = await client.pause_jobs([job.id])
        assert "only queued or delayed jobs can be paused" in again.failures[0].error
        resp = await client.resume_jobs([job.id])
        assert list(resp.affected_ids) == [job.id], resp.failures
        assert (await client.get_job(job.id)).job.status == "queued"
