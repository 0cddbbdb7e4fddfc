"""The store contract, run against SQLite AND a real PostgreSQL (started by tests/pg.py), plus a
few engine scenarios on PostgreSQL. PostgreSQL-only behaviour (leases, NOTIFY, cross-node
cancel) is at the end."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from test_engine import Flaky, Stubborn, wait_status

from pulse_tui.pulse import budgets as bud
from pulse_tui.pulse import jobs as J
from pulse_tui.pulse import schedules as S
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.errors import DuplicateJob, NotFound, Unavailable, ValidationError
from pulse_tui.pulse.handlers import StaticRouter, builtin_handlers
from pulse_tui.pulse.jobs import Attempt, Job, JobFilter, LogEntry
from pulse_tui.pulse.store import Finish, Store, open_store
from pulse_tui.pulse.store.postgres import (
    CLAIM_PLAN,
    CLAIM_SQL,
    FINISH_PLAN,
    FINISH_SQL,
    SCHEMA_VERSION,
    PostgresStore,
    _finish_args,
    requeue_sql,
)
from pulse_tui.pulse.store.sqlite import SQLiteStore

MakeStore = Callable[..., Awaitable[Store]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path) -> str:
    if backend == "postgres":
        return request.getfixturevalue("pg_url")
    return f"sqlite:{tmp_path / 'jobs.db'}"


@pytest.fixture
async def make_store(db_url: str) -> AsyncIterator[MakeStore]:
    """Stores on the test's database; several calls share it (like several nodes)."""
    opened: list[Store] = []

    async def factory(node: str = "n1") -> Store:
        store = open_store(db_url, node=node)
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


def new_jobs(
    n: int, handler: str = "h", *, priority: int = 0, prefix: str = "j", run_at: float = 0.0
) -> list[Job]:
    now = time.time()
    return [
        Job(
            id=f"{prefix}{i}",
            handler=handler,
            priority=priority,
            payload=json.dumps({"i": i}).encode(),
            created_at=now,
            updated_at=now,
            run_at=run_at or now,
        )
        for i in range(n)
    ]


def ended(job: Job, status: str, outcome: str, *, error: str = "", logs: int = 0) -> Finish:
    now = time.time()
    job.status, job.error, job.updated_at = status, error, now
    if status in J.FINISHED:
        job.completed_at = now
    job.plugin, job.plugin_version = "p", "1.0"  # the attempt's, as the engine writes them
    attempt = Attempt(job.id, job.attempts, job.started_at, now, outcome, error, "p", "1.0", job.node)
    entries = [
        LogEntry(job.id, job.attempts, "2026-01-01T00:00:00Z", "info", f"line {i}") for i in range(logs)
    ]
    return Finish(job, attempt, entries)


# ---------------------------------------------------------------- writes


