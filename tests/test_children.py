"""Child jobs, kept cost estimates, QNTX retry_count and idempotent enqueue, on a real server with
a raw plugin process (tests/plugins/children.py, written against the wire contract only)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from test_engine import wait_status

from pulse_tui.config import parse_config
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as opg
from pulse_tui.protocol import queue_pb2 as qp
from pulse_tui.protocol import queue_pb2_grpc as qpg
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.server import PulseServer, ServerSettings

PLUGIN = Path(__file__).resolve().parent / "plugins" / "children.py"
SDK_PLUGIN = """
from pulse_tui.sdk import JobError, Plugin

plugin = Plugin("sdkkids", version="1.0")


@plugin.handler("sdk.fanout")
async def fanout(ctx, payload):
    ids = [await ctx.enqueue("pulse.noop", {"part": i}, cost_estimate=0.5) for i in range(2)]
    again = await ctx.enqueue("pulse.noop", {"part": 0}, job_id="sdk-kid")
    again = [again, await ctx.enqueue("pulse.noop", {"part": 0}, job_id="sdk-kid")]
    try:
        await ctx.enqueue("no.such.handler")
    except JobError as exc:
        return {"ids": ids, "again": again, "refused": str(exc)}
    return {"ids": ids, "again": again}


if __name__ == "__main__":
    plugin.run()
"""


class Conn:
    def __init__(self, srv: PulseServer, ch: grpc.aio.Channel) -> None:
        self.srv, self.engine = srv, srv.engine
        self.ops, self.queue = opg.OperatorServiceStub(ch), qpg.QueueServiceStub(ch)
        self.token = srv.auth._admin
        self.md = (("authorization", f"Bearer {self.token}"),)

    async def run(self, spawn: list[dict], then: str = "ok", **kw) -> str:
        payload = json.dumps({"spawn": spawn, "then": then}).encode()
        req = op.EnqueueRequest(handler="kids.run", payload=payload, **kw)
        return (await self.ops.Enqueue(req, metadata=self.md)).job.id

    async def detail(self, job_id: str) -> op.JobDetail:
        return await self.ops.GetJob(op.GetJobRequest(id=job_id), metadata=self.md)

    async def children(self, parent: str) -> list[op.Job]:
        req = op.ListJobsRequest(filter=op.JobFilter(parent_job_id=parent), oldest_first=True)
        return list((await self.ops.ListJobs(req, metadata=self.md)).jobs)


async def until(engine: Engine, check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Re-check `check` at every batch of job changes (the event bus, not sleeps)."""
    with engine.bus.watch() as w:
        deadline = time.monotonic() + timeout
        while not await check():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for the condition")
            await w.next_batch(timeout=min(left, 1.0))


@pytest.fixture
async def conn(tmp_path: Path) -> AsyncIterator[Conn]:
    text = f"""
[server]
max_children = 3
max_child_depth = 2

[handler_limits]
"kids.run" = 3

[[plugins]]
name = "kids"
command = ["{sys.executable}", "{PLUGIN}"]

[[plugins]]
name = "sdkkids"
command = ["{sys.executable}", "{tmp_path / "sdkkids.py"}"]
"""
    (tmp_path / "sdkkids.py").write_text(SDK_PLUGIN)
    cfg = parse_config(text, file="pulse.toml", base_dir=tmp_path)
    settings = ServerSettings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", grace=1.0, retention_secs=None
    )
    settings.max_children, settings.max_child_depth = cfg.server.max_children, cfg.server.max_child_depth
    srv = PulseServer(settings, cfg)
    await srv.start()
    srv.engine.backoff_base, srv.engine.backoff_cap = 0.01, 0.05
    try:
        async with grpc.aio.insecure_channel(srv.address) as ch:
            yield Conn(srv, ch)
    finally:
        await srv.stop(0)


NOOP = {"handler": "pulse.noop"}


