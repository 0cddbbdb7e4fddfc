"""PulseClient against a real `pulse-tui serve` (built-in handlers), plus error translation."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pulse_tui.client import COMPAT, OPERATOR, PLUGIN, ClientError, PulseClient, filter_matches, job_filter
from pulse_tui.protocol import operator_pb2
from pulse_tui.script_template import template
from pulse_tui.vocab import Reason


async def _until(cond, timeout: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = cond()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_probe_and_job_lifecycle(shared_server) -> None:
    async with PulseClient(shared_server.address, shared_server.token) as client:
        assert await client.probe() == OPERATOR
        assert client.can("watch") and not client.read_only
        ok = await client.enqueue("pulse.noop", {"n": 1})
        bad = await client.enqueue("pulse.fail", {"error": "nope"}, max_attempts=1)
        slow = await client.enqueue("pulse.sleep", {"seconds": 30, "steps": 3})

        async def status(job_id: str) -> str:
            return (await client.get_job(job_id)).job.status

        await _until(lambda: _eq(status(ok.id), "completed"), what="noop completes")
        await _until(lambda: _eq(status(bad.id), "failed"), what="fail fails")
        detail = await client.get_job(bad.id)
        assert "nope" in detail.job.error and detail.attempts[0].outcome == "failed"

        page = await client.list_jobs(job_filter(["failed"]), limit=10)
        assert bad.id in [j.id for j in page.jobs]
        counts = await client.count_jobs()
        assert counts.by_status["failed"] >= 1

        await client.retry(bad.id)
        await _until(lambda: _eq(status(bad.id), "failed"), what="retried job fails again")
        assert (await client.get_job(bad.id)).job.retry_count == 1

        await client.cancel(slow.id)
        assert await status(slow.id) == "cancelled"
        with pytest.raises(ClientError) as err:
            await client.cancel(ok.id)
        assert err.value.code == "FAILED_PRECONDITION"

        dry = await client.retry_jobs(flt=job_filter(["failed"]), limit=10, dry_run=True)
        assert dry.matched >= 1
        assert (await client.get_job(bad.id)).job.status == "failed"  # dry run changed nothing


async def _eq(coro, expected) -> bool:
    return (await coro) == expected


async def test_watch_jobs_streams_upserts(shared_server) -> None:
    async with PulseClient(shared_server.address, shared_server.token) as client:
        await client.probe()
        seen: list[operator_pb2.JobEvent] = []
        got = asyncio.Event()

        async def watch() -> None:
            async for ev in client.watch_jobs():
                seen.append(ev)
                if ev.kind == "upsert" and ev.job.handler == "pulse.noop" and ev.job.status == "completed":
                    got.set()
                    return

        task = asyncio.create_task(watch())
        for _ in range(50):  # the stream may open after the first job finished: keep feeding
            await client.enqueue("pulse.noop")
            try:
                await asyncio.wait_for(got.wait(), 0.2)
                break
            except TimeoutError:
                continue
        assert got.is_set()
        task.cancel()
        assert any(ev.kind == "upsert" for ev in seen)


async def test_errors_say_what_to_do(shared_server) -> None:
    async with PulseClient(shared_server.address, "wrong-token") as client:
        with pytest.raises(ClientError) as err:
            await client.probe()
        assert err.value.code == "UNAUTHENTICATED"
        assert "--token-file" in err.value.message

    address = f"127.0.0.1:{_free_port()}"
    async with PulseClient(address, "x", timeout=2.0) as client:
        with pytest.raises(ClientError) as err:
            await client.probe()
        assert err.value.unavailable
        assert address in err.value.message and "pulse-tui serve" in err.value.message

    async with PulseClient(shared_server.address, shared_server.readonly_token) as client:
        await client.probe()
        assert client.read_only
        with pytest.raises(ClientError) as err:
            await client.enqueue("pulse.noop")
        assert err.value.code == "PERMISSION_DENIED" and "read-only" in err.value.message

    async with PulseClient(shared_server.address, shared_server.token) as client:
        await client.probe()
        with pytest.raises(ClientError) as err:
            await client.enqueue("no.such.handler")
        assert err.value.code == "INVALID_ARGUMENT"


async def test_compat_mode_against_queue_service(shared_server) -> None:
    """Force compat mode against the server's QueueService (QNTX wire protocol)."""
    async with PulseClient(shared_server.address, shared_server.token) as client:
        await client.probe()
        client.mode = COMPAT
        assert not client.can("watch") and client.can("cancel")
        job = await client.enqueue("pulse.sleep", {"seconds": 30})
        page = await client.list_jobs(job_filter(), limit=50)
        assert job.id in [j.id for j in page.jobs]
        resp = await client.cancel_jobs([job.id])
        assert list(resp.affected_ids) == [job.id]
        assert (await client.get_job(job.id)).job.status == "cancelled"
        retry = await client.retry_jobs([job.id])
        assert list(retry.affected_ids) == [job.id]
        page = await client.list_jobs(job_filter(), limit=200)
        copies = [j for j in page.jobs if j.parent_job_id == job.id]
        assert copies and copies[0].retry_count == 1
        counts = await client.count_jobs()
        assert counts.total >= 2
        client.mode = OPERATOR  # leave nothing running for the shared server's shutdown
        await client.cancel_jobs(flt=job_filter(["queued", "running"]), limit=100)