async def test_insert_assigns_increasing_seq_and_keeps_payload(store: Store):
    jobs = await store.insert(new_jobs(5))
    seqs = [j.seq for j in jobs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    got = await store.get("j3")
    assert got is not None and json.loads(got.payload) == {"i": 3} and got.status == J.QUEUED
    assert (await store.get("j3", with_payload=False)).payload == b"{}"  # type: ignore[union-attr]
    assert await store.get("nope") is None


async def test_insert_many_keeps_each_jobs_own_values_and_holds_per_row(store: Store):
    """One insert of jobs alike in some columns and different in others (the PostgreSQL store
    sends a column equal for all as one value): every job is stored with its own values, seqs
    follow the input order, and only the jobs of a paused handler are held at the door."""
    now = time.time()
    await store.hold_handler("held.h", J.REASON_USER, now)
    fields = (
        ("handler", ["h", "held.h", "p/held.h", "h"]),
        ("priority", [0, 5, -3, 1000]),
        ("payload", [b"{}", b'{"a": 1}', b"[1, 2]", b"{}"]),
        ("max_attempts", [3, 1, 7, 3]),
        ("timeout_secs", [0, 60, 0, 5]),
        ("source", ["", "cli", "", "api"]),
        ("cost_estimate", [0.0, 1.5, 0.0, 0.25]),
        ("created_at", [now, now + 1, now + 2, now]),
        ("run_at", [now, now + 60, now + 3600, now + 0.5]),
        ("retry_count", [0, 2, 0, 1]),
    )
    jobs: list[Job] = []
    for name, values in fields:  # one column differs, the others are alike
        for k, value in enumerate(values):
            job = Job(
                id=f"{name}-{k}", handler="h", max_attempts=3, created_at=now, updated_at=now, run_at=now
            )
            setattr(job, name, value)
            jobs.append(job)
    jobs += [Job(id=f"alike-{k}", handler="h", created_at=now, updated_at=now, run_at=now) for k in range(3)]
    back = await store.insert(jobs)
    assert [j.id for j in back] == [j.id for j in jobs]
    seqs = [j.seq for j in back]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(jobs)
    held = {j.id for j in back if j.status == J.PAUSED}
    assert held == {"handler-1", "handler-2"}
    assert all(j.pause_reason == J.REASON_HANDLER for j in back if j.id in held)
    for job in back:
        got = await store.get(job.id)
        assert got is not None and got.seq == job.seq and got.status == job.status, job.id
        for name, _ in fields:
            assert getattr(got, name) == pytest.approx(getattr(job, name)), (job.id, name)
        assert got.pause_reason == job.pause_reason


async def test_duplicate_id_is_refused(store: Store):
    """Each store raises DuplicateJob from its own unique-violation error, naming the taken id;
    in a many-row insert the taken id is named and none of the rows is stored."""
    await store.insert(new_jobs(1))
    with pytest.raises(DuplicateJob, match="already exists") as err:
        await store.insert(new_jobs(1))
    assert err.value.job_id == "j0" and err.value.reason == "DUPLICATE_JOB"
    batch = new_jobs(5, prefix="b")
    batch[3].id = "j0"
    with pytest.raises(DuplicateJob) as err:
        await store.insert(batch)
    assert err.value.job_id == "j0"
    assert [j.id for j in await store.list(JobFilter(), 10, None, False, 0)] == ["j0"]


async def test_claim_fifo_within_priority(store: Store):
    await store.insert(new_jobs(5, prefix="lo"))
    await store.insert(new_jobs(3, prefix="hi", priority=5))
    await store.insert(new_jobs(2, prefix="other", handler="x"))
    got = await store.claim(6, ["h"], time.time())
    assert [j.id for j in got] == ["hi0", "hi1", "hi2", "lo0", "lo1", "lo2"]
    assert all(j.status == J.RUNNING and j.attempts == 1 and j.run_attempts == 1 for j in got)
    assert all(j.node == "n1" and j.started_at > 0 for j in got)
    assert json.loads(got[0].payload) == {"i": 0}  # claims return the payload for the handler
    rest = await store.claim(10, ["h"], time.time())
    assert [j.id for j in rest] == ["lo3", "lo4"]
    assert await store.claim(10, ["h"], time.time()) == []
    assert await store.claim(0, ["x"], time.time()) == []
    assert await store.claim(5, [], time.time()) == []


async def test_claim_waits_for_run_at_and_next_due(store: Store):
    now = time.time()
    await store.insert(new_jobs(1, prefix="later", run_at=now + 100))
    await store.insert(new_jobs(1, prefix="soon", run_at=now + 10))
    assert await store.claim(5, ["h"], now) == []
    assert await store.next_due(["h"], now) == pytest.approx(now + 10)
    assert await store.next_due(["x"], now) is None
    assert await store.next_due([], now) is None
    got = await store.claim(5, ["h"], now + 11)
    assert [j.id for j in got] == ["soon0"]


async def test_concurrent_claimers_get_each_job_exactly_once(make_store: MakeStore):
    a, b = await make_store("a"), await make_store("b")
    total = 2000
    await a.insert(new_jobs(total))

    async def drain(store: Store) -> list[str]:
        mine: list[str] = []
        while got := await store.claim(25, ["h"], time.time()):
            mine.extend(j.id for j in got)
        return mine

    results = await asyncio.gather(*(drain(s) for s in (a, b, a, b)))
    claimed = [jid for r in results for jid in r]
    assert len(claimed) == total and len(set(claimed)) == total
    counts = await a.count(JobFilter(), total * 2)
    assert counts[J.RUNNING] == total and counts[J.QUEUED] == 0


async def test_finish_records_attempts_and_logs(store: Store):
    await store.insert(new_jobs(2))
    first, second = await store.claim(2, ["h"], time.time())
    first.result = b'{"ok": 1}'
    await store.finish([ended(first, J.COMPLETED, J.OUTCOME_COMPLETED, logs=3)])
    # a failed attempt that will be retried: job back to queued, attempt kept
    second.run_at = time.time()
    await store.finish([ended(second, J.QUEUED, J.OUTCOME_FAILED, error="boom", logs=1)])
    again = await store.claim(1, ["h"], time.time())
    assert [j.id for j in again] == ["j1"] and again[0].attempts == 2
    await store.finish([ended(again[0], J.FAILED, J.OUTCOME_FAILED, error="boom 2")])

    d = await store.detail("j0")
    assert d is not None and d.job.status == J.COMPLETED and json.loads(d.job.result) == {"ok": 1}
    assert [(a.number, a.outcome, a.plugin_version, a.node) for a in d.attempts] == [
        (1, "completed", "1.0", "n1")
    ]
    assert [e.message for e in d.logs] == ["line 0", "line 1", "line 2"]
    d1 = await store.detail("j1")
    assert d1 is not None and d1.job.status == J.FAILED and d1.job.error == "boom 2"
    assert [(a.number, a.outcome, a.error) for a in d1.attempts] == [
        (1, "failed", "boom"),
        (2, "failed", "boom 2"),
    ]
    assert await store.detail("nope") is None


async def test_set_progress_only_touches_running_jobs(store: Store):
    await store.insert(new_jobs(2))
    (running,) = await store.claim(1, ["h"], time.time())
    await store.set_progress([(running.id, 3, 10, 0.5, time.time()), ("j1", 7, 9, None, time.time())])
    r, q = await store.get("j0"), await store.get("j1")
    assert r is not None and (r.progress_current, r.progress_total, r.cost_actual) == (3, 10, 0.5)
    assert q is not None and (q.progress_current, q.progress_total) == (0, 0)


async def test_transition_applies_only_from_allowed_statuses(store: Store):
    await store.insert(new_jobs(2))
    now = time.time()
    out = await store.transition("j0", (J.QUEUED, J.PAUSED), {"status": J.CANCELLED, "completed_at": now})
    assert out is not None and out.status == J.CANCELLED and out.completed_at == pytest.approx(now)
    assert await store.transition("j0", (J.QUEUED, J.PAUSED), {"status": J.CANCELLED}) is None
    back = await store.transition("j0", (J.FAILED, J.CANCELLED), {"status": J.QUEUED, "retry_count": 1})
    assert back is not None and back.status == J.QUEUED and back.retry_count == 1
    with pytest.raises(NotFound):
        await store.transition("missing", (J.QUEUED,), {"status": J.CANCELLED})


async def test_pause_and_resume_keep_the_fifo_place(store: Store):
    await store.insert(new_jobs(4))
    now = time.time()
    held = await store.transition("j1", (J.QUEUED,), {"status": J.PAUSED, "pause_reason": J.REASON_USER})
    assert held is not None and held.status == J.PAUSED and held.pause_reason == J.REASON_USER
    got = await store.claim(2, ["h"], now)
    assert [j.id for j in got] == ["j0", "j2"]  # the paused job is never claimed
    back = await store.transition("j1", (J.PAUSED,), {"status": J.QUEUED, "pause_reason": ""})
    assert back is not None and back.pause_reason == "" and back.seq == held.seq
    assert [j.id for j in await store.claim(5, ["h"], now)] == ["j1", "j3"]  # its old place


async def test_paused_handler_holds_queued_and_new_jobs_and_releases_them_in_order(store: Store):
    await store.insert(new_jobs(3, handler="a.b", prefix="a"))
    await store.insert(new_jobs(1, handler="p/a.b", prefix="q"))  # qualified form: held too
    await store.insert(new_jobs(2, handler="other", prefix="o"))
    user = await store.transition("a2", (J.QUEUED,), {"status": J.PAUSED, "pause_reason": J.REASON_USER})
    assert user is not None
    now = time.time()
    held = await store.hold_handler("a.b", J.REASON_USER, now)
    assert [j.id for j in held] == ["a0", "a1", "q0"]
    assert all(j.status == J.PAUSED and j.pause_reason == J.REASON_HANDLER for j in held)
    assert await store.paused_handlers() == {"a.b": (J.REASON_USER, pytest.approx(now))}
    # a new job is held at the door, even when the inserting node did not know of the pause
    [late] = await store.insert(new_jobs(1, handler="a.b", prefix="late"))
    assert late.status == J.PAUSED and late.pause_reason == J.REASON_HANDLER
    # one that reaches `queued` anyway (recovery re-queues running jobs) is not claimed either
    await store.insert(new_jobs(1, handler="a.b", prefix="run"))
    await store.transition("run0", (J.PAUSED,), {"status": J.QUEUED, "pause_reason": ""})
    got = await store.claim(10, ["a.b", "p/a.b", "other"], time.time())
    assert [j.id for j in got] == ["o0", "o1"]
    again = await store.hold_handler("a.b", J.REASON_USER, now + 5)  # idempotent, keeps paused_at
    assert [j.id for j in again] == ["run0"]
    assert (await store.paused_handlers())["a.b"][1] == pytest.approx(now)
    released = await store.release_handler("a.b", now)
    assert [j.id for j in released] == ["a0", "a1", "q0", "late0", "run0"]  # user-paused a2 stays
    assert all(j.status == J.QUEUED and j.pause_reason == "" for j in released)
    assert (await store.get("a2")).pause_reason == J.REASON_USER
    assert await store.paused_handlers() == {}
    got = await store.claim(10, ["a.b", "p/a.b"], time.time())
    assert [j.id for j in got] == ["a0", "a1", "q0", "late0", "run0"]


async def test_budget_hold_and_release_by_cost_estimate(store: Store):
    """With a budget fit, a job with a cost estimate is held when the estimate is over the
    headroom; one without, when the budget is reached (by the average cost); `keep` leaves the
    handlers with their own budget to their own call."""
    jobs = new_jobs(4, handler="e", prefix="e")
    for j, est in zip(jobs, (0.0, 0.1, 0.5, 0.9), strict=True):
        j.cost_estimate = est
    await store.insert([*jobs, *new_jobs(1, handler="own", prefix="own")])
    now = time.time()

    def ids(rows: list[J.Job]) -> list[str]:
        return [j.id for j in rows]

    room = bud.Fit(headroom=0.5, unestimated_held=False)  # not reached: 0.5 left
    assert ids(await store.hold_queued(None, J.REASON_BUDGET, now, keep=["own"], fit=room)) == ["e3"]
    tight = bud.Fit(headroom=0.2, unestimated_held=True)  # reached by the average: 0.2 left
    assert ids(await store.hold_queued(None, J.REASON_BUDGET, now, keep=["own"], fit=tight)) == ["e0", "e2"]
    assert (await store.get("own0")).status == J.QUEUED  # type: ignore[union-attr]
    assert ids(await store.release_held(None, J.REASON_BUDGET, now, fit=room)) == ["e0", "e2"]
    assert ids(await store.release_held(["e"], J.REASON_BUDGET, now, fit=bud.Fit(1.0, False))) == ["e3"]
    over = bud.Fit(headroom=-0.1, unestimated_held=True)  # spent past the limit: everything
    assert ids(await store.hold_queued(["e"], J.REASON_BUDGET, now, fit=over)) == ["e0", "e1", "e2", "e3"]
    assert await store.release_held(["e"], J.REASON_BUDGET, now, fit=over) == []


async def test_budget_hold_release_override_and_spend(store: Store):
    await store.insert(new_jobs(2, handler="a.b", prefix="a"))
    await store.insert(new_jobs(1, handler="p/a.b", prefix="q"))
    await store.insert(new_jobs(2, handler="c", prefix="c"))
    now = time.time()
    held = await store.hold_queued(["a.b"], J.REASON_BUDGET, now)
    assert [j.id for j in held] == ["a0", "a1", "q0"]
    # an operator released a1 over budget: a sweep leaves it queued
    await store.transition(
        "a1", (J.PAUSED,), {"status": J.QUEUED, "pause_reason": "", "budget_override": True}
    )
    assert [j.id for j in await store.hold_queued(None, J.REASON_BUDGET, now)] == ["c0", "c1"]
    assert [j.id for j in await store.release_held(None, J.REASON_BUDGET, now, keep=["a.b"])] == ["c0", "c1"]
    await store.hold_handler("c", J.REASON_USER, now)  # a paused handler's jobs stay held
    assert await store.release_held(["c"], J.REASON_BUDGET, now) == []
    assert [j.id for j in await store.release_held(["a.b"], J.REASON_BUDGET, now)] == ["a0", "q0"]
    # the attempt's end clears the override
    [a1] = [j for j in await store.claim(5, ["a.b", "p/a.b"], now) if j.id == "a1"]
    a1.status, a1.completed_at, a1.cost_actual = J.COMPLETED, now, 0.25
    await store.finish([Finish(a1, Attempt("a1", 1, now, now, J.OUTCOME_COMPLETED))])
    assert await store.hold_queued(["a.b"], J.REASON_BUDGET, now) == []  # nothing queued left
    await store.transition("a1", (J.COMPLETED,), {"status": J.QUEUED})  # (as a re-run would)
    assert [j.id for j in await store.hold_queued(["a.b"], J.REASON_BUDGET, now)] == ["a1"]
    day, month = now - 10, now - 100
    assert await store.spend(day, month) == []  # nothing finished
    await store.transition(
        "a1", (J.PAUSED,), {"status": J.COMPLETED, "completed_at": now, "cost_actual": 0.5}
    )
    await store.transition(
        "c0", (J.PAUSED,), {"status": J.CANCELLED, "completed_at": now - 50, "cost_actual": 1.5}
    )
    got = sorted(await store.spend(day, month))
    assert got == [
        ("a.b", pytest.approx(day), pytest.approx(0.5), 1),
        ("c", pytest.approx(month), pytest.approx(1.5), 1),
    ]


async def test_recover_requeues_running_as_interrupted(store: Store):
    await store.insert(new_jobs(3))
    await store.claim(2, ["h"], time.time())
    recovered = await store.recover(time.time())
    assert sorted(j.id for j in recovered) == ["j0", "j1"]
    for jid in ("j0", "j1"):
        d = await store.detail(jid)
        assert d is not None and d.job.status == J.QUEUED and d.job.run_attempts == 0 and d.job.attempts == 1
        assert [a.outcome for a in d.attempts] == [J.OUTCOME_INTERRUPTED]
    again = await store.claim(5, ["h"], time.time())
    assert [j.id for j in again] == ["j0", "j1", "j2"]  # FIFO survives the restart
    assert again[0].attempts == 2


async def test_job_running_at_three_server_crashes_in_a_row_fails_as_crashed(store: Store):
    """Issue 13.3: recovery does not charge an interrupted attempt, but a job that was running at
    each of CRASH_LIMIT server crashes is the likely cause: it fails (it used to run forever)."""
    await store.insert(new_jobs(2))
    for crash in range(1, J.CRASH_LIMIT + 1):
        claimed = await store.claim(2, ["h"], time.time())
        if crash == 2:  # j1 ends on its own between crashes: its streak starts over
            (j1,) = [j for j in claimed if j.id == "j1"]
            j1.crashes = 0
            await store.finish([ended(j1, J.QUEUED, J.OUTCOME_FAILED)])
        recovered = {j.id: j for j in await store.recover(time.time())}
        j0 = recovered["j0"]
        if crash < J.CRASH_LIMIT:
            assert j0.status == J.QUEUED and (j0.run_attempts, j0.interruptions, j0.crashes) == (
                0,
                crash,
                crash,
            )
    assert j0.status == J.FAILED and j0.error == J.SERVER_CRASHED_ERROR and j0.completed_at > 0
    d = await store.detail("j0")
    assert d is not None and d.job.status == J.FAILED and d.job.crashes == J.CRASH_LIMIT
    assert [a.outcome for a in d.attempts] == [J.OUTCOME_INTERRUPTED] * 2 + [J.OUTCOME_CRASHED]
    assert await store.claim(5, ["h"], time.time()) != []  # j1 runs on
    d1 = await store.detail("j1")
    assert d1 is not None and d1.job.status == J.RUNNING and d1.job.crashes == 1


async def test_prune_deletes_old_finished_jobs_with_history(store: Store):
    await store.insert(new_jobs(6))
    claimed = await store.claim(6, ["h"], time.time())
    await store.finish([ended(j, J.COMPLETED, J.OUTCOME_COMPLETED, logs=1) for j in claimed[:4]])
    await store.finish([ended(claimed[4], J.FAILED, J.OUTCOME_FAILED)])
    cutoff = time.time() + 1
    assert await store.prune(cutoff, (J.COMPLETED,), 3) == 3
    assert await store.prune(cutoff, (J.COMPLETED,), 3) == 1
    assert await store.prune(cutoff, (J.COMPLETED,), 3) == 0
    assert await store.prune(time.time() - 3600, (J.FAILED,), 10) == 0  # too recent
    counts = await store.count(JobFilter(), 100)
    assert counts[J.COMPLETED] == 0 and counts[J.FAILED] == 1 and counts[J.RUNNING] == 1


async def test_retention_per_handler_in_the_pruning_loop(store: Store):
    """[retention.handlers."name"] rules: the engine's pruning loop applies each handler's own
    completed/failed/cancelled retention, and the global one (completed only) to the others."""
    outcome = {J.COMPLETED: J.OUTCOME_COMPLETED, J.FAILED: J.OUTCOME_FAILED, J.CANCELLED: J.OUTCOME_CANCELLED}
    cases = [  # (id, handler, status, finished this long ago, kept)
        ("g-old", "other", J.COMPLETED, 3 * 3600, False),  # the global 2 h
        ("g-new", "other", J.COMPLETED, 3600, True),
        ("g-failed", "other", J.FAILED, 3 * 3600, True),  # globally, failed jobs stay
        ("s-done", "short", J.COMPLETED, 300, False),  # short: completed and failed 60 s
        ("s-failed", "short", J.FAILED, 300, False),
        ("s-cancelled", "short", J.CANCELLED, 300, True),  # no rule for cancelled
        ("s-new", "short", J.COMPLETED, 10, True),
        ("k-old", "keep", J.COMPLETED, 3 * 3600, True),  # keep: completed "forever"
        ("k-failed", "keep", J.FAILED, 3 * 3600, False),  # ... and failed 1 h
    ]
    for job_id, handler, status, age, _ in cases:
        (job,) = await store.insert(new_jobs(1, handler, prefix=job_id))
        (job,) = await store.claim(1, [handler], time.time())
        fin = ended(job, status, outcome[status], logs=1)
        job.completed_at = time.time() - age
        await store.finish([fin])
    engine = Engine(
        store,
        StaticRouter(builtin_handlers()),
        retention_secs=2 * 3600,
        retention_handlers={
            "short": {J.COMPLETED: 60.0, J.FAILED: 60.0},
            "keep": {J.COMPLETED: None, J.FAILED: 3600.0},
        },
    )
    await engine.start()
    try:
        await asyncio.wait_for(engine.pruned.wait(), 10)
    finally:
        await engine.stop(0)
    left = {j.id for j in await store.list(JobFilter(), 100, None, False, 0)}
    assert left == {f"{job_id}0" for job_id, *_, kept in cases if kept}
    assert await store.detail("s-failed0") is None


# ---------------------------------------------------------------- reads


async def _mixed(store: Store) -> None:
    await store.insert(new_jobs(30, prefix="a-"))
    await store.insert(new_jobs(10, handler="other.h", prefix="b_"))
    claimed = await store.claim(12, ["h"], time.time())
    await store.finish([ended(j, J.FAILED, J.OUTCOME_FAILED, error="Disk 100% full") for j in claimed[:5]])


async def test_list_keyset_both_directions_and_offset(store: Store):
    await _mixed(store)
    page1 = await store.list(JobFilter(), 15, None, False, 0)
    seqs1 = [j.seq for j in page1]
    assert seqs1 == sorted(seqs1, reverse=True) and len(page1) == 15
    page2 = await store.list(JobFilter(), 15, page1[-1].seq, False, 0)
    assert page2[0].seq < page1[-1].seq and len(page2) == 15
    everything = page1 + page2 + await store.list(JobFilter(), 15, page2[-1].seq, False, 0)
    assert len(everything) == 40 and len({j.id for j in everything}) == 40
    oldest = await store.list(JobFilter(), 10, None, True, 0)
    assert [j.id for j in oldest] == [f"a-{i}" for i in range(10)]
    after = await store.list(JobFilter(), 5, oldest[-1].seq, True, 0)
    assert [j.id for j in after] == [f"a-{i}" for i in range(10, 15)]
    skipped = await store.list(JobFilter(), 5, None, True, 3)
    assert [j.id for j in skipped] == [f"a-{i}" for i in range(3, 8)]
    assert all(j.payload == b"{}" for j in page1)  # listing skips payloads


async def test_list_filters(store: Store):
    await _mixed(store)
    failed = await store.list(JobFilter(statuses=(J.FAILED,)), 100, None, True, 0)
    assert [j.id for j in failed] == [f"a-{i}" for i in range(5)]
    both = await store.list(JobFilter(statuses=(J.FAILED, J.RUNNING)), 100, None, True, 0)
    assert len(both) == 12
    other = await store.list(JobFilter(handler="other.h"), 100, None, True, 0)
    assert len(other) == 10 and {j.handler for j in other} == {"other.h"}
    # text: case-insensitive, over id / handler / error; % and _ are literal
    assert len(await store.list(JobFilter(text="OTHER.H"), 100, None, True, 0)) == 10
    assert len(await store.list(JobFilter(text="disk 100% FULL"), 100, None, True, 0)) == 5
    assert len(await store.list(JobFilter(text="b_"), 100, None, True, 0)) == 10
    assert len(await store.list(JobFilter(text="%"), 100, None, True, 0)) == 5  # only the "100%" errors
    assert await store.list(JobFilter(text="a_1"), 100, None, True, 0) == []


async def test_list_filters_handler_glob_error_and_payload(store: Store):
    await _mixed(store)
    await store.insert(new_jobs(3, handler="other.h2", prefix="c-"))

    async def ids(**kw: str) -> set[str]:
        return {j.id for j in await store.list(JobFilter(**kw), 100, None, True, 0)}

    assert len(await ids(handler_glob="other*")) == 13  # a prefix
    assert len(await ids(handler_glob="other.h?")) == 3  # one character
    assert await ids(handler_glob="Other*") == set()  # case-sensitive like the names
    assert await ids(handler_glob="other%") == set()  # LIKE wildcards are literal
    assert len(await ids(handler_glob="*")) == 43
    assert await ids(error="DISK 100%") == {f"a-{i}" for i in range(5)}  # case-insensitive
    assert await ids(error="100_") == set()
    assert await ids(payload='"i": 7}') == {"a-7", "b_7"}  # bytes of the JSON payload
    assert await ids(payload='"i": 7}', handler_glob="b*") == set()
    assert await ids(payload='"i": 7}', handler_glob="oth*") == {"b_7"}
    counts = await store.count(JobFilter(payload='"i": 1'), 1000)  # a-1, a-10..a-19, b_1, c-1
    assert sum(counts.values()) == 11 + 1 + 1


async def test_delete_only_finished_with_history(store: Store):
    await _mixed(store)  # a-0..a-4 failed, a-5..a-11 running, the rest queued
    deleted = await store.delete(["a-0", "a-1", "a-6", "a-20", "nope"], ("completed", "failed", "cancelled"))
    assert sorted(deleted) == ["a-0", "a-1"]
    assert await store.get("a-0") is None and await store.detail("a-1") is None
    assert (await store.get("a-6")).status == J.RUNNING and (await store.get("a-20")).status == J.QUEUED
    assert (await store.get("a-2")).status == J.FAILED


async def test_list_sorted_by_a_column_pages_by_offset(store: Store):
    await _mixed(store)  # 30 jobs of h (5 failed, 7 running), 10 of other.h
    by_handler = await store.list(JobFilter(), 100, None, True, 0, sort_by="handler")
    assert [j.handler for j in by_handler] == ["h"] * 30 + ["other.h"] * 10  # asc, ties by seq
    assert [j.id for j in by_handler[:3]] == ["a-0", "a-1", "a-2"]
    desc = await store.list(JobFilter(), 15, None, False, 0, sort_by="status")
    assert [j.status for j in desc][:10] == ["running"] * 7 + ["queued"] * 3
    page2 = await store.list(JobFilter(), 15, None, False, 15, sort_by="status")
    assert not {j.id for j in desc} & {j.id for j in page2}
    errs = await store.list(JobFilter(statuses=("failed",)), 100, None, False, 0, sort_by="error")
    assert len(errs) == 5


async def test_counts_are_capped(store: Store):
    await _mixed(store)
    counts = await store.count(JobFilter(), 1000)
    assert counts == {
        J.QUEUED: 28,
        J.RUNNING: 7,
        J.PAUSED: 0,
        J.COMPLETED: 0,
        J.FAILED: 5,
        J.CANCELLED: 0,
    }
    capped = await store.count(JobFilter(), 10)
    assert capped[J.QUEUED] == 11 and capped[J.RUNNING] == 7  # cap + 1 means "more than cap"
    assert (await store.count(JobFilter(handler="other.h"), 1000))[J.QUEUED] == 10
    hc = await store.handler_counts((J.QUEUED, J.RUNNING, J.FAILED))
    assert hc == {"h": {J.QUEUED: 18, J.RUNNING: 7, J.FAILED: 5}, "other.h": {J.QUEUED: 10}}


async def test_select_ids_in_insertion_order(store: Store):
    await _mixed(store)
    ids = await store.select_ids(JobFilter(statuses=(J.QUEUED,)), 1000)
    assert ids[:3] == ["a-12", "a-13", "a-14"] and len(ids) == 28
    assert await store.select_ids(JobFilter(handler="other.h"), 3) == ["b_0", "b_1", "b_2"]


async def test_children_filter_and_cancel_with_their_parent(store: Store):
    """A parent's children: listed and counted by `parent_job_id`; when the parent ends, its
    queued and paused children are cancelled in one call with the reason, the running ones are
    named (the engine stops them), finished ones and other jobs are left alone."""
    (parent,) = await store.insert(new_jobs(1, prefix="p"))
    kids = new_jobs(5, prefix="c")
    for k in kids:
        k.parent_job_id = parent.id
    kids[4].handler = "other"  # runs (below)
    (grand,) = new_jobs(1, prefix="g")
    grand.parent_job_id = "c0"
    await store.insert([*kids, grand, *new_jobs(2, prefix="x")])
    await store.transition("c1", (J.QUEUED,), {"status": J.PAUSED})
    (run,) = await store.claim(1, ["other"], time.time())
    await store.transition("c3", (J.QUEUED,), {"status": J.CANCELLED, "completed_at": 1.0})
    flt = JobFilter(parent_job_id=parent.id)
    listed = await store.list(flt, 10, None, True, 0)
    assert [j.id for j in listed] == ["c0", "c1", "c2", "c3", "c4"]
    counts = await store.count(flt, 100)
    assert (counts[J.QUEUED], counts[J.PAUSED], counts[J.RUNNING], counts[J.CANCELLED]) == (2, 1, 1, 1)
    assert await store.select_ids(JobFilter(parent_job_id="c0"), 10) == ["g0"]
    # a parent that ended with unfinished children (a server killed before cancelling them)
    assert await store.orphaned_children() == []
    ended = time.time() + 100  # after every change above
    await store.transition(parent.id, (J.QUEUED,), {"status": J.FAILED, "completed_at": ended})
    assert await store.orphaned_children() == [(parent.id, J.FAILED)]

    cancelled, running = await store.cancel_children([(parent.id, J.FAILED), ("nobody", J.CANCELLED)], 5.0)
    assert sorted(j.id for j in cancelled) == ["c0", "c1", "c2"] and running == [run.id]
    for j in cancelled:
        assert (j.status, j.error, j.completed_at) == (J.CANCELLED, f"parent {parent.id} failed", 5.0)
    assert (await store.get("c3")).completed_at == 1.0  # type: ignore[union-attr]  # already ended
    assert (await store.get("c4")).status == J.RUNNING  # type: ignore[union-attr]
    assert (await store.get("g0")).status == J.QUEUED  # type: ignore[union-attr]  # its parent's turn next
    assert (await store.get("x0")).status == J.QUEUED  # type: ignore[union-attr]
    # left: the running child, running when its parent ended (the engine stops it); c0's own
    # child g0 changed after c0 ended (here at 5.0): as a child retried or added later, not counted
    assert await store.orphaned_children() == [(parent.id, J.FAILED)]
    await store.transition("c0", (J.CANCELLED,), {"completed_at": ended})
    assert sorted(await store.orphaned_children()) == [("c0", J.CANCELLED), (parent.id, J.FAILED)]
    cancelled, _ = await store.cancel_children([("c0", J.CANCELLED)], 6.0)
    assert [(j.id, j.error) for j in cancelled] == [("g0", "parent c0 cancelled")]
    assert await store.orphaned_children() == [(parent.id, J.FAILED)]


# ---------------------------------------------------------------- schedules


def new_schedule(
    sid: str = "s1", *, next_run_at: float = 0.0, state: str = S.ACTIVE, owner: str = "operator"
):
    now = time.time()
    return S.Schedule(
        id=sid,
        handler="pulse.noop",
        payload=b'{"k": 1}',
        interval_secs=60,
        state=state,
        owner=owner,
        next_run_at=next_run_at or now,
        created_at=now,
        updated_at=now,
    )


def run_job(sid: str, jid: str) -> Job:
    now = time.time()
    return Job(
        id=jid, handler="pulse.noop", source=f"schedule:{sid}", created_at=now, updated_at=now, run_at=now
    )


async def test_schedules_insert_get_list_update(store: Store):
    await store.insert_schedule(new_schedule("s1"))
    await store.insert_schedule(new_schedule("s2", owner="plugin:demo", state=S.PAUSED))
    await store.insert_schedule(new_schedule("s3", state=S.DELETED))
    with pytest.raises(ValidationError, match="already exists"):
        await store.insert_schedule(new_schedule("s1"))
    got = await store.get_schedule("s1")
    assert (
        got is not None and got.payload == b'{"k": 1}' and got.interval_secs == 60 and got.overlap == "skip"
    )
    assert await store.get_schedule("nope") is None
    assert [s.id for s in await store.list_schedules(S.ScheduleFilter(), 100)] == ["s1", "s2"]
    assert [s.id for s in await store.list_schedules(S.ScheduleFilter(states=(S.DELETED,)), 100)] == ["s3"]
    assert [s.id for s in await store.list_schedules(S.ScheduleFilter(owner="plugin:demo"), 100)] == ["s2"]
    changed = await store.update_schedule("s2", (S.PAUSED,), {"state": S.ACTIVE, "interval_secs": 5})
    assert changed is not None and changed.state == S.ACTIVE and changed.interval_secs == 5
    assert await store.update_schedule("s2", (S.PAUSED,), {"state": S.ACTIVE}) is None  # state moved on
    with pytest.raises(NotFound):
        await store.update_schedule("nope", (S.ACTIVE,), {"state": S.PAUSED})


async def test_schedules_due_and_next(store: Store):
    now = time.time()
    await store.insert_schedule(new_schedule("late", next_run_at=now - 10))
    await store.insert_schedule(new_schedule("later", next_run_at=now - 5))
    await store.insert_schedule(new_schedule("future", next_run_at=now + 100))
    await store.insert_schedule(new_schedule("paused", next_run_at=now - 50, state=S.PAUSED))
    assert [s.id for s in await store.due_schedules(now, 10)] == ["late", "later"]
    assert [s.id for s in await store.due_schedules(now, 1)] == ["late"]
    assert await store.next_schedule_at() == pytest.approx(now - 10)


async def test_fire_schedule_claims_each_run_once_and_records_execution(make_store: MakeStore):
    a, b = await make_store("n1"), await make_store("n2")
    due = time.time() - 1
    await a.insert_schedule(new_schedule("s1", next_run_at=due))
    changes = {"next_run_at": due + 60, "last_run_at": due + 1}
    ex1 = S.Execution(id="x1", schedule_id="s1", job_id="j1", started_at=due + 1)
    ex2 = S.Execution(id="x2", schedule_id="s1", job_id="j2", started_at=due + 1)
    first, second = await asyncio.gather(
        a.fire_schedule("s1", due, {**changes, "last_job_id": "j1"}, run_job("s1", "j1"), ex1),
        b.fire_schedule("s1", due, {**changes, "last_job_id": "j2"}, run_job("s1", "j2"), ex2),
    )
    assert (first is None) != (second is None)  # exactly one node won the run
    won = first or second
    assert won.run_count == 1 and won.next_run_at == due + 60
    jobs = await a.list(JobFilter(), 10, None, False, 0)
    assert len(jobs) == 1 and jobs[0].source == "schedule:s1" and jobs[0].id == won.last_job_id
    exs = await a.list_executions("s1", 10)
    assert [e.job_id for e in exs] == [won.last_job_id] and exs[0].status == S.EX_RUNNING
    # a run-now (expected None) fires whatever next_run_at is, and leaves it alone when unchanged
    ex3 = S.Execution(id="x3", schedule_id="s1", status=S.EX_SKIPPED, started_at=due + 2)
    again = await a.fire_schedule("s1", None, {"last_execution_id": "x3"}, None, ex3)
    assert again is not None and again.run_count == 1 and again.next_run_at == due + 60  # skipped: no count
    assert [e.id for e in await a.list_executions("s1", 10)][0] == "x3"
    assert [e.id for e in await a.list_executions("s1", 10, before_seq=exs[0].seq + 1)] == [exs[0].id]


async def test_end_execution_records_outcome_and_duration(store: Store):
    t0 = time.time() - 2
    await store.insert_schedule(new_schedule("s1", next_run_at=t0))
    ex = S.Execution(id="x1", schedule_id="s1", job_id="j1", started_at=t0)
    await store.fire_schedule(
        "s1", t0, {"last_execution_id": "x1", "last_job_id": "j1"}, run_job("s1", "j1"), ex
    )
    s = await store.end_execution("j1", S.EX_FAILED, t0 + 1.5, "boom")
    assert s is not None and s.id == "s1" and s.last_status == S.EX_FAILED
    [got] = await store.list_executions("s1", 10)
    assert got.status == S.EX_FAILED and got.error == "boom" and got.duration_ms == 1500
    assert got.completed_at == pytest.approx(t0 + 1.5)
    assert await store.end_execution("not-a-run", S.EX_COMPLETED, t0, "") is None


async def test_text_filter_finds_a_schedules_jobs_by_source(store: Store):
    await store.insert(new_jobs(3, prefix="x"))
    await store.insert([run_job("s42", "r1"), run_job("s42", "r2"), run_job("s420", "r3")])
    found = await store.list(JobFilter(text="schedule:s42"), 10, None, True, 0)
    assert [j.id for j in found] == ["r1", "r2", "r3"]  # a substring match, like the other fields
    assert JobFilter(text="SCHEDULE:S42").matches(found[0])
    assert (await store.count(JobFilter(text="schedule:s420"), 100))["queued"] == 1


async def test_one_live_declared_schedule_per_owner_and_handler(make_store: MakeStore):
    a, b = await make_store("n1"), await make_store("n2")

    def declared(sid: str) -> S.Schedule:
        s = new_schedule(sid, owner="plugin:demo")
        s.declared = True
        return s

    results = await asyncio.gather(
        a.insert_schedule(declared("d1")), b.insert_schedule(declared("d2")), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["AlreadyDeclared", "NoneType"]  # nodes racing
    live = await a.list_schedules(S.ScheduleFilter(owner="plugin:demo"), 10)
    assert len(live) == 1
    await a.update_schedule(live[0].id, (S.ACTIVE,), {"state": S.DELETED})  # withdrawn: a tombstone
    await b.insert_schedule(declared("d3"))  # re-declared: a fresh one beside the tombstone
    await a.insert_schedule(new_schedule("api1", owner="plugin:demo"))  # runtime-created: not limited


async def test_prune_executions_keeps_running_and_recent_runs(store: Store):
    t0 = time.time() - 100
    await store.insert_schedule(new_schedule("s1", next_run_at=t0))
    for i, (status, ended) in enumerate(
        [(S.EX_COMPLETED, t0), (S.EX_SKIPPED, t0), (S.EX_RUNNING, 0.0), (S.EX_FAILED, t0 + 90)]
    ):
        ex = S.Execution(id=f"x{i}", schedule_id="s1", status=status, started_at=t0, completed_at=ended)
        await store.fire_schedule("s1", None, {"last_execution_id": ex.id}, None, ex)
    assert await store.prune_executions(t0 + 50, 1) == 1  # the limit holds
    assert await store.prune_executions(t0 + 50, 100) == 1
    assert [e.id for e in await store.list_executions("s1", 10)] == ["x3", "x2"]


# ---------------------------------------------------------------- engine on PostgreSQL


@pytest.fixture
async def pg_engines(pg_url: str) -> AsyncIterator[Callable[..., Awaitable[Engine]]]:
    made: list[tuple[Engine, Store]] = []

    async def factory(*extra, node: str = "n1", lease: float = 30.0, **kw) -> Engine:
        store = PostgresStore(pg_url, node=node, lease_secs=lease)
        await store.open()
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("backoff_cap", 0.05)
        kw.setdefault("retention_secs", None)
        engine = Engine(store, StaticRouter(builtin_handlers() + list(extra)), **kw)
        await engine.start()
        made.append((engine, store))
        return engine

    yield factory
    for engine, store in made:
        await engine.stop(grace=0.1)
        await store.close()


@pytest.mark.postgres
async def test_pg_engine_noop_and_retry_history(pg_engines):
    flaky = Flaky(2)
    engine = await pg_engines(flaky)
    job = await engine.enqueue("pulse.noop", b'{"x": 1}')
    done = await wait_status(engine, job.id, {J.COMPLETED})
    assert done.attempts == 1 and done.node == "n1"
    f = await engine.enqueue("t.flaky", b"{}", max_attempts=3)
    assert (await wait_status(engine, f.id, {J.COMPLETED, J.FAILED})).status == J.COMPLETED
    d = await engine.get_detail(f.id)
    assert [a.outcome for a in d.attempts] == ["failed", "failed", "completed"]
    assert [e.message for e in d.logs] == ["call 1", "call 2", "call 3"]


@pytest.mark.postgres
async def test_pg_handler_paused_on_one_node_is_held_by_every_node(pg_engines):
    a = await pg_engines(node="a")
    b = await pg_engines(node="b")
    await a.pause_handler("pulse.noop")
    assert "pulse.noop" not in b.paused_handlers  # b has not reloaded: the store holds it anyway
    held = await b.enqueue("pulse.noop", b"{}")
    assert held.status == J.PAUSED and held.pause_reason == J.REASON_HANDLER
    other = await b.enqueue("pulse.sleep", b'{"seconds": 0}')
    await wait_status(b, other.id, {J.COMPLETED})  # b claimed after the held job was stored
    assert (await b.get_job(held.id)).status == J.PAUSED
    await a.resume_handler("pulse.noop")
    done = await wait_status(b, held.id, {J.COMPLETED})
    assert done.pause_reason == ""


@pytest.mark.postgres
async def test_pg_engine_cancel_running(pg_engines):
    stub = Stubborn()
    engine = await pg_engines(stub)
    job = await engine.enqueue("t.stubborn", b"{}")
    await asyncio.wait_for(stub.started.wait(), 5)
    out = await engine.cancel(job.id)
    assert out.status == J.CANCELLED and "cancelled by operator" in out.error
    d = await engine.get_detail(job.id)
    assert d.attempts[-1].outcome == J.OUTCOME_CANCELLED


@pytest.mark.postgres
async def test_pg_children_cancelled_with_their_parent_across_nodes_and_ids_taken_once(pg_engines):
    stub_a, stub_b = Stubborn(), Stubborn()
    a = await pg_engines(stub_a, node="a", concurrency=1)
    parent = await a.enqueue("t.stubborn", b"{}")
    await asyncio.wait_for(stub_a.started.wait(), 5)
    b = await pg_engines(stub_b, node="b")  # only now: b must not be the one to claim the parent
    running_kid = await a.enqueue("t.stubborn", b"{}", parent_job_id=parent.id)  # a is full: b runs it
    await asyncio.wait_for(stub_b.started.wait(), 5)
    waiting_kid = await b.enqueue("pulse.noop", b"{}", parent_job_id=parent.id, delay_secs=3600)
    reason = f"parent {parent.id} cancelled"
    seen: list[tuple[str, str]] = []  # (status, error) of every snapshot of the running kid, both nodes
    with a.bus.watch() as on_a, b.bus.watch() as on_b:
        await a.cancel(parent.id)
        deadline = time.monotonic() + 10
        while [(await a.get_job(k.id)).error for k in (running_kid, waiting_kid)] != [reason, reason]:
            assert time.monotonic() < deadline, [await a.get_job(k.id) for k in (running_kid, waiting_kid)]
            for w in (on_a, on_b):
                batch, _ = await w.next_batch(timeout=0.2)
                seen += [(j.status, j.error) for j in batch if j.id == running_kid.id]
        for w in (on_a, on_b):  # what is already delivered: an ending published after that is a 2nd
            batch, _ = await w.next_batch(timeout=0.05)
            seen += [(j.status, j.error) for j in batch if j.id == running_kid.id]
    # node b ends the running one with the parent's reason at once (never "cancelled by operator"
    # first, then a second ending rewriting the reason), and the attempt says so too
    assert {e for st, e in seen if st == J.CANCELLED} == {reason}, seen
    assert (await a.get_detail(running_kid.id)).attempts[-1].error == reason
    assert {(await a.get_job(k.id)).status for k in (running_kid, waiting_kid)} == {J.CANCELLED}
    assert (await a.get_job(running_kid.id)).node == "b"
    # the same id enqueued on both nodes at once: one job, both get it
    got = await asyncio.gather(
        *(e.submit("pulse.noop", b'{"k": 1}', job_id="once-1", delay_secs=3600) for e in (a, b, a, b))
    )
    assert {j.id for j, _ in got} == {"once-1"} and sum(not existed for _, existed in got) == 1


@pytest.mark.postgres
async def test_pg_enqueue_on_one_node_wakes_another_and_events_cross(pg_engines):
    stub_a = Stubborn()
    a = await pg_engines(stub_a, node="a", concurrency=1)
    await pg_engines(node="b")
    blocker = await a.enqueue("t.stubborn", b"{}")  # a is now full; only b can run the next job
    await asyncio.wait_for(stub_a.started.wait(), 5)
    assert (await a.get_job(blocker.id)).node == "a"
    job = await a.enqueue("pulse.noop", b"{}")
    done = await wait_status(a, job.id, {J.COMPLETED})  # a's bus hears b's change over NOTIFY
    assert done.node == "b"
    assert (await a.get_detail(job.id)).attempts[0].node == "b"


@pytest.mark.postgres
@pytest.mark.parametrize("deliver_delay", [0.0, 0.3])
async def test_pg_cancel_reaches_the_node_running_the_job(pg_engines, deliver_delay):
    """With a delivery delay (a busy node) a fetches the row b inserted while it is still queued
    and delivers that snapshot only while its cancel waits for b: the stale `queued` must not end
    the wait while b still runs the job (regression, issue 13). The job is due a little after
    its insert so a's fetch surely sees it queued."""
    stub = Stubborn()
    a = await pg_engines(node="a")  # no t.stubborn handler on a
    b = await pg_engines(stub, node="b")
    a.store.deliver_delay = b.store.deliver_delay = deliver_delay
    job = await b.enqueue("t.stubborn", b"{}", delay_secs=deliver_delay * 2 / 3)
    await asyncio.wait_for(stub.started.wait(), 5)
    with b.bus.watch() as on_b:
        out = await a.cancel(job.id)
        assert out.status == J.CANCELLED and out.error == "cancelled by operator"
        seen: set[str] = set()
        while J.CANCELLED not in seen:  # b published the end (and dropped the run in the same step)
            batch, _ = await on_b.next_batch(timeout=5)
            assert batch, "node b never reported the cancel"
            seen |= {j.status for j in batch if j.id == job.id}
    assert b.running_jobs() == []
    d = await a.get_detail(job.id)
    assert [(x.outcome, x.node) for x in d.attempts] == [(J.OUTCOME_CANCELLED, "b")]


@pytest.mark.postgres
async def test_pg_two_engines_run_2000_jobs_exactly_once(pg_engines, pg_url: str):
    a = await pg_engines(node="a")
    await pg_engines(node="b")
    total = 2000
    with a.bus.watch() as w:
        ids: list[str] = []
        for start in range(0, total, 200):
            batch = await asyncio.gather(*(a.enqueue("pulse.noop", b"{}") for _ in range(start, start + 200)))
            ids.extend(j.id for j in batch)
        pending = set(ids)
        deadline = time.monotonic() + 60
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} jobs did not complete"
            jobs, resync = await w.next_batch(timeout=5)
            pending -= {j.id for j in jobs if j.status == J.COMPLETED}
            if resync:
                done = await a.store.select_ids(JobFilter(statuses=(J.COMPLETED,)), total)
                pending -= set(done)
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT attempts, status FROM jobs")
        # one attempt each, completed: kept in the job row (node included), no attempts row
        per_node = dict(await conn.fetch("SELECT node, count(*) FROM jobs GROUP BY node"))
        assert await conn.fetchval("SELECT count(*) FROM attempts") == 0
    finally:
        await conn.close()
    assert len(rows) == total and {(r["attempts"], r["status"]) for r in rows} == {(1, J.COMPLETED)}
    assert set(per_node) == {"a", "b"} and sum(per_node.values()) == total, per_node


# ---------------------------------------------------------------- PostgreSQL specifics


def _plan_nodes(plan: dict) -> list[dict]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _plan_nodes(child)
    return out


@contextlib.asynccontextmanager
async def _young_pg_table(pg_url: str) -> AsyncIterator[tuple[PostgresStore, asyncpg.Connection, float]]:
    """A store of node n1 whose jobs table holds 3,000 queued jobs and no statistics (autovacuum
    off), a plain connection to EXPLAIN on, and the jobs' time."""
    store = PostgresStore(pg_url, node="n1")
    await store.open()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")  # no statistics
        now = time.time()
        await store.insert(
            [Job(id=f"j{i}", handler="h", created_at=now, updated_at=now, run_at=now) for i in range(3000)]
        )
        yield store, conn, now
    finally:
        await conn.close()
        await store.close()


@pytest.mark.postgres
async def test_pg_claim_and_finish_plans_do_not_depend_on_statistics(pg_url: str):
    """A young jobs table has no statistics, and the planner then guesses that a handful of jobs
    are queued or running. The claim must still walk jobs_queue in order and stop at its limit
    (not sort every queued row), and the finish look its rows up by primary key (not loop over
    this node's running rows re-scanning its arrays for each): both were O(queue) per call."""
    async with _young_pg_table(pg_url) as (store, conn, now):
        running = await store.claim(300, ["h"], now)
        assert len(running) == 300
        async with conn.transaction():
            await conn.execute(CLAIM_PLAN)
            raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + CLAIM_SQL, now, "n1", 30.0, ["h"], 128)
        nodes = _plan_nodes(json.loads(raw)[0]["Plan"])
        assert [n for n in nodes if n["Node Type"] == "Sort"] == [], raw
        assert any(n.get("Index Name") == "jobs_queue" for n in nodes), raw
        items = []
        for job in running[:100]:
            job.status, job.completed_at = J.COMPLETED, now
            items.append(Finish(job, Attempt(job.id, job.attempts, now, now, J.OUTCOME_COMPLETED, node="n1")))
        async with conn.transaction():
            await conn.execute(FINISH_PLAN)
            raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + FINISH_SQL, *_finish_args(items, "n1"))
        nodes = _plan_nodes(json.loads(raw)[0]["Plan"])
        assert [n for n in nodes if n["Node Type"] == "Nested Loop"] == [], raw
        assert not any(n.get("Index Name", "").startswith("jobs_running") for n in nodes), raw


