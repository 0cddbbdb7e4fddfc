"""Shared helpers for the reliability, bad-input, fuzz, security and soak tests.

Everything works against real `pulse-tui serve` processes (see conftest.py): gRPC stubs with the
admin token, a read-only snapshot of the SQLite store (row counts + a checksum of every row of
jobs / attempts / job_logs), /proc readings (RSS, open fds) and bounded waits on conditions.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.protocol import queue_pb2_grpc as qp_grpc

T = TypeVar("T")

SOAK_FULL = os.environ.get("PULSE_SOAK") == "full"
FINISHED = ("completed", "failed", "cancelled")
STATUSES = ("queued", "running", "paused", "completed", "failed", "cancelled")
BUILTINS = ("pulse.noop", "pulse.sleep", "pulse.fail")

DEMO = """
[[plugins]]
name = "demo"
command = ["{python}", "-m", "pulse_tui.plugins.demo"]
"""


def demo_config(concurrency: int | None = None, extra: str = "") -> str:
    """Config text with the bundled demo plugin (data_dir is added by conftest)."""
    server = f"concurrency = {concurrency}\n" if concurrency else ""
    return (f"[server]\n{server}\n" if server else "") + DEMO + extra


# ---------------------------------------------------------------- waiting


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Re-check `predicate` until it returns something truthy (returned) or `timeout` passes.

    This waits on a condition with a deadline; the interval only bounds how often it is asked."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- gRPC


@dataclass
class Client:
    """Stubs for one server with the admin token's metadata."""

    channel: grpc.Channel
    ops: op_grpc.OperatorServiceStub
    queue: qp_grpc.QueueServiceStub
    md: tuple[tuple[str, str], ...]
    token: str

    def close(self) -> None:
        self.channel.close()

    def counts(self) -> dict[str, int]:
        return dict(self.ops.CountJobs(op.CountJobsRequest(cap=10_000_000), metadata=self.md).by_status)

    def plugin(self, name: str) -> op.Plugin:
        return self.ops.GetPlugin(op.GetPluginRequest(name=name), metadata=self.md)

    def enqueue_many(
        self, handler: str, payloads: Iterable[bytes], *, in_flight: int = 64, **fields: Any
    ) -> list[str]:
        """Enqueue with at most `in_flight` calls outstanding (thousands at once come back
        CANCELLED, FIELD-NOTES); returns the job ids in order."""
        ids: list[str] = []
        batch: list[Any] = []

        def drain() -> None:
            ids.extend(f.result().job.id for f in batch)
            batch.clear()

        for p in payloads:
            batch.append(
                self.ops.Enqueue.future(
                    op.EnqueueRequest(handler=handler, payload=p, **fields), metadata=self.md
                )
            )
            if len(batch) >= in_flight:
                drain()
        drain()
        return ids

    def all_jobs(self) -> list[op.Job]:
        """Every job, oldest first (keyset pagination)."""
        out: list[op.Job] = []
        after = 0
        while True:
            r = self.ops.ListJobs(
                op.ListJobsRequest(limit=1000, after_seq=after, oldest_first=True), metadata=self.md
            )
            out.extend(r.jobs)
            if not r.has_more:
                return out
            after = r.next_after_seq


def connect(address: str, token: str, credentials: grpc.ChannelCredentials | None = None) -> Client:
    opts = [("grpc.max_send_message_length", 16 << 20), ("grpc.max_receive_message_length", 16 << 20)]
    ch = (
        grpc.secure_channel(address, credentials, options=opts)
        if credentials is not None
        else grpc.insecure_channel(address, options=opts)
    )
    grpc.channel_ready_future(ch).result(timeout=15)
    return Client(
        ch,
        op_grpc.OperatorServiceStub(ch),
        qp_grpc.QueueServiceStub(ch),
        (("authorization", f"Bearer {token}"),),
        token,
    )


def wait_drained(client: Client, total: int, timeout: float) -> dict[str, int]:
    """Wait until `total` jobs are finished; return the counts by status."""

    def done() -> dict[str, int] | None:
        c = client.counts()
        return c if sum(c.get(s, 0) for s in FINISHED) >= total else None

    return wait_until(done, timeout, f"{total} jobs to finish", interval=0.05)


# ---------------------------------------------------------------- the store, read-only


def db_path(data_dir: Path) -> Path:
    return data_dir / "pulse.db"


def store_snapshot(data_dir: Path) -> dict[str, Any]:
    """Row counts and a SHA-256 of every row of jobs, attempts and job_logs (read-only open),
    plus the names and contents of saved handler scripts."""
    uri = f"file:{db_path(data_dir)}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        snap: dict[str, Any] = {}
        for table, order in (("jobs", "seq"), ("attempts", "job_seq, number"), ("job_logs", "rowid")):
            h = hashlib.sha256()
            n = 0
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                h.update(repr(row).encode())
                n += 1
            snap[table] = (n, h.hexdigest())
    finally:
        conn.close()
    scripts = data_dir / "scripts"
    h = hashlib.sha256()
    if scripts.is_dir():
        for f in sorted(scripts.rglob("*")):
            h.update(str(f.relative_to(scripts)).encode())
            if f.is_file():
                h.update(f.read_bytes())
    snap["scripts"] = h.hexdigest()
    return snap


def stored_jobs(data_dir: Path) -> list[dict[str, Any]]:
    uri = f"file:{db_path(data_dir)}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM jobs ORDER BY seq")]
    finally:
        conn.close()


