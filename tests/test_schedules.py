"""Schedules: cadence arithmetic (cron in a time zone across DST, intervals, missed runs) and the
ticker against a real engine on a real SQLite file."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from pulse_tui.pulse import schedules as S
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.errors import Precondition, ValidationError
from pulse_tui.pulse.handlers import HandlerResult, StaticRouter, builtin_handlers
from pulse_tui.pulse.store.sqlite import SQLiteStore

PARIS = ZoneInfo("Europe/Paris")


def local(ts: float, tz: ZoneInfo = PARIS) -> datetime:
    return datetime.fromtimestamp(ts, tz)


def test_cron_in_a_time_zone_keeps_local_time_across_dst():
    # Europe/Paris springs forward on 2026-03-29 (02:00 -> 03:00) and falls back on 2026-10-25.
    start = datetime(2026, 3, 27, 12, 0, tzinfo=PARIS).timestamp()
    runs = S.cron_runs("0 3 * * *", "Europe/Paris", start, 4)
    assert [local(t).hour for t in runs] == [3, 3, 3, 3]
    assert [round(b - a) for a, b in zip(runs, runs[1:], strict=False)] == [23 * 3600, 24 * 3600, 24 * 3600]
    # 02:30 does not exist on the spring-forward day: it runs once, at 03:00 local
    runs = S.cron_runs("30 2 * * *", "Europe/Paris", start, 3)
    assert [(local(t).day, local(t).hour, local(t).minute) for t in runs] == [
        (28, 2, 30),
        (29, 3, 0),
        (30, 2, 30),
    ]
    # autumn: 02:30 happens twice in local time; the schedule runs once that day
    autumn = datetime(2026, 10, 24, 12, 0, tzinfo=PARIS).timestamp()
    runs = S.cron_runs("30 2 * * *", "Europe/Paris", autumn, 3)
    assert [local(t).day for t in runs] == [25, 26, 27]
    # the same expression in UTC does not move
    utc = S.cron_runs("0 3 * * *", "UTC", start, 3)
    assert [round(b - a) for a, b in zip(utc, utc[1:], strict=False)] == [86400, 86400]


def test_interval_advance_keeps_phase_and_counts_missed_runs():
    s = S.Schedule(id="s", handler="h", interval_secs=10)
    assert S.advance(s, 100.0, 100.2) == (110.0, 0)
    assert S.advance(s, 100.0, 135.0) == (140.0, 3)  # due 110, 120, 130 were missed
    c = S.Schedule(id="c", handler="h", cron="*/5 * * * *")
    base = datetime(2026, 1, 1, 0, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    nxt, missed = S.advance(c, base, base + 31 * 60)  # 05 10 15 20 25 30 missed
    assert (nxt - base, missed) == (35 * 60, 6)
    assert S.advance(c, base, base + 1) == (base + 300, 0)


def test_cadence_validation_is_specific():
    assert S.parse_every("90") == 90 and S.parse_every("1h30m") == 5400 and S.parse_every("2d") == 172800
    for bad, msg in [("soon", "not a duration"), ("0s", "at least 1 second"), ("400d", "one-year")]:
        with pytest.raises(ValidationError, match=msg):
            S.parse_every(bad)
    with pytest.raises(ValidationError, match="either an interval or a cron"):
        S.check_cadence(60, "* * * * *", "")
    with pytest.raises(ValidationError, match="needs an interval"):
        S.check_cadence(0, "", "")
    with pytest.raises(ValidationError, match="5 fields"):
        S.check_cadence(0, "* * *", "")
    with pytest.raises(ValidationError, match="not valid"):
        S.check_cadence(0, "61 * * * *", "")
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        S.check_cadence(0, "0 3 * * *", "Mars/Olympus")
    with pytest.raises(ValidationError, match="only applies to a cron"):
        S.check_cadence(60, "", "Europe/Paris")
    assert S.format_interval(5400) == "1h30m"
    assert S.Schedule(id="s", handler="h", cron="0 3 * * *", timezone="Europe/Paris").cadence == (
        "0 3 * * * Europe/Paris"
    )
    assert S.rfc3339(0) == "" and S.rfc3339(1767225600) == "2026-01-01T00:00:00Z"


# ---------------------------------------------------------------- the ticker on a real engine


class Gate:
    """A handler whose jobs stay running until the test opens the gate."""

    name = "t.gate"
    plugin = ""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started = 0

    async def run(self, ctx):
        self.started += 1
        await self.open.wait()
        return HandlerResult(result=b"{}")


@pytest.fixture
async def ticker(tmp_path):
    """(engine, scheduler) on a real SQLite file; extra handlers may be passed."""
    made = []

    async def factory(*extra, db: str = "jobs.db"):
        store = SQLiteStore(str(tmp_path / db))
        await store.open()
        engine = Engine(store, StaticRouter(builtin_handlers() + list(extra)), retention_secs=None)
        await engine.start()
        sched = S.Scheduler(store, engine)
        await sched.start()
        made.append((sched, engine, store))
        return engine, sched

    yield factory
    for sched, engine, store in made:
        await sched.stop()
        await engine.stop(grace=0.5)
        await store.close()


async def wait_until(sched: S.Scheduler, check, timeout: float = 10.0, what: str = "condition"):
    """Re-check `check()` (async) each time a schedule changes, until true or timeout."""
    changed = asyncio.Event()
    sched.listeners.append(lambda s: changed.set())
    try:
        deadline = time.monotonic() + timeout
        while True:
            changed.clear()
            result = await check()
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            try:
                async with asyncio.timeout(left):
                    await changed.wait()
            except TimeoutError:
                pass
    finally:
        sched.listeners.pop()


async def test_ticker_fires_runs_as_jobs_and_records_their_end(ticker):
    engine, sched = await ticker()
    s = await sched.create("pulse.noop", b'{"n": 1}', interval_secs=1, at_once=True)

    async def two_completed():
        exs = await sched.executions(s.id)
        return exs if sum(e.status == S.EX_COMPLETED for e in exs) >= 2 else None

    exs = await wait_until(sched, two_completed, what="two completed runs")
    for e in exs[-2:]:
        job = await engine.get_job(e.job_id)
        assert job.source == f"schedule:{s.id}" and job.status == "completed" and job.payload == b'{"n": 1}'
    got = await sched.get(s.id)
    assert got.run_count >= 2 and got.last_run_at and got.next_run_at > got.last_run_at
    # runs keep the interval's phase: consecutive starts ~1 s apart, never two for one due time
    starts = sorted(e.started_at for e in exs)
    assert all(b - a > 0.5 for a, b in zip(starts, starts[1:], strict=False))


class GatedStore(SQLiteStore):
    """The real store, whose schedule-run writes wait until the test opens a gate."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.claims = 0  # fire_schedule calls
        self.claimed = asyncio.Event()

    async def fire_schedule(self, *args, **kw):
        self.claims += 1
        self.claimed.set()
        await self.gate.wait()
        return await super().fire_schedule(*args, **kw)