async def test_plugin_children_carry_the_running_job_and_limits_refuse(conn: Conn):
    # three children (the limit here): each carries the running job's id; the plugin, running
    # one job, may leave parent_job_id empty (the server sets it) or name that job
    bare = {**NOOP, "parent_job_id": ""}
    parent = await conn.run([bare, NOOP, bare, NOOP, {**NOOP, "parent_job_id": "someone-else"}])
    done = await wait_status(conn.engine, parent, {"completed"})
    out = json.loads(done.result)
    assert all(out["ids"][:3]) and out["errors"][:3] == ["", "", ""]
    assert out["ids"][3] == "" and out["errors"][3] == (
        f"job {parent} already has 3 children (limit [server] max_children = 3)"
    )
    assert "job someone-else is not running on this instance of plugin 'kids'" in out["errors"][4]
    kids = await conn.children(parent)
    assert sorted(k.id for k in kids) == sorted(out["ids"][:3])
    assert all(k.parent_job_id == parent for k in kids)
    counts = await conn.ops.CountJobs(
        op.CountJobsRequest(filter=op.JobFilter(parent_job_id=parent)), metadata=conn.md
    )
    assert counts.total == 3
    many = op.EnqueueManyRequest(jobs=[op.EnqueueRequest(handler="pulse.noop", parent_job_id=parent)] * 2)
    with pytest.raises(grpc.aio.AioRpcError, match=f"job {parent} already has 3 children"):
        await conn.ops.EnqueueMany(many, metadata=conn.md)
    # depth: top (0) -> child (1) -> grandchild (2) is the limit of 2; a child of that is refused
    deep = {"handler": "kids.run", "payload": {"spawn": [NOOP]}}
    top = await conn.run([{"handler": "kids.run", "payload": {"spawn": [deep]}}])
    await wait_status(conn.engine, top, {"completed"})

    async def level(parent_id: str) -> op.Job:
        await until(conn.engine, lambda: _ended_child(conn, parent_id))
        (kid,) = await conn.children(parent_id)
        return kid

    child = await level(top)
    grandchild = await level(child.id)
    await wait_status(conn.engine, grandchild.id, {"completed"})
    out = json.loads((await conn.detail(grandchild.id)).result)
    assert out["ids"] == [""] and out["errors"] == [
        f"a child of job {grandchild.id} would be more than 2 levels below its top job "
        "(limit [server] max_child_depth = 2)"
    ]
    # the SDK: ctx.enqueue makes children of the running job
    req = op.EnqueueRequest(handler="sdk.fanout")
    fan = (await conn.ops.Enqueue(req, metadata=conn.md)).job.id
    out = json.loads((await wait_status(conn.engine, fan, {"completed", "failed"})).result)
    assert out["again"] == ["sdk-kid", "sdk-kid"]
    assert out["refused"].startswith("enqueue 'no.such.handler' refused: unknown handler")
    kids = await conn.children(fan)
    assert sorted(k.id for k in kids) == sorted([*out["ids"], "sdk-kid"])
    assert [k.cost_estimate for k in kids if k.id in out["ids"]] == [0.5, 0.5]
    # an operator naming a parent that does not exist is refused
    with pytest.raises(grpc.aio.AioRpcError, match="parent job 'nope' does not exist"):
        await conn.ops.Enqueue(
            op.EnqueueRequest(handler="pulse.noop", parent_job_id="nope"), metadata=conn.md
        )


async def _ended_child(conn: Conn, parent_id: str) -> bool:
    kids = await conn.children(parent_id)
    return len(kids) == 1 and kids[0].status == "completed"


async def test_failed_or_cancelled_parent_cancels_its_unfinished_children(conn: Conn):
    hold = {"handler": "kids.run", "payload": {"then": "hold"}}
    # the parent fails after spawning three children that hold; kids.run runs 3 at a time, so
    # two children may run and one waits queued: both kinds are cancelled
    parent = await conn.run([hold, hold, hold], then="fail", max_attempts=1)
    assert (await wait_status(conn.engine, parent, {"failed"})).error == "failed on purpose"
    kids = json.loads((await conn.detail(parent)).result)["ids"]
    assert len(kids) == 3 and all(kids)
    for kid in kids:
        job = await wait_status(conn.engine, kid, {"cancelled", "completed", "failed"})
        assert (job.status, job.error) == ("cancelled", f"parent {parent} failed")
    # an operator cancel of a running parent: its running child, and that child's queued child
    # (three kids.run run at once: the top, the child and the probe below)
    probe = {"handler": "kids.run", "payload": {"spawn": [{**NOOP, "parent_job_id": ""}]}}
    top = await conn.run(
        [{"handler": "kids.run", "payload": {"spawn": [hold], "then": "hold"}}, probe], then="hold"
    )

    async def grandchild_queued() -> bool:
        kids = await conn.children(top)
        return (
            len(kids) == 2
            and kids[0].status == "running"
            and kids[1].status == "completed"
            and len(await conn.children(kids[0].id)) == 1
        )

    await until(conn.engine, grandchild_queued)
    child, probe_job = await conn.children(top)
    (grand,) = await conn.children(child.id)
    # the probe ran beside other jobs of its instance and named no parent: which one is unclear
    out = json.loads((await conn.detail(probe_job.id)).result)
    assert out["ids"] == [""]
    assert re.fullmatch(
        r"plugin 'kids' runs \d jobs on this instance; set job.parent_job_id to the one this child belongs to",
        out["errors"][0],
    )
    await conn.ops.CancelJobs(op.JobSelector(ids=[top]), metadata=conn.md)
    job = await wait_status(conn.engine, child.id, {"cancelled", "completed", "failed"})
    assert (job.status, job.error) == ("cancelled", f"parent {top} cancelled")
    job = await wait_status(conn.engine, grand.id, {"cancelled", "completed", "failed"})
    assert (job.status, job.error) == ("cancelled", f"parent {child.id} cancelled")
    # a completed parent leaves its children alone
    keep = await conn.ops.Enqueue(
        op.EnqueueRequest(handler="pulse.noop", parent_job_id=top, delay_secs=3600), metadata=conn.md
    )
    ok = await conn.run([])
    await wait_status(conn.engine, ok, {"completed"})
    assert (await conn.detail(keep.job.id)).job.status == "queued"


