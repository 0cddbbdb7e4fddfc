"""Claim rounds that do not stall the slots: a job's end and the claim for the slot it frees share
one store commit, and jobs claimed ahead of a free slot (`prefetch`) wait for one with their
attempt (timeout, started_at) not started. Real Engine, real SQLite file, no sleeps."""

from __future__ import annotations

import asyncio
import time

import pytest
from test_engine_dispatch import Gate, wait_for

from pulse_tui.pulse import jobs as J
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.handlers import HandlerResult, StaticRouter, builtin_handlers
from pulse_tui.pulse.store.sqlite import SQLiteStore


class Count:
    """A no-op handler that counts its runs and tells when `n` ran."""

    plugin = ""

    def __init__(self, n: int, name: str = "t.count") -> None:
        self.name = name
        self.n = n
        self.order: list[str] = []
        self.done = asyncio.Event()

    async def run(self, ctx):
        self.order.append(ctx.job.id)
        if len(self.order) >= self.n:
            self.done.set()
        return HandlerResult()


async def make(tmp_path, *handlers, **kw) -> tuple[Engine, SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "jobs.db"))
    await store.open()
    kw.setdefault("retention_secs", None)
    engine = Engine(store, StaticRouter(builtin_handlers() + list(handlers)), **kw)
    return engine, store


async def hold_slot(engine: Engine, gate: Gate, **kw) -> J.Job:
    """Start the engine and hold its only slot with a gated job (jobs enqueued next wait ahead)."""
    await engine.start()
    first = await engine.enqueue(gate.name, b"{}", **kw)
    await wait_for(engine, first.id, {J.RUNNING})
    return first


async def stopped(engine: Engine, store: SQLiteStore) -> None:
    await engine.stop(grace=1)
    await store.close()


async def test_an_end_and_the_claim_for_its_slot_share_one_commit(tmp_path):
    """Concurrency 4, 200 no-op jobs: a wave's ends and the next wave's claim go in one commit
    (two commits per wave before), so the drain costs about one commit per wave of 4."""
    n, conc = 200, 4
    h = Count(n)
    engine, store = await make(tmp_path, h, concurrency=conc, claim_batch=conc)
    try:
        await engine.enqueue_many([{"handler": h.name, "payload": b"{}"} for _ in range(n)])
        before = store.commits
        await engine.start()
        await asyncio.wait_for(h.done.wait(), 30)
        counts = await engine.count_jobs(J.JobFilter(), cap=n + 1)
        while counts.get(J.COMPLETED, 0) < n:  # the last ends are being committed
            with engine.bus.watch() as w:
                await w.next_batch(timeout=5)
            counts = await engine.count_jobs(J.JobFilter(), cap=n + 1)
        commits = store.commits - before
    finally:
        await stopped(engine, store)
    waves = n // conc
    # each wave: one commit for its ends + the next claim (the first claim and the last ends alone);
    # a wave's ends may split over two loop turns now and then, so allow a margin, still well
    # under the two commits per wave of claiming after the ends were written
    assert commits <= waves * 1.5, f"{commits} commits for {waves} waves"


async def test_jobs_claimed_ahead_run_in_claim_order(tmp_path):
    """FIFO by seq within priority holds through the claimed-ahead queue."""
    n = 60
    h = Count(n)
    engine, store = await make(tmp_path, h, concurrency=2, prefetch=6, claim_batch=8)
    try:
        jobs = await engine.enqueue_many([{"handler": h.name, "payload": b"{}"} for _ in range(n)])
        await engine.start()
        await asyncio.wait_for(h.done.wait(), 30)
    finally:
        await stopped(engine, store)
    assert h.order == [j.id for j in jobs]