async def test_the_next_batch_of_runs_does_not_wait_for_the_last_ones_writes(tmp_path):
    """Issue 15: the ticker fetched its next batch only once every write of the last one was done,
    so the first runs of each batch were late by those commits and a query."""
    store = GatedStore(str(tmp_path / "jobs.db"))
    await store.open()
    engine = Engine(store, StaticRouter(builtin_handlers()), retention_secs=None)
    await engine.start()
    sched = S.Scheduler(store, engine, batch=2)
    now = time.time()
    for i in range(5):
        await store.insert_schedule(
            S.Schedule(
                id=f"s{i}",
                handler="pulse.noop",
                interval_secs=3600,
                next_run_at=now - 1 + 0.01 * i,  # all due, in three batches of two
                created_at=now,
                updated_at=now,
            )
        )
    await sched.start()
    try:
        async with asyncio.timeout(10):  # every run is being fired while no write is done yet
            while store.claims < 5:
                store.claimed.clear()
                await store.claimed.wait()
        store.gate.set()

        async def all_ran():
            got = [await sched.get(f"s{i}") for i in range(5)]
            return got if all(g.run_count == 1 and g.last_job_id for g in got) else None

        got = await wait_until(sched, all_ran, what="each schedule run once")
        assert all(g.next_run_at > now + 3000 for g in got)
        # runs being fired were left out of the next batches: one claim per run, none repeated
        assert store.claims == 5 and sched.fired == 5
        for i in range(5):
            assert len(await sched.executions(f"s{i}")) == 1
    finally:
        store.gate.set()
        await sched.stop()
        await engine.stop(grace=0.5)
        await store.close()


