"""Tokens: files (0600, 64 hex, atomic, reused), constant-time checks, per-plugin token scope."""

from __future__ import annotations

import asyncio
import stat

import grpc
import pytest

from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.protocol import queue_pb2 as qp
from pulse_tui.protocol import queue_pb2_grpc as qp_grpc
from pulse_tui.pulse.auth import (
    ADMIN,
    PLUGIN,
    READONLY,
    Authenticator,
    TokenFileError,
    load_or_create_token,
    write_secret_file,
)
from pulse_tui.pulse.errors import PermissionDenied, Unauthenticated
from pulse_tui.pulse.handlers import HandlerResult, JobContext


def test_token_files_created_0600_and_reused(tmp_path):
    auth = Authenticator.from_data_dir(tmp_path)
    for name in ("token", "token.readonly"):
        path = tmp_path / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = path.read_text().strip()
        assert len(token) == 64 and int(token, 16) >= 0
    admin = (tmp_path / "token").read_text().strip()
    readonly = (tmp_path / "token.readonly").read_text().strip()
    assert admin != readonly
    assert auth.identify(admin).role == ADMIN and auth.identify(readonly).role == READONLY
    again = Authenticator.from_data_dir(tmp_path)  # second start: same tokens
    assert again.identify(admin).role == ADMIN
    assert not list(tmp_path.glob(".*.tmp"))


def test_token_file_permissions_repaired_and_garbage_refused(tmp_path):
    path = tmp_path / "token"
    write_secret_file(path, "a" * 64)
    path.chmod(0o644)
    assert load_or_create_token(path) == "a" * 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not a token\n")
    with pytest.raises(TokenFileError, match="delete it and restart"):
        load_or_create_token(path)


def test_identify(tmp_path):
    auth = Authenticator("a" * 64, "b" * 64)
    with pytest.raises(Unauthenticated, match="missing"):
        auth.identify("")
    with pytest.raises(Unauthenticated, match="invalid"):
        auth.identify("a" * 63)
    with pytest.raises(Unauthenticated, match="invalid"):
        auth.identify("\udcff")  # not even encodable: still a clean refusal
    with pytest.raises(Unauthenticated, match="Bearer"):
        auth.identify_bearer("Token " + "a" * 64)
    assert auth.identify_bearer("Bearer " + "a" * 64).role == ADMIN
    plugin_token = auth.issue_plugin_token("demo")
    p = auth.identify(plugin_token)
    assert (p.role, p.plugin) == (PLUGIN, "demo")
    with pytest.raises(PermissionDenied, match="plugin 'demo' may not"):
        p.require_admin("enqueue jobs")
    auth.revoke_plugin_token("demo")
    with pytest.raises(Unauthenticated):
        auth.identify(plugin_token)


class _Blocking:
    """A plugin's handler that runs until released."""

    def __init__(self, plugin: str, name: str, release: asyncio.Event) -> None:
        self.plugin = plugin
        self.name = name
        self.release = release

    async def run(self, ctx: JobContext) -> HandlerResult:
        await self.release.wait()
        return HandlerResult(result=b"{}")


async def test_plugin_token_only_touches_its_running_job(inproc_server):
    srv = inproc_server.server
    release = asyncio.Event()
    srv.router.set_plugin("p", ["p.work"], lambda name: _Blocking("p", name, release))
    srv.router.set_plugin("q", ["q.work"], lambda name: _Blocking("q", name, release))
    srv.engine.routes_changed()
    token_p = srv.auth.issue_plugin_token("p")
    md = inproc_server.metadata
    async with grpc.aio.insecure_channel(inproc_server.address) as ch:
        ops, queue = op_grpc.OperatorServiceStub(ch), qp_grpc.QueueServiceStub(ch)
        mine = (await ops.Enqueue(op.EnqueueRequest(handler="p.work"), metadata=md)).job
        other = (await ops.Enqueue(op.EnqueueRequest(handler="q.work"), metadata=md)).job
        queued = (
            await ops.Enqueue(op.EnqueueRequest(handler="pulse.noop", delay_secs=3600), metadata=md)
        ).job
        async with asyncio.timeout(10):
            while not {mine.id, other.id} <= set(srv.engine.running_jobs()):
                await asyncio.sleep(0.01)

        def update(job: qp.Job) -> qp.UpdateJobRequest:
            return qp.UpdateJobRequest(auth_token=token_p, job=job)

        ok = await queue.UpdateJob(
            update(qp.Job(id=mine.id, progress=qp.Progress(current=3, total=7), cost_actual=0.5))
        )
        assert ok.success, ok.error
        got = await queue.GetJob(qp.GetJobRequest(auth_token=token_p, job_id=mine.id))
        assert got.success and (got.job.progress.current, got.job.progress.total) == (3, 7)

        for job_id in (other.id, queued.id, "nope"):
            resp = await queue.UpdateJob(update(qp.Job(id=job_id, progress=qp.Progress(current=1, total=1))))
            assert not resp.success and "not running on plugin 'p'" in resp.error
            resp = await queue.GetJob(qp.GetJobRequest(auth_token=token_p, job_id=job_id))
            assert not resp.success and "not running on plugin 'p'" in resp.error
        status = await queue.UpdateJob(update(qp.Job(id=mine.id, status="completed")))
        assert not status.success and "plugins may not change a job's status" in status.error
        listed = await queue.ListJobs(qp.ListJobsRequest(auth_token=token_p))
        assert not listed.success and "may not list" in listed.error
        # enqueue: only children of its own running job (the parent is that job)
        enq = await queue.Enqueue(
            qp.EnqueueRequest(auth_token=token_p, job=qp.Job(handler_name="pulse.noop"))
        )
        assert enq.success, enq.error
        child = await ops.GetJob(op.GetJobRequest(id=enq.job_id), metadata=md)
        assert child.job.parent_job_id == mine.id
        for parent in (other.id, queued.id):
            enq = await queue.Enqueue(
                qp.EnqueueRequest(
                    auth_token=token_p, job=qp.Job(handler_name="pulse.noop", parent_job_id=parent)
                )
            )
            assert not enq.success and f"job {parent} is not running on this instance" in enq.error
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await ops.ListJobs(op.ListJobsRequest(), metadata=(("authorization", f"Bearer {token_p}"),))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (await ops.GetJob(op.GetJobRequest(id=mine.id), metadata=md)).job.status == "running"
        release.set()
