"""The read side's SQL (pulse/store/sql.py): one `redact` for store URLs (the server's too), and
the plans of the shared read queries on both backends (listing by status, the filters, counting,
next_due use their indexes: a builder change that wraps a column or casts a value would turn them
into scans)."""

from __future__ import annotations

import re
import sqlite3
import time

import asyncpg
import pytest
from pg import pg_server_fixture, pg_url_fixture  # noqa: F401  (fixtures pg_server, pg_url)

from pulse_tui.pulse.jobs import Job, JobFilter
from pulse_tui.pulse.server import PulseServer, ServerError, ServerSettings
from pulse_tui.pulse.store import sql as q
from pulse_tui.pulse.store.postgres import PRUNE_SQL, PostgresStore
from pulse_tui.pulse.store.sqlite import SQLiteStore, claim_sql, prune_select


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # the host is after the LAST `@` of the authority; a `@` in the query is not the host's
        ("postgresql://u:p@h/db?x=a@b", "postgresql://u@h/db?x=a@b"),
        ("postgresql://u:p@h:5433/db", "postgresql://u@h:5433/db"),
        ("postgresql://u:p@ss@h/db", "postgresql://u@h/db"),  # an unencoded `@` in the password
        ("postgresql://u:@h/db", "postgresql://u@h/db"),  # an empty password
        ("postgresql://:p@h/db", "postgresql://@h/db"),
        ("postgres://u:p@[::1]:5432/db?sslmode=require", "postgres://u@[::1]:5432/db?sslmode=require"),
        ("postgresql://u@h/db?password=secret&sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("postgresql://u:p@h/db?pulse_node=a&password=s", "postgresql://u@h/db?pulse_node=a"),
        # nothing to hide: unchanged to the letter
        ("postgresql://u@h/db?x=a%40b", "postgresql://u@h/db?x=a%40b"),
        ("postgresql://h:5432/db", "postgresql://h:5432/db"),
        ("sqlite:/data/a@b:c/jobs.db", "sqlite:/data/a@b:c/jobs.db"),
        ("/data/jobs.db", "/data/jobs.db"),
        # a URL urlsplit cannot read: everything before the last `@` is hidden
        ("postgresql://u:p@[::1/db", "postgresql://…@[::1/db"),
    ],
)
def test_redact_drops_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert q.redact(url) == shown


def test_the_postgres_store_shows_its_url_redacted() -> None:
    store = PostgresStore("postgresql://u:p@h/db?x=a@b")
    assert store.url == "postgresql://u@h/db?x=a@b"


def _queries(handlers: list[str]) -> dict[str, tuple[q.Query, q.Query, str]]:
    """name -> (SQLite query, PostgreSQL query, the index its plan must use). PostgreSQL weighs a
    sort of a few rows against an index's order, so where two indexes fit either will do there
    (the check is that it uses one: `jobs_` is the prefix of every index on jobs)."""
    out = {}
    for name, build, index in [
        ("list by status", lambda d: q.list_jobs(d, JobFilter(statuses=("failed",)), 50, None, False, 0), "jobs_status_seq"),
        ("list by status, next page", lambda d: q.list_jobs(d, JobFilter(statuses=("failed",)), 50, 900, False, 0), "jobs_status_seq"),
        ("list by handler", lambda d: q.list_jobs(d, JobFilter(handler="h1"), 50, None, False, 0), "jobs_handler_seq"),
        ("list children", lambda d: q.list_jobs(d, JobFilter(parent_job_id="p1"), 50, None, False, 0), "jobs_parent"),
        ("list by status, text and error", lambda d: q.list_jobs(d, JobFilter(statuses=("failed",), text="b_1%", error="boom"), 50, None, False, 0), "jobs_"),
        ("select ids by status", lambda d: q.select_ids(d, JobFilter(statuses=("queued",)), 100), "jobs_"),
        ("count by handler", lambda d: q.count_jobs(d, JobFilter(handler="h1"), 10_000), "jobs_handler_"),
        ("next due", lambda d: q.next_due(d, handlers, time.time()), "jobs_queue_due"),
    ]:  # fmt: skip
        out[name] = (build(q.SQLITE), build(q.POSTGRES), index)
    return out


def _jobs(n: int) -> list[Job]:
    now = time.time()
    return [
        Job(
            id=f"j{i}",
            handler=f"h{i % 7}",
            status=("queued", "failed", "completed", "completed", "completed")[i % 5],
            created_at=now,
            updated_at=now,
            run_at=now + i % 3,
        )
        for i in range(n)
    ]


async def test_sqlite_read_queries_use_their_indexes(tmp_path) -> None:
    path = tmp_path / "jobs.db"
    store = SQLiteStore(str(path))
    await store.open()
    await store.insert(_jobs(300))
    await store.close()
    conn = sqlite3.connect(path)
    conn.execute("ANALYZE")
    try:
        for name, ((sql, args), _pg, index) in _queries(["h1", "h2"]).items():
            plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert "SCAN jobs" not in plan and f"INDEX {index}" in plan, f"{name}: {plan}"
    finally:
        conn.close()