@pytest.mark.postgres
async def test_pg_lease_statements_read_running_rows_by_index_without_statistics(pg_url: str):
    """Running rows have one index (jobs_running_node): the heartbeat's renewal and both reaping
    statements find them through it on a table without statistics (never a scan of every job), and
    no index holds lease_expires, so a renewal changes no indexed column (a HOT update)."""
    async with _young_pg_table(pg_url) as (store, conn, now):
        assert len(await store.claim(50, ["h"], now)) == 50
        defs = [
            r["indexdef"] for r in await conn.fetch("SELECT indexdef FROM pg_indexes WHERE tablename='jobs'")
        ]
        assert [d for d in defs if "lease_expires" in d] == [], defs
        renew = "UPDATE jobs SET lease_expires = 1 WHERE status='running' AND node=$1"
        for sql, args in [(requeue_sql(False), (now,)), (requeue_sql(True), (now, "n1")), (renew, ("n1",))]:
            raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
            nodes = _plan_nodes(json.loads(raw)[0]["Plan"])
            assert not any(n["Node Type"] == "Seq Scan" for n in nodes), raw
            assert any(n.get("Index Name") == "jobs_running_node" for n in nodes), raw


@pytest.mark.postgres
async def test_pg_expired_lease_is_reaped_by_another_node(pg_url: str):
    dead = PostgresStore(pg_url, node="dead", lease_secs=30)
    live = PostgresStore(pg_url, node="live", lease_secs=30)
    await dead.open()
    await live.open()
    try:
        await dead.insert(new_jobs(3))
        claimed = await dead.claim(3, ["h"], time.time())
        await live.heartbeat(time.time())  # leases still valid: nothing happens
        assert (await live.count(JobFilter(), 10))[J.RUNNING] == 3
        async with live._acquire() as conn:  # the dead node stops renewing: its leases run out
            await conn.execute("UPDATE jobs SET lease_expires = 0 WHERE node = 'dead'")
        await live.heartbeat(time.time())
        rows = [await live.detail(j.id) for j in claimed]
        assert all(d is not None and d.job.status == J.QUEUED for d in rows)
        assert all(d is not None and [a.outcome for a in d.attempts] == [J.OUTCOME_INTERRUPTED] for d in rows)
        again = await live.claim(3, ["h"], time.time())
        assert [j.attempts for j in again] == [2, 2, 2] and {j.node for j in again} == {"live"}
        # the dead node wakes up late: its finish is fenced out and changes nothing
        await dead.finish([ended(claimed[0], J.COMPLETED, J.OUTCOME_COMPLETED)])
        row = await live.get(claimed[0].id)
        assert row is not None and row.status == J.RUNNING and row.node == "live"
    finally:
        await dead.close()
        await live.close()