async def test_a_job_claimed_ahead_starts_its_timeout_with_its_slot(tmp_path):
    """One slot, held by a gated job; the job claimed ahead behind it has a 1 s timeout. It waits
    longer than that for the slot, then completes: its attempt starts at hand-over."""
    gate = Gate()
    quick = Count(1, name="t.quick")
    engine, store = await make(tmp_path, gate, quick, concurrency=1, prefetch=4)
    try:
        await hold_slot(engine, gate)
        ahead = await engine.enqueue(quick.name, b"{}", timeout_secs=1)
        # claimed ahead: running in the store (leased to this node), not started
        row = await wait_for(engine, ahead.id, {J.RUNNING})
        claimed_at = time.time()
        assert not quick.order and ahead.id not in engine.running_jobs()
        assert row.node == store.node
        # hold the slot past the waiting job's timeout (a bus wait on an unrelated job, no sleep)
        with engine.bus.watch() as w:
            deadline = time.monotonic() + 1.3
            while time.monotonic() < deadline:
                await w.next_batch(timeout=deadline - time.monotonic())
        gate.open.set()
        done = await wait_for(engine, ahead.id, {J.COMPLETED, J.FAILED, J.QUEUED})
        detail = await engine.get_detail(ahead.id)
    finally:
        await stopped(engine, store)
    assert done.status == J.COMPLETED, done.error
    assert [a.outcome for a in detail.attempts] == [J.OUTCOME_COMPLETED]
    assert detail.attempts[0].started_at >= claimed_at + 1.2  # started with its slot, not at claim


async def test_cancel_of_a_job_claimed_ahead_never_runs_it(tmp_path):
    gate = Gate()
    quick = Count(1, name="t.quick")
    engine, store = await make(tmp_path, gate, quick, concurrency=1, prefetch=4)
    try:
        first = await hold_slot(engine, gate)
        ahead = await engine.enqueue(quick.name, b"{}")
        await wait_for(engine, ahead.id, {J.RUNNING})
        cancelled = await asyncio.wait_for(engine.cancel(ahead.id, "not wanted"), 5)
        assert cancelled.status == J.CANCELLED and cancelled.error == "not wanted"
        gate.open.set()
        await wait_for(engine, first.id, {J.COMPLETED})
        detail = await engine.get_detail(ahead.id)
    finally:
        await stopped(engine, store)
    assert not quick.order
    assert [a.outcome for a in detail.attempts] == [J.OUTCOME_CANCELLED]


async def test_stop_requeues_jobs_claimed_ahead_uncharged(tmp_path):
    """At shutdown a job claimed ahead is re-queued as interrupted (not charged), as at a crash;
    the next start runs it."""
    gate = Gate()
    quick = Count(1, name="t.quick")
    engine, store = await make(tmp_path, gate, quick, concurrency=1, prefetch=4)
    await hold_slot(engine, gate)
    ahead = await engine.enqueue(quick.name, b"{}", max_attempts=1)
    await wait_for(engine, ahead.id, {J.RUNNING})
    await engine.stop(grace=0.2)
    row = await store.get(ahead.id)
    assert row is not None and row.status == J.QUEUED
    assert (row.run_attempts, row.interruptions) == (0, 1)
    gate.open.set()  # the gated job, re-queued too, ends at once on the next start
    engine = Engine(store, StaticRouter(builtin_handlers() + [gate, quick]), retention_secs=None)
    try:
        await engine.start()
        done = await wait_for(engine, ahead.id, {J.COMPLETED, J.FAILED})
    finally:
        await stopped(engine, store)
    assert done.status == J.COMPLETED and quick.order == [ahead.id]


# ---- jobs claimed ahead that must not run, or must keep what a running job keeps


async def _claimed_ahead(engine: Engine, ids: list[str]) -> None:
    """Until every job of `ids` is claimed ahead (running in the store, waiting for a slot)."""
    for i in ids:
        await wait_for(engine, i, {J.RUNNING})
    # the store may show the claim before the round that made it took the jobs in
    await asyncio.wait_for(engine._round_idle.wait(), 5)
    assert all(i in engine._ahead for i in ids), "claimed but not waiting ahead"


