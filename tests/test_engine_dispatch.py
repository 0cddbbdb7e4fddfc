"""Dispatcher wake-ups: a kick (enqueue, retry, finished job, due timer, route change) that lands
while a claim round awaits the store must never be lost. Real Engine, real SQLite file; the store
is a subclass that can hold a claim or next_due open on an asyncio.Event (no sleeps)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter

import pytest

from pulse_tui.pulse import jobs as J
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.handlers import HandlerResult, StaticRouter, builtin_handlers
from pulse_tui.pulse.jobs import JobFilter
from pulse_tui.pulse.store.sqlite import SQLiteStore

SOAK = os.environ.get("PULSE_SOAK") == "full"


class GatedStore(SQLiteStore):
    """A real SQLiteStore whose claim (or next_due) can be held open after the real query ran,
    so a test decides what happens while the engine awaits it."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.hold_claim_of: set[str] = set()  # hold the claim that returns one of these ids
        self.hold_next_due = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.transitioned = asyncio.Event()
        self.hold_transition = False  # hold the next transition after it ran
        self.transition_held = asyncio.Event()
        self.transition_release = asyncio.Event()

    def arm(self, ids: set[str]) -> asyncio.Event:
        """Hold the next claim returning one of `ids`; returns the event set once it is held."""
        self.held, self.release = asyncio.Event(), asyncio.Event()
        self.hold_claim_of = set(ids)
        return self.held

    async def _hold(self) -> None:
        release = self.release  # a later arm() makes new events; this hold keeps its own
        self.held.set()
        await release.wait()

    async def claim(self, limit, handlers, now):
        got = await super().claim(limit, handlers, now)
        if self.hold_claim_of and any(j.id in self.hold_claim_of for j in got):
            self.hold_claim_of = set()
            await self._hold()
        return got

    async def transition(self, job_id, allowed_from, changes):
        out = await super().transition(job_id, allowed_from, changes)
        self.transitioned.set()
        if self.hold_transition:
            self.hold_transition = False
            self.transition_held.set()
            await self.transition_release.wait()
        return out

    async def next_due(self, handlers, now):
        due = await super().next_due(handlers, now)
        if self.hold_next_due:
            self.hold_next_due = False
            await self._hold()
        return due


class Gate:
    """A handler that runs until the test opens its gate."""

    plugin = ""

    def __init__(self, name: str = "t.gate") -> None:
        self.name = name
        self.open = asyncio.Event()
        self.started: list[str] = []

    async def run(self, ctx):
        self.started.append(ctx.job.id)
        await self.open.wait()
        return HandlerResult()


async def wait_for(engine: Engine, job_id: str, statuses: set[str], timeout: float = 5.0) -> J.Job:
    with engine.bus.watch() as w:
        job = await engine.get_job(job_id)
        deadline = time.monotonic() + timeout
        while job.status not in statuses:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"job {job_id} stuck {job.status} (due {job.run_at - time.time():+.2f}s)"
                )
            batch, resync = await w.next_batch(timeout=left)
            if resync:
                job = await engine.get_job(job_id)
            for j in batch:
                if j.id == job_id:
                    job = j
        return job


@pytest.fixture
async def gated(tmp_path):
    made: list[tuple[Engine, SQLiteStore]] = []

    async def factory(*extra, **kw) -> tuple[Engine, GatedStore]:
        store = GatedStore(str(tmp_path / "jobs.db"))
        await store.open()
        router = StaticRouter(builtin_handlers() + list(extra))
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("backoff_cap", 0.05)
        engine = Engine(store, router, **kw)
        await engine.start()
        made.append((engine, store))
        return engine, store

    yield factory
    for engine, store in made:
        await engine.stop(grace=0.1)
        await store.close()


async def test_retry_landing_during_a_claim_is_not_lost(gated):
    """The reported shape: an operator retry's wake-up lands while the round awaits its claim."""
    engine, store = await gated()
    failed = await engine.enqueue("pulse.fail", b"{}", max_attempts=1)
    await wait_for(engine, failed.id, {J.FAILED})
    store.hold_claim_of = {"trigger"}
    await engine.enqueue("pulse.noop", b"{}", job_id="trigger")
    await asyncio.wait_for(store.held.wait(), 5)  # the round's claim ran and is now held open
    await engine.retry(failed.id)  # kicks the dispatcher mid-round
    store.release.set()
    done = await wait_for(engine, failed.id, {J.FAILED, J.COMPLETED})
    assert done.attempts == 2


