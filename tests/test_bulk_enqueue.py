"""Bulk enqueue (Engine.enqueue_many, OperatorService.EnqueueMany, `jobs enqueue --from`): every job
validated, all stored in one transaction or none, ids in order. On SQLite and PostgreSQL for the
engine; against a real `pulse-tui serve` process for the RPC and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import grpc
import pytest
from test_services import expect_code, total_jobs

from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.pulse import jobs as J
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.errors import DuplicateJob, ValidationError
from pulse_tui.pulse.handlers import StaticRouter
from pulse_tui.pulse.jobs import JobFilter
from pulse_tui.pulse.store import open_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path):
    url = f"sqlite:{tmp_path / 'p.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = open_store(url)
    await store.open()
    eng = Engine(store, StaticRouter(), retention_secs=None)
    try:
        yield eng
    finally:
        await eng.stop(grace=1)
        await store.close()


async def stored(engine: Engine) -> list[J.Job]:
    ids, _ = await engine.select_ids(JobFilter(), 100_000)
    return [await engine.get_job(i) for i in ids]


async def test_enqueue_many_stores_all_in_order(engine: Engine):
    specs = [{"handler": "pulse.noop", "payload": json.dumps({"i": i}).encode()} for i in range(500)]
    jobs = await engine.enqueue_many(specs)
    assert [json.loads(j.payload)["i"] for j in jobs] == list(range(500))
    assert len({j.id for j in jobs}) == 500
    rows = {j.id: j for j in await stored(engine)}
    assert set(rows) == {j.id for j in jobs}
    seqs = [rows[j.id].seq for j in jobs]
    assert seqs == sorted(seqs) and len(set(seqs)) == 500  # FIFO follows the input order
    assert all(rows[j.id].status == J.QUEUED for j in jobs)
    assert len({rows[j.id].created_at for j in jobs}) == 1  # one enqueue time for the call
    assert await engine.enqueue_many([]) == []


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ({"handler": "pulse.nop"}, "did you mean 'pulse.noop'"),
        ({"handler": "pulse.noop", "payload": b"[1,"}, "payload is not JSON"),
        ({"handler": "pulse.noop", "priority": 10**6}, "priority"),
        ({"handler": "pulse.noop", "delay_secs": -1.0}, "delay"),
        ({"handler": "pulse.noop", "colour": "red"}, "colour"),
    ],
)
async def test_enqueue_many_one_bad_job_stores_none(engine: Engine, bad, fragment):
    await engine.enqueue("pulse.noop", b"{}")
    specs = [{"handler": "pulse.noop"} for _ in range(100)]
    specs[57] = bad
    with pytest.raises(ValidationError) as info:
        await engine.enqueue_many(specs)
    assert "job 57 of 100" in info.value.message and fragment in info.value.message
    assert len(await stored(engine)) == 1


async def test_enqueue_many_is_one_transaction(engine: Engine):
    """Validation passes but the store refuses one row (an id already taken): the rows before it
    in the same call are rolled back too."""
    taken = await engine.enqueue("pulse.noop", b"{}", job_id="taken-1")
    specs = [{"handler": "pulse.noop", "job_id": f"bulk-{i}"} for i in range(50)]
    specs[30] = {"handler": "pulse.noop", "payload": b'{"other": 1}', "job_id": taken.id}
    with pytest.raises(
        DuplicateJob, match="job 30 of 50: a job with id 'taken-1' already exists with a different"
    ):
        await engine.enqueue_many(specs)
    assert [j.id for j in await stored(engine)] == ["taken-1"]


async def test_enqueue_many_repeated_ids_are_idempotent(engine: Engine):
    """A client id already stored, or given earlier in the same call, with the same handler and
    payload is that job (existed, nothing new stored); different content refuses the whole call,
    naming the job's index and the id."""
    kept = await engine.enqueue("pulse.noop", b'{"a": 1}', job_id="kept-1")
    specs: list[dict] = [
        {"handler": "pulse.noop", "payload": f'{{"n": {i}}}'.encode(), "job_id": f"new-{i}"} for i in range(4)
    ]
    specs[2] = {"handler": "pulse.noop", "payload": b'{ "a" : 1 }', "job_id": "kept-1"}  # same JSON
    specs.append({"handler": "pulse.noop", "payload": b'{"n": 0}', "job_id": "new-0"})  # repeated in the call
    specs.append({"handler": "pulse.noop"})  # no id: always a new job
    jobs, existed = await engine.submit_many(specs)
    assert [j.id for j in jobs[:5]] == ["new-0", "new-1", "kept-1", "new-3", "new-0"]
    assert existed == [False, False, True, False, True, False]
    assert jobs[2].seq == kept.seq and jobs[4].seq == jobs[0].seq
    assert len(await stored(engine)) == 5
    again, existed = await engine.submit_many(specs[:5])  # a client retrying the call
    assert [j.id for j in again] == [j.id for j in jobs[:5]] and all(existed)
    assert len(await stored(engine)) == 5

    different = [*specs[:5], {"handler": "pulse.noop", "job_id": "fresh-1"}]
    different[3] = {"handler": "pulse.noop", "payload": b'{"n": 4}', "job_id": "new-3"}
    with pytest.raises(
        DuplicateJob, match="job 3 of 6: a job with id 'new-3' already exists with a different payload"
    ):
        await engine.enqueue_many(different)
    twins = [{"handler": "pulse.noop", "job_id": "twin"}, {"handler": "pulse.fail", "job_id": "twin"}]
    with pytest.raises(
        DuplicateJob, match="job 1 of 2: a job with id 'twin' already exists with handler 'pulse.noop'"
    ):
        await engine.enqueue_many(twins)
    assert len(await stored(engine)) == 5  # neither call stored anything