async def test_overlap_skip_skips_while_a_run_is_unfinished_and_allow_does_not(ticker):
    gate = Gate()
    engine, sched = await ticker(gate)
    s = await sched.create("t.gate", interval_secs=1, at_once=True)

    async def skipped_twice():
        exs = await sched.executions(s.id)
        return exs if sum(e.status == S.EX_SKIPPED for e in exs) >= 2 else None

    exs = await wait_until(sched, skipped_twice, what="two skipped runs")
    assert gate.started == 1 and sum(e.status == S.EX_RUNNING for e in exs) == 1
    assert "still running (overlap=skip)" in next(e for e in exs if e.status == S.EX_SKIPPED).error
    gate.open.set()

    async def fired_again():
        exs = await sched.executions(s.id)
        return sum(e.job_id != "" for e in exs) >= 2

    await wait_until(sched, fired_again, what="a run after the first ended")
    await sched.delete(s.id)

    gate2 = Gate()
    gate2.name = "t.gate2"
    engine.router.add(gate2)
    await sched.create("t.gate2", interval_secs=1, at_once=True, overlap="allow")

    async def two_running():
        return gate2.started >= 2

    await wait_until(sched, two_running, what="two overlapping runs")
    gate2.open.set()


async def test_missed_runs_coalesce_into_one_run_that_says_so(ticker, tmp_path):
    engine, sched = await ticker()
    s = await sched.create("pulse.noop", interval_secs=10)
    await sched.stop()
    # the server was down for 35 s: the stored next run is 35 s in the past (3 more due times missed)
    await engine.store.update_schedule(s.id, (S.ACTIVE,), {"next_run_at": time.time() - 35})
    sched2 = S.Scheduler(engine.store, engine)
    await sched2.start()
    try:

        async def one_run():
            return await sched2.executions(s.id)

        [ex] = await wait_until(sched2, one_run, what="the coalesced run")
        assert "coalesced 3 missed runs" in ex.note
        got = await sched2.get(s.id)
        assert got.run_count == 1 and got.next_run_at > time.time()  # back on cadence, not catching up
    finally:
        await sched2.stop()


async def test_pause_resume_run_now_update_and_delete(ticker):
    engine, sched = await ticker()
    s = await sched.create("pulse.noop", interval_secs=3600)
    due = s.next_run_at
    paused = await sched.pause(s.id)
    assert paused.state == S.PAUSED
    ex = await sched.run_now(s.id)  # runs at once, even paused; cadence untouched
    assert ex.job_id and "run now" in ex.note
    got = await sched.get(s.id)
    assert got.next_run_at == due and got.run_count == 1 and got.state == S.PAUSED
    resumed = await sched.resume(s.id)
    assert resumed.state == S.ACTIVE and resumed.next_run_at == due
    upd = await sched.update(s.id, cron="0 3 * * *", timezone="Europe/Paris")
    assert upd.interval_secs == 0 and upd.cron == "0 3 * * *" and local(upd.next_run_at).hour == 3
    with pytest.raises(ValidationError, match="unknown handler"):
        await sched.update(s.id, handler="no.such")
    with pytest.raises(ValidationError, match="payload is not JSON"):
        await sched.create("pulse.noop", b"{nope", interval_secs=5)
    assert (await sched.get(s.id)).handler == "pulse.noop"  # bad input changed nothing
    gone = await sched.delete(s.id)
    assert gone.state == S.DELETED
    assert [x.id for x in await sched.list()] == []
    with pytest.raises(Precondition):
        await sched.resume(s.id)


