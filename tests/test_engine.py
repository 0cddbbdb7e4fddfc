"""Engine semantics against a real SQLite file: transitions, FIFO, retries, timeouts, cancel,
recovery, validation. Built-in handlers plus small in-process handlers written here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time

import pytest

from pulse_tui.pulse import jobs as J
from pulse_tui.pulse.engine import Engine, backoff_delay
from pulse_tui.pulse.errors import NotFound, Precondition, ValidationError
from pulse_tui.pulse.handlers import HandlerError, HandlerResult, StaticRouter, builtin_handlers
from pulse_tui.pulse.jobs import JobFilter
from pulse_tui.pulse.store.sqlite import SQLiteStore


class Recorder:
    """Records the order jobs start in; optionally blocks until released."""

    plugin = ""

    def __init__(self, name: str = "t.record") -> None:
        self.name = name
        self.order: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    async def run(self, ctx):
        self.order.append(ctx.payload_json().get("tag"))
        self.started.set()
        await self.gate.wait()
        return HandlerResult(result=b'{"ok": true}')


class Flaky:
    """Fails the first `n` attempts, then succeeds."""

    name = "t.flaky"
    plugin = ""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    async def run(self, ctx):
        self.calls += 1
        ctx.log("info", f"call {self.calls}")
        if self.calls <= self.n:
            raise HandlerError(f"boom {self.calls}")
        return HandlerResult(result=json.dumps({"calls": self.calls}).encode())


class Stubborn:
    """Ignores cancellation hints and timeouts; only task cancellation stops it."""

    name = "t.stubborn"
    plugin = ""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def run(self, ctx):
        self.started.set()
        await asyncio.Event().wait()  # never returns on its own


async def wait_status(engine: Engine, job_id: str, statuses: set[str], timeout: float = 10.0) -> J.Job:
    """Wait on the event bus (not sleeps) until the job reaches one of `statuses`."""
    with engine.bus.watch() as w:
        job = await engine.get_job(job_id)
        deadline = time.monotonic() + timeout
        while job.status not in statuses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"job {job_id} stuck in {job.status}, wanted {statuses}")
            batch, _ = await w.next_batch(timeout=left)
            for j in batch:
                if j.id == job_id:
                    job = j
        return await engine.get_job(job_id)


@pytest.fixture
async def make_engine(tmp_path):
    made: list[tuple[Engine, SQLiteStore]] = []

    async def factory(*extra, db: str = "jobs.db", **kw) -> Engine:
        store = SQLiteStore(str(tmp_path / db))
        await store.open()
        router = StaticRouter(builtin_handlers() + list(extra))
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("backoff_cap", 0.05)
        engine = Engine(store, router, **kw)
        await engine.start()
        made.append((engine, store))
        return engine

    yield factory
    for engine, store in made:
        await engine.stop(grace=0.1)
        await store.close()


# ---------------------------------------------------------------- state machine


@pytest.mark.parametrize("src", J.STATUSES)
@pytest.mark.parametrize("dst", J.STATUSES)
def test_transition_table(src, dst):
    legal = dst in J.TRANSITIONS[src]
    if legal:
        J.check_transition("j", src, dst)
    else:
        with pytest.raises(J.IllegalTransition):
            J.check_transition("j", src, dst)


def test_transition_table_shape():
    assert J.TRANSITIONS[J.COMPLETED] == frozenset()
    assert J.CANCELLED in J.TRANSITIONS[J.RUNNING]
    assert J.QUEUED in J.TRANSITIONS[J.FAILED]
    assert J.RUNNING not in J.TRANSITIONS[J.FAILED]


def test_backoff_grows_and_is_capped():
    for attempt in range(1, 12):
        d = backoff_delay(attempt, 1.0, 60.0)
        full = min(60.0, 2 ** (attempt - 1))
        assert full / 2 <= d <= full
    assert backoff_delay(30, 1.0, 60.0) <= 60.0


# ---------------------------------------------------------------- running


async def test_noop_completes_and_records_attempt(make_engine):
    engine = await make_engine()
    job = await engine.enqueue("pulse.noop", b'{"x": 1}')
    done = await wait_status(engine, job.id, {J.COMPLETED})
    assert done.attempts == 1
    d = await engine.get_detail(job.id)
    assert [a.outcome for a in d.attempts] == [J.OUTCOME_COMPLETED]
    assert d.attempts[0].ended_at >= d.attempts[0].started_at > 0
    assert json.loads(d.job.payload) == {"x": 1}


async def test_sleep_reports_progress(make_engine):
    engine = await make_engine()
    seen: list[tuple[int, int]] = []
    with engine.bus.watch() as w:
        job = await engine.enqueue("pulse.sleep", b'{"seconds": 0.2, "steps": 4}')
        while True:
            batch, _ = await w.next_batch(timeout=5)
            assert batch, "no events"
            for j in batch:
                if j.id == job.id and j.status == J.RUNNING:
                    seen.append((j.progress_current, j.progress_total))
                if j.id == job.id and j.status == J.COMPLETED:
                    break
            else:
                continue
            break
    final = await engine.get_job(job.id)
    assert (final.progress_current, final.progress_total) == (4, 4)
    assert any(0 < c < 4 for c, _ in seen), seen
    assert json.loads(final.result) == {"slept": 0.2, "steps": 4}


async def test_fifo_within_priority(make_engine):
    rec = Recorder()
    engine = await make_engine(rec, concurrency=1)
    rec.gate.clear()
    first = await engine.enqueue("t.record", b'{"tag": "blocker"}')
    await asyncio.wait_for(rec.started.wait(), 5)
    ids = []
    for i in range(20):
        ids.append((await engine.enqueue("t.record", json.dumps({"tag": f"n{i}"}).encode())).id)
    hi = await engine.enqueue("t.record", b'{"tag": "high"}', priority=5)
    rec.gate.set()
    await wait_status(engine, ids[-1], {J.COMPLETED})
    await wait_status(engine, hi.id, {J.COMPLETED})
    assert rec.order[0] == "blocker"
    assert rec.order[1] == "high"
    assert rec.order[2:] == [f"n{i}" for i in range(20)]
    assert first.id


async def test_retry_backoff_and_history(make_engine):
    flaky = Flaky(2)
    engine = await make_engine(flaky)
    job = await engine.enqueue("t.flaky", b"{}", max_attempts=3)
    done = await wait_status(engine, job.id, {J.COMPLETED, J.FAILED})
    assert done.status == J.COMPLETED
    d = await engine.get_detail(job.id)
    assert [a.outcome for a in d.attempts] == ["failed", "failed", "completed"]
    assert [a.error for a in d.attempts[:2]] == ["boom 1", "boom 2"]
    # backoff: each retry started after the previous attempt ended
    assert d.attempts[1].started_at >= d.attempts[0].ended_at
    assert [e.message for e in d.logs] == ["call 1", "call 2", "call 3"]
    assert [e.attempt for e in d.logs] == [1, 2, 3]


class Versioned:
    """Attempt 1 reports plugin version 1.0 and fails; attempt 2 completes reporting none."""

    name = "t.versioned"
    plugin = ""

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, ctx):
        self.calls += 1
        if self.calls == 1:
            raise HandlerError("boom", result=HandlerResult(plugin_version="1.0"))
        return HandlerResult(result=b"{}")


async def test_a_completed_attempt_says_its_own_plugin_version(make_engine):
    """A completed attempt is read from its job row: the row must not keep the version an earlier
    attempt reported (it said 1.0 for an attempt that reported none)."""
    engine = await make_engine(Versioned())
    job = await engine.enqueue("t.versioned", b"{}", max_attempts=2)
    assert (await wait_status(engine, job.id, {J.COMPLETED, J.FAILED})).status == J.COMPLETED
    d = await engine.get_detail(job.id)
    assert [(a.number, a.outcome, a.plugin_version) for a in d.attempts] == [
        (1, "failed", "1.0"),
        (2, "completed", ""),
    ]


async def test_exhausted_attempts_fail_then_operator_retry_keeps_history(make_engine):
    flaky = Flaky(100)
    engine = await make_engine(flaky)
    job = await engine.enqueue("t.flaky", b"{}", max_attempts=2)
    done = await wait_status(engine, job.id, {J.FAILED})
    assert done.error == "boom 2" and done.attempts == 2
    flaky.n = 0  # fixed
    again = await engine.retry(job.id)
    assert again.id == job.id and again.status == J.QUEUED and again.retry_count == 1
    done = await wait_status(engine, job.id, {J.COMPLETED})
    d = await engine.get_detail(job.id)
    assert [a.number for a in d.attempts] == [1, 2, 3]
    assert d.attempts[-1].outcome == "completed"
    assert done.retry_count == 1


async def test_fail_builtin_is_failed_not_cancelled(make_engine):
    engine = await make_engine()
    job = await engine.enqueue("pulse.fail", b'{"error": "disk full"}', max_attempts=1)
    done = await wait_status(engine, job.id, {J.FAILED})
    assert done.error == "disk full"


async def test_timeout_enforced_on_handler_that_ignores_it(make_engine):
    stub = Stubborn()
    engine = await make_engine(stub)
    job = await engine.enqueue("t.stubborn", b"{}", timeout_secs=1, max_attempts=1)
    done = await wait_status(engine, job.id, {J.FAILED}, timeout=10)
    assert "timed out after 1s" in done.error
    d = await engine.get_detail(job.id)
    assert d.attempts[0].outcome == J.OUTCOME_TIMEOUT


class Deadlines:
    """`t.deadline`: what a handler may do when Pulse's deadline cancels it (payload `how`)."""

    name = "t.deadline"
    plugin = ""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled_at: dict[str, float] = {}

    async def run(self, ctx):
        how = ctx.payload_json().get("how")
        self.started.set()
        if how == "quick":
            return HandlerResult(result=b"{}")
        if how == "own-timeout":  # a TimeoutError of its own, long before the deadline
            raise TimeoutError("upstream took too long")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled_at[ctx.job.id] = time.monotonic()
            if how == "to-timeout-error":
                raise TimeoutError from None
            if how == "swallow":  # it ends on its own after the cancel: its end stands
                return HandlerResult(result=b'{"swallowed": true}')
            raise
        raise AssertionError("unreachable")


