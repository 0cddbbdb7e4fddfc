"""PostgreSQL store: several `pulse-tui serve` nodes share one queue.

- Claims are one statement: `UPDATE … WHERE seq IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)
  RETURNING …`, so concurrent claimers on any number of nodes never get the same job and never
  wait on each other's rows. Its plan (and the finish's) must not hang on statistics a young
  table lacks: see CLAIM_PLAN.
- Leases: a running row carries `node` and `lease_expires` (database clock, so nodes' clocks may
  disagree). `heartbeat()` extends this node's leases and re-queues running jobs whose lease
  expired (their node died); the open attempt is recorded as interrupted. A stale node's late
  `finish` is fenced out (status, node and attempt number must still match).
- LISTEN/NOTIFY on channel `pulse_jobs`: every write that changes jobs notifies in the same
  transaction (delivered at commit). Other nodes' engines receive the changed rows through the
  `listen(on_event)` callback: they publish them to their event bus (so a TUI attached to any node
  sees every node's jobs) and wake their dispatcher (so an enqueue on one node wakes all nodes).
- Cancel across nodes: `request_cancel(job_id)` sets `cancel_requested` on the running row and
  notifies; the node running the job sees it (notification, or its next heartbeat as a fallback)
  through `cancel_requests()`.

Notification payload: `KIND|id1,id2,…|ORIGIN_NODE`, at most NOTIFY_CHUNK ids per notification.

Schema versioning: table `pulse_meta` (key `schema_version`); MIGRATIONS[i] upgrades from version
i to i+1 under a transaction-scoped advisory lock, so nodes starting together migrate once.

URL: a libpq-style `postgresql://user:password@host:port/db?…`. Pulse's own options are query
parameters removed before connecting: `pulse_lease_secs` (default 30) and `pulse_node`.
The password never appears in `url` (used for display and logs).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from pulse_tui.pulse.errors import DuplicateJob, DuplicateSchedule, NotFound, Unavailable, ValidationError
from pulse_tui.pulse.jobs import (
    CRASH_LIMIT,
    OUTCOME_CANCELLED,
    OUTCOME_COMPLETED,
    OUTCOME_CRASHED,
    OUTCOME_INTERRUPTED,
    PAUSED,
    REASON_HANDLER,
    SERVER_CRASHED_ERROR,
    SERVER_INTERRUPTED_ERROR,
    Job,
    JobDetail,
    JobFilter,
    parent_ended_reason,
)
from pulse_tui.pulse.schedules import (
    DELETED,
    EX_SKIPPED,
    EXECUTION_COLS,
    SCHEDULE_COLS,
    AlreadyDeclared,
    Execution,
    Schedule,
    ScheduleFilter,
)
from pulse_tui.pulse.store import sql as q
from pulse_tui.pulse.store.base import (
    FULL_SELECT,
    JOB_COLS,
    LIST_SELECT,
    SCHEDULE_SELECT,
    Finish,
    Store,
    schedule_changes,
)
from pulse_tui.pulse.store.sql import POSTGRES as D

log = logging.getLogger("pulse.store.postgres")


CHANNEL = "pulse_jobs"
NOTIFY_CHUNK = 100  # ids per NOTIFY: the payload limit is 8000 bytes and ids are at most 64 chars
# (100 x 65 = 6,500 bytes plus kind and node; 300 overflowed with 32-digit ids)
DEFAULT_LEASE_SECS = 30.0
ADVISORY_LOCK_KEY = 0x70756C7365  # "pulse"

# notification kinds
K_CHANGE = "c"  # jobs changed (enqueue, claim, finish, operator action)
K_REAP = "r"  # expired leases re-queued: delivered to every node, the reaper included
K_CANCEL = "x"  # cancel requested for running jobs
K_SCHEDULE = "s"  # schedules changed (ids are schedule ids): wakes other nodes' tickers
K_SCHEDULE_RUN = "t"  # a schedule ran or a run ended: for watchers only (its next run only moved later)

# transition() may set these columns (the engine's operator actions)
WRITABLE_COLS = frozenset(JOB_COLS) - {"id", "seq"} | {"payload", "result", "budget_override"}

DB_NOW = "extract(epoch from clock_timestamp())"

# the claim's guard: no job of a paused handler (bare `a.b` or qualified `plugin/a.b`), whichever
# node paused it
NOT_PAUSED_HANDLER = (
    "NOT EXISTS (SELECT 1 FROM paused_handlers p"
    " WHERE p.name = substring(jobs.handler from position('/' in jobs.handler) + 1))"
)
# the claim's handlers ($4) less those paused by any node (bare `a.b` or qualified `plugin/a.b`):
# evaluated once per claim, not once per queued row
CLAIMABLE_HANDLERS = (
    "ARRAY(SELECT h FROM unnest($4::text[]) AS h WHERE NOT EXISTS (SELECT 1 FROM paused_handlers p"
    " WHERE p.name = substring(h from position('/' in h) + 1)))"
)
# The hot statements' plans must not depend on statistics, which a young table lacks (without them
# the planner guesses that a handful of rows are queued or running, and picks plans that are
# O(queue) per claim or O(batch x running) per finish): the claim walks jobs_queue in order and
# stops after its limit (no sort of every queued row); the finish looks its rows up by primary key
# and hash-joins them with its arrays.
CLAIM_PLAN = "SET LOCAL enable_sort = off"
FINISH_PLAN = "SET LOCAL enable_nestloop = off"
# jobs of handler $n (bare or qualified)
OF_HANDLER = "substring(handler from position('/' in handler) + 1) = "

# why a job asked to cancel ends cancelled when its node is gone (the node itself says the same,
# Engine._remote_cancel_reason): a child that ran when its parent ended failed or cancelled was the
# cascade's ("parent <id> failed"), any other an operator's
CANCEL_REASON = (
    "COALESCE((SELECT 'parent ' || p.id || ' ' || p.status FROM jobs AS p"
    " WHERE jobs.parent_job_id <> '' AND p.id = jobs.parent_job_id"
    " AND p.status IN ('failed', 'cancelled') AND jobs.started_at <= p.completed_at),"
    " 'cancelled by operator')"
)

MIGRATIONS: list[str] = [
    # 0 -> 1
    """
    CREATE TABLE jobs (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        handler text NOT NULL,
        status text NOT NULL,
        priority integer NOT NULL DEFAULT 0,
        payload bytea NOT NULL DEFAULT '\\x7b7d',
        result bytea NOT NULL DEFAULT '',
        error text NOT NULL DEFAULT '',
        progress_current integer NOT NULL DEFAULT 0,
        progress_total integer NOT NULL DEFAULT 0,
        attempts integer NOT NULL DEFAULT 0,
        run_attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 3,
        retry_count integer NOT NULL DEFAULT 0,
        timeout_secs integer NOT NULL DEFAULT 0,
        source text NOT NULL DEFAULT '',
        parent_job_id text NOT NULL DEFAULT '',
        cost_estimate double precision NOT NULL DEFAULT 0,
        cost_actual double precision NOT NULL DEFAULT 0,
        created_at double precision NOT NULL DEFAULT 0,
        started_at double precision NOT NULL DEFAULT 0,
        completed_at double precision NOT NULL DEFAULT 0,
        updated_at double precision NOT NULL DEFAULT 0,
        run_at double precision NOT NULL DEFAULT 0,
        plugin text NOT NULL DEFAULT '',
        plugin_version text NOT NULL DEFAULT '',
        node text NOT NULL DEFAULT '',
        lease_expires double precision NOT NULL DEFAULT 0,
        cancel_requested boolean NOT NULL DEFAULT false
    );
    -- the claim: due queued jobs, priority then FIFO; next_due
    CREATE INDEX jobs_queue ON jobs (priority DESC, seq) WHERE status = 'queued';
    CREATE INDEX jobs_queue_due ON jobs (run_at) WHERE status = 'queued';
    -- leases: heartbeat (by node) and reaping (by expiry) touch only running rows
    CREATE INDEX jobs_running_node ON jobs (node) WHERE status = 'running';
    CREATE INDEX jobs_running_lease ON jobs (lease_expires) WHERE status = 'running';
    -- listing / counting by status and by handler, newest first; retention
    CREATE INDEX jobs_status_seq ON jobs (status, seq);
    CREATE INDEX jobs_handler_seq ON jobs (handler, seq);
    CREATE INDEX jobs_handler_status ON jobs (handler, status);
    CREATE INDEX jobs_finished ON jobs (status, completed_at);
    CREATE TABLE attempts (
        job_seq bigint NOT NULL,
        number integer NOT NULL,
        started_at double precision NOT NULL,
        ended_at double precision NOT NULL DEFAULT 0,
        outcome text NOT NULL,
        error text NOT NULL DEFAULT '',
        plugin text NOT NULL DEFAULT '',
        plugin_version text NOT NULL DEFAULT '',
        node text NOT NULL DEFAULT '',
        PRIMARY KEY (job_seq, number)
    );
    CREATE TABLE job_logs (
        log_seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_seq bigint NOT NULL,
        attempt integer NOT NULL,
        timestamp text NOT NULL,
        level text NOT NULL,
        message text NOT NULL,
        stage text NOT NULL DEFAULT '',
        metadata text NOT NULL DEFAULT ''
    );
    CREATE INDEX job_logs_job ON job_logs (job_seq, log_seq);
    """,
    # 1 -> 2: metric buckets (pulse/metrics.py); each node writes its own rows, readers sum them
    """
    CREATE TABLE metric_buckets (
        node text NOT NULL,
        step integer NOT NULL,
        ts bigint NOT NULL,
        handler text NOT NULL,
        data text NOT NULL,
        PRIMARY KEY (step, ts, handler, node)
    );
    CREATE INDEX metric_buckets_handler ON metric_buckets (handler, step, ts);
    """,
    # 2 -> 3: uncharged interruptions in the current run; crashes in a row (plugin or server)
    """
    ALTER TABLE jobs ADD COLUMN interruptions integer NOT NULL DEFAULT 0,
        ADD COLUMN crashes integer NOT NULL DEFAULT 0;
    """,
    # 3 -> 4: schedules and their runs (executions)
    """
    CREATE TABLE schedules (
        id text PRIMARY KEY,
        handler text NOT NULL,
        payload bytea NOT NULL DEFAULT '\\x7b7d',
        interval_secs integer NOT NULL DEFAULT 0,
        cron text NOT NULL DEFAULT '',
        timezone text NOT NULL DEFAULT '',
        state text NOT NULL,
        overlap text NOT NULL DEFAULT 'skip',
        jitter_secs integer NOT NULL DEFAULT 0,
        next_run_at double precision NOT NULL DEFAULT 0,
        last_run_at double precision NOT NULL DEFAULT 0,
        last_execution_id text NOT NULL DEFAULT '',
        last_job_id text NOT NULL DEFAULT '',
        last_status text NOT NULL DEFAULT '',
        run_count integer NOT NULL DEFAULT 0,
        owner text NOT NULL DEFAULT '',
        metadata text NOT NULL DEFAULT '{}',
        description text NOT NULL DEFAULT '',
        ats_code text NOT NULL DEFAULT '',
        created_at double precision NOT NULL DEFAULT 0,
        updated_at double precision NOT NULL DEFAULT 0,
        declared boolean NOT NULL DEFAULT false
    );
    CREATE INDEX schedules_due ON schedules (next_run_at) WHERE state = 'active';
    CREATE INDEX schedules_owner ON schedules (owner, created_at);
    -- one live declared schedule per owner and handler, even when several nodes reconcile at once
    CREATE UNIQUE INDEX schedules_declared ON schedules (owner, handler) WHERE declared AND state != 'deleted';
    CREATE TABLE schedule_executions (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        schedule_id text NOT NULL,
        job_id text NOT NULL DEFAULT '',
        status text NOT NULL,
        started_at double precision NOT NULL,
        completed_at double precision NOT NULL DEFAULT 0,
        duration_ms bigint NOT NULL DEFAULT 0,
        error text NOT NULL DEFAULT '',
        note text NOT NULL DEFAULT ''
    );
    CREATE INDEX schedule_executions_schedule ON schedule_executions (schedule_id, seq);
    CREATE INDEX schedule_executions_job ON schedule_executions (job_id) WHERE job_id != '';
    """,
    # 4 -> 5: child jobs: a parent's children (listing, counting, cancelling them with the parent)
    """
    CREATE INDEX jobs_parent ON jobs (parent_job_id, seq) WHERE parent_job_id != '';
    """,
    # 5 -> 6: pause: why a paused job is held; paused handlers (every node's claim skips their jobs)
    """
    ALTER TABLE jobs ADD COLUMN pause_reason text NOT NULL DEFAULT '',
        -- an operator resumed it over its budget (it runs once, cleared when the attempt ends)
        ADD COLUMN budget_override boolean NOT NULL DEFAULT false;
    CREATE TABLE paused_handlers (
        name text PRIMARY KEY,
        reason text NOT NULL DEFAULT '',
        paused_at double precision NOT NULL DEFAULT 0
    );
    """,
    # 6 -> 7: fewer index entries per job. A status change is not a HOT update (status is indexed),
    # so the new row version gets an entry in every index whose predicate it meets: finished rows
    # only in jobs_finished (not at enqueue and claim too), and one index for running rows (by
    # node; reaping reads all running rows, which are few), so a lease renewal changes no indexed
    # column and can be a HOT update
    """
    DROP INDEX jobs_finished;
    CREATE INDEX jobs_finished ON jobs (status, completed_at)
        WHERE status IN ('completed', 'failed', 'cancelled');
    DROP INDEX jobs_running_lease;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)