async def test_enqueue_many_repeated_specs_are_jobs_of_their_own(engine: Engine):
    """Specs repeating another's fields (the same dict, or an equal one, or all but the payload)
    are validated once but each is a job of its own: its own id, the spec's values and payload,
    held like the first; a spec that differs in another field or has a client id is not taken
    for a repeat."""
    await engine.pause_handler("pulse.fail")
    spec = {"handler": "pulse.noop", "priority": 3, "delay_secs": 60.0, "source": "a"}
    big = {"handler": "pulse.noop", "payload": json.dumps({"x": "y" * 300}).encode()}
    named = {"handler": "pulse.noop", "job_id": "named-1"}
    specs = [
        spec,
        spec,
        dict(spec),
        {**spec, "priority": 4},
        big,
        dict(big),
        spec,
        {**spec, "payload": b"[1]"},
    ]
    specs += [{**spec, "source": f"s{i}"} for i in range(70)]  # more different specs than remembered
    specs += [spec, dict(spec), {"handler": "pulse.fail"}, {"handler": "pulse.fail"}, named, named]
    jobs, existed = await engine.submit_many(specs)
    fresh = [j.id for j, spec_ in zip(jobs, specs, strict=True) if not spec_.get("job_id")]
    assert len(set(fresh)) == len(fresh) == len(specs) - 2
    assert existed == [False] * (len(specs) - 1) + [True] and jobs[-1].seq == jobs[-2].seq
    rows = {j.id: j for j in await stored(engine)}
    assert len(rows) == len(specs) - 1
    for job, s in zip(jobs, specs, strict=True):
        row = rows[job.id]
        assert (row.priority, row.source) == (s.get("priority", 0), s.get("source", "")), job.id
        assert row.run_at == pytest.approx(row.created_at + s.get("delay_secs", 0.0))
        assert json.loads(row.payload) == json.loads(s.get("payload", b"{}"))
        held = s["handler"] == "pulse.fail"
        assert (row.status, row.pause_reason) == ((J.PAUSED, J.REASON_HANDLER) if held else (J.QUEUED, ""))
        assert (job.status, job.seq) == (row.status, row.seq)