async def test_deadlines_fire_on_time_for_jobs_started_together(make_engine):
    """Jobs started together share their deadline's timer: those still running time out, not
    before their timeout and promptly after it, whatever the handler does with the cancel;
    those that ended leave no timer behind; a TimeoutError of the handler's own is a failure."""
    h = Deadlines()
    engine = await make_engine(h, default_timeout=0.3)
    hows = ["quick", "own-timeout", "hang", "to-timeout-error", "swallow", "hang", "quick"]
    t0 = time.monotonic()
    jobs = await engine.enqueue_many(
        [
            {"handler": "t.deadline", "payload": json.dumps({"how": how}).encode(), "max_attempts": 1}
            for how in hows
        ]
    )
    ends = [await wait_status(engine, j.id, {J.COMPLETED, J.FAILED}) for j in jobs]
    got = {how: (e.status, e.error) for how, e in zip(hows, ends, strict=True)}
    assert got["quick"] == (J.COMPLETED, "")
    assert got["own-timeout"] == (J.FAILED, "TimeoutError: upstream took too long")
    for how in ("hang", "to-timeout-error"):
        assert got[how] == (J.FAILED, "timed out after 0.3s (enforced by Pulse)"), how
    assert got["swallow"] == (J.COMPLETED, "")
    for jid, at in h.cancelled_at.items():
        assert 0.3 <= at - t0 < 0.3 + 2.0, (jid, at - t0)
    assert len(h.cancelled_at) == 4
    detail = await engine.get_detail(ends[2].id)
    assert [a.outcome for a in detail.attempts] == [J.OUTCOME_TIMEOUT]
    assert engine._deadlines == {}  # every timer gone with its jobs
    # the tasks took back the deadline's cancel: a later operator cancel still works as one
    stub = Stubborn()
    engine2 = await make_engine(stub, db="two.db", default_timeout=0.2)
    first = await engine2.enqueue("t.stubborn", b"{}", max_attempts=1)
    assert (await wait_status(engine2, first.id, {J.FAILED})).error.startswith("timed out after 0.2s")
    stub.started.clear()
    second = await engine2.enqueue("t.stubborn", b"{}", max_attempts=1, timeout_secs=60)
    await asyncio.wait_for(stub.started.wait(), 5)
    out = await engine2.cancel(second.id)
    assert out.status == J.CANCELLED