OnEvent = Callable[[list[Job]], Awaitable[None]]


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """Split Pulse's own `pulse_*` query parameters off a connection URL."""
    parts = urlsplit(url)
    keep: list[tuple[str, str]] = []
    ours: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k.startswith("pulse_"):
            ours[k.removeprefix("pulse_")] = v
        else:
            keep.append((k, v))
    return urlunsplit(parts._replace(query=urlencode(keep))), ours


def default_node() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def _fetch(conn: asyncpg.Connection, query: q.Query) -> list[asyncpg.Record]:
    sql, args = query
    return await conn.fetch(sql, *args)


async def _fetchrow(conn: asyncpg.Connection, query: q.Query) -> asyncpg.Record | None:
    sql, args = query
    return await conn.fetchrow(sql, *args)


def _sql_text(text: str) -> str:
    """A constant string as an SQL literal (our own constants only, never user input)."""
    return "'" + text.replace("'", "''") + "'"


def _interrupted_attempts(jobs: Sequence[Job], now: float) -> list[tuple[Any, ...]]:
    rows = []
    for j in jobs:
        if j.status == "cancelled":
            outcome, err = OUTCOME_CANCELLED, f"{j.error}; its node stopped while it ran"  # CANCEL_REASON
        elif j.status == "failed":
            outcome, err = OUTCOME_CRASHED, "server stopped while the attempt ran"
        else:
            outcome, err = OUTCOME_INTERRUPTED, "server stopped while the attempt ran"
        rows.append((j.seq, j.attempts, j.started_at, now, outcome, err, j.plugin, j.node))
    return rows


