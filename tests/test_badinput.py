"""Bad input, table-driven: every OperatorService and QueueService RPC and every CLI command with
wrong tokens, missing / wrong-type fields, non-JSON and oversize payloads, unknown handlers,
illegal transitions, unicode and control characters, huge limits and negative numbers.

Each case asserts the specific error (gRPC code + message fragment, QueueService `error`, or the
CLI's exit status + `error:` line) and that the store is byte-for-byte unchanged: row counts and a
SHA-256 of every row of jobs / attempts / job_logs (read with a read-only SQLite URI) and of the
saved scripts, before and after.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from conftest import ServerHandle, start_server_process
from helpers.reliability import Client, connect, store_snapshot, wait_until

from pulse_tui import cli
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import queue_pb2 as qp

MiB = 1024 * 1024
BAD = (("authorization", "Bearer " + "0" * 64),)


@dataclass
class World:
    srv: ServerHandle
    c: Client
    ro: tuple[tuple[str, str], ...]
    completed: str
    cancelled: str
    failed: str
    queued: str
    tmp: Any


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("badinput")
    srv = start_server_process(base)
    c = connect(srv.address, srv.token)
    (completed,) = c.enqueue_many("pulse.noop", [b'{"a": 1}'])
    (failed,) = c.enqueue_many("pulse.fail", [b'{"error": "as asked"}'], max_attempts=1)
    (cancelled,) = c.enqueue_many("pulse.noop", [b"{}"], delay_secs=86400)
    (queued,) = c.enqueue_many("pulse.noop", [b"{}"], delay_secs=86400)
    c.ops.CancelJobs(op.JobSelector(ids=[cancelled]), metadata=c.md)

    def settled() -> bool:
        got = {i: c.ops.GetJob(op.GetJobRequest(id=i), metadata=c.md).job.status for i in (completed, failed)}
        return got == {completed: "completed", failed: "failed"}

    wait_until(settled, 20, "the fixture jobs to settle")
    (base / "wrong").write_text("f" * 64 + "\n")
    (base / "two-lines").write_text("abc\ndef\n")
    yield World(srv, c, srv.readonly_metadata, completed, cancelled, failed, queued, base)
    c.close()
    srv.stop()


def rpc_error(code: grpc.StatusCode, fragment: str) -> Callable[[Callable[[], Any]], None]:
    def check(call: Callable[[], Any]) -> None:
        with pytest.raises(grpc.RpcError) as err:
            r = call()
            if hasattr(r, "__next__"):  # a stream: the error comes with the first message
                next(r)
        assert err.value.code() == code, (err.value.code(), err.value.details())
        assert fragment in err.value.details(), err.value.details()

    return check


def queue_error(fragment: str) -> Callable[[Callable[[], Any]], None]:
    def check(call: Callable[[], Any]) -> None:
        r = call()
        assert not r.success and fragment in r.error, r

    return check


def bulk_failure(fragment: str) -> Callable[[Callable[[], Any]], None]:
    def check(call: Callable[[], Any]) -> None:
        r = call()
        assert not r.affected_ids and len(r.failures) == 1 and fragment in r.failures[0].error, r

    return check


def ok(predicate: Callable[[Any], bool]) -> Callable[[Callable[[], Any]], None]:
    def check(call: Callable[[], Any]) -> None:
        r = call()
        assert predicate(r), r

    return check


U = grpc.StatusCode.UNAUTHENTICATED
P = grpc.StatusCode.PERMISSION_DENIED
I = grpc.StatusCode.INVALID_ARGUMENT  # noqa: E741
N = grpc.StatusCode.NOT_FOUND


def operator_cases(w: World) -> list[tuple[str, Callable[[], Any], Callable]]:
    o, md, ro = w.c.ops, w.c.md, w.ro

    def enq(**kw: Any) -> Callable[[], Any]:
        return lambda: o.Enqueue(op.EnqueueRequest(**{"handler": "pulse.noop", **kw}), metadata=md)

    def listing(**kw: Any) -> Callable[[], Any]:
        return lambda: o.ListJobs(op.ListJobsRequest(**kw), metadata=md)

    return [
        # ---- tokens
        ("no-token", lambda: o.ListJobs(op.ListJobsRequest()), rpc_error(U, "missing authorization")),
        (
            "basic-auth",
            lambda: o.ListJobs(op.ListJobsRequest(), metadata=(("authorization", "Basic eA=="),)),
            rpc_error(U, "malformed authorization"),
        ),
        (
            "empty-bearer",
            lambda: o.ListJobs(op.ListJobsRequest(), metadata=(("authorization", "Bearer "),)),
            rpc_error(U, "malformed authorization"),
        ),
        (
            "wrong-token-list",
            lambda: o.ListJobs(op.ListJobsRequest(), metadata=BAD),
            rpc_error(U, "invalid auth token"),
        ),
        (
            "wrong-token-enqueue",
            lambda: o.Enqueue(op.EnqueueRequest(handler="pulse.noop"), metadata=BAD),
            rpc_error(U, "invalid auth token"),
        ),
        (
            "wrong-token-watch",
            lambda: o.WatchJobs(op.WatchJobsRequest(), metadata=BAD),
            rpc_error(U, "invalid auth"),
        ),
        (
            "wrong-token-info",
            lambda: o.GetServerInfo(op.ServerInfoRequest(), metadata=BAD),
            rpc_error(U, "invalid"),
        ),
        (
            "ro-enqueue",
            lambda: o.Enqueue(op.EnqueueRequest(handler="pulse.noop"), metadata=ro),
            rpc_error(P, "read-only token may not enqueue"),
        ),
        (
            "ro-cancel",
            lambda: o.CancelJobs(op.JobSelector(ids=[w.queued]), metadata=ro),
            rpc_error(P, "may not cancel"),
        ),
        (
            "ro-retry",
            lambda: o.RetryJobs(op.JobSelector(ids=[w.failed]), metadata=ro),
            rpc_error(P, "may not retry"),
        ),
        (
            "ro-reload",
            lambda: o.ReloadPlugin(op.PluginNameRequest(name="x"), metadata=ro),
            rpc_error(P, "may not reload"),
        ),
        (
            "ro-enable",
            lambda: o.SetPluginEnabled(op.SetPluginEnabledRequest(name="x"), metadata=ro),
            rpc_error(P, "may not enable"),
        ),
        (
            "ro-save-script",
            lambda: o.SaveScript(op.SaveScriptRequest(name="x", code="def run(p, c): 1"), metadata=ro),
            rpc_error(P, "may not save"),
        ),
        (
            "ro-delete-script",
            lambda: o.DeleteScript(op.DeleteScriptRequest(name="x"), metadata=ro),
            rpc_error(P, "may not delete"),
        ),
        # ---- enqueue: handlers, payloads, numbers
        ("handler-empty", enq(handler=""), rpc_error(I, "handler name is empty")),
        ("handler-unknown", enq(handler="nope.nothing"), rpc_error(I, "unknown handler 'nope.nothing'")),
        ("handler-typo", enq(handler="pulse.noopp"), rpc_error(I, "did you mean 'pulse.noop'")),
        ("handler-nul", enq(handler="pulse.no\x00op"), rpc_error(I, "control characters")),
        ("handler-newline", enq(handler="pulse.noop\n"), rpc_error(I, "control characters")),
        ("handler-space", enq(handler="pulse noop"), rpc_error(I, "spaces")),
        ("handler-rtl", enq(handler="\u202epulse.noop"), rpc_error(I, "unknown handler")),
        ("handler-emoji", enq(handler="pulse.\U0001f4a5"), rpc_error(I, "unknown handler")),
        ("handler-huge", enq(handler="h" * 10_000), rpc_error(I, "handler name")),
        ("payload-text", enq(payload=b"not json"), rpc_error(I, "payload is not JSON")),
        ("payload-binary", enq(payload=b"\xff\xfe\x00"), rpc_error(I, "payload is not JSON")),
        ("payload-truncated", enq(payload=b'{"a": '), rpc_error(I, "payload is not JSON")),
        ("payload-nan", enq(payload=b'{"a": NaN'), rpc_error(I, "payload is not JSON")),
        (
            "payload-over-limit",
            enq(payload=b'"' + b"x" * MiB + b'"'),
            rpc_error(I, "the limit is 1,048,576 bytes"),
        ),
        (
            "payload-over-grpc-max",
            enq(payload=b"x" * (5 * MiB)),
            rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        ),
        ("max-attempts-negative", enq(max_attempts=-1), rpc_error(I, "max_attempts must be 0")),
        ("max-attempts-huge", enq(max_attempts=2**31 - 1), rpc_error(I, "max_attempts must be 0")),
        ("timeout-negative", enq(timeout_secs=-5), rpc_error(I, "timeout must not be negative")),
        ("timeout-huge", enq(timeout_secs=2**62), rpc_error(I, "over the 7-day limit")),
        ("priority-low", enq(priority=-(2**31)), rpc_error(I, "priority must be between")),
        ("priority-high", enq(priority=1001), rpc_error(I, "priority must be between")),
        ("delay-negative", enq(delay_secs=-1.0), rpc_error(I, "delay must be between")),
        ("delay-nan", enq(delay_secs=math.nan), rpc_error(I, "delay must be between")),
        ("delay-inf", enq(delay_secs=math.inf), rpc_error(I, "delay must be between")),
        ("source-long", enq(source="s" * 201), rpc_error(I, "too long")),
        ("parent-long", enq(parent_job_id="p" * 65), rpc_error(I, "too long")),
        # ---- reads
        (
            "get-empty",
            lambda: o.GetJob(op.GetJobRequest(id=""), metadata=md),
            rpc_error(I, "job id is empty"),
        ),
        (
            "get-unknown",
            lambda: o.GetJob(op.GetJobRequest(id="nope"), metadata=md),
            rpc_error(N, "no job with id 'nope'"),
        ),
        (
            "get-control",
            lambda: o.GetJob(op.GetJobRequest(id="\x00\x1b[2J"), metadata=md),
            rpc_error(N, "no job"),
        ),
        (
            "get-sql",
            lambda: o.GetJob(op.GetJobRequest(id="' OR 1=1 --"), metadata=md),
            rpc_error(N, "no job"),
        ),
        ("list-limit-negative", listing(limit=-1), rpc_error(I, "limit must not be negative")),
        ("list-offset-negative", listing(offset=-1), rpc_error(I, "offset must not be negative")),
        (
            "list-status-bogus",
            listing(filter=op.JobFilter(statuses=["exploded"])),
            rpc_error(I, "unknown status 'exploded'"),
        ),
        ("list-text-long", listing(filter=op.JobFilter(text="t" * 201)), rpc_error(I, "too long")),
        ("list-limit-huge", listing(limit=2**31 - 1), ok(lambda r: 0 < len(r.jobs) <= 1000)),
        ("list-offset-huge", listing(offset=2**62), ok(lambda r: not r.jobs)),
        ("list-text-like", listing(filter=op.JobFilter(text="%_\\")), ok(lambda r: not r.jobs)),
        (
            "count-cap-negative",
            lambda: o.CountJobs(op.CountJobsRequest(cap=-1), metadata=md),
            rpc_error(I, "cap must not be negative"),
        ),
        (
            "count-cap-huge",
            lambda: o.CountJobs(op.CountJobsRequest(cap=2**62), metadata=md),
            ok(lambda r: r.total == 4),
        ),
        (
            "watch-status-bogus",
            lambda: o.WatchJobs(op.WatchJobsRequest(filter=op.JobFilter(statuses=["x"])), metadata=md),
            rpc_error(I, "unknown status"),
        ),
        # ---- illegal transitions and selectors
        (
            "cancel-completed",
            lambda: o.CancelJobs(op.JobSelector(ids=[w.completed]), metadata=md),
            bulk_failure("it has already finished"),
        ),
        (
            "cancel-cancelled",
            lambda: o.CancelJobs(op.JobSelector(ids=[w.cancelled]), metadata=md),
            bulk_failure("cannot become cancelled"),
        ),
        (
            "cancel-failed",
            lambda: o.CancelJobs(op.JobSelector(ids=[w.failed]), metadata=md),
            bulk_failure("already finished"),
        ),
        (
            "cancel-unknown",
            lambda: o.CancelJobs(op.JobSelector(ids=["nope"]), metadata=md),
            bulk_failure("no job with id"),
        ),
        (
            "retry-completed",
            lambda: o.RetryJobs(op.JobSelector(ids=[w.completed]), metadata=md),
            bulk_failure("completed jobs are not retried"),
        ),
        (
            "retry-queued",
            lambda: o.RetryJobs(op.JobSelector(ids=[w.queued]), metadata=md),
            bulk_failure("only failed or cancelled jobs can be retried"),
        ),
        (
            "retry-dry-run",
            lambda: o.RetryJobs(op.JobSelector(filter=op.JobFilter(), dry_run=True), metadata=md),
            ok(lambda r: sorted(r.affected_ids) == sorted([w.failed, w.cancelled]) and len(r.failures) == 2),
        ),
        (
            "select-limit-negative",
            lambda: o.CancelJobs(op.JobSelector(limit=-1), metadata=md),
            rpc_error(I, "limit must not be negative"),
        ),
        (
            "select-limit-huge",
            lambda: o.CancelJobs(op.JobSelector(limit=2**31 - 1), metadata=md),
            rpc_error(I, "limit must be at most 100,000"),
        ),
        (
            "select-status-bogus",
            lambda: o.RetryJobs(op.JobSelector(filter=op.JobFilter(statuses=["?"])), metadata=md),
            rpc_error(I, "unknown status"),
        ),
        (
            "select-too-many-ids",
            lambda: o.CancelJobs(op.JobSelector(ids=[f"j{i}" for i in range(100_001)]), metadata=md),
            rpc_error(I, "at most 100,000 ids"),
        ),
        # ---- plugins (none configured) and scripts
        (
            "plugin-empty",
            lambda: o.GetPlugin(op.GetPluginRequest(name=""), metadata=md),
            rpc_error(I, "plugin name is empty"),
        ),
        (
            "plugin-unknown",
            lambda: o.GetPlugin(op.GetPluginRequest(name="nope"), metadata=md),
            rpc_error(N, "no plugin named"),
        ),
        (
            "plugin-control",
            lambda: o.GetPlugin(op.GetPluginRequest(name="\x00\x07", tail_lines=-1), metadata=md),
            rpc_error(N, "no plugin named"),
        ),
        (
            "reload-unknown",
            lambda: o.ReloadPlugin(op.PluginNameRequest(name="../demo"), metadata=md),
            rpc_error(N, "no plugin"),
        ),
        (
            "enable-unknown",
            lambda: o.SetPluginEnabled(op.SetPluginEnabledRequest(name="\u202e", enabled=True), metadata=md),
            rpc_error(N, "no plugin"),
        ),
        (
            "script-traversal",
            lambda: o.SaveScript(op.SaveScriptRequest(name="../evil", code="def run(p, c): 1"), metadata=md),
            rpc_error(I, "is not allowed"),
        ),
        (
            "script-unicode",
            lambda: o.SaveScript(
                op.SaveScriptRequest(name="\u03a9mega", code="def run(p, c): 1"), metadata=md
            ),
            rpc_error(I, "is not allowed"),
        ),
        (
            "script-syntax",
            lambda: o.SaveScript(op.SaveScriptRequest(name="broken", code="def run(:"), metadata=md),
            ok(lambda r: not r.saved and r.error_line == 1 and "line 1" in r.error),
        ),
        (
            "script-nul",
            lambda: o.SaveScript(op.SaveScriptRequest(name="nul", code="def run(p, c):\x00 1"), metadata=md),
            ok(lambda r: not r.saved and r.error),
        ),
        (
            "script-get-unknown",
            lambda: o.GetScript(op.GetScriptRequest(name="nope"), metadata=md),
            rpc_error(N, "no script named"),
        ),
        (
            "script-delete-unknown",
            lambda: o.DeleteScript(op.DeleteScriptRequest(name="nope"), metadata=md),
            rpc_error(N, "no script named"),
        ),
    ]


def queue_cases(w: World) -> list[tuple[str, Callable[[], Any], Callable]]:
    q, t = w.c.queue, w.srv.token

    def enq(job: qp.Job | None = None, token: str = t) -> Callable[[], Any]:
        return lambda: q.Enqueue(qp.EnqueueRequest(auth_token=token, job=job))

    def upd(token: str = t, **job: Any) -> Callable[[], Any]:
        return lambda: q.UpdateJob(qp.UpdateJobRequest(auth_token=token, job=qp.Job(**job)))

    return [
        (
            "q-enqueue-no-token",
            enq(qp.Job(handler_name="pulse.noop"), token=""),
            queue_error("missing auth token"),
        ),
        (
            "q-enqueue-wrong-token",
            enq(qp.Job(handler_name="pulse.noop"), token="x" * 64),
            queue_error("invalid auth token"),
        ),
        (
            "q-enqueue-unicode-token",
            enq(qp.Job(handler_name="pulse.noop"), token="\u00e9\x00"),
            queue_error("invalid auth"),
        ),
        (
            "q-enqueue-readonly",
            enq(qp.Job(handler_name="pulse.noop"), token=w.srv.readonly_token),
            queue_error("read-only token may not enqueue"),
        ),
        ("q-enqueue-no-job", enq(None), queue_error("request has no job")),
        ("q-enqueue-unknown", enq(qp.Job(handler_name="nope")), queue_error("unknown handler 'nope'")),
        ("q-enqueue-control", enq(qp.Job(handler_name="a\tb")), queue_error("control characters")),
        (
            "q-enqueue-not-json",
            enq(qp.Job(handler_name="pulse.noop", payload=b"{'single': 1}")),
            queue_error("not JSON"),
        ),
        (
            "q-enqueue-oversize",
            enq(qp.Job(handler_name="pulse.noop", payload=b"[" + b"1," * (MiB // 2) + b"1]")),
            queue_error("the limit is"),
        ),
        (
            "q-enqueue-retry-negative",
            enq(qp.Job(handler_name="pulse.noop", parent_job_id="p" * 100)),
            queue_error("too long"),
        ),
        (
            "q-get-empty",
            lambda: q.GetJob(qp.GetJobRequest(auth_token=t, job_id="")),
            queue_error("job_id is empty"),
        ),
        (
            "q-get-unknown",
            lambda: q.GetJob(qp.GetJobRequest(auth_token=t, job_id="nope")),
            queue_error("no job with id"),
        ),
        (
            "q-get-wrong-token",
            lambda: q.GetJob(qp.GetJobRequest(auth_token="x", job_id=w.completed)),
            queue_error("invalid"),
        ),
        ("q-update-no-id", upd(), queue_error("request has no job id")),
        ("q-update-unknown", upd(id="nope", status="cancelled"), queue_error("no job with id")),
        ("q-update-complete", upd(id=w.queued, status="completed"), queue_error("UpdateJob can cancel")),
        (
            "q-update-bogus-status",
            upd(id=w.queued, status="exploded"),
            queue_error("unknown status 'exploded'"),
        ),
        (
            "q-update-cancel-completed",
            upd(id=w.completed, status="cancelled"),
            queue_error("already finished"),
        ),
        (
            "q-update-progress-finished",
            upd(id=w.completed, progress=qp.Progress(current=1, total=2)),
            queue_error("not running"),
        ),
        (
            "q-update-negative-progress",
            upd(id=w.queued, progress=qp.Progress(current=-1, total=-5)),
            queue_error("not running"),
        ),
        (
            "q-update-readonly",
            upd(token=w.srv.readonly_token, id=w.queued, status="cancelled"),
            queue_error("read-only token may not update"),
        ),
        (
            "q-list-limit-negative",
            lambda: q.ListJobs(qp.ListJobsRequest(auth_token=t, limit=-1)),
            queue_error("limit must not be negative"),
        ),
        (
            "q-list-status-bogus",
            lambda: q.ListJobs(qp.ListJobsRequest(auth_token=t, status="\x00")),
            queue_error("unknown status"),
        ),
        (
            "q-list-limit-huge",
            lambda: q.ListJobs(qp.ListJobsRequest(auth_token=t, limit=2**31 - 1)),
            ok(lambda r: r.success and len(r.jobs) == 4),
        ),
        (
            "q-list-wrong-token",
            lambda: q.ListJobs(qp.ListJobsRequest(auth_token="")),
            queue_error("missing auth token"),
        ),
    ]


def _run_table(world: World, cases) -> int:
    names = [c[0] for c in cases]
    assert len(names) == len(set(names))
    failures = []
    for name, call, check in cases:
        before = store_snapshot(world.srv.data_dir)
        try:
            check(call)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
            continue
        if store_snapshot(world.srv.data_dir) != before:
            failures.append(f"{name}: the store changed")
    assert not failures, "\n".join(failures)
    return len(cases)


def test_operator_service_bad_input(world):
    n = _run_table(world, operator_cases(world))
    assert world.srv.process.proc.poll() is None
    assert "Traceback" not in world.srv.output()
    print("operator bad-input cases", n)


def test_queue_service_bad_input(world):
    n = _run_table(world, queue_cases(world))
    assert "Traceback" not in world.srv.output()
    print("queue bad-input cases", n)


def cli_cases(w: World) -> list[tuple[str, list[str], int, str]]:
    conn = ["--connect", w.srv.address, "--token-file", str(w.srv.token_file)]
    wrong = ["--connect", w.srv.address, "--token-file", str(w.tmp / "wrong")]
    ro = ["--connect", w.srv.address, "--token-file", str(w.srv.data_dir / "token.readonly")]
    return [
        # usage mistakes: exit 2 (the first said "handler python. not found", the second exited 1)
        ("ix-empty-name", ["ix", "", *conn], 2, "ix '': a handler script's name is"),
        ("ix-path-name", ["ix", "../x", *conn], 2, "ix '../x': a handler script's name is"),
        (
            "enqueue-from-and-handler",
            ["jobs", "enqueue", "pulse.noop", "--from", str(w.tmp / "two-lines"), *conn],
            2,
            "--from takes every job's fields from the file",
        ),
        (
            "enqueue-not-json",
            ["jobs", "enqueue", "pulse.noop", "--payload", "{nope", *conn],
            1,
            "--payload is not JSON",
        ),
        ("enqueue-unknown", ["jobs", "enqueue", "nope.x", *conn], 1, "unknown handler 'nope.x'"),
        ("enqueue-control", ["jobs", "enqueue", "pulse.no\x01op", *conn], 1, "control characters"),
        (
            "enqueue-max-attempts",
            ["jobs", "enqueue", "pulse.noop", "--max-attempts", "-1", *conn],
            1,
            "max_attempts must be",
        ),
        (
            "enqueue-priority",
            ["jobs", "enqueue", "pulse.noop", "--priority", "99999", *conn],
            1,
            "priority must be",
        ),
        (
            "enqueue-timeout",
            ["jobs", "enqueue", "pulse.noop", "--timeout", "-3", *conn],
            1,
            "timeout must not be negative",
        ),
        (
            "enqueue-oversize",
            ["jobs", "enqueue", "pulse.noop", "--payload", '"' + "x" * MiB + '"', *conn],
            1,
            "the limit is",
        ),
        ("enqueue-wrong-token", ["jobs", "enqueue", "pulse.noop", *wrong], 1, "token rejected"),
        ("enqueue-readonly", ["jobs", "enqueue", "pulse.noop", *ro], 1, "read-only"),
        (
            "enqueue-no-token-file",
            [
                "jobs",
                "enqueue",
                "pulse.noop",
                "--connect",
                w.srv.address,
                "--token-file",
                str(w.tmp / "missing"),
            ],
            1,
            "cannot read token file",
        ),
        (
            "enqueue-priority-type",
            ["jobs", "enqueue", "pulse.noop", "--priority", "high", *conn],
            2,
            "invalid int value",
        ),
        ("show-unknown", ["jobs", "show", "nope", *conn], 1, "no job with id 'nope'"),
        ("show-control", ["jobs", "show", "\x1b[31mred", *conn], 1, "no job with id"),
        ("list-limit-zero", ["jobs", "list", "--limit", "0", *conn], 1, "--limit must be between 1 and 1000"),
        ("list-limit-huge", ["jobs", "list", "--limit", str(2**40), *conn], 1, "--limit must be between"),
        ("list-status-bogus", ["jobs", "list", "--status", "exploded", *conn], 1, "unknown status"),
        ("list-wrong-token", ["jobs", "list", *wrong], 1, "token rejected"),
        ("cancel-completed", ["jobs", "cancel", w.completed, *conn], 1, "already finished"),
        ("cancel-unknown", ["jobs", "cancel", "nope", *conn], 1, "no job with id"),
        ("cancel-readonly", ["jobs", "cancel", w.queued, *ro], 1, "read-only"),
        ("retry-queued", ["jobs", "retry", w.queued, *conn], 1, "only failed or cancelled"),
        ("retry-completed", ["jobs", "retry", w.completed, *conn], 1, "completed jobs are not retried"),
        ("plugins-reload-unknown", ["plugins", "reload", "nope", *conn], 1, "no plugin named 'nope'"),
        ("plugins-reload-readonly", ["plugins", "reload", "nope", *ro], 1, "read-only"),
        ("plugins-list-wrong-token", ["plugins", "list", *wrong], 1, "token rejected"),
        ("handlers-list-wrong-token", ["handlers", "list", *wrong], 1, "token rejected"),
        # bytes that are not UTF-8 (`$'\\xff'` in a shell; Python's argv keeps them as lone
        # surrogates) were a UnicodeEncodeError traceback while the request was built
        ("enqueue-not-utf8", ["jobs", "enqueue", "pulse.no\udcffop", *conn], 2, "handler: not valid UTF-8"),
        (
            "enqueue-payload-not-utf8",
            ["jobs", "enqueue", "pulse.noop", "--payload", '{"a": "\udcff"}', *conn],
            2,
            'argument --payload: not valid UTF-8 text: {"a": "\\xff"}',
        ),
        ("show-not-utf8", ["jobs", "show", "\udcff", *conn], 2, "argument id: not valid UTF-8"),
        ("list-not-utf8", ["jobs", "list", "--handler", "x\udcff", *conn], 2, "--handler: not valid UTF-8"),
        ("plugins-show-not-utf8", ["plugins", "show", "\udcff", *conn], 2, "name: not valid UTF-8"),
        ("handlers-pause-not-utf8", ["handlers", "pause", "\udcff", *conn], 2, "name: not valid UTF-8"),
        ("connect-not-utf8", ["--connect", "h\udcff:1", "jobs", "list"], 2, "--connect: not valid UTF-8"),
        # NaN waited forever for a server that does not stop (every comparison with it is false)
        (
            "server-stop-nan",
            ["server", "stop", "--timeout", "nan"],
            2,
            "--timeout: must be 0 or more seconds",
        ),
        ("server-stop-negative", ["server", "stop", "--timeout", "-1"], 2, "--timeout: must be 0 or more"),
        # a token gRPC metadata cannot carry, or a CA file that is not PEM: gRPC tracebacks / errors
        # followed by "not reachable"
        (
            "token-two-lines",
            ["jobs", "list", "--connect", w.srv.address, "--token-file", str(w.tmp / "two-lines")],
            1,
            "holds a character a token cannot have ('\\n' at position 4)",
        ),
        (  # the console said only "no token" (a missing token is let through to the server)
            "console-token-two-lines",
            ["--connect", w.srv.address, "--token-file", str(w.tmp / "two-lines")],
            1,
            "holds a character a token cannot have ('\\n' at position 4)",
        ),
        (
            "tls-ca-not-pem",
            ["jobs", "list", *conn, "--tls-ca", str(w.tmp / "two-lines")],
            1,
            "is not a PEM certificate",
        ),
        (
            "config-is-a-dir",
            ["--config", str(w.tmp), "jobs", "list"],
            2,
            "is a directory; give the pulse.toml",
        ),
        ("config-nothing", ["config"], 2, "nothing to do"),
        ("unknown-command", ["jobs", "explode"], 2, "invalid choice"),
    ]


def test_cli_bad_input(world, capsys):
    failures = []
    cases = cli_cases(world)
    for name, argv, code, fragment in cases:
        before = store_snapshot(world.srv.data_dir)
        try:
            got = cli.main(argv)
        except SystemExit as exc:  # argparse
            got = exc.code
        out = capsys.readouterr()
        err = out.err
        if got != code or fragment not in err or "Traceback" in err:
            failures.append(f"{name}: exit {got} (want {code}), stderr {err[-300:]!r}")
        elif code == 1 and not err.startswith("error: "):
            failures.append(f"{name}: stderr does not start with 'error: ': {err!r}")
        if store_snapshot(world.srv.data_dir) != before:
            failures.append(f"{name}: the store changed")
    assert not failures, "\n".join(failures)
    print("cli bad-input cases", len(cases))