async def test_job_end_during_a_limited_claim_is_not_lost(gated):
    """A handler at its limit frees a slot while the round awaits the claim that filled its last
    room: the round must not mark the handler blocked behind that slot's end (the job queued
    next must start while its neighbour still runs)."""
    gates = {tag: asyncio.Event() for tag in "abc"}

    class Tagged(Gate):
        async def run(self, ctx):
            self.started.append(ctx.job.id)
            await gates[ctx.payload_json()["tag"]].wait()
            return HandlerResult()

    engine, store = await gated(Tagged(), handler_limits={"t.gate": 2})
    a = await engine.enqueue("t.gate", b'{"tag": "a"}')
    await wait_for(engine, a.id, {J.RUNNING})
    # b and c queued in one go (held behind a claim of something else), then b's claim is held
    store.hold_claim_of = {"trigger"}
    await engine.enqueue("pulse.noop", b"{}", job_id="trigger")
    await asyncio.wait_for(store.held.wait(), 5)
    b = await engine.enqueue("t.gate", b'{"tag": "b"}', job_id="b")
    c = await engine.enqueue("t.gate", b'{"tag": "c"}')
    first = store.release
    held = store.arm({"b"})
    first.set()
    await asyncio.wait_for(held.wait(), 5)  # the claim that took b (room 1) is held
    gates["a"].set()  # a ends meanwhile: a slot frees
    await wait_for(engine, a.id, {J.COMPLETED})
    store.release.set()
    await wait_for(engine, c.id, {J.RUNNING})  # b still runs; c must start beside it
    assert (await engine.get_job(b.id)).status == J.RUNNING
    gates["b"].set()
    gates["c"].set()
    await wait_for(engine, c.id, {J.COMPLETED})


async def test_route_change_during_a_claim_rereads_the_due_time(gated, tmp_path):
    """A handler comes back while a round awaits its claim: its delayed job's due time must be
    asked of the store with the new routes, not the round's stale ones."""
    late = Gate("t.late")
    late.open.set()
    first, store1 = await gated(late)
    job = await first.enqueue("t.late", b"{}", delay_secs=1.0)
    await first.stop(grace=0.1)
    await store1.close()
    # a restart without the handler: the job is queued for later, nothing routes it
    engine, store = await gated()
    store.hold_claim_of = {"trigger"}
    await engine.enqueue("pulse.noop", b"{}", job_id="trigger")
    await asyncio.wait_for(store.held.wait(), 5)
    engine.router.add(late)
    engine.routes_changed()
    store.release.set()
    done = await wait_for(engine, job.id, {J.COMPLETED}, timeout=10)
    assert done.attempts == 1


async def test_kick_during_next_due_is_not_lost(gated):
    engine, store = await gated()
    probe = await engine.enqueue("pulse.noop", b"{}", delay_secs=0.05)
    store.hold_next_due = True
    await asyncio.wait_for(store.held.wait(), 5)
    late = await engine.enqueue("pulse.noop", b"{}")
    store.release.set()
    await wait_for(engine, late.id, {J.COMPLETED})
    await wait_for(engine, probe.id, {J.COMPLETED})


async def test_job_due_between_claim_and_next_due_is_not_skipped(gated):
    """next_due must count from the claim's `now`: a job that became due after the claim looked
    and before next_due asked is neither claimed nor reported otherwise."""
    engine, store = await gated()
    store.hold_claim_of = {"trigger"}
    await engine.enqueue("pulse.noop", b"{}", job_id="trigger", delay_secs=0.2)
    # due just after the trigger: the timer stays on the earlier trigger, so this job's due time
    # is learnt from next_due after the trigger's round
    job = await engine.enqueue("pulse.noop", b"{}", delay_secs=0.25)
    await asyncio.wait_for(store.held.wait(), 5)
    while time.time() <= job.run_at:  # a clock condition: the job becomes due during the claim
        await asyncio.sleep(0.01)
    store.release.set()
    await wait_for(engine, job.id, {J.COMPLETED})


async def test_cancel_of_a_job_claimed_while_the_cancel_asked(gated):
    """The claim committed (the store says running) but the round has not started the job yet:
    the cancel must reach it here, not be refused as running on another node."""
    gate = Gate()
    engine, store = await gated(gate)
    store.hold_claim_of = {"x"}
    await engine.enqueue("t.gate", b"{}", job_id="x")
    await asyncio.wait_for(store.held.wait(), 5)
    cancel = asyncio.create_task(engine.cancel("x"))
    await asyncio.wait_for(store.transitioned.wait(), 5)  # queued -> cancelled refused: it runs
    for _ in range(3):  # let the cancel act on the refusal before the round goes on
        await asyncio.sleep(0)
    store.release.set()
    done = await asyncio.wait_for(cancel, 5)
    assert done.status == J.CANCELLED and done.error == "cancelled by operator"
    detail = await engine.get_detail("x")
    assert [a.outcome for a in detail.attempts] == [J.OUTCOME_CANCELLED]
    assert engine.running_jobs() == []