def test_filter_matches() -> None:
    job = operator_pb2.Job(id="abc123", handler="demo.sleep", status="failed", error="Boom")
    assert filter_matches(job_filter(["failed"], "demo.sleep", "boom"), job)
    assert not filter_matches(job_filter(["running"]), job)
    assert not filter_matches(job_filter(handler="demo.echo"), job)
    assert filter_matches(job_filter(text="C12"), job)


async def test_each_reason_reaches_the_client(shared_server) -> None:
    """The server sends why a call failed as `pulse-reason` trailing metadata; ClientError.reason
    reads it back (the status code alone cannot tell an unknown handler from a bad payload)."""
    async with PulseClient(shared_server.address, "wrong-token") as client:
        with pytest.raises(ClientError) as err:
            await client.probe()
        assert (err.value.code, err.value.reason) == ("UNAUTHENTICATED", Reason.UNAUTHENTICATED)

    async with PulseClient(shared_server.address, shared_server.readonly_token) as client:
        await client.probe()
        with pytest.raises(ClientError) as err:
            await client.enqueue("pulse.noop")
        assert (err.value.code, err.value.reason) == ("PERMISSION_DENIED", Reason.READ_ONLY)
        assert "read-only" in err.value.message

    async with PulseClient(shared_server.address, shared_server.token) as client:
        await client.probe()
        cases = {
            Reason.UNKNOWN_HANDLER: client.enqueue("no.such.handler"),
            Reason.INVALID_ARGUMENT: client.enqueue("pulse.noop", "{not json"),
            Reason.NOT_FOUND: client.get_job("no-such-job"),
        }
        for reason, call in cases.items():
            with pytest.raises(ClientError) as err:
                await call
            assert err.value.reason == reason, (reason, err.value.code, err.value.message)
        assert err.value.code == "NOT_FOUND" and "no-such-job" in err.value.message

        # a single-job action answers with a BulkResponse failure: its reason comes along
        job = await client.enqueue("pulse.noop", delay_secs=3600)
        await client.cancel(job.id)
        with pytest.raises(ClientError) as err:
            await client.cancel(job.id)
        assert (err.value.code, err.value.reason) == ("FAILED_PRECONDITION", Reason.INVALID_STATE)

        # handler scripts: deleting a version that is not the current one is a conflict
        saved = await client.save_script("reasons", template("reasons"))
        assert saved.saved, saved.error
        with pytest.raises(ClientError) as err:
            await client.delete_script("reasons", base_version="v-that-never-was")
        assert (err.value.code, err.value.reason) == ("FAILED_PRECONDITION", Reason.CONFLICT)
        assert await client.delete_script("reasons", base_version=saved.script.version)

        client.mode = COMPAT  # the client refuses what the endpoint's mode cannot do
        with pytest.raises(ClientError) as err:
            await client.list_plugins()
        assert err.value.reason == Reason.UNSUPPORTED

    address = f"127.0.0.1:{_free_port()}"
    async with PulseClient(address, "x", timeout=2.0) as client:
        with pytest.raises(ClientError) as err:
            await client.probe()
        assert err.value.reason == Reason.UNREACHABLE and err.value.unavailable


async def test_a_plugin_token_is_denied_with_its_reason(inproc_server) -> None:
    srv = inproc_server.server
    assert srv is not None and srv.auth is not None
    token = srv.auth.issue_plugin_token("somebody")
    async with PulseClient(inproc_server.address, token) as client:
        with pytest.raises(ClientError) as err:
            await client.probe()
        assert (err.value.code, err.value.reason) == ("PERMISSION_DENIED", Reason.PERMISSION_DENIED)
        assert "plugin tokens may only use QueueService" in err.value.message  # not "read-only"


async def test_a_dead_plugin_endpoint_is_called_a_plugin() -> None:
    """Attached to a bare plugin endpoint, a lost connection names what it lost: "plugin at …"."""
    import subprocess
    import sys

    proc = subprocess.Popen(  # noqa: ASYNC220 — the plugin process under test, started once
        [sys.executable, "-m", "pulse_tui.plugins.demo", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split("=", 1)[1])
        async with PulseClient(f"127.0.0.1:{port}", timeout=2.0) as client:
            assert await client.probe() == PLUGIN
            proc.terminate()
            proc.wait(10)
            with pytest.raises(ClientError) as err:
                await client.probe()
            assert err.value.unavailable and err.value.reason == Reason.UNREACHABLE
            assert err.value.message.startswith(f"plugin at 127.0.0.1:{port} is not reachable"), err.value
            assert "plugin process" in err.value.message and "pulse-tui serve" not in err.value.message
    finally:
        proc.kill()
        proc.wait(10)