@pytest.mark.postgres
async def test_postgres_read_queries_use_their_indexes(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    try:
        await store.insert(_jobs(300))
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute("ANALYZE jobs")
            # a small table is cheaper to read whole: forbid that, so a query that cannot use an
            # index (a cast or a function on the column) still shows as a sequential scan
            await conn.execute("SET enable_seqscan = off")
            for name, (_sqlite, (sql, args), index) in _queries(["h1", "h2"]).items():
                plan = " | ".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
                fits = "jobs_" if index in ("jobs_status_seq", "jobs_handler_seq") else index
                used = re.search(rf"Index (Only )?Scan (Backward )?(using|on) {fits}", plan)
                # an index searched, not read whole in its order with the filter applied to every row
                assert "Seq Scan on jobs" not in plan and used and "Index Cond" in plan, f"{name}: {plan}"
        finally:
            await conn.close()
    finally:
        await store.close()


def _finished_reads(cutoff: float) -> dict[str, tuple[q.Query, q.Query, str]]:
    """name -> (SQLite query, PostgreSQL query, the index its plan must use) of the reads of
    finished jobs by completed_at (a handler's prune may take the handler's index instead)."""
    return {
        "prune": (
            prune_select(cutoff, ("completed",), 5000),
            (PRUNE_SQL, [["completed"], cutoff, 5000, None, []]),
            "jobs_finished",
        ),
        "prune of a handler": (
            prune_select(cutoff, ("failed",), 5000, handlers=("h1",)),
            (PRUNE_SQL, [["failed"], cutoff, 5000, ["h1"], []]),
            "jobs_",
        ),
        "spend": (
            q.spend(q.SQLITE, cutoff + 110, cutoff + 100),
            q.spend(q.POSTGRES, cutoff + 110, cutoff + 100),
            "jobs_finished",
        ),
    }


async def test_reads_of_finished_jobs_use_the_partial_finished_index(tmp_path, pg_url: str) -> None:
    """jobs_finished holds finished jobs only (no index entry at enqueue and claim): retention and
    spend still read through it on both stores (SQLite matches a partial index's terms word for
    word; PostgreSQL's generic plan cannot prove it from the statuses parameter)."""
    now = time.time()
    jobs = _jobs(600)
    for i, j in enumerate(jobs):  # a few finished before `now - 50` (pruned), a few after `now + 50`
        j.completed_at = 0 if j.status == "queued" else {1: now - 100, 2: now + 100}.get(i % 10, now)
    path = tmp_path / "jobs.db"
    lite = SQLiteStore(str(path))
    await lite.open()
    await lite.insert(jobs)
    await lite.close()
    conn = sqlite3.connect(path)
    try:
        for analyze in (False, True):
            if analyze:
                conn.execute("ANALYZE")
            for name, ((sql, args), _pg, index) in _finished_reads(now - 50).items():
                plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
                assert "SCAN jobs" not in plan and f"INDEX {index}" in plan, f"{name}: {plan}"
    finally:
        conn.close()
    store = PostgresStore(pg_url)
    await store.open()
    try:
        await store.insert(jobs)
        pg = await asyncpg.connect(pg_url)
        try:
            await pg.execute("ANALYZE jobs")
            await pg.execute("SET enable_seqscan = off")
            await pg.execute("SET plan_cache_mode = force_generic_plan")
            for name, (_lite, (sql, args), index) in _finished_reads(now - 50).items():
                plan = " | ".join(r[0] for r in await pg.fetch("EXPLAIN " + sql, *args))
                used = re.search(rf"Scan (Backward )?(using|on) {index}", plan)
                assert "Seq Scan on jobs" not in plan and used, f"{name}: {plan}"
        finally:
            await pg.close()
    finally:
        await store.close()


async def test_the_server_names_a_store_it_cannot_open_without_the_password(tmp_path) -> None:
    url = "postgresql://u:secret@127.0.0.1:1/db?application_name=a@b"  # nothing listens on port 1
    srv = PulseServer(ServerSettings(listen="127.0.0.1:0", data_dir=tmp_path / "data", db=url))
    with pytest.raises(ServerError) as err:
        await srv.start()
    assert "postgresql://u@127.0.0.1:1/db?application_name=a@b" in str(err.value)
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("paused_guard", [False, True])
async def test_sqlite_claim_walks_the_queue_index_without_sorting(tmp_path, paused_guard: bool) -> None:
    """The claim stops after `limit` rows of jobs_queue; it used to sort every queued job."""
    path = tmp_path / "jobs.db"
    store = SQLiteStore(str(path))
    await store.open()
    await store.insert(_jobs(300))
    await store.close()
    conn = sqlite3.connect(path)
    try:
        sql = claim_sql(2, paused_guard=paused_guard)
        plan = " | ".join(
            r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, (0, 0, "n", 0, "h1", "h2", 5))
        )
        assert "INDEX jobs_queue" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        conn.close()