async def test_a_deadline_and_an_operator_cancel_together_are_a_cancel(make_engine):
    stub = Stubborn()
    engine = await make_engine(stub, default_timeout=0.2)
    job = await engine.enqueue("t.stubborn", b"{}", max_attempts=1)
    await asyncio.wait_for(stub.started.wait(), 5)
    run = engine._running[job.id]
    assert run.slot is not None
    run.slot.handle.cancel()
    run.slot.fire(engine._deadlines)  # the deadline passes in the same instant as the cancel
    out = await engine.cancel(job.id)
    assert out.status == J.CANCELLED and out.error == "cancelled by operator"
    assert engine._deadlines == {}


async def test_an_end_the_store_refuses_does_not_sink_the_ends_stored_with_it(
    make_engine, tmp_path, monkeypatch
):
    """Ends of jobs that finish together are stored as one group; when the store refuses one
    row, the others are stored one by one and the refused job stays running (re-queued at
    restart), and the engine goes on."""
    import sqlite3

    from pulse_tui.pulse import engine as engine_mod

    monkeypatch.setattr(engine_mod, "FINISH_RETRY_DELAYS", (0.01, None))
    rec = Recorder()
    rec.gate.clear()
    engine = await make_engine(rec)
    conn = sqlite3.connect(tmp_path / "jobs.db")
    conn.execute(
        "CREATE TRIGGER poison BEFORE UPDATE OF status ON jobs WHEN NEW.id = 'poison' AND NEW.status != 'running'"
        " BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
    )
    conn.commit()
    conn.close()
    specs = [{"handler": "t.record", "payload": json.dumps({"tag": i}).encode()} for i in range(5)]
    specs.insert(2, {"handler": "t.record", "payload": b'{"tag": "p"}', "job_id": "poison"})
    jobs = await engine.enqueue_many(specs)
    while len(rec.order) < len(jobs):  # every one running, waiting at the gate
        rec.started.clear()
        await asyncio.wait_for(rec.started.wait(), 5)
    rec.gate.set()  # they all end in the same loop turn
    others = [j for j in jobs if j.id != "poison"]
    for j in others:
        assert (await wait_status(engine, j.id, {J.COMPLETED})).status == J.COMPLETED
    run = engine._running.get("poison")
    if run is not None:  # given up on: its slot is freed
        await asyncio.wait_for(engine._wait_ended(run), 5)
    assert "poison" not in engine._running
    assert (await engine.get_job("poison")).status == J.RUNNING
    after = await engine.enqueue("pulse.noop", b"{}")
    assert (await wait_status(engine, after.id, {J.COMPLETED})).status == J.COMPLETED