@pytest.mark.postgres
async def test_pg_cancel_requested_on_a_dead_node_ends_a_child_with_its_parents_reason(pg_url: str):
    """The node running a child died after its parent ended and the cascade asked it to cancel the
    child: the node that reaps the lease ends it with the parent's reason, as the dead node would
    have; a job without an ended parent ends as an operator's cancel."""
    dead = PostgresStore(pg_url, node="dead", lease_secs=30)
    live = PostgresStore(pg_url, node="live", lease_secs=30)
    await dead.open()
    await live.open()
    try:
        parent, kid, plain = new_jobs(3)
        kid.parent_job_id = parent.id
        await dead.insert([parent, kid, plain])
        await dead.claim(3, ["h"], time.time())
        async with live._acquire() as conn:  # the parent ended (on the dead node, say)
            await conn.execute(
                "UPDATE jobs SET status='failed', completed_at=$2 WHERE id=$1", parent.id, time.time()
            )
        assert await live.request_cancel(kid.id) == "dead"
        assert await live.request_cancel(plain.id) == "dead"
        async with live._acquire() as conn:  # the dead node stops renewing: its leases run out
            await conn.execute("UPDATE jobs SET lease_expires = 0 WHERE node = 'dead'")
        await live.heartbeat(time.time())
        got = {j.id: (j.status, j.error) for j in [await live.get(kid.id), await live.get(plain.id)] if j}
        assert got == {
            kid.id: (J.CANCELLED, f"parent {parent.id} failed"),
            plain.id: (J.CANCELLED, "cancelled by operator"),
        }
        detail = await live.detail(kid.id)
        assert detail is not None and detail.attempts[-1].error.startswith(f"parent {parent.id} failed;")
    finally:
        await dead.close()
        await live.close()