async def test_paused_handler_holds_its_jobs_claimed_ahead(tmp_path):
    """Pausing a handler holds its jobs claimed ahead too: paused (handler_paused), uncharged,
    never run; resuming the handler runs them."""
    gate = Gate()
    quick = Count(3, name="t.quick")
    engine, store = await make(tmp_path, gate, quick, concurrency=1, prefetch=4)
    try:
        first = await hold_slot(engine, gate)
        ahead = [await engine.enqueue(quick.name, b"{}") for _ in range(3)]
        await _claimed_ahead(engine, [j.id for j in ahead])
        held = await engine.pause_handler("t.quick")
        assert sorted(j.id for j in held) == sorted(j.id for j in ahead)
        gate.open.set()
        await wait_for(engine, first.id, {J.COMPLETED})
        rows = [await store.get(j.id) for j in ahead]
        assert [(r.status, r.pause_reason, r.attempts, r.run_attempts) for r in rows] == [
            (J.PAUSED, J.REASON_HANDLER, 0, 0)
        ] * 3
        assert quick.order == []
        await engine.resume_handler("t.quick")
        await asyncio.wait_for(quick.done.wait(), 5)
    finally:
        await stopped(engine, store)
    assert quick.order == [j.id for j in ahead]


class Costly:
    """A handler whose every run costs 0.6."""

    plugin = ""
    name = "t.cost"

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def run(self, ctx):
        self.ran.append(ctx.job.id)
        return HandlerResult(cost_actual=0.6)


@pytest.mark.parametrize("prefetch", [0, 8])
async def test_a_reached_budget_holds_jobs_claimed_ahead(tmp_path, prefetch):
    """Daily budget 1.0, jobs costing 0.6 (no estimate), one slot, six jobs waiting (claimed
    ahead with prefetch): the second run reaches the budget (booked before the slot goes to the
    next job), the rest are held `paused` (budget_exceeded), uncharged and never run."""
    from pulse_tui.config import BudgetConfig, Limits

    gate = Gate()
    h = Costly()
    engine, store = await make(
        tmp_path, gate, h, concurrency=1, prefetch=prefetch, budgets=BudgetConfig(total=Limits(daily=1.0))
    )
    try:
        await hold_slot(engine, gate)
        ahead = [await engine.enqueue(h.name, b"{}") for _ in range(6)]
        if prefetch:
            await _claimed_ahead(engine, [j.id for j in ahead])
        gate.open.set()
        ended = [await wait_for(engine, j.id, {J.COMPLETED, J.PAUSED}) for j in ahead]
        rows = [await store.get(j.id) for j in ahead]
    finally:
        await stopped(engine, store)
    assert h.ran == [j.id for j in ahead[:2]]
    assert [j.status for j in ended] == [J.COMPLETED] * 2 + [J.PAUSED] * 4
    assert {(r.pause_reason, r.attempts, r.run_attempts) for r in rows[2:]} == {(J.REASON_BUDGET, 0, 0)}


async def test_remote_cancel_keeps_the_parent_reason_for_a_child_claimed_ahead(tmp_path):
    """Another node's cascade asks to cancel a child claimed ahead here: it ends `cancelled` with
    the parent's reason (as a running child does), without running."""
    gate = Gate()
    quick = Count(1, name="t.quick")
    engine, store = await make(tmp_path, gate, quick, concurrency=1, prefetch=4)
    try:
        await hold_slot(engine, gate)
        parent = await engine.enqueue(quick.name, b"{}", delay_secs=3600)
        child = await engine.enqueue(quick.name, b"{}", parent_job_id=parent.id)
        await _claimed_ahead(engine, [child.id])
        # the parent ends cancelled on "another node" after the child was claimed
        now = max(time.time(), child.created_at + 0.001) + 1
        await store.transition(
            parent.id, (J.QUEUED,), {"status": J.CANCELLED, "completed_at": now, "updated_at": now}
        )

        async def requests() -> list[str]:  # what a shared store reports for this node
            return [child.id]

        store.cancel_requests = requests  # type: ignore[method-assign]
        await engine._cancel_requested()
        done = await wait_for(engine, child.id, {J.CANCELLED})
    finally:
        gate.open.set()
        await stopped(engine, store)
    assert done.error == J.parent_ended_reason(parent.id, J.CANCELLED)
    assert quick.order == []