# The PostgreSQL type of each of q.INSERT_COLS, in that order.
_INSERT_TYPES = (
    "text", "text", "text", "int", "bytea", "int", "int", "text",
    "text", "float8", "float8", "float8", "float8", "int", "text",
)  # fmt: skip


def _insert_columns(jobs: Sequence[Job]) -> list[list[Any]]:
    """The values of q.INSERT_COLS, one list per column (payload as bytes: asyncpg takes no
    memoryview)."""
    return [
        [j.id for j in jobs],
        [j.handler for j in jobs],
        [j.status for j in jobs],
        [j.priority for j in jobs],
        [bytes(j.payload) for j in jobs],
        [j.max_attempts for j in jobs],
        [j.timeout_secs for j in jobs],
        [j.source for j in jobs],
        [j.parent_job_id for j in jobs],
        [j.cost_estimate for j in jobs],
        [j.created_at for j in jobs],
        [j.updated_at for j in jobs],
        [j.run_at for j in jobs],
        [j.retry_count for j in jobs],
        [j.pause_reason for j in jobs],
    ]


@functools.lru_cache(maxsize=64)
def _insert_sql(same: tuple[bool, ...]) -> str:
    """The insert of a call whose columns marked in `same` hold one value for every job (sent as
    one parameter) and the others one value per job (a typed array, unnested; the ids always).
    Parameters follow q.INSERT_COLS ($1...$15), then the node ($16).

    Identity values follow the input order (ORDER BY ordinality), so seq keeps FIFO, and the
    statement returns one row: the seqs in input order (ascending), the ids of the jobs held at
    the door, and the notifications' count. A queued job of a handler paused by any node (this
    node may not know yet) is held at the door."""
    exprs: list[str] = []
    arrays: list[str] = []
    names: list[str] = []
    for k, (col, typ) in enumerate(zip(q.INSERT_COLS, _INSERT_TYPES, strict=True)):
        if same[k]:
            exprs.append(f"${k + 1}::{typ}")
        else:
            arrays.append(f"${k + 1}::{typ}[]")
            names.append(f"v_{col}")
            exprs.append(f"v_{col}")
    status, handler, reason = exprs[2], exprs[1], exprs[14]
    held = (
        f"{status} = 'queued' AND EXISTS (SELECT 1 FROM paused_handlers p"
        f" WHERE p.name = substring({handler} from position('/' in {handler}) + 1))"
    )
    exprs[2] = f"CASE WHEN {held} THEN 'paused' ELSE {status} END"
    exprs[14] = f"CASE WHEN {held} THEN '{REASON_HANDLER}' ELSE {reason} END"
    n = len(q.INSERT_COLS) + 1
    return (
        f"WITH c AS (INSERT INTO jobs ({q.INSERT_LIST}) SELECT {', '.join(exprs)}"
        f" FROM unnest({', '.join(arrays)}) WITH ORDINALITY AS u({', '.join(names)}, ord) ORDER BY ord"
        f" RETURNING seq, id, status = 'paused' AND pause_reason = '{REASON_HANDLER}' AS held),"
        f" n AS (SELECT pg_notify('{CHANNEL}', '{K_CHANGE}|' || string_agg(id, ',') || '|' || ${n})"
        f" FROM (SELECT id, (row_number() OVER () - 1) / {NOTIFY_CHUNK} AS g FROM c) s GROUP BY g)"
        " SELECT (SELECT array_agg(seq ORDER BY seq) FROM c),"
        " (SELECT array_agg(id) FROM c WHERE held), (SELECT count(*) FROM n)"
    )


