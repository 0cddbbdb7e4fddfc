"""Many watchers: every watcher sees every job's changes in order and ends with every job complete;
a watcher that stops reading is told to resync and holds back neither the others nor memory."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from pulse_tui.client import ClientError, PulseClient
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.pulse import jobs as J
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.events import CHECK_EVERY, EventBus
from pulse_tui.pulse.handlers import StaticRouter
from pulse_tui.pulse.jobs import Job
from pulse_tui.pulse.store.sqlite import SQLiteStore

RANK = {J.QUEUED: 0, J.RUNNING: 1, J.COMPLETED: 2}


class Seen:
    """Per job, the statuses a watcher saw; checks they never go backwards."""

    def __init__(self) -> None:
        self.last: dict[str, str] = {}
        self.order_errors: list[str] = []

    def add(self, job_id: str, status: str) -> None:
        prev = self.last.get(job_id)
        if prev is not None and RANK[status] < RANK[prev]:
            self.order_errors.append(f"{job_id}: {prev} then {status}")
        self.last[job_id] = status

    def completed(self) -> int:
        return sum(1 for s in self.last.values() if s == J.COMPLETED)


async def test_64_watchers_see_every_job_in_order(tmp_path):
    store = SQLiteStore(str(tmp_path / "w.db"))
    await store.open()
    engine = Engine(store, StaticRouter(), retention_secs=None)
    n = 2000
    watchers = [engine.bus.watch() for _ in range(64)]
    seen = [Seen() for _ in watchers]

    async def follow(i: int) -> None:
        while seen[i].completed() < n:
            batch, resync = await watchers[i].next_batch(timeout=30)
            assert not resync and batch, "watcher fell behind or saw nothing"
            ids = [j.id for j in batch]
            assert len(ids) == len(set(ids)), "a job twice in one batch"
            for job in batch:
                seen[i].add(job.id, job.status)

    try:
        tasks = [asyncio.create_task(follow(i)) for i in range(64)]
        jobs = await engine.enqueue_many([{"handler": "pulse.noop"} for _ in range(n)])
        await engine.start()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        for s in seen:
            assert s.order_errors == []
            assert set(s.last) == {j.id for j in jobs} and s.completed() == n
        assert len(engine.bus._log) <= 2 * CHECK_EVERY  # all caught up: the log was trimmed
    finally:
        for w in watchers:
            w.close()
        await engine.stop(grace=1)
        await store.close()
    assert engine.bus.watcher_count == 0 and engine.bus._log == []


def _job(i: int, status: str = J.QUEUED) -> Job:
    now = time.time()
    return Job(id=f"j{i}", handler="h", status=status, created_at=now, updated_at=now, run_at=now)


async def test_watcher_that_stops_reading_gets_resync_and_bounded_log():
    bus = EventBus(max_pending=5000)
    idle = bus.watch()
    busy = bus.watch()
    total = 0
    for i in range(20_000):
        bus.publish(_job(i))
        if i % 1000 == 999:
            batch, resync = await busy.next_batch(timeout=1)
            assert not resync
            total += len(batch)
        assert len(bus._log) <= 5000 + 2 * CHECK_EVERY
    assert total == 20_000  # the reader lost nothing
    assert idle.dropped > 0
    batch, resync = await idle.next_batch(timeout=1)
    assert resync and batch == []
    bus.publish(_job(7, J.RUNNING))  # after the resync it follows again
    batch, resync = await idle.next_batch(timeout=1)
    assert [(j.id, j.status) for j in batch] == [("j7", J.RUNNING)] and not resync


async def test_changes_to_one_job_coalesce_in_order_of_latest_change():
    bus = EventBus()
    w = bus.watch()
    for i in range(3):
        bus.publish(_job(i))
    bus.publish(_job(0, J.RUNNING))
    batch, _ = await w.next_batch(timeout=1)
    assert [(j.id, j.status) for j in batch] == [("j1", J.QUEUED), ("j2", J.QUEUED), ("j0", J.RUNNING)]
    assert await w.next_batch(timeout=0.05) == ([], False)
    w.close()
    assert bus.watcher_count == 0


async def test_watch_jobs_over_grpc_batched_and_not(inproc_server):
    """16 raw streams (half batched, half one event per job) and the client library's watch (which
    asks for batches and unpacks them) all see 400 jobs through to completed, in order."""
    md = inproc_server.metadata
    n = 400
    async with grpc.aio.insecure_channel(inproc_server.address) as ch:
        ops = op_grpc.OperatorServiceStub(ch)
        calls = [ops.WatchJobs(op.WatchJobsRequest(batched=i % 2 == 0), metadata=md) for i in range(16)]
        for call in calls:
            assert (await call.read()).kind == "heartbeat"
        client = PulseClient(inproc_server.address, inproc_server.token)
        assert await client.probe() == "operator"
        lib_events = client.watch_jobs()
        assert (await anext(lib_events)).kind == "heartbeat"
        seen = [Seen() for _ in range(17)]
        kinds: list[set[str]] = [set() for _ in range(17)]

        async def follow(i: int) -> None:
            while seen[i].completed() < n:
                event = await (anext(lib_events) if i == 16 else calls[i].read())
                kinds[i].add(event.kind)
                assert event.kind != "resync"
                for job in (
                    event.jobs if event.kind == "batch" else [event.job] if event.kind == "upsert" else []
                ):
                    seen[i].add(job.id, job.status)

        tasks = [asyncio.create_task(follow(i)) for i in range(17)]
        resp = await ops.EnqueueMany(
            op.EnqueueManyRequest(jobs=[op.EnqueueRequest(handler="pulse.noop") for _ in range(n)]),
            metadata=md,
        )
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        for i, s in enumerate(seen):
            assert s.order_errors == [], i
            assert set(s.last) == set(resp.ids)
        assert all(k <= {"batch", "heartbeat"} for k in kinds[0:16:2])
        assert all(k <= {"upsert", "heartbeat"} for k in kinds[1:16:2] + kinds[16:])
        for call in calls:
            call.cancel()
        await lib_events.aclose()
        await client.close()


def test_pre_encoded_events_parse_as_job_events():
    """WatchJobs sends hand-assembled JobEvent bytes; they must decode to the same messages."""
    import struct

    from pulse_tui.pulse import services as S

    jobs = [_job(1), _job(2, J.RUNNING)]
    msgs = [S.operator_job(j, frozenset({"h"})) for j in jobs]
    pairs = [(S._FIELD_JOB + S._varint(m.ByteSize()) + m.SerializeToString(),) for m in msgs]
    stamp = S._SERVER_TIME + struct.pack("<d", 12.5)
    upsert = op.JobEvent.FromString(S._KIND_UPSERT + pairs[0][0] + stamp)
    assert upsert == op.JobEvent(kind="upsert", job=msgs[0], server_time=12.5)
    entries = [S._FIELD_JOBS + S._varint(m.ByteSize()) + m.SerializeToString() for m in msgs]
    batch = op.JobEvent.FromString(b"".join([S._KIND_BATCH, stamp, *entries]))
    assert batch == op.JobEvent(kind="batch", jobs=msgs, server_time=12.5)
    assert S._varint(300) == b"\xac\x02" and S._FIELD_JOBS == b"\xe2\x08"


async def test_batched_stream_that_stops_reading_gets_resync(inproc_server, monkeypatch):
    """Unfiltered batched streams share one encoding (services.Broadcast). One that stops reading
    falls behind by more than the backlog cap and is told to resync; the reader beside it misses
    nothing."""
    from pulse_tui.pulse import services as S

    monkeypatch.setattr(S, "BROADCAST_BACKLOG", 32 * 1024)
    inproc_server.server.operator.heartbeat_secs = 2
    md = inproc_server.metadata
    n = 3000
    async with (
        grpc.aio.insecure_channel(inproc_server.address) as ch,
        grpc.aio.insecure_channel(  # a small receive window, so not reading soon blocks the server
            inproc_server.address,
            options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)],
        ) as ch2,
    ):
        ops = op_grpc.OperatorServiceStub(ch)
        reader = ops.WatchJobs(op.WatchJobsRequest(batched=True), metadata=md)
        idle = op_grpc.OperatorServiceStub(ch2).WatchJobs(op.WatchJobsRequest(batched=True), metadata=md)
        assert (await reader.read()).kind == "heartbeat" and (await idle.read()).kind == "heartbeat"
        resp = await ops.EnqueueMany(
            op.EnqueueManyRequest(jobs=[op.EnqueueRequest(handler="pulse.noop") for _ in range(n)]),
            metadata=md,
        )
        seen = Seen()
        while seen.completed() < n:
            event = await asyncio.wait_for(reader.read(), 30)
            assert event.kind in ("batch", "heartbeat"), event.kind
            for job in event.jobs:
                seen.add(job.id, job.status)
        assert seen.order_errors == [] and set(seen.last) == set(resp.ids)
        kinds = []
        while "resync" not in kinds:
            assert "heartbeat" not in kinds, f"the idle stream got everything without a resync: {kinds}"
            kinds.append((await asyncio.wait_for(idle.read(), 30)).kind)
        reader.cancel()
        idle.cancel()


async def test_view_stream_sends_shown_jobs_and_counts_the_rest(inproc_server):
    """A view stream (the console's) carries in full only the jobs it shows; every other change is
    counted by status, so the viewer knows to refetch. SetWatchView moves the view; a token of an
    ended stream is refused and the server forgets the stream's ids."""
    client = PulseClient(inproc_server.address, inproc_server.token)
    assert await client.probe() == "operator"
    plain = client.watch_jobs()
    events = client.watch_jobs(view=[])
    assert (await anext(plain)).kind == "heartbeat"
    hello = await anext(events)
    assert hello.kind == "heartbeat" and hello.view_token

    near = 0

    async def take(upserts: set[str], others: dict[str, int]) -> tuple[set[str], dict[str, int]]:
        """Read the view stream until it carried these upserts and at least these counts."""
        nonlocal near
        near = 0
        got_ids: set[str] = set()
        got: dict[str, int] = {}
        while not (upserts <= got_ids and all(got.get(k, 0) >= n for k, n in others.items())):
            ev = await asyncio.wait_for(anext(events), 10)
            assert ev.kind in ("upsert", "others", "heartbeat"), ev.kind
            if ev.kind == "upsert":
                got_ids.add(ev.job.id)
            for k, n in ev.others.items():
                got[k] = got.get(k, 0) + n
            near += ev.others_from_seq
        return got_ids, got

    ids = await client.enqueue_many(
        [op.EnqueueRequest(handler="pulse.noop", delay_secs=3600) for _ in range(4)]
    )
    got_ids, got = await take(set(), {J.QUEUED: 4})
    assert got_ids == set() and got == {J.QUEUED: 4} and near == 4  # no from_seq: every one is near
    counts = await asyncio.wait_for(anext(events), 10)  # each event's counts come after its changes
    assert counts.kind == "counts" and counts.counts.by_status[J.QUEUED] == 4 and counts.counts.total == 4
    seqs = [(await client.get_job(i)).job.seq for i in ids]
    assert seqs == sorted(seqs)

    # shown: job 0; held from job 2's seq up: job 3 is near (above the rows), job 1 below them
    await client.set_watch_view(hello.view_token, [ids[0]], from_seq=seqs[2])
    await client.cancel_jobs([ids[0], ids[1], ids[3]])
    got_ids, got = await take({ids[0]}, {J.CANCELLED: 2})
    assert got_ids == {ids[0]} and got == {J.CANCELLED: 2} and near == 1
    while (counts := await asyncio.wait_for(anext(events), 10)).kind != "counts" or (
        counts.counts.by_status[J.CANCELLED] < 3
    ):
        pass
    assert counts.counts.by_status[J.QUEUED] == 1
    seen_plain: set[str] = set()
    while seen_plain != {ids[0], ids[1], ids[3]}:  # the plain stream got every change in full
        ev = await asyncio.wait_for(anext(plain), 10)
        if ev.kind == "upsert" and ev.job.status == J.CANCELLED:
            seen_plain.add(ev.job.id)

    await events.aclose()
    await plain.aclose()
    broadcast = inproc_server.server.operator._broadcast
    await wait_for(lambda: not broadcast._views and not broadcast._viewing)
    with pytest.raises(ClientError) as err:
        await client.set_watch_view(hello.view_token, [ids[2]], from_seq=seqs[2])
    assert err.value.code == "NOT_FOUND"
    await client.close()


async def wait_for(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_view_stream_holds_quiet_changes_until_its_quiet_time(inproc_server, monkeypatch):
    """Changes a console neither shows nor could see enter its list (below its lowest seq held)
    are counted and held: they go out with the next message the stream gets at once (a shown job
    changed), or on their own once VIEW_QUIET passed since its last message."""
    from pulse_tui.pulse import services

    monkeypatch.setattr(services, "VIEW_QUIET", 3600.0)  # held until something else goes out
    broadcast = inproc_server.server.operator._broadcast
    client = PulseClient(inproc_server.address, inproc_server.token)
    assert await client.probe() == "operator"
    ids = await client.enqueue_many(
        [op.EnqueueRequest(handler="pulse.noop", delay_secs=3600) for _ in range(3)]
    )
    seqs = [(await client.get_job(i)).job.seq for i in ids]
    events = client.watch_jobs(view=[ids[2]], from_seq=seqs[2])  # jobs 0 and 1 are below its rows
    hello = await anext(events)
    assert hello.kind == "heartbeat" and hello.view_token
    sub = broadcast._views[hello.view_token]

    async def next_event() -> op.JobEvent:
        while (ev := await asyncio.wait_for(anext(events), 10)).kind == "heartbeat":
            pass
        return ev

    await client.cancel_jobs([ids[0]])  # quiet, but the stream's first message: at once
    first = await next_event()
    assert first.kind == "others" and dict(first.others) == {J.CANCELLED: 1} and first.others_from_seq == 0
    assert (await next_event()).kind == "counts"
    await client.cancel_jobs([ids[1]])  # quiet, and the stream just got a message: held
    await wait_for(lambda: sub.others.get(J.CANCELLED) == 1)
    await client.cancel_jobs([ids[2]])  # shown: at once, and the held change with it
    shown = await next_event()
    assert shown.kind == "upsert" and shown.job.id == ids[2] and shown.job.status == J.CANCELLED
    held = await next_event()
    assert held.kind == "others" and dict(held.others) == {J.CANCELLED: 1} and held.others_from_seq == 0
    counts = await next_event()  # taken after both
    assert counts.kind == "counts" and counts.counts.by_status[J.CANCELLED] == 3

    monkeypatch.setattr(services, "VIEW_QUIET", 0.2)  # a held change goes out on its own in time
    await client.set_watch_view(hello.view_token, [], from_seq=10**9)  # every change is below
    await client.enqueue_many([op.EnqueueRequest(handler="pulse.noop", delay_secs=3600)])
    alone = await next_event()
    assert alone.kind == "others" and dict(alone.others) == {J.QUEUED: 1} and alone.others_from_seq == 0
    counts = await next_event()
    assert counts.kind == "counts" and counts.counts.by_status[J.QUEUED] == 1
    await events.aclose()
    await client.close()


async def test_view_flushes_never_wait_for_a_busy_count(inproc_server):
    """The consoles' per-flush count waits for a reader thread; while every reader is busy (scans
    of consoles' filters), the changes still go out at once, and the count follows when it lands.
    A count that fails with an unexpected error (the readers shut down) costs the counts only."""
    store = inproc_server.server.operator.engine.store
    client = PulseClient(inproc_server.address, inproc_server.token)
    assert await client.probe() == "operator"
    events = client.watch_jobs(view=[])
    assert (await anext(events)).kind == "heartbeat"
    loop = asyncio.get_running_loop()
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 50000000) SELECT count(*) FROM c"
    busy: list[asyncio.Task[int]] = []
    for _ in range(store._readers._max_workers):  # every reader thread held until released
        begun = asyncio.Event()

        def hold(conn, begun=begun):
            loop.call_soon_threadsafe(begun.set)
            return conn.execute(slow).fetchone()[0]

        busy.append(asyncio.create_task(store._read(hold)))
        await asyncio.wait_for(begun.wait(), 10)

    async def next_kind(*kinds: str) -> op.JobEvent:
        while (ev := await asyncio.wait_for(anext(events), 5)).kind not in kinds:
            assert ev.kind == "heartbeat", ev.kind
        return ev

    try:
        await client.enqueue("pulse.noop", delay_secs=3600)
        assert (await next_kind("others", "counts")).kind == "others"  # not held behind the count
    finally:
        for task in busy:
            task.cancel()
        await asyncio.gather(*busy, return_exceptions=True)
    counts = await next_kind("counts")  # the count, once it could read, follows on its own
    assert counts.counts.by_status[J.QUEUED] == 1

    store._readers.shutdown()  # every count now fails with RuntimeError
    for expected in (2, 3):  # the broadcast goes on, without counts
        await client.enqueue("pulse.noop", delay_secs=3600)
        ev = await next_kind("others", "counts")
        assert ev.kind == "others" and sum(ev.others.values()) == 1, (expected, ev)
    await events.aclose()
    await client.close()


async def test_a_refused_view_keeps_no_token(inproc_server):
    """A view stream asking for more ids than a view shows is refused, and leaves nothing behind
    (no token for every flush to count for)."""
    from pulse_tui.pulse.services import VIEW_MAX

    client = PulseClient(inproc_server.address, inproc_server.token)
    assert await client.probe() == "operator"
    events = client.watch_jobs(view=[f"{i:032x}" for i in range(VIEW_MAX + 1)])
    with pytest.raises(ClientError) as err:
        await anext(events)
    assert err.value.code == "INVALID_ARGUMENT"
    broadcast = inproc_server.server.operator._broadcast
    assert not broadcast._views and not broadcast._viewing and not broadcast._subs
    await client.close()