class FailNow:
    name = "t.failnow"
    plugin = ""

    async def run(self, ctx):
        from pulse_tui.pulse.handlers import HandlerError

        raise HandlerError("fails at once")


async def test_cancel_of_a_job_that_ran_and_was_requeued_while_the_cancel_asked(gated):
    """The cancel's store write found the job running; by the time it looked again the attempt
    had failed and the job was queued for a retry: the cancel must cancel that, not give up."""
    engine, store = await gated(FailNow(), backoff_base=60, backoff_cap=60)
    store.hold_claim_of = {"x"}
    await engine.enqueue("t.failnow", b"{}", job_id="x", max_attempts=3)
    await asyncio.wait_for(store.held.wait(), 5)  # claimed (running in the store), not started
    store.hold_transition = True
    cancel = asyncio.create_task(engine.cancel("x"))
    await asyncio.wait_for(store.transition_held.wait(), 5)  # queued -> cancelled refused
    with engine.bus.watch() as w:
        store.release.set()  # the round starts x; it fails at once and is queued for a retry
        while (j := await engine.get_job("x")).status != J.QUEUED or j.attempts != 1:
            await w.next_batch(timeout=1.0)
    store.transition_release.set()
    done = await asyncio.wait_for(cancel, 5)
    assert done.status == J.CANCELLED and done.error == "cancelled by operator"
    assert [a.outcome for a in (await engine.get_detail("x")).attempts] == [J.OUTCOME_FAILED]


async def bulk_retry_rounds(engine: Engine, rounds: int, seed: int, tally: Counter | None = None) -> int:
    """Fail a random batch of jobs, retry them all in one sequential bulk (like RetryJobs), wait
    for every one to end again. Returns how many stayed queued although due (stuck)."""
    rng = random.Random(seed)
    stuck = 0
    for _ in range(rounds):
        n = rng.randint(1, 60)
        ids = []
        for _ in range(n):
            handler = rng.choice(["pulse.fail", "pulse.noop"])
            j = await engine.enqueue(handler, b"{}", max_attempts=1)
            ids.append(j.id)
        for jid in ids:
            await wait_for(engine, jid, {J.FAILED, J.COMPLETED})
        retry = [jid for jid in ids if (await engine.get_job(jid)).status == J.FAILED]
        if tally is not None:
            tally["bulks"] += 1
            tally["retried"] += len(retry)
        for jid in retry:
            await engine.retry(jid)
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        for jid in retry:
            try:
                await wait_for(engine, jid, {J.FAILED}, timeout=10.0)
            except AssertionError:
                stuck += 1
                await engine.enqueue("pulse.noop", b"{}")  # unstick it so the rounds go on
                await wait_for(engine, jid, {J.FAILED})
    return stuck


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 1,000 bulks in make soak take ~90 s alone on 2 cores
async def test_bulk_retry_leaves_no_job_queued(gated):
    engine, _ = await gated(concurrency=8)
    rounds = 1000 if SOAK else 25
    stuck = await bulk_retry_rounds(engine, rounds, seed=13)
    assert stuck == 0
    counts = await engine.count_jobs(JobFilter())
    assert counts[J.QUEUED] == counts[J.RUNNING] == 0


@pytest.mark.slow
def test_bulk_retry_of_60_over_grpc_leaves_none_queued(server_factory):
    """The report as an operator met it: 60 failed jobs (`pulse.fail` and `demo.flaky` with
    fail_rate 1, one attempt each) retried in one RetryJobs call against a real server with the
    demo plugin; every one must run again (none left queued and due with free capacity)."""
    from helpers.reliability import connect, demo_config, wait_until

    from pulse_tui.protocol import operator_pb2 as op

    srv = server_factory(demo_config())
    c = connect(srv.address, srv.token)
    try:
        ids = c.enqueue_many("pulse.fail", [b"{}"] * 30, max_attempts=1)
        ids += c.enqueue_many("demo.flaky", [b'{"fail_rate": 1}'] * 30, max_attempts=1)
        for rnd in range(1, 50 if SOAK else 8):
            wait_until(lambda: c.counts().get("failed", 0) == 60, 30, f"60 failed (round {rnd})")
            resp = c.ops.RetryJobs(op.JobSelector(ids=ids), metadata=c.md)
            assert len(resp.affected_ids) == 60, resp.failures
            try:
                wait_until(lambda: c.counts().get("failed", 0) == 60, 10, "every retried job to run")
            except AssertionError:
                queued = c.counts().get("queued", 0)
                raise AssertionError(f"round {rnd}: {queued} retried job(s) stuck queued") from None
    finally:
        c.close()
