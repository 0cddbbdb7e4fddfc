"""Claim rounds that do not stall the slots: a job's end and the claim for the slot it frees share
one store commit, and jobs claimed ahead of a free slot (`prefetch`) wait for one with their
attempt (timeout, started_at) not started. Real Engine, real SQLite file, no sleeps."""

from __future__ import annotations

import asyncio
import time

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
        await engine.start()
        first = await engine.enqueue(gate.name, b"{}")
        await wait_for(engine, first.id, {J.RUNNING})
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
        await engine.start()
        first = await engine.enqueue(gate.name, b"{}")
        await wait_for(engine, first.id, {J.RUNNING})
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
    await engine.start()
    first = await engine.enqueue(gate.name, b"{}")
    await wait_for(engine, first.id, {J.RUNNING})
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
