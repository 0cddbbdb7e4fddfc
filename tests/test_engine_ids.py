"""Job ids: 128-bit, time-ordered (UUIDv7 layout), unique under bursts of concurrent enqueues,
and opaque to the stores (ids of the older 16-digit format keep working)."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import uuid

import pytest

from pulse_tui.pulse import jobs as J
from pulse_tui.pulse.engine import JOB_ID_RE, Engine
from pulse_tui.pulse.handlers import StaticRouter, builtin_handlers
from pulse_tui.pulse.jobs import JobFilter, new_job_id, new_job_ids
from pulse_tui.pulse.store.sqlite import SQLiteStore
from pulse_tui.widgets.fmt import short_id

BURST = 20_000
CLIENTS = 32


def test_ids_have_the_uuidv7_layout_and_sort_in_creation_order():
    before = time.time_ns() // 1_000_000
    ids = [new_job_id() for _ in range(50_000)]
    after = time.time_ns() // 1_000_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) and JOB_ID_RE.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # the per-millisecond counter keeps order within a millisecond
    u = uuid.UUID(ids[0])
    assert u.version == 7 and u.variant == uuid.RFC_4122
    ms = int(ids[0][:12], 16)
    assert before <= ms <= after + 100  # +100: the counter may borrow a few milliseconds


def test_ids_made_in_bulk_have_the_same_layout_and_order():
    """new_job_ids(n) (bulk enqueue) makes the ids n calls of new_job_id() would: unique, in
    creation order with the single ids made before and after."""
    ids = [new_job_id(), *new_job_ids(20_000), new_job_id(), *new_job_ids(1), *new_job_ids(0)]
    assert len(ids) == 20_003 and len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert {(uuid.UUID(i).version, uuid.UUID(i).variant) for i in ids} == {(7, uuid.RFC_4122)}


def test_ids_made_from_many_threads_are_unique():
    out: list[list[str]] = [[] for _ in range(8)]

    def make(k: int) -> None:
        out[k].extend(new_job_id() for _ in range(10_000))

    threads = [threading.Thread(target=make, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for chunk in out for i in chunk]
    assert len(set(every)) == len(every) == 80_000


def test_console_shows_ids_short_by_their_random_tail():
    jid = new_job_id()
    assert short_id(jid, 9) == "…" + jid[-8:]
    assert short_id("0123456789abcdef", 16) == "0123456789abcdef"  # an older id fits as before


async def test_burst_of_concurrent_enqueues_no_failure_no_duplicate(tmp_path):
    """20,000 enqueues from 32 concurrent clients, in-process (the engine's own door, real
    SQLite file; the gRPC version is in test_burst_over_grpc)."""
    store = SQLiteStore(str(tmp_path / "jobs.db"))
    await store.open()
    engine = Engine(store, StaticRouter(builtin_handlers()))
    await engine.start()
    try:
        # far-future jobs: the burst measures the door (ids, inserts), not the workers
        async def client(n: int) -> list[str]:
            return [(await engine.enqueue("pulse.noop", b"{}", delay_secs=86400)).id for _ in range(n)]

        per = BURST // CLIENTS
        results = await asyncio.gather(*(client(per) for _ in range(CLIENTS)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == []
        ids = [i for r in results for i in r]
        assert len(ids) == per * CLIENTS and len(set(ids)) == len(ids)
        counts = await engine.count_jobs(JobFilter(), cap=100_000)
        assert counts[J.QUEUED] == len(ids)
    finally:
        await engine.stop(grace=0.1)
        await store.close()


async def test_older_ids_keep_working_beside_new_ones(tmp_path):
    """A store written before the change holds 16-digit ids: they are found, run and listed with
    the new 32-digit ones."""
    store = SQLiteStore(str(tmp_path / "jobs.db"))
    await store.open()
    engine = Engine(store, StaticRouter(builtin_handlers()))
    await engine.start()
    try:
        old_id = f"{int(time.time() * 1000) & 0xFFFFFFFFFF:010x}{os.urandom(3).hex()}"
        old = await engine.enqueue("pulse.noop", b"{}", job_id=old_id)
        new = await engine.enqueue("pulse.noop", b"{}")
        assert len(old.id) == 16 and len(new.id) == 32
        for jid in (old.id, new.id):
            with engine.bus.watch() as w:
                job = await engine.get_job(jid)
                while job.status != J.COMPLETED:
                    batch, _ = await w.next_batch(timeout=5)
                    job = next((j for j in batch if j.id == jid), job)
        listed, _ = await engine.list_jobs(JobFilter(text=old_id[-6:]))
        assert [j.id for j in listed] == [old_id]
    finally:
        await engine.stop(grace=0.1)
        await store.close()


@pytest.mark.slow
@pytest.mark.timeout(600)  # 20,000 calls in make soak: ~30 s alone on 2 cores
def test_burst_over_grpc(server):
    """The same burst as operators send it: 32 gRPC clients (threads, one channel each) against a
    real server subprocess."""
    from helpers.reliability import connect

    from pulse_tui.protocol import operator_pb2 as op

    n = int(os.environ.get("PULSE_ID_BURST", "4000"))  # 20,000 in make soak (PULSE_SOAK=full)
    if os.environ.get("PULSE_SOAK") == "full":
        n = BURST
    per = n // CLIENTS
    ids: list[list[str]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []

    def client(k: int) -> None:
        c = connect(server.address, server.token)
        try:
            req = op.EnqueueRequest(handler="pulse.noop", delay_secs=86400)
            for _ in range(per):
                ids[k].append(c.ops.Enqueue(req, metadata=c.md).job.id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    every = [i for chunk in ids for i in chunk]
    assert len(every) == per * CLIENTS and len(set(every)) == len(every)