@pytest.mark.postgres
async def test_pg_heartbeat_extends_only_own_leases(pg_url: str):
    a = PostgresStore(pg_url, node="a", lease_secs=5)
    b = PostgresStore(pg_url, node="b", lease_secs=500)
    await a.open()
    await b.open()
    try:
        await a.insert(new_jobs(2))
        await a.claim(1, ["h"], time.time())
        await b.claim(1, ["h"], time.time())
        async with a._acquire() as conn:
            before = dict(await conn.fetch("SELECT node, lease_expires FROM jobs WHERE status='running'"))
            await b.heartbeat(time.time())
            after = dict(await conn.fetch("SELECT node, lease_expires FROM jobs WHERE status='running'"))
        assert after["a"] == before["a"] and after["b"] > before["b"]
        assert before["a"] - time.time() == pytest.approx(5, abs=2)
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres
async def test_pg_listen_delivers_other_nodes_changes_and_cancel_requests(pg_url: str):
    a = PostgresStore(pg_url, node="a")
    b = PostgresStore(pg_url, node="b")
    await a.open()
    await b.open()
    heard_a: asyncio.Queue[list[Job]] = asyncio.Queue()
    heard_b: asyncio.Queue[list[Job]] = asyncio.Queue()
    try:
        await a.listen(_put(heard_a))
        await b.listen(_put(heard_b))
        await a.insert(new_jobs(2))
        got = await asyncio.wait_for(heard_b.get(), 5)
        assert sorted(j.id for j in got) == ["j0", "j1"] and got[0].status == J.QUEUED
        (job,) = await b.claim(1, ["h"], time.time())
        assert [j.status for j in await asyncio.wait_for(heard_a.get(), 5)] == [J.RUNNING]
        assert await a.request_cancel(job.id) == "b"
        await asyncio.wait_for(heard_b.get(), 5)
        assert await b.cancel_requests() == [job.id]
        assert await b.cancel_requests() == []
        assert await a.request_cancel("j1") is None  # not running
        assert heard_a.empty()  # a never hears its own changes
    finally:
        await a.close()
        await b.close()