async def test_enqueue_many_in_chunks_is_still_all_or_none(engine: Engine, monkeypatch):
    """A call of many jobs without client ids or parents is validated (and written, on
    PostgreSQL) chunk by chunk in one transaction: all stored in order and held like any, or,
    with a bad spec in a later chunk, none."""
    monkeypatch.setattr("pulse_tui.pulse.engine.BULK_CHUNK", 7)
    await engine.pause_handler("pulse.fail")
    specs = [{"handler": "pulse.noop", "payload": json.dumps({"i": i}).encode()} for i in range(40)]
    specs[9] = {"handler": "pulse.fail"}
    jobs = await engine.enqueue_many(specs)
    rows = {j.id: j for j in await stored(engine)}
    assert [json.loads(rows[j.id].payload).get("i") for j in jobs] == [
        None if i == 9 else i for i in range(40)
    ]
    seqs = [j.seq for j in jobs]
    assert seqs == [rows[j.id].seq for j in jobs] and seqs == sorted(seqs) and len(set(seqs)) == 40
    assert (
        [j.id for j in jobs if j.status == J.PAUSED]
        == [jobs[9].id]
        == [i for i, r in rows.items() if r.status == J.PAUSED and r.pause_reason == J.REASON_HANDLER]
    )
    specs[33] = {"handler": "pulse.noop", "payload": b"[1,"}
    with pytest.raises(ValidationError, match="job 33 of 40: payload is not JSON"):
        await engine.enqueue_many(specs)
    assert len(await stored(engine)) == 40  # nothing of the second call


async def test_enqueue_many_limit(engine: Engine, monkeypatch):
    monkeypatch.setattr("pulse_tui.pulse.engine.ENQUEUE_MANY_MAX", 10)
    with pytest.raises(ValidationError, match="at most 10 jobs per call, got 11"):
        await engine.enqueue_many([{"handler": "pulse.noop"}] * 11)
    assert await stored(engine) == []


async def test_enqueue_many_runs_the_jobs(engine: Engine):
    with engine.bus.watch() as w:
        jobs = await engine.enqueue_many([{"handler": "pulse.noop"} for _ in range(200)])
        await engine.start()
        pending = {j.id for j in jobs}
        while pending:
            batch, resync = await w.next_batch(timeout=10)
            assert batch or resync, f"{len(pending)} jobs never completed"
            pending -= {j.id for j in batch if j.status == J.COMPLETED}


# ---------------------------------------------------------------- over gRPC