@contextlib.contextmanager
def _duplicate_job() -> Iterator[None]:
    """A unique violation as DuplicateJob naming the id (the server's detail names the key:
    `Key (id)=(x) already exists.`)."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        detail = exc.detail or ""
        dup = detail.partition("=(")[2].rpartition(")")[0] if "=(" in detail else ""
        raise DuplicateJob(dup) from None


def _notifying(stmt: str, kind: str, node_arg: str) -> str:
    """Wrap a data-modifying statement that RETURNs `id` so it also NOTIFYs the changed ids
    (chunked), in the same statement: one round trip, delivered at commit."""
    return (
        f"WITH c AS ({stmt}),"
        f" n AS (SELECT pg_notify('{CHANNEL}', '{kind}|' || string_agg(id, ',') || '|' || {node_arg})"
        f" FROM (SELECT id, (row_number() OVER () - 1) / {NOTIFY_CHUNK} AS g FROM c) s GROUP BY g)"
        " SELECT c.* FROM c WHERE (SELECT count(*) FROM n) >= 0"
    )


# $1 now, $2 node, $3 lease seconds, $4 handlers, $5 limit (run under CLAIM_PLAN)
CLAIM_SQL = _notifying(
    "UPDATE jobs SET status='running', attempts=attempts+1, run_attempts=run_attempts+1,"
    f" started_at=$1, updated_at=$1, node=$2, completed_at=0, lease_expires={DB_NOW}+$3,"
    " cancel_requested=false"
    " WHERE seq IN (SELECT seq FROM jobs WHERE status='queued' AND run_at<=$1"
    f" AND handler = ANY({CLAIMABLE_HANDLERS})"
    " ORDER BY priority DESC, seq LIMIT $5 FOR UPDATE SKIP LOCKED)"
    f" RETURNING {FULL_SELECT}",
    K_CHANGE,
    "$2",
)

# One statement: the job rows (fenced: only the node holding the claim for this attempt may end
# it), their attempt records, and the notification; its arguments from _finish_args (run under
# FINISH_PLAN)
_FINISH_UPDATE = (
    "UPDATE jobs AS j SET status=u.status, result=CASE WHEN u.wr THEN u.result ELSE j.result END,"
    " error=u.error, progress_current=u.pc, progress_total=u.pt, cost_actual=u.cost,"
    " completed_at=u.completed_at, updated_at=u.updated_at, run_at=u.run_at, plugin=u.plugin,"
    " plugin_version=u.pv, run_attempts=u.ra, lease_expires=0, cancel_requested=false,"
    " interruptions=u.intr, crashes=u.crashes, pause_reason=u.pr, budget_override=false,"
    " started_at=u.sa"
    " FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bool[], $5::text[], $6::int[],"
    " $7::int[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::text[],"
    " $13::text[], $14::int[], $15::int[], $24::int[], $25::int[], $26::text[], $17::float8[])"
    " AS u(seq, status, result, wr, error, pc, pt, cost, completed_at, updated_at, run_at,"
    " plugin, pv, ra, attempts, intr, crashes, pr, sa)"
    # the rows are found by primary key (see FINISH_PLAN): `|| ''` keeps the planner off the
    # running-row indexes, which it prefers when statistics are missing (a young table) or
    # say few jobs run, then re-scanning the unnest arrays once per running row
    " WHERE j.seq = ANY($1::bigint[]) AND j.seq=u.seq AND j.attempts=u.attempts"
    " AND j.status || '' = 'running' AND j.node || '' = $16"
    " RETURNING j.seq, j.id"
)
FINISH_SQL = (
    f"WITH c AS ({_FINISH_UPDATE}),"
    " a AS (INSERT INTO attempts (job_seq, number, started_at, ended_at, outcome, error, plugin,"
    " plugin_version, node) SELECT t.* FROM unnest($1::bigint[], $15::int[], $17::float8[],"
    " $18::float8[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[])"
    " AS t(seq, number, started_at, ended_at, outcome, error, plugin, pv, node)"
    # a completed attempt is kept in its job row only (sql.stores_attempt)
    f" WHERE t.seq IN (SELECT seq FROM c) AND t.outcome <> '{OUTCOME_COMPLETED}'"
    " ON CONFLICT (job_seq, number) DO UPDATE SET started_at=excluded.started_at,"
    " ended_at=excluded.ended_at, outcome=excluded.outcome, error=excluded.error,"
    " plugin=excluded.plugin, plugin_version=excluded.plugin_version, node=excluded.node),"
    f" n AS (SELECT pg_notify('{CHANNEL}', '{K_CHANGE}|' || string_agg(id, ',') || '|' || $16)"
    f" FROM (SELECT id, (row_number() OVER () - 1) / {NOTIFY_CHUNK} AS g FROM c) s GROUP BY g)"
    " SELECT c.seq FROM c WHERE (SELECT count(*) FROM n) >= 0"
)


def requeue_sql(own: bool) -> str:
    """`_requeue`'s statement: $1 now, $2 this node (with `own`). Running rows are found through
    jobs_running_node (the only index on them), read whole when reaping by expiry."""
    cond = f"lease_expires < {DB_NOW}" + (" OR node = $2" if own else "")
    # not charged; a job running at CRASH_LIMIT node deaths in a row fails as `crashed`
    dead = f"(NOT cancel_requested AND crashes + 1 >= {CRASH_LIMIT:d})"
    return (
        "UPDATE jobs SET"
        f" status = CASE WHEN cancel_requested THEN 'cancelled' WHEN {dead} THEN 'failed' ELSE 'queued' END,"
        f" completed_at = CASE WHEN cancel_requested OR {dead} THEN $1 ELSE 0 END,"
        f" error = CASE WHEN cancel_requested THEN {CANCEL_REASON}"
        f" WHEN {dead} THEN {_sql_text(SERVER_CRASHED_ERROR)}"
        f" ELSE {_sql_text(SERVER_INTERRUPTED_ERROR)} END,"
        f" run_attempts = CASE WHEN {dead} THEN run_attempts ELSE GREATEST(run_attempts-1, 0) END,"
        f" interruptions = CASE WHEN {dead} THEN interruptions ELSE interruptions + 1 END,"
        " crashes = CASE WHEN cancel_requested THEN crashes ELSE crashes + 1 END,"
        " run_at=$1, updated_at=$1, lease_expires=0, cancel_requested=false"
        f" WHERE seq IN (SELECT seq FROM jobs WHERE status='running' AND ({cond}) FOR UPDATE SKIP LOCKED)"
        f" RETURNING {LIST_SELECT}"
    )


# $1 statuses, $2 finished before, $3 limit, $4 only these handlers (or NULL), $5 not these
PRUNE_SQL = (
    "WITH d AS (DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE status = ANY($1::text[])"
    f" AND {q.FINISHED_TERM} AND completed_at < $2 AND ($4::text[] IS NULL OR handler = ANY($4::text[]))"
    " AND NOT (handler = ANY($5::text[])) LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING seq),"
    " a AS (DELETE FROM attempts WHERE job_seq IN (SELECT seq FROM d)),"
    " l AS (DELETE FROM job_logs WHERE job_seq IN (SELECT seq FROM d))"
    " SELECT count(*) FROM d"
)


@contextlib.asynccontextmanager
async def _planned(conn: asyncpg.Connection, setting: str) -> AsyncIterator[None]:
    """A transaction run under `setting` (a SET LOCAL): BEGIN and the setting go in one round
    trip (measured: 0.108-0.110 vs 0.115-0.134 CPU s per 1,000 drained jobs with a round trip each)."""
    await conn.execute(f"BEGIN; {setting}")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # a broken connection: the pool discards it
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")


def _finish_args(items: Sequence[Finish], node: str) -> list[Any]:
    js = [it.job for it in items]
    ats = [it.attempt for it in items]
    return [
        [j.seq for j in js],
        [j.status for j in js],
        [bytes(j.result) for j in js],
        [it.write_result for it in items],
        [j.error for j in js],
        [j.progress_current for j in js],
        [j.progress_total for j in js],
        [j.cost_actual for j in js],
        [j.completed_at for j in js],
        [j.updated_at for j in js],
        [j.run_at for j in js],
        [j.plugin for j in js],
        [j.plugin_version for j in js],
        [j.run_attempts for j in js],
        [a.number for a in ats],
        node,
        [a.started_at for a in ats],
        [a.ended_at for a in ats],
        [a.outcome for a in ats],
        [a.error for a in ats],
        [a.plugin for a in ats],
        [a.plugin_version for a in ats],
        [a.node for a in ats],
        [j.interruptions for j in js],
        [j.crashes for j in js],
        [j.pause_reason for j in js],
    ]


class PostgresStore(Store):
    dialect = D

    def __init__(
        self,
        url: str,
        *,
        node: str = "",
        lease_secs: float | None = None,
        min_pool: int = 2,
        max_pool: int = 10,
    ) -> None:
        self._dsn, opts = split_url(url)
        self.url = q.redact(url)
        self.node = node or opts.get("node") or default_node()
        try:
            lease = (
                lease_secs if lease_secs is not None else float(opts.get("lease_secs", DEFAULT_LEASE_SECS))
            )
        except ValueError:
            raise ValidationError(f"pulse_lease_secs must be a number of seconds in {self.url}") from None
        if lease <= 0:
            raise ValidationError(f"pulse_lease_secs must be positive in {self.url}")
        self.lease_secs = lease
        self._min_pool, self._max_pool = min_pool, max_pool
        self._pool: asyncpg.Pool | None = None
        self._listen_conn: asyncpg.Connection | None = None
        self._on_event: OnEvent | None = None
        self._heard: dict[str, None] = {}  # ids notified by others, not yet delivered (ordered set)
        self._heard_wake = asyncio.Event()
        self._listen_task: asyncio.Task[None] | None = None
        self._cancel_pending: set[str] = set()
        self._finishing: list[tuple[list[Finish], asyncio.Future[None]]] = []
        self._finish_task: asyncio.Task[None] | None = None
        self._closed = False
        # test hook: seconds between fetching other nodes' rows and delivering them, to make
        # the delivered snapshots stale the way a busy node does (0 in production)
        self.deliver_delay = 0.0

    # ------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=self._min_pool, max_size=self._max_pool, command_timeout=60
            )
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"cannot connect to PostgreSQL at {self.url}: {exc}") from None
        except asyncpg.PostgresError as exc:
            raise Unavailable(f"PostgreSQL at {self.url} refused the connection: {exc}") from None
        try:
            await self._migrate()
        except BaseException:
            await self._pool.close()
            raise

    async def _migrate(self) -> None:
        assert self._pool is not None
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS pulse_meta (key text PRIMARY KEY, value text NOT NULL)"
            )
            raw = await conn.fetchval("SELECT value FROM pulse_meta WHERE key = 'schema_version'")
            version = int(raw or 0)
            if version > SCHEMA_VERSION:
                raise Unavailable(
                    f"the database at {self.url} has schema version {version}, newer than this "
                    f"pulse-tui understands ({SCHEMA_VERSION}); upgrade pulse-tui"
                )
            for v in range(version, SCHEMA_VERSION):
                await conn.execute(MIGRATIONS[v])
                log.info("migrated %s to schema version %d", self.url, v + 1)
            if version != SCHEMA_VERSION:
                await conn.execute(
                    "INSERT INTO pulse_meta (key, value) VALUES ('schema_version', $1)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    str(SCHEMA_VERSION),
                )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._finish_task is not None:
            await asyncio.gather(self._finish_task, return_exceptions=True)  # pending finishes land
        if self._listen_task is not None:
            self._listen_task.cancel()
            await asyncio.gather(self._listen_task, return_exceptions=True)
        if self._listen_conn is not None:
            await self._listen_conn.close()
        if self._pool is not None:
            await self._pool.close()

    # ------------------------------------------------------------ plumbing
    def _acquire(self) -> Any:
        if self._closed or self._pool is None:
            raise Unavailable("store is closed")
        return self._pool.acquire()

    async def _notify(self, conn: asyncpg.Connection, kind: str, ids: Sequence[str]) -> None:
        """Queue notifications on `conn` (sent when its transaction commits)."""
        for i in range(0, len(ids), NOTIFY_CHUNK):
            payload = f"{kind}|{','.join(ids[i : i + NOTIFY_CHUNK])}|{self.node}"
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

    # ------------------------------------------------------------ writes
    async def insert(self, jobs: Sequence[Job]) -> list[Job]:
        if not jobs:
            return []
        async with self._acquire() as conn:
            with _duplicate_job():
                await self._insert_on(conn, jobs)
        return list(jobs)

    async def insert_stream(self, chunks: Iterable[Sequence[Job]]) -> None:
        """Pipelined: the next chunk is made (by the iterator: the engine's validation) while
        the statement of the one before runs in PostgreSQL; all in one transaction."""
        async with self._acquire() as conn:
            with _duplicate_job():
                async with conn.transaction():
                    pending: asyncio.Future[None] | None = None
                    try:
                        for chunk in chunks:
                            if pending is not None:
                                await pending
                            pending = asyncio.ensure_future(self._insert_on(conn, chunk))
                            await asyncio.sleep(0)  # the task sends its statement before the next chunk
                        if pending is not None:
                            await pending
                    except BaseException:
                        if pending is not None and not pending.done():
                            with contextlib.suppress(BaseException):
                                await pending  # the connection is free before the rollback
                        raise

    async def _insert_on(self, conn: asyncpg.Connection, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        # Columnar: a column whose value is the same for every job of the call (most are, in a
        # bulk enqueue) goes as one value, the others as typed arrays; fewer values to encode
        # here and to unnest there.
        columns = _insert_columns(jobs)
        same = (False, *(col.count(col[0]) == len(col) for col in columns[1:]))  # ids: an array
        args = [col[0] if one else col for col, one in zip(columns, same, strict=True)]
        row = await conn.fetchrow(_insert_sql(same), *args, self.node)
        assert row is not None
        seqs, held = row[0], row[1]
        if len(seqs) != len(jobs):
            raise RuntimeError(f"inserted {len(seqs)} of {len(jobs)} jobs")
        for j, seq in zip(jobs, seqs, strict=True):
            j.seq = seq
        if held:
            held_ids = set(held)
            for j in jobs:
                if j.id in held_ids:
                    j.status, j.pause_reason = PAUSED, REASON_HANDLER

    async def claim(self, limit: int, handlers: Collection[str], now: float) -> list[Job]:
        names = list(handlers)
        if not names or limit <= 0:
            return []
        async with self._acquire() as conn, _planned(conn, CLAIM_PLAN):
            rows = await conn.fetch(CLAIM_SQL, now, self.node, self.lease_secs, names, limit)
        jobs = [q.job_row(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.seq))
        return jobs

    async def finish(self, items: Sequence[Finish]) -> None:
        """Group commit: finishes that arrive while one is being written are written together by
        the next round (one statement for all of them), like the SQLite store's writer."""
        if not items:
            return
        if self._closed:
            raise Unavailable("store is closed")
        done = asyncio.get_running_loop().create_future()
        self._finishing.append((list(items), done))
        if self._finish_task is None or self._finish_task.done():
            self._finish_task = asyncio.create_task(self._finish_rounds(), name="pulse-pg-finish")
        await asyncio.shield(done)  # a cancelled caller does not cancel the others' write

    async def _finish_rounds(self) -> None:
        while self._finishing:
            batch, self._finishing = self._finishing, []
            try:
                await self._finish_now([it for items, _ in batch for it in items])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def _finish_now(self, items: Sequence[Finish]) -> None:
        args = _finish_args(items, self.node)
        async with self._acquire() as conn, _planned(conn, FINISH_PLAN):
            kept = {r["seq"] for r in await conn.fetch(FINISH_SQL, *args)}
            logs = [
                (it.job.seq, e.attempt, e.timestamp, e.level, e.message, e.stage, e.metadata)
                for it in items
                if it.logs and it.job.seq in kept
                for e in it.logs
            ]
            if logs:
                await conn.copy_records_to_table(
                    "job_logs",
                    records=logs,
                    columns=["job_seq", "attempt", "timestamp", "level", "message", "stage", "metadata"],
                )
        lost = [it.job.id for it in items if it.job.seq not in kept]
        if lost:
            log.warning(
                "node %s lost the lease of %d job(s) before they ended (another node re-queued them): %s",
                self.node,
                len(lost),
                ", ".join(lost[:10]),
            )

    async def set_progress(self, updates: Sequence[tuple[str, int, int, float | None, float]]) -> None:
        if not updates:
            return
        async with self._acquire() as conn, conn.transaction():
            await conn.executemany(
                "UPDATE jobs SET progress_current=$2, progress_total=$3,"
                " cost_actual=COALESCE($4, cost_actual), updated_at=$5"
                " WHERE id=$1 AND status='running' AND node=$6",
                [(jid, c, t, cost, ts, self.node) for jid, c, t, cost, ts in updates],
            )
            await self._notify(conn, K_CHANGE, [u[0] for u in updates])

    async def transition(
        self, job_id: str, allowed_from: Collection[str], changes: dict[str, Any]
    ) -> Job | None:
        bad = set(changes) - WRITABLE_COLS
        if bad:
            raise ValueError(f"transition cannot set {sorted(bad)}")
        a = q.Params(D)
        sets = ", ".join(f"{c}={a(v)}" for c, v in changes.items())
        sql = (
            f"UPDATE jobs SET {sets} WHERE id={a(job_id)} AND status = ANY({a(list(allowed_from))}::text[])"
            f" RETURNING {FULL_SELECT}"
        )
        async with self._acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql, *a.values)
            if row is not None:
                await self._notify(conn, K_CHANGE, [job_id])
                return q.job_row(row)
            if await conn.fetchval("SELECT 1 FROM jobs WHERE id=$1", job_id) is None:
                raise NotFound(f"no job with id {job_id!r}")
            return None

    async def cancel_children(
        self, parents: Sequence[tuple[str, str]], now: float
    ) -> tuple[list[Job], list[str]]:
        if not parents:
            return [], []
        ids = [p for p, _ in parents]
        reasons = [parent_ended_reason(p, st) for p, st in parents]
        sql = _notifying(
            "UPDATE jobs AS j SET status='cancelled', error=u.reason, completed_at=$3, updated_at=$3"
            " FROM unnest($1::text[], $2::text[]) AS u(parent, reason)"
            " WHERE j.parent_job_id=u.parent AND j.parent_job_id <> '' AND j.status IN ('queued', 'paused')"
            f" RETURNING {', '.join('j.' + c for c in JOB_COLS)}",
            K_CHANGE,
            "$4",
        )
        async with self._acquire() as conn, conn.transaction():
            rows = await conn.fetch(sql, ids, reasons, now, self.node)
            running = await conn.fetch(
                "SELECT id FROM jobs WHERE parent_job_id = ANY($1::text[]) AND parent_job_id <> ''"
                " AND status='running'",
                ids,
            )
        return [q.job_row(r) for r in rows], [r["id"] for r in running]

    async def orphaned_children(self) -> list[tuple[str, str]]:
        async with self._acquire() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT p.id, p.status FROM jobs AS c JOIN jobs AS p ON p.id = c.parent_job_id"
                " WHERE c.parent_job_id <> '' AND p.status IN ('failed', 'cancelled')"
                # untouched since the parent ended (an operator's retry of a child, or a child added
                # later, is left alone), or already running then
                " AND ((c.status IN ('queued', 'paused') AND c.updated_at <= p.completed_at)"
                "  OR (c.status = 'running' AND c.started_at <= p.completed_at))"
            )
        return [(r["id"], r["status"]) for r in rows]

    async def _requeue(self, now: float, own: bool) -> list[Job]:
        """Re-queue running jobs whose lease expired (and, with `own`, every job of this node).
        A job an operator asked to cancel is cancelled instead. Attempts recorded."""
        sql = requeue_sql(own)
        async with self._acquire() as conn, conn.transaction():
            rows = await conn.fetch(sql, now, self.node) if own else await conn.fetch(sql, now)
            jobs = [q.job_row(r) for r in rows]
            if jobs:
                await conn.executemany(
                    "INSERT INTO attempts (job_seq, number, started_at, ended_at, outcome, error, plugin, node)"
                    " VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (job_seq, number) DO UPDATE SET"
                    " ended_at=excluded.ended_at, outcome=excluded.outcome, error=excluded.error",
                    _interrupted_attempts(jobs, now),
                )
                await self._notify(conn, K_REAP, [j.id for j in jobs])
        return jobs

    async def recover(self, now: float) -> list[Job]:
        return await self._requeue(now, own=True)

    async def prune(
        self,
        finished_before: float,
        statuses: Collection[str],
        limit: int,
        *,
        handlers: Collection[str] | None = None,
        exclude_handlers: Collection[str] = (),
    ) -> int:
        only = None if handlers is None else list(handlers)
        async with self._acquire() as conn:
            return int(
                await conn.fetchval(
                    PRUNE_SQL, list(statuses), finished_before, limit, only, list(exclude_handlers)
                )
            )

    async def delete(self, ids: Sequence[str], statuses: Collection[str]) -> list[str]:
        sql = (
            "WITH d AS (DELETE FROM jobs WHERE id = ANY($1::text[]) AND status = ANY($2::text[])"
            " RETURNING seq, id),"
            " a AS (DELETE FROM attempts WHERE job_seq IN (SELECT seq FROM d)),"
            " l AS (DELETE FROM job_logs WHERE job_seq IN (SELECT seq FROM d))"
            " SELECT id FROM d"
        )
        async with self._acquire() as conn:
            return [r["id"] for r in await conn.fetch(sql, list(dict.fromkeys(ids)), list(statuses))]

    # ------------------------------------------------------------ paused handlers
    async def hold_handler(self, name: str, reason: str, now: float) -> list[Job]:
        sql = _notifying(
            f"UPDATE jobs SET status='paused', pause_reason=$2, updated_at=$3"
            f" WHERE status='queued' AND {OF_HANDLER}$1 RETURNING {LIST_SELECT}",
            K_CHANGE,
            "$4",
        )
        async with self._acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO paused_handlers (name, reason, paused_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (name) DO NOTHING",
                name,
                reason,
                now,
            )
            rows = await conn.fetch(sql, name, REASON_HANDLER, now, self.node)
        return sorted((q.job_row(r) for r in rows), key=lambda j: j.seq)

    async def release_handler(self, name: str, now: float) -> list[Job]:
        sql = _notifying(
            f"UPDATE jobs SET status='queued', pause_reason='', updated_at=$3"
            f" WHERE status='paused' AND pause_reason=$2 AND {OF_HANDLER}$1 RETURNING {LIST_SELECT}",
            K_CHANGE,
            "$4",
        )
        async with self._acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM paused_handlers WHERE name=$1", name)
            rows = await conn.fetch(sql, name, REASON_HANDLER, now, self.node)
        return sorted((q.job_row(r) for r in rows), key=lambda j: j.seq)

    async def _held(self, query: q.Query | None) -> list[Job]:  # see Store.hold_queued
        if query is None:
            return []
        sql, args = query
        sql = _notifying(sql, K_CHANGE, f"${len(args) + 1}")
        async with self._acquire() as conn:
            rows = await conn.fetch(sql, *args, self.node)
        return sorted((q.job_row(r) for r in rows), key=lambda j: j.seq)

    async def spend(self, day_start: float, month_start: float) -> list[tuple[str, float, float, int]]:
        async with self._acquire() as conn:
            return q.spend_rows(await _fetch(conn, q.spend(D, day_start, month_start)))

    async def paused_handlers(self) -> dict[str, tuple[str, float]]:
        async with self._acquire() as conn:
            return q.paused_rows(await conn.fetch(q.PAUSED_HANDLERS))

    # ------------------------------------------------------------ multi-node
    async def heartbeat(self, now: float, running: Sequence[str] | None = None) -> None:
        """Extend the leases of the jobs this node really runs (`running`; all of this node's when
        None), note cancel requests for them, and re-queue running jobs of any node whose lease
        expired (announced to every node, this one included). A job whose end this node failed to
        record is not in `running`, so its lease lapses and another node (or this one) re-queues it."""
        async with self._acquire() as conn:
            if running is None:
                rows = await conn.fetch(
                    f"UPDATE jobs SET lease_expires={DB_NOW}+$2 WHERE status='running' AND node=$1"
                    " RETURNING id, cancel_requested",
                    self.node,
                    self.lease_secs,
                )
            else:
                rows = await conn.fetch(
                    f"UPDATE jobs SET lease_expires={DB_NOW}+$2 WHERE status='running' AND node=$1"
                    " AND id = ANY($3::text[]) RETURNING id, cancel_requested",
                    self.node,
                    self.lease_secs,
                    list(running),
                )
        self._cancel_pending.update(r["id"] for r in rows if r["cancel_requested"])
        reaped = await self._requeue(now, own=False)
        if reaped:
            log.warning(
                "re-queued %d job(s) whose node stopped renewing its lease (%s)",
                len(reaped),
                ", ".join(sorted({j.node for j in reaped})),
            )

    async def request_cancel(self, job_id: str) -> str | None:
        """Ask the node running `job_id` to cancel it. Returns that node, or None if the job is
        not running (any more)."""
        async with self._acquire() as conn, conn.transaction():
            node: str | None = await conn.fetchval(
                "UPDATE jobs SET cancel_requested=true WHERE id=$1 AND status='running' RETURNING node",
                job_id,
            )
            if node is not None:
                await self._notify(conn, K_CANCEL, [job_id])
        return node

    async def cancel_requests(self) -> list[str]:
        out, self._cancel_pending = list(self._cancel_pending), set()
        return out

    async def notify(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        async with self._acquire() as conn, conn.transaction():
            await self._notify(conn, K_CHANGE, list(job_ids))

    async def listen(self, on_event: OnEvent) -> None:
        """Deliver other nodes' job changes (and every node's re-queued expired leases) to
        `on_event(jobs)` — one task fetches the rows, coalescing bursts of notifications."""
        if self._listen_task is not None:
            raise RuntimeError("listen() was already called")
        self._on_event = on_event
        await self._connect_listener()
        self._listen_task = asyncio.create_task(self._deliver_loop(), name="pulse-pg-listen")

    async def _connect_listener(self) -> None:
        try:
            conn = await asyncpg.connect(self._dsn)
            await conn.add_listener(CHANNEL, self._heard_notification)
        except CONNECTION_ERRORS as exc:
            raise Unavailable(f"cannot LISTEN on {self.url}: {exc}") from None
        conn.add_termination_listener(self._listener_lost)
        self._listen_conn = conn

    def _heard_notification(self, conn: object, pid: int, channel: str, payload: object) -> None:
        kind, ids, origin = str(payload).split("|", 2)  # a str (the stubs promise only an object)
        if origin == self.node and kind != K_REAP:
            return
        if kind in (K_SCHEDULE, K_SCHEDULE_RUN):
            if self.on_schedule_change is not None:
                try:
                    self.on_schedule_change(ids.split(","), kind == K_SCHEDULE)
                except Exception:
                    log.exception("on_schedule_change failed")
            return
        if kind == K_CANCEL:
            self._cancel_pending.update(ids.split(","))
        self._heard.update(dict.fromkeys(ids.split(",")))
        self._heard_wake.set()

    def _listener_lost(self, conn: object) -> None:
        if not self._closed:
            log.warning("lost the LISTEN connection to %s; reconnecting", self.url)
            self._listen_conn = None
            self._heard_wake.set()

    async def _deliver_loop(self) -> None:
        delay = 0.5
        while True:
            await self._heard_wake.wait()
            self._heard_wake.clear()
            if self._listen_conn is None:
                try:
                    await self._connect_listener()
                    delay = 0.5
                    log.info("LISTEN on %s restored", self.url)
                except Unavailable as exc:
                    log.warning("%s; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)  # reconnect backoff
                    delay = min(delay * 2, 30.0)
                    self._heard_wake.set()
                    continue
            ids, self._heard = list(self._heard), {}
            if not ids:
                continue
            try:
                async with self._acquire() as conn:
                    rows = await conn.fetch(
                        f"SELECT {LIST_SELECT} FROM jobs WHERE id = ANY($1::text[]) ORDER BY seq", ids
                    )
                if self.deliver_delay:
                    await asyncio.sleep(self.deliver_delay)
                assert self._on_event is not None
                await self._on_event([q.job_row(r) for r in rows])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivering %d job change(s) from other nodes failed", len(ids))

    # ------------------------------------------------------------ reads
    async def get(self, job_id: str, *, with_payload: bool = True) -> Job | None:
        async with self._acquire() as conn:
            row = await _fetchrow(conn, q.get_job(D, job_id, with_payload))
        return q.job_row(row) if row else None

    async def detail(self, job_id: str) -> JobDetail | None:
        async with self._acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            row = await _fetchrow(conn, q.get_job(D, job_id))
            if row is None:
                return None
            job = q.job_row(row)
            attempts = q.job_attempts_of(job, await _fetch(conn, q.job_attempts(D, job)))
            logs = [q.log_row(job, r) for r in await _fetch(conn, q.job_logs(D, job))]
        return JobDetail(job, attempts, logs)

    async def list(
        self,
        flt: JobFilter,
        limit: int,
        after_seq: int | None,
        oldest_first: bool,
        offset: int,
        *,
        sort_by: str = "",
    ) -> list[Job]:
        query = q.list_jobs(D, flt, limit, after_seq, oldest_first, offset, sort_by)
        async with self._acquire() as conn:
            rows = await _fetch(conn, query)
        return [q.job_row(r) for r in rows]

    async def count(self, flt: JobFilter, cap: int) -> dict[str, int]:
        # A read whose caller is cancelled (a console typing a filter on) stops on the server too:
        # asyncpg sends PostgreSQL a cancel request for the running query (as SQLite's progress
        # handler interrupts it; tests/test_store_defences.py checks both).
        sql, args = q.count_jobs(D, flt, cap)
        async with self._acquire() as conn:
            return q.counts_by_status(await conn.fetchrow(sql, *args))

    async def handler_counts(self, statuses: Collection[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        async with self._acquire() as conn:
            rows = await conn.fetch(
                "SELECT handler, status, count(*) AS n FROM jobs WHERE status = ANY($1::text[])"
                " GROUP BY handler, status",
                list(statuses),
            )
        for r in rows:
            out.setdefault(r["handler"], {})[r["status"]] = int(r["n"])
        return out

    async def select_ids(self, flt: JobFilter, limit: int) -> builtins.list[str]:
        async with self._acquire() as conn:
            rows = await _fetch(conn, q.select_ids(D, flt, limit))
        return [r["id"] for r in rows]

    async def next_due(self, handlers: Collection[str], now: float) -> float | None:
        names = list(handlers)
        if not names:
            return None
        sql, args = q.next_due(D, names, now)
        async with self._acquire() as conn:
            due: float | None = await conn.fetchval(sql, *args)
        return due

    # ------------------------------------------------------------ metrics
    async def add_metrics(self, node: str, rows: Sequence[tuple[int, int, str, dict[str, Any]]]) -> None:
        """Only this node writes rows with its name, so read-merge-write in one transaction is safe:
        one query reads the rows to merge with, one pipelined executemany writes them all."""
        from pulse_tui.pulse.metrics import Bucket

        if not rows:
            return
        async with self._acquire() as conn, conn.transaction():
            old = await conn.fetch(
                "SELECT m.step, m.ts, m.handler, m.data FROM metric_buckets m"
                " JOIN unnest($2::integer[], $3::bigint[], $4::text[]) AS k(step, ts, handler)"
                " ON m.step = k.step AND m.ts = k.ts AND m.handler = k.handler"
                " WHERE m.node = $1 FOR UPDATE OF m",
                node,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
            )
            stored = {(r["step"], r["ts"], r["handler"]): r["data"] for r in old}
            values = []
            for step, ts, handler, data in rows:
                b = Bucket.from_json(data)
                prev = stored.get((step, ts, handler))
                if prev is not None:
                    b.add_json(json.loads(prev))
                values.append((node, step, ts, handler, json.dumps(b.to_json(), separators=(",", ":"))))
            await conn.executemany(
                "INSERT INTO metric_buckets (node, step, ts, handler, data) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (step, ts, handler, node) DO UPDATE SET data = excluded.data",
                values,
            )

    async def load_metrics(
        self, step: int, since: int, handler: str | None
    ) -> builtins.list[tuple[int, str, dict[str, Any]]]:
        async with self._acquire() as conn:
            return q.metric_rows(await _fetch(conn, q.load_metrics(D, step, since, handler)))

    async def prune_metrics(self, minute_before: float, hour_before: float) -> int:
        async with self._acquire() as conn:
            a = await conn.execute("DELETE FROM metric_buckets WHERE step=60 AND ts<$1", int(minute_before))
            b = await conn.execute("DELETE FROM metric_buckets WHERE step=3600 AND ts<$1", int(hour_before))
        return int(a.split()[-1]) + int(b.split()[-1])

    async def queue_gauges(self, now: float) -> dict[str, dict[str, float]]:
        async with self._acquire() as conn:
            return q.gauges(await _fetch(conn, q.queue_gauges(D, now)))

    # ------------------------------------------------------------ schedules
    async def _notify_schedule(
        self, conn: asyncpg.Connection, schedule_id: str, kind: str = K_SCHEDULE
    ) -> None:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{kind}|{schedule_id}|{self.node}")

    async def insert_schedule(self, s: Schedule) -> None:
        values = [bytes(s.payload) if c == "payload" else getattr(s, c) for c in SCHEDULE_COLS]
        ph = ", ".join(f"${i + 1}" for i in range(len(values)))
        async with self._acquire() as conn, conn.transaction():
            try:
                await conn.execute(f"INSERT INTO schedules ({SCHEDULE_SELECT}) VALUES ({ph})", *values)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name == "schedules_declared":
                    raise AlreadyDeclared(s.owner, s.handler) from None
                raise DuplicateSchedule(s.id) from None
            await self._notify_schedule(conn, s.id)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        async with self._acquire() as conn:
            row = await _fetchrow(conn, q.get_schedule(D, schedule_id))
        return q.schedule_row(row) if row else None

    async def list_schedules(self, flt: ScheduleFilter, limit: int) -> builtins.list[Schedule]:
        async with self._acquire() as conn:
            rows = await _fetch(conn, q.list_schedules(D, flt, limit))
        return [q.schedule_row(r) for r in rows]

    async def update_schedule(
        self, schedule_id: str, allowed_states: Collection[str], changes: dict[str, Any]
    ) -> Schedule | None:
        cols = schedule_changes(changes)
        a = q.Params(D)
        sets = ", ".join(f"{c}={a(changes[c])}" for c in cols)
        sql = (
            f"UPDATE schedules SET {sets} WHERE id={a(schedule_id)}"
            f" AND state = ANY({a(list(allowed_states))}::text[]) RETURNING {SCHEDULE_SELECT}"
        )
        async with self._acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql, *a.values)
            if row is None:
                if await conn.fetchval("SELECT 1 FROM schedules WHERE id=$1", schedule_id) is None:
                    raise NotFound(f"no schedule with id {schedule_id!r}")
                return None
            await self._notify_schedule(conn, schedule_id)
        return q.schedule_row(row)

    async def due_schedules(self, now: float, limit: int) -> builtins.list[Schedule]:
        async with self._acquire() as conn:
            rows = await _fetch(conn, q.due_schedules(D, now, limit))
        return [q.schedule_row(r) for r in rows]

    async def next_schedule_at(self) -> float | None:
        async with self._acquire() as conn:
            at: float | None = await conn.fetchval(q.NEXT_SCHEDULE_AT)
        return at

    async def fire_schedule(
        self,
        schedule_id: str,
        expected_next: float | None,
        changes: dict[str, Any],
        job: Job | None,
        ex: Execution,
    ) -> Schedule | None:
        cols = schedule_changes(changes)
        a = q.Params(D)
        sets = ", ".join(f"{c}={a(changes[c])}" for c in cols)
        inc = a(0 if ex.status == EX_SKIPPED else 1)
        if expected_next is None:
            cond = f"state != {a(DELETED)}"
        else:
            cond = f"state = 'active' AND next_run_at = {a(expected_next)}"
        sql = (
            f"UPDATE schedules SET {sets}, run_count=run_count+{inc}::int"
            f" WHERE id={a(schedule_id)} AND {cond} RETURNING {SCHEDULE_SELECT}"
        )
        async with self._acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql, *a.values)
            if row is None:
                return None
            if job is not None:
                job.seq = await conn.fetchval(q.insert_job(D) + " RETURNING seq", *q.insert_values(job))
                await self._notify(conn, K_CHANGE, [job.id])
            ph = ", ".join(f"${i + 1}" for i in range(len(EXECUTION_COLS)))
            await conn.execute(
                f"INSERT INTO schedule_executions ({', '.join(EXECUTION_COLS)}) VALUES ({ph})",
                *[getattr(ex, c) for c in EXECUTION_COLS],
            )
            await self._notify_schedule(conn, schedule_id, K_SCHEDULE_RUN)
        return q.schedule_row(row)

    async def end_execution(
        self, job_id: str, status: str, completed_at: float, error: str
    ) -> Schedule | None:
        async with self._acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE schedule_executions SET status=$1, completed_at=$2,"
                " duration_ms=GREATEST(0, (($2 - started_at) * 1000)::bigint), error=$3"
                " WHERE job_id=$4 RETURNING schedule_id, id",
                status,
                completed_at,
                error,
                job_id,
            )
            if row is None:
                return None
            srow = await conn.fetchrow(
                f"UPDATE schedules SET last_status=$1 WHERE id=$2 AND last_execution_id=$3"
                f" RETURNING {SCHEDULE_SELECT}",
                status,
                row["schedule_id"],
                row["id"],
            )
            if srow is None:
                srow = await _fetchrow(conn, q.get_schedule(D, row["schedule_id"]))
            await self._notify_schedule(conn, row["schedule_id"], K_SCHEDULE_RUN)
        return q.schedule_row(srow) if srow else None

    async def prune_executions(self, finished_before: float, limit: int) -> int:
        async with self._acquire() as conn:
            status = await conn.execute(
                "DELETE FROM schedule_executions WHERE seq IN (SELECT seq FROM schedule_executions"
                " WHERE status != 'running' AND completed_at < $1 ORDER BY seq LIMIT $2)",
                finished_before,
                limit,
            )
        return int(status.split()[-1])

    async def list_executions(
        self, schedule_id: str, limit: int, before_seq: int = 0
    ) -> builtins.list[Execution]:
        async with self._acquire() as conn:
            rows = await _fetch(conn, q.list_executions(D, schedule_id, limit, before_seq))
        return [q.execution_row(r) for r in rows]