def _put(q: asyncio.Queue[list[Job]]) -> Callable[[list[Job]], Awaitable[None]]:
    async def on_event(jobs: list[Job]) -> None:
        q.put_nowait(jobs)

    return on_event


@pytest.mark.postgres
async def test_pg_url_password_never_shown_and_migrations(pg_url: str, caplog):
    secret_url = pg_url.replace("postgres@", "postgres:s3cret-pw@") + "?pulse_lease_secs=7"
    store = PostgresStore(secret_url)
    assert "s3cret-pw" not in store.url and store.url.startswith("postgresql://postgres@127.0.0.1:")
    assert store.lease_secs == 7 and store.node  # a default node name: host:pid
    await store.open()
    await store.close()
    again = PostgresStore(secret_url)  # a second open migrates nothing
    await again.open()
    async with again._acquire() as conn:
        assert await conn.fetchval("SELECT value FROM pulse_meta WHERE key='schema_version'") == str(
            SCHEMA_VERSION
        )
        await conn.execute("UPDATE pulse_meta SET value = '999' WHERE key='schema_version'")
    await again.close()
    with pytest.raises(Unavailable, match="schema version 999, newer"):
        await PostgresStore(secret_url).open()
    assert "s3cret-pw" not in caplog.text
    with pytest.raises(ValidationError, match="pulse_lease_secs"):
        PostgresStore(pg_url + "?pulse_lease_secs=soon")