async def test_rpc_enqueue_many_order_and_all_or_none(shared_server):
    md = shared_server.metadata
    async with grpc.aio.insecure_channel(shared_server.address) as ch:
        ops = op_grpc.OperatorServiceStub(ch)
        reqs = [op.EnqueueRequest(handler="pulse.noop", source=f"bulk-{i}") for i in range(300)]
        resp = await ops.EnqueueMany(op.EnqueueManyRequest(jobs=reqs), metadata=md)
        assert len(resp.ids) == 300
        for i in (0, 1, 150, 299):
            detail = await ops.GetJob(op.GetJobRequest(id=resp.ids[i]), metadata=md)
            assert detail.job.source == f"bulk-{i}"
        seqs = [(await ops.GetJob(op.GetJobRequest(id=x), metadata=md)).job.seq for x in resp.ids[:20]]
        assert seqs == sorted(seqs)
        # requests alike (validated once) are jobs of their own, among ones that differ
        alike = op.EnqueueRequest(handler="pulse.noop", priority=7, delay_secs=3600)
        mixed = [alike, *reqs[:80], alike, op.EnqueueRequest(handler="pulse.noop", priority=8), alike]
        resp = await ops.EnqueueMany(op.EnqueueManyRequest(jobs=mixed), metadata=md)
        assert len(set(resp.ids)) == len(mixed)
        for i in (0, 5, 81, 82, 83):
            detail = await ops.GetJob(op.GetJobRequest(id=resp.ids[i]), metadata=md)
            assert (detail.job.priority, detail.job.source) == (mixed[i].priority, mixed[i].source)

        before = await total_jobs(ops, md)
        reqs[120] = op.EnqueueRequest(handler="pulse.noop", payload=b"{not json")
        await expect_code(
            ops.EnqueueMany(op.EnqueueManyRequest(jobs=reqs), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "job 120 of 300",
            "payload is not JSON",
        )
        assert await total_jobs(ops, md) == before
        await expect_code(
            ops.EnqueueMany(op.EnqueueManyRequest(jobs=reqs[:5]), metadata=shared_server.readonly_metadata),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        assert await total_jobs(ops, md) == before
        assert not (await ops.EnqueueMany(op.EnqueueManyRequest(), metadata=md)).ids
        # client ids: a repeat with the same content is the same job (existed); else refused
        named = [
            op.EnqueueRequest(handler="pulse.noop", id=f"rpc-many-{i}", delay_secs=3600) for i in range(3)
        ]
        first = await ops.EnqueueMany(op.EnqueueManyRequest(jobs=named), metadata=md)
        again = await ops.EnqueueMany(op.EnqueueManyRequest(jobs=[*named, *reqs[:1]]), metadata=md)
        assert list(again.ids[:3]) == list(first.ids) == [f"rpc-many-{i}" for i in range(3)]
        assert list(first.existed) == [False] * 3 and list(again.existed) == [True, True, True, False]
        named[1].payload = b'{"x": 1}'
        await expect_code(
            ops.EnqueueMany(op.EnqueueManyRequest(jobs=named), metadata=md),
            grpc.StatusCode.INVALID_ARGUMENT,
            "job 1 of 3: a job with id 'rpc-many-1' already exists with a different payload",
        )


def cli(server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulse_tui", "jobs", "enqueue", "--connect", server.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        env={**os.environ, "PULSE_TOKEN": server.token},
    )


async def test_cli_enqueue_from_jsonl(shared_server, tmp_path):
    md = shared_server.metadata
    good = tmp_path / "jobs.jsonl"
    lines = [json.dumps({"handler": "pulse.noop", "payload": {"i": i}, "priority": i % 3}) for i in range(40)]
    good.write_text("\n".join(lines[:20]) + "\n\n" + "\n".join(lines[20:]) + "\n")
    r = cli(shared_server, "--from", str(good), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["enqueued"] == 40 and len(doc["ids"]) == 40
    async with grpc.aio.insecure_channel(shared_server.address) as ch:
        ops = op_grpc.OperatorServiceStub(ch)
        d = await ops.GetJob(op.GetJobRequest(id=doc["ids"][7]), metadata=md)
        assert json.loads(d.payload) == {"i": 7} and d.job.priority == 1
        before = await total_jobs(ops, md)
        for content, fragment in [
            ('{"handler": "pulse.noop"}\n[1]\n', ":2: expected a JSON object"),
            (
                '{"handler": "pulse.noop"}\n{"handler": "pulse.noop", "prio": 1}\n',
                ":2: unknown field(s) prio",
            ),
            ('{"handler": "pulse.noop", "priority": "high"}\n', ":1: priority must be an integer"),
            (
                '{"handler": "pulse.noop", "priority": 99999999999}\n',
                ":1: priority 99999999999 is out of range",
            ),
            ('{"payload": {}}\n', ":1: no handler"),
            ("{oops\n", ":1: not JSON"),
            ("\n\n", "no jobs"),
        ]:
            bad = tmp_path / "bad.jsonl"
            bad.write_text(content)
            r = cli(shared_server, "--from", str(bad))
            assert r.returncode != 0 and fragment in r.stderr, (content, r.stderr)
        # the server refuses line 4 (unknown handler; a blank line before it): nothing from the
        # file is stored, and the error names that line, not the job's index in the call
        mixed = "\n".join([lines[0], lines[1], "", json.dumps({"handler": "pulse.nop"}), lines[3]])
        r = cli(shared_server, "--from", "-", stdin=mixed)
        assert r.returncode != 0 and "-:4: unknown handler 'pulse.nop'" in r.stderr, r.stderr
        assert "pulse.noop" in r.stderr and "job 2 of" not in r.stderr, r.stderr
        r = cli(shared_server, "pulse.noop", "--from", str(good))
        assert r.returncode == 2 and "--from takes every job's fields from the file" in r.stderr
        assert await total_jobs(ops, md) == before


def test_job_ids_unique_at_bulk_rates():
    """Hundreds of ids per millisecond (EnqueueMany's rate) must not collide; they sort by
    creation (the 32-digit time-ordered layout)."""
    from pulse_tui.pulse.jobs import new_job_id

    ids = [new_job_id() for _ in range(300_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 32 for i in ids[:1000])