def test_a_job_snapshot_is_the_job_without_payload_and_result():
    import dataclasses

    job = J.Job(id="j1", handler="h")
    for i, f in enumerate(dataclasses.fields(J.Job)):  # every field off its default
        kind = type(getattr(job, f.name))
        value = {int: i + 1, float: i + 0.5, bytes: b"payload"}.get(kind, f"v{i}")
        setattr(job, f.name, value)
    snap = job.snapshot()
    assert snap == dataclasses.replace(job, payload=b"", result=b"") and snap is not job
    assert job.snapshot(result=True) == dataclasses.replace(job, payload=b"")
    assert job.payload == b"payload" and job.result == b"payload"  # the job itself is untouched


async def test_cancel_running_job_stops_it(make_engine):
    stub = Stubborn()
    engine = await make_engine(stub)
    job = await engine.enqueue("t.stubborn", b"{}")
    await asyncio.wait_for(stub.started.wait(), 5)
    out = await engine.cancel(job.id)
    assert out.status == J.CANCELLED
    assert engine.running_jobs() == []
    d = await engine.get_detail(job.id)
    assert d.attempts[-1].outcome == J.OUTCOME_CANCELLED
    assert "cancelled by operator" in out.error


async def test_cancel_queued_and_illegal_transitions(make_engine):
    rec = Recorder()
    engine = await make_engine(rec, concurrency=1)
    rec.gate.clear()
    blocker = await engine.enqueue("t.record", b'{"tag": "b"}')
    await asyncio.wait_for(rec.started.wait(), 5)
    queued = await engine.enqueue("t.record", b'{"tag": "q"}')
    out = await engine.cancel(queued.id)
    assert out.status == J.CANCELLED
    with pytest.raises(Precondition, match="already finished"):
        await engine.cancel(queued.id)
    with pytest.raises(Precondition, match="only failed or cancelled"):
        await engine.retry(blocker.id)  # running
    rec.gate.set()
    await wait_status(engine, blocker.id, {J.COMPLETED})
    with pytest.raises(Precondition, match="completed jobs are not retried"):
        await engine.retry(blocker.id)
    with pytest.raises(NotFound):
        await engine.cancel("nope")
    assert "q" not in rec.order