@pytest.mark.postgres
async def test_pg_unreachable_server_is_a_clear_error():
    store = PostgresStore("postgresql://nobody:pw@127.0.0.1:1/none")
    with pytest.raises(
        Unavailable, match="cannot connect to PostgreSQL at postgresql://nobody@127.0.0.1:1/none"
    ):
        await store.open()


def test_sqlite_store_still_selected_for_paths(tmp_path):
    assert isinstance(open_store(str(tmp_path / "x.db")), SQLiteStore)
    assert isinstance(open_store("postgresql://u@h/db"), PostgresStore)


async def test_engine_never_lets_a_late_snapshot_overwrite_a_newer_one(tmp_path):
    """`enqueue` publishes "queued" after its insert returns; by then the job may already have run
    (here or on another node). The late "queued" must not replace "completed" in watchers."""
    store = SQLiteStore(str(tmp_path / "e.db"))
    await store.open()
    engine = Engine(store, StaticRouter(builtin_handlers()), retention_secs=None)
    try:
        with engine.bus.watch() as w:
            done = Job(id="x", handler="pulse.noop", status=J.COMPLETED, attempts=1)
            engine._publish(done)
            engine._publish(Job(id="x", handler="pulse.noop", status=J.QUEUED, attempts=0))  # late
            engine._publish(Job(id="x", handler="pulse.noop", status=J.RUNNING, attempts=1))  # late
            batch, _ = await w.next_batch(timeout=1)
            assert [(j.status, j.attempts) for j in batch] == [(J.COMPLETED, 1)]
            engine._publish(Job(id="x", handler="pulse.noop", status=J.RUNNING, attempts=2))  # a retry: newer
            batch, _ = await w.next_batch(timeout=1)
            assert [(j.status, j.attempts) for j in batch] == [(J.RUNNING, 2)]
    finally:
        await store.close()