def stored_attempts(data_dir: Path) -> list[dict[str, Any]]:
    uri = f"file:{db_path(data_dir)}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    conn.row_factory = sqlite3.Row
    try:
        # the attempts rows, and a completed job's last attempt, which is kept in its job row
        return [
            dict(r)
            for r in conn.execute(
                "SELECT job_seq, number, started_at, ended_at, outcome, error, plugin, plugin_version, node"
                " FROM attempts a WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.seq = a.job_seq"
                " AND j.status = 'completed' AND j.attempts = a.number)"
                " UNION ALL SELECT seq, attempts, started_at, completed_at, 'completed', '', plugin,"
                " plugin_version, node FROM jobs WHERE status = 'completed' AND attempts > 0"
                " ORDER BY 1, 2"
            )
        ]
    finally:
        conn.close()


def assert_no_garbage(data_dir: Path, handlers: Iterable[str]) -> int:
    """Every stored job has a JSON payload, a known handler and a legal status; returns the count."""
    known = set(handlers)
    rows = stored_jobs(data_dir)
    for r in rows:
        json.loads(bytes(r["payload"]))
        assert r["handler"] in known, r
        assert r["status"] in STATUSES, r
    return len(rows)


# ---------------------------------------------------------------- /proc


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def kill_quietly(pid: int) -> None:
    if pid > 0 and alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)  # plugins run in their own process group
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- a probe plugin (written to a temp file)

# A plugin for fault and security tests. Its environment is dumped to $PROBE_OUT/env.json at
# start-up (and summarised in its Metadata description); the token it got at Initialize goes to
# $PROBE_OUT/init.json. Handlers:
#   probe.ok     returns {"ok": true}
#   probe.hang   never returns, ignoring timeouts and cancellation (a hung plugin)
#   probe.scope  {"other": JOB_ID}: tries, with its plugin token, what a plugin may and may not do
PROBE_PLUGIN = r"""
import asyncio, json, os, sys
import grpc
from pulse_tui.protocol import operator_pb2, operator_pb2_grpc, queue_pb2, queue_pb2_grpc
from pulse_tui.sdk import Plugin

OUT = os.environ.get("PROBE_OUT", "")
ENV = dict(os.environ)
if OUT:
    with open(os.path.join(OUT, "env.json"), "w") as f:
        json.dump(ENV, f)
plugin = Plugin("probe", version="0.1", description="env keys: " + ",".join(sorted(ENV)))
STATE = {}


@plugin.on_initialize
def init(config):
    return None


@plugin.handler("probe.ok")
async def ok(ctx, payload):
    return {"ok": True}


@plugin.handler("probe.hang")
async def hang(ctx, payload):
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            continue


@plugin.handler("probe.scope")
async def scope(ctx, payload):
    sink = ctx._sink
    token, endpoint = sink.token, sink.endpoint
    if OUT:
        with open(os.path.join(OUT, "init.json"), "w") as f:
            json.dump({"token": token, "endpoint": endpoint}, f)
    other = payload["other"]
    out = {}
    async with grpc.aio.insecure_channel(endpoint) as ch:
        q = queue_pb2_grpc.QueueServiceStub(ch)

        async def call(name, coro):
            r = await coro
            out[name] = [r.success, r.error]

        await call("update_own", q.UpdateJob(queue_pb2.UpdateJobRequest(auth_token=token, job=queue_pb2.Job(
            id=ctx.job_id, progress=queue_pb2.Progress(current=1, total=2)))))
        await call("get_own", q.GetJob(queue_pb2.GetJobRequest(auth_token=token, job_id=ctx.job_id)))
        await call("update_other", q.UpdateJob(queue_pb2.UpdateJobRequest(auth_token=token, job=queue_pb2.Job(
            id=other, progress=queue_pb2.Progress(current=1, total=2)))))
        await call("cancel_other", q.UpdateJob(queue_pb2.UpdateJobRequest(auth_token=token, job=queue_pb2.Job(
            id=other, status="cancelled"))))
        await call("get_other", q.GetJob(queue_pb2.GetJobRequest(auth_token=token, job_id=other)))
        await call("complete_own", q.UpdateJob(queue_pb2.UpdateJobRequest(auth_token=token, job=queue_pb2.Job(
            id=ctx.job_id, status="completed"))))
        await call("list", q.ListJobs(queue_pb2.ListJobsRequest(auth_token=token)))
        await call("enqueue", q.Enqueue(queue_pb2.EnqueueRequest(auth_token=token, job=queue_pb2.Job(
            handler_name="probe.ok", payload=b"{}", parent_job_id=other))))
        ops = operator_pb2_grpc.OperatorServiceStub(ch)
        try:
            await ops.ListJobs(operator_pb2.ListJobsRequest(), metadata=(("authorization", "Bearer " + token),))
            out["operator_list"] = "OK"
        except grpc.aio.AioRpcError as exc:
            out["operator_list"] = exc.code().name + ": " + exc.details()
    return out


if __name__ == "__main__":
    plugin.run()
"""


def probe_config(tmp: Path, out: Path | None = None, startup_timeout: float = 10.0) -> str:
    """Write the probe plugin to `tmp/probe_plugin.py`; return its [[plugins]] table."""
    path = tmp / "probe_plugin.py"
    path.write_text(PROBE_PLUGIN)
    env = f"env = {{ PROBE_OUT = {json.dumps(str(out))} }}\n" if out else ""
    return (
        '[[plugins]]\nname = "probe"\n'
        f'command = ["{{python}}", {json.dumps(str(path))}]\n{env}startup_timeout = {startup_timeout}\n'
    )