async def test_validation_at_the_door_stores_nothing(make_engine):
    engine = await make_engine()
    cases = [
        (("pulse.nop", b"{}"), {}, "did you mean 'pulse.noop'"),
        (("pulse.noop", b"{not json"), {}, "payload is not JSON"),
        (("pulse.noop", b'"' + b"x" * (1024 * 1024) + b'"'), {}, "limit is 1,048,576 bytes"),
        (("pulse.noop", b"{}"), {"max_attempts": -1}, "max_attempts"),
        (("pulse.noop", b"{}"), {"timeout_secs": -5}, "timeout must not be negative"),
        (("", b"{}"), {}, "handler name is empty"),
        (("pulse.noop", b"{}"), {"job_id": "bad id!"}, "job id"),
    ]
    for args, kw, msg in cases:
        with pytest.raises(ValidationError, match=msg.replace("(", r"\(").replace("?", r"\?")):
            await engine.enqueue(*args, **kw)
    counts = await engine.count_jobs(JobFilter())
    assert sum(counts.values()) == 0
    with pytest.raises(ValidationError, match="unknown status"):
        await engine.list_jobs(JobFilter(statuses=("done",)))
    with pytest.raises(ValidationError, match="negative"):
        await engine.list_jobs(JobFilter(), limit=-1)


async def test_restart_recovery_requeues_interrupted(tmp_path):
    # first server: claims a job then dies without finishing (its loop is torn down)
    stub = Stubborn()
    store = SQLiteStore(str(tmp_path / "r.db"))
    await store.open()
    engine = Engine(store, StaticRouter(builtin_handlers() + [stub]))
    await engine.start()
    job = await engine.enqueue("t.stubborn", b"{}", max_attempts=1)
    await asyncio.wait_for(stub.started.wait(), 5)
    row = await store.get(job.id)
    assert row.status == J.RUNNING
    # simulate a crash: the store keeps the row running; nothing records the end
    for t in engine._tasks:
        t.cancel()
    for r in list(engine._running.values()):
        r.task.cancel()
    await asyncio.gather(*engine._tasks, *[r.task for r in engine._running.values()], return_exceptions=True)
    await store.close()

    store2 = SQLiteStore(str(tmp_path / "r.db"))
    await store2.open()
    engine2 = Engine(store2, StaticRouter(builtin_handlers()))  # no handler now: stays queued
    await engine2.start()
    try:
        again = await engine2.get_job(job.id)
        assert again.status == J.QUEUED
        d = await engine2.get_detail(job.id)
        assert [a.outcome for a in d.attempts] == [J.OUTCOME_INTERRUPTED]
        assert again.run_attempts == 0  # the interrupted attempt does not eat the budget
    finally:
        await engine2.stop(0.1)
        await store2.close()