async def test_qntx_retry_count_cost_estimate_and_idempotent_enqueue(conn: Conn):
    # retry_count on the QNTX wire counts retries: 2 after three attempts; the operator wire
    # keeps counting operator retries (0 here)
    failing = await conn.run([], then="fail", max_attempts=3)
    assert (await wait_status(conn.engine, failing, {"failed"})).attempts == 3
    got = await conn.queue.GetJob(qp.GetJobRequest(auth_token=conn.token, job_id=failing))
    assert got.success and got.job.retry_count == 2
    assert (await conn.detail(failing)).job.retry_count == 0

    # cost_estimate given at enqueue is kept (both wires) and shown beside cost_actual
    def enq(**job) -> qp.EnqueueRequest:
        return qp.EnqueueRequest(auth_token=conn.token, job=qp.Job(**job))

    resp = await conn.queue.Enqueue(enq(handler_name="pulse.noop", cost_estimate=0.25))
    assert resp.success, resp.error
    assert (await conn.detail(resp.job_id)).job.cost_estimate == 0.25
    req = op.EnqueueRequest(handler="pulse.noop", cost_estimate=1.5, delay_secs=3600)
    assert (await conn.ops.Enqueue(req, metadata=conn.md)).job.cost_estimate == 1.5
    got = await conn.queue.GetJob(qp.GetJobRequest(auth_token=conn.token, job_id=resp.job_id))
    assert got.job.cost_estimate == 0.25

    # idempotent enqueue: the same id with the same handler and payload returns that job, also
    # when many arrive at once; a different payload or handler is refused; bad ids are refused
    same = enq(id="order-42", handler_name="pulse.noop", payload=b'{"a": 1, "b": 2}')
    first = await conn.queue.Enqueue(same)
    assert first.success and first.job_id == "order-42"
    again = await asyncio.gather(*(conn.queue.Enqueue(same) for _ in range(20)))
    assert all(r.success and r.job_id == "order-42" for r in again), again
    reordered = await conn.queue.Enqueue(
        enq(id="order-42", handler_name="pulse.noop", payload=b'{"b":2,"a":1}')
    )
    assert reordered.success and reordered.job_id == "order-42"
    other = await conn.queue.Enqueue(enq(id="order-42", handler_name="pulse.noop", payload=b'{"a": 2}'))
    assert not other.success and "already exists with a different payload" in other.error
    other = await conn.queue.Enqueue(
        enq(id="order-42", handler_name="pulse.sleep", payload=b'{"a": 1, "b": 2}')
    )
    assert not other.success and "already exists with handler 'pulse.noop'" in other.error
    bad = await conn.queue.Enqueue(enq(id="no spaces", handler_name="pulse.noop"))
    assert not bad.success and "must be 1-64 of [A-Za-z0-9._:-]" in bad.error
    listed = await conn.ops.ListJobs(
        op.ListJobsRequest(filter=op.JobFilter(text="order-42")), metadata=conn.md
    )
    assert [j.id for j in listed.jobs] == ["order-42"]
    # concurrent first enqueues of a new id: one job, every caller gets it
    burst = op.EnqueueRequest(handler="pulse.noop", id="burst-1", delay_secs=3600)
    replies = await asyncio.gather(*(conn.ops.Enqueue(burst, metadata=conn.md) for _ in range(20)))
    assert {r.job.id for r in replies} == {"burst-1"}
    assert sum(not r.existed for r in replies) == 1