async def test_runs_ending_before_the_ticker_starts_are_recorded(tmp_path):
    """At server start the engine re-runs jobs left running (some fired by schedules) before the
    ticker starts: their ends must still reach their executions."""
    store = SQLiteStore(str(tmp_path / "jobs.db"))
    await store.open()
    engine = Engine(store, StaticRouter(builtin_handlers()), retention_secs=None)
    await engine.start()
    sched = S.Scheduler(store, engine)  # created, not started yet
    try:
        now = time.time()
        s = S.Schedule(id="s1", handler="pulse.noop", interval_secs=60, next_run_at=now, created_at=now)
        await store.insert_schedule(s)
        job = engine.validate_new("pulse.noop", b"{}", source="schedule:s1")
        ex = S.Execution(id="x1", schedule_id="s1", job_id=job.id, started_at=now)
        await store.fire_schedule("s1", now, {"next_run_at": now + 60, "last_execution_id": "x1"}, job, ex)
        ended = asyncio.Event()
        sched.listeners.append(lambda changed: ended.set())
        engine.adopt_inserted(job)
        async with asyncio.timeout(10):
            await ended.wait()
        [got] = await store.list_executions("s1", 10)
        assert got.status == S.EX_COMPLETED and got.completed_at >= got.started_at
    finally:
        await sched.stop()
        await engine.stop(grace=0.5)
        await store.close()


async def test_a_schedule_whose_handler_is_gone_goes_inactive_and_comes_back_with_it(ticker):
    """No failed run per tick while the handler is missing: the schedule is marked inactive once,
    and is active again (and runs) as soon as the handler is routable again."""
    gate = Gate()
    gate.name = "t.flaky"
    gate.open.set()
    engine, sched = await ticker(gate)
    s = await sched.create("t.flaky", interval_secs=1, at_once=False)
    engine.router.remove("t.flaky")
    engine.routes_changed()  # what the plugin host does when a plugin stops

    async def inactive():
        got = await sched.get(s.id)
        return got if got.state == S.INACTIVE else None

    got = await wait_until(sched, inactive, what="the schedule to go inactive")
    assert got.run_count == 0 and got.last_status == ""
    # nothing is due any more, so no tick records a failed run
    assert await engine.store.due_schedules(time.time() + 3600, 10) == []
    assert await sched.executions(s.id) == []

    engine.router.add(gate)
    engine.routes_changed()

    async def ran():
        exs = await sched.executions(s.id)
        return exs if any(e.status == S.EX_COMPLETED for e in exs) else None

    exs = await wait_until(sched, ran, what="a run after the handler came back")
    assert all(e.status != S.EX_FAILED for e in exs) and gate.started >= 1
    assert (await sched.get(s.id)).state == S.ACTIVE


async def test_an_inactive_schedule_whose_handler_exists_at_start_is_active_again(ticker, tmp_path):
    engine, sched = await ticker()
    s = await sched.create("pulse.noop", interval_secs=3600)
    await sched.stop()
    # it went inactive while its handler was gone; the server restarts with the handler routable
    await engine.store.update_schedule(s.id, (S.ACTIVE,), {"state": S.INACTIVE})
    sched2 = S.Scheduler(engine.store, engine)
    await sched2.start()
    try:

        async def active():
            return (await sched2.get(s.id)).state == S.ACTIVE

        await wait_until(sched2, active, what="the schedule to be active again")
    finally:
        await sched2.stop()