async def test_graceful_stop_requeues_unfinished(make_engine, tmp_path):
    stub = Stubborn()
    engine = await make_engine(stub)
    job = await engine.enqueue("t.stubborn", b"{}")
    await asyncio.wait_for(stub.started.wait(), 5)
    await engine.stop(grace=0.05)
    row = await engine.store.get(job.id)
    assert row.status == J.QUEUED
    d = await engine.store.detail(job.id)
    assert d.attempts[-1].outcome == J.OUTCOME_INTERRUPTED


async def test_per_handler_concurrency_limit(make_engine):
    rec = Recorder()
    engine = await make_engine(rec, concurrency=8, handler_limits={"t.record": 2})
    rec.gate.clear()
    ids = [(await engine.enqueue("t.record", json.dumps({"tag": i}).encode())).id for i in range(6)]
    await asyncio.wait_for(rec.started.wait(), 5)
    # the noop still runs beside the limited handler
    n = await engine.enqueue("pulse.noop", b"{}")
    await wait_status(engine, n.id, {J.COMPLETED})
    assert len(engine.running_jobs()) == 2
    rec.gate.set()
    for i in ids:
        await wait_status(engine, i, {J.COMPLETED})
    assert rec.order == list(range(6))


async def test_delayed_job_waits_for_run_at(make_engine):
    engine = await make_engine()
    t0 = time.time()
    job = await engine.enqueue("pulse.noop", b"{}", delay_secs=0.3)
    done = await wait_status(engine, job.id, {J.COMPLETED})
    assert done.started_at >= t0 + 0.3


async def test_keyset_pagination_and_counts(make_engine):
    engine = await make_engine(concurrency=1)
    for _ in range(25):
        await engine.enqueue("pulse.fail", b'{"error": "x"}', max_attempts=1)
    page1, more = await engine.list_jobs(JobFilter(), limit=10)
    assert more and len(page1) == 10
    page2, _ = await engine.list_jobs(JobFilter(), limit=10, after_seq=page1[-1].seq)
    assert page2[0].seq == page1[-1].seq - 1
    seqs = [j.seq for j in page1 + page2]
    assert seqs == sorted(seqs, reverse=True)
    counts = await engine.count_jobs(JobFilter(), cap=5)
    assert sum(counts.values()) <= 6 * 6
    assert max(counts.values()) == 6  # capped at cap+1 ("5+")


class SelfCancelling:
    """Raises CancelledError on its own (as a closed gRPC channel can) without being cancelled."""

    name = "t.selfcancel"
    plugin = ""

    async def run(self, ctx):
        raise asyncio.CancelledError()


async def test_handler_raising_cancelled_error_fails_not_stuck(make_engine):
    engine = await make_engine(SelfCancelling())
    job = await engine.enqueue("t.selfcancel", b"{}", max_attempts=1)
    done = await wait_status(engine, job.id, {J.FAILED})
    assert "cancelled unexpectedly" in done.error
    assert engine.running_jobs() == []