async def test_job_row_started_at_is_its_attempt_start(tmp_path):
    """A job claimed ahead starts its attempt at hand-over; its row's started_at says so too (not
    the claim time), so `took` on the detail screen is the run, not the wait."""
    gate = Gate()
    quick = Count(1, name="t.quick")
    engine, store = await make(tmp_path, gate, quick, concurrency=1, prefetch=4)
    try:
        await hold_slot(engine, gate)
        ahead = await engine.enqueue(quick.name, b"{}")
        claimed = await wait_for(engine, ahead.id, {J.RUNNING})
        # wait a little in the slot's queue (a bus wait on nothing, no sleep)
        with engine.bus.watch() as w:
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:
                await w.next_batch(timeout=deadline - time.monotonic())
        gate.open.set()
        await wait_for(engine, ahead.id, {J.COMPLETED})
        detail = await engine.get_detail(ahead.id)
    finally:
        await stopped(engine, store)
    (attempt,) = detail.attempts
    assert detail.job.started_at == attempt.started_at
    assert attempt.started_at >= claimed.started_at + 0.15


async def test_jobs_claimed_ahead_count_a_crash_in_their_streak(tmp_path):
    """The documented trade-off of `prefetch`: a server crash with a job claimed ahead is counted
    in its crash streak as for a running job (re-queued, uncharged, crashes 1), though it never
    ran. The default is prefetch 0."""
    from pulse_tui.config import ServerConfig
    from pulse_tui.pulse.server import ServerSettings

    assert ServerConfig().prefetch == 0 and ServerSettings().prefetch == 0
    gate = Gate()
    quick = Count(1, name="t.quick")
    engine, store = await make(tmp_path, gate, quick, concurrency=1, prefetch=4)
    await hold_slot(engine, gate)
    victim = await engine.enqueue(quick.name, b"{}")
    await _claimed_ahead(engine, [victim.id])
    # the process dies: nothing more is written
    tasks = [*engine._tasks, *(r.task for r in engine._running.values() if r.task is not None)]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await store.close()
    store = SQLiteStore(str(tmp_path / "jobs.db"))
    await store.open()
    try:
        await store.recover(time.time())
        row = await store.get(victim.id)
    finally:
        await store.close()
    assert quick.order == []
    assert (row.status, row.crashes, row.interruptions, row.run_attempts) == (J.QUEUED, 1, 1, 0)


async def test_a_job_claimed_ahead_whose_handler_went_away_is_requeued_uncharged(tmp_path):
    """Its handler is gone when a slot frees (a plugin removed): the job goes back to the queue
    as never claimed (no attempt, nothing charged) and runs when the handler is back."""
    gate = Gate()
    quick = Count(1, name="t.quick")
    engine, store = await make(tmp_path, gate, quick, concurrency=1, prefetch=4)
    router = engine.router
    assert isinstance(router, StaticRouter)
    try:
        await hold_slot(engine, gate, max_attempts=1)
        ahead = await engine.enqueue(quick.name, b"{}", max_attempts=1)
        await _claimed_ahead(engine, [ahead.id])
        router.remove(quick.name)
        engine.routes_changed()
        gate.open.set()
        back = await wait_for(engine, ahead.id, {J.QUEUED, J.FAILED, J.COMPLETED})
        detail = await engine.get_detail(ahead.id)
        assert (back.status, back.attempts, back.run_attempts, detail.attempts) == (J.QUEUED, 0, 0, [])
        router.add(quick)
        engine.routes_changed()
        done = await wait_for(engine, ahead.id, {J.COMPLETED, J.FAILED})
    finally:
        await stopped(engine, store)
    assert done.status == J.COMPLETED and quick.order == [ahead.id]