def _sqlite_memory_used() -> int:
    """Bytes SQLite has allocated in this process (sqlite3_memory_used of the library `sqlite3` uses)."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "libsqlite3" in line and "/" in line}
    if not paths:
        pytest.skip("sqlite3 is not linked against a shared libsqlite3 here")
    lib = ctypes.CDLL(paths.pop())
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


async def test_sqlite_spend_read_gives_its_page_cache_back(tmp_path):
    """The engine re-reads the spend every 30 s, with or without budgets; on SQLite that read visits
    every job finished this month. The reader's page cache must not keep those pages: a server
    with no console grew by its readers' caches (2 MB each) plus the scattered heap they left."""
    store = SQLiteStore(str(tmp_path / "s.db"), readers=1)
    await store.open()
    try:
        now = time.time()
        jobs = new_jobs(6000, handler="h")
        for i in range(0, len(jobs), 500):
            await store.insert(jobs[i : i + 500])
        with contextlib.closing(sqlite3.connect(store.path)) as conn, conn:  # all ran this minute
            conn.execute("UPDATE jobs SET status=?, completed_at=?, cost_actual=0.5", (J.COMPLETED, now))
        assert await store.get("none") is None  # the reader connection is open
        before = _sqlite_memory_used()
        [(handler, _, cost, n)] = await store.spend(now - 10, now - 100)
        assert (handler, n, cost) == ("h", 6000, pytest.approx(3000.0))
        grew = _sqlite_memory_used() - before
        assert grew < 256 * 1024, f"SQLite kept {grew / 1e6:.2f} MB after the spend read"
    finally:
        await store.close()