async def test_job_whose_handler_disappears_stays_queued_and_is_not_spun_on(make_engine):
    from pulse_tui.pulse.services import operator_job

    gone = Recorder("t.gone")
    engine = await make_engine(gone)
    job = await engine.enqueue("t.gone", b'{"tag": "x"}', delay_secs=0.2)
    engine.router.remove("t.gone")  # its plugin went away before the job was due
    engine.routes_changed()
    # a later-due job proves the dispatcher woke and claimed past the first job's run_at
    probe = await engine.enqueue("pulse.noop", b"{}", delay_secs=0.3)
    await wait_status(engine, probe.id, {J.COMPLETED})
    stuck = await engine.get_job(job.id)
    assert stuck.status == J.QUEUED and stuck.attempts == 0 and gone.order == []
    assert operator_job(stuck, engine.router.routable()).no_handler
    # not spun on: one more job costs its own few commits, the stuck one adds none
    before = engine.store.commits
    n = await engine.enqueue("pulse.noop", b"{}")
    await wait_status(engine, n.id, {J.COMPLETED})
    assert engine.store.commits - before <= 4
    # the handler comes back: the job runs
    engine.router.add(gone)
    engine.routes_changed()
    await wait_status(engine, job.id, {J.COMPLETED})
    assert gone.order == ["x"]


async def test_progress_reports_refuse_negatives_and_clamp_over_total_logged_once(make_engine, caplog):
    """UpdateJob's path (report_progress): the same rules as a plugin's final reply."""
    stubborn = Stubborn()
    engine = await make_engine(stubborn)
    job = await engine.enqueue("t.stubborn")
    await asyncio.wait_for(stubborn.started.wait(), 10)
    for bad, match in [
        ((-3, -3, None), "progress must not be negative"),
        ((1, 2, -5.0), "cost must be"),
        ((1, 2, float("nan")), "cost must be"),
        ((1, 2, float("inf")), "cost must be"),
    ]:
        with pytest.raises(ValidationError, match=match):
            await engine.report_progress(job.id, *bad)
    assert (await engine.get_job(job.id)).progress_current == 0  # a refused report changes nothing
    with caplog.at_level("WARNING", logger="pulse.engine"):
        await engine.report_progress(job.id, 500, 100)
        await engine.report_progress(job.id, 600, 100, cost=2.5)
    got = await engine.get_job(job.id)
    assert (got.progress_current, got.progress_total, got.cost_actual) == (100, 100, 2.5)
    assert len([r for r in caplog.records if "stored as 100/100" in r.getMessage()]) == 1
    await engine.cancel(job.id)


class LocksTheStoreAsItEnds:
    """Reports 4/4, then takes the store file's write lock (as another process would) and returns:
    the engine has computed the attempt's end, whose write now waits for the lock."""

    name = "t.lockend"
    plugin = ""

    def __init__(self, db: str) -> None:
        self.db = db
        self.lock: sqlite3.Connection | None = None

    async def run(self, ctx):
        ctx.progress(4, 4)
        self.lock = sqlite3.connect(self.db, isolation_level=None)
        self.lock.execute("BEGIN IMMEDIATE")
        return HandlerResult(result=b'{"ok": true}')


async def test_a_progress_report_arriving_after_the_end_does_not_change_the_stored_end(make_engine, tmp_path):
    """A plugin's progress reports (QueueService.UpdateJob) can arrive after its ExecuteJob reply,
    and out of order. One that came between the end's computation and its write changed the very
    job the write was about to store: a completed job was stored at 1/4 (seen once in the editor
    test under load). Such a report is refused like one after the end (the job is not running)."""
    handler = LocksTheStoreAsItEnds(str(tmp_path / "jobs.db"))
    engine = await make_engine(handler)
    job = await engine.enqueue("t.lockend")
    try:
        async with asyncio.timeout(10):
            while handler.lock is None or job.id not in engine._running:
                await asyncio.sleep(0.01)
            await asyncio.wait([engine._running[job.id].task])  # the end is computed, its write waits
        with contextlib.suppress(Precondition):
            await engine.report_progress(job.id, 1, 4)  # late, and out of order
    finally:
        assert handler.lock is not None
        handler.lock.execute("ROLLBACK")
        handler.lock.close()
    done = await wait_status(engine, job.id, {J.COMPLETED})
    assert (done.progress_current, done.progress_total) == (4, 4)
