"""The read side's SQL, written once for both backends.

Each read query (listing, counting, selecting ids, a job and its detail, the next due time,
schedules and their runs, queue gauges, spend, paused handlers, metric buckets) is built here from a `Dialect` that says how the two databases differ:

- placeholders: numbered from 1, `?1` (SQLite) or `$1` (PostgreSQL), so one value may be used
  several times in a statement and the argument list is the same for both;
- a list of values: `col IN (?1, ?2)` (SQLite) or `col = ANY($1::text[])` (PostgreSQL);
- case-insensitive substring: `LIKE … ESCAPE '\\'` (SQLite's LIKE ignores ASCII case) or `ILIKE`
  (backslash is PostgreSQL's default LIKE escape);
- the handler glob: SQLite's own `GLOB` (with `+handler`, so the planner keeps the seq order) or
  a case-sensitive `LIKE` translated from the glob;
- a byte substring of the payload: `instr(payload, ?)` or `position($1::bytea in payload)`;
- the order logs were written in: `rowid` or `log_seq`.

Two writes are built here too: holding and releasing jobs (`hold_or_release`) and the column
list of a job INSERT (`INSERT_COLS` / `insert_values`, one order for every insert path).

A builder returns `(sql, args)`; the store runs it on its own connection. Rows are read by position
in the order of JOB_COLS / SCHEDULE_COLS / EXECUTION_COLS (an asyncpg Record is a sequence too).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from pulse_tui.pulse.jobs import (
    COMPLETED,
    OUTCOME_COMPLETED,
    STATUSES,
    Attempt,
    Job,
    JobFilter,
    LogEntry,
    job_reader,
    sort_scope,
    sort_sql,
)
from pulse_tui.pulse.schedules import (
    DELETED,
    EXECUTION_COLS,
    SCHEDULE_COLS,
    Execution,
    Schedule,
    ScheduleFilter,
)
from pulse_tui.pulse.store.base import (
    EXECUTION_SELECT,
    FULL_SELECT,
    JOB_COLS,
    LIST_SELECT,
    SCHEDULE_SELECT,
    fit_condition,
)

if TYPE_CHECKING:
    from pulse_tui.pulse.budgets import Fit

Query = tuple[str, list[Any]]


class Row(Protocol):
    """A result row: a sqlite3 tuple or an asyncpg Record, both read by position."""

    def __getitem__(self, key: Any, /) -> Any: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...


N_JOB = len(JOB_COLS)  # a FULL_SELECT row has payload at N_JOB and result at N_JOB + 1


class Dialect:
    """What differs between the backends' SQL (the SQLite spelling; POSTGRES overrides it)."""

    name = "sqlite"
    mark = "?"  # placeholder prefix, numbered from 1
    log_order = "rowid"  # job_logs in the order they were written
    false = "0"  # a boolean column's false
    # reads of finished jobs by completed_at name their partial index: with ANALYZE statistics
    # SQLite 3.40 scanned all of jobs_handler_status for `spend` instead
    finished_index = " INDEXED BY jobs_finished"

    def bare_handler(self, col: str = "handler") -> str:
        """The handler name without its `plugin/` qualifier."""
        return f"substr({col}, instr({col}, '/') + 1)"

    def any_of(self, col: str, values: Sequence[Any], p: Params) -> str:
        return f"{col} IN ({', '.join(p(v) for v in values)})"

    def contains_ci(self, col: str, ph: str) -> str:
        """`col` contains the LIKE pattern in `ph` (made by `contains`), ignoring case."""
        return f"{col} LIKE {ph} ESCAPE '\\'"

    def glob(self, col: str, glob: str, p: Params) -> str:
        # case-sensitive; `+` keeps the planner on the seq order (an index range on handler would
        # sort every matching row before the first page: 1.3 s for a third of 1M jobs)
        return f"+{col} GLOB {p(glob.replace('[', '[[]'))}"

    def bytes_contain(self, col: str, needle: bytes, p: Params) -> str:
        return f"instr({col}, {p(needle)}) > 0"


class _Postgres(Dialect):
    name = "postgres"
    mark = "$"
    log_order = "log_seq"
    false = "false"
    finished_index = ""

    def bare_handler(self, col: str = "handler") -> str:
        return f"substring({col} from position('/' in {col}) + 1)"

    def any_of(self, col: str, values: Sequence[Any], p: Params) -> str:
        return f"{col} = ANY({p(list(values))}::text[])"

    def contains_ci(self, col: str, ph: str) -> str:
        return f"{col} ILIKE {ph}"

    def glob(self, col: str, glob: str, p: Params) -> str:
        return f"{col} LIKE {p(glob_to_like(glob))}"

    def bytes_contain(self, col: str, needle: bytes, p: Params) -> str:
        return f"position({p(needle)}::bytea in {col}) > 0"


SQLITE = Dialect()
POSTGRES = _Postgres()


class Params:
    """Collects a statement's values; calling it with a value returns that value's placeholder."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"{self.dialect.mark}{len(self.values)}"


def contains(text: str) -> str:
    """A LIKE pattern matching `text` anywhere (its `%`, `_` and `\\` taken literally)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def glob_to_like(glob: str) -> str:
    """`*` / `?` glob to a LIKE pattern (LIKE's own `%`, `_` and `\\` taken literally)."""
    out = []
    for ch in glob:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def redact(url: str) -> str:
    """A store URL without its password, for display and logs: the password in the user info
    and a `password` query parameter go; user, host, port, database and other parameters stay."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not one urlsplit reads (an unclosed `[`): hide all before the last `@`
        head, at, tail = url.rpartition("@")
        return f"{head.partition('://')[0]}://…@{tail}" if at else url
    changed = False
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")  # the host follows the LAST `@`
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}@{hostport}"
        changed = True
    query = parts.query
    if query:
        pairs = query.split("&")
        kept = [kv for kv in pairs if unquote_plus(kv.partition("=")[0]) != "password"]
        if len(kept) != len(pairs):
            query = "&".join(kept)
            changed = True
    return urlunsplit(parts._replace(netloc=netloc, query=query)) if changed else url


def _and(clauses: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


# ---------------------------------------------------------------- rows


_read_job = job_reader(JOB_COLS)


def job_row(row: Row) -> Job:
    """A Job from a LIST_SELECT row, or a FULL_SELECT row (then with payload and result)."""
    j = _read_job(row)
    if len(row) > N_JOB:
        payload, result = row[N_JOB], row[N_JOB + 1]
        j.payload = bytes(payload) if payload is not None else b"{}"
        j.result = bytes(result) if result is not None else b""
    return j


def schedule_row(row: Row) -> Schedule:
    s = Schedule(**dict(zip(SCHEDULE_COLS, row, strict=True)))
    s.payload = bytes(s.payload)
    s.declared = bool(s.declared)
    return s


def execution_row(row: Row) -> Execution:
    return Execution(**dict(zip((*EXECUTION_COLS, "seq"), row, strict=True)))


# ---------------------------------------------------------------- jobs


def job_where(d: Dialect, flt: JobFilter, p: Params, statuses: Collection[str] | None = None) -> list[str]:
    clauses: list[str] = []
    sts = list(flt.statuses) if statuses is None else list(statuses)
    if sts:
        clauses.append(d.any_of("status", sts, p))
    if flt.handler:
        clauses.append(f"handler = {p(flt.handler)}")
    if flt.parent_job_id:
        # the second term lets the planner (and a generic plan) use the partial index jobs_parent
        clauses.append(f"parent_job_id = {p(flt.parent_job_id)} AND parent_job_id != ''")
    if flt.text:
        ph = p(contains(flt.text))
        clauses.append(
            "(" + " OR ".join(d.contains_ci(c, ph) for c in ("id", "handler", "error", "source")) + ")"
        )
    if flt.handler_glob:
        clauses.append(d.glob("handler", flt.handler_glob, p))
    if flt.error:
        clauses.append(d.contains_ci("error", p(contains(flt.error))))
    if flt.payload:
        clauses.append(d.bytes_contain("payload", flt.payload.encode(), p))
    return clauses


def get_job(d: Dialect, job_id: str, with_payload: bool = True) -> Query:
    p = Params(d)
    return f"SELECT {FULL_SELECT if with_payload else LIST_SELECT} FROM jobs WHERE id={p(job_id)}", p.values


def job_attempts(d: Dialect, job: Job) -> Query:
    """The attempts of a job read by `get_job`; rows for `attempt_row`."""
    p = Params(d)
    return (
        "SELECT number, started_at, ended_at, outcome, error, plugin, plugin_version, node"
        f" FROM attempts WHERE job_seq={p(job.seq)} ORDER BY number",
        p.values,
    )


def job_logs(d: Dialect, job: Job, limit: int = 5000) -> Query:
    p = Params(d)
    return (
        "SELECT attempt, timestamp, level, message, stage, metadata FROM job_logs"
        f" WHERE job_seq={p(job.seq)} ORDER BY {d.log_order} LIMIT {p(limit)}",
        p.values,
    )


def attempt_row(job: Job, row: Row) -> Attempt:
    return Attempt(job.id, *row)


def stores_attempt(a: Attempt) -> bool:
    """Whether an attempt's end writes an `attempts` row. A completed attempt does not: it is its
    job's last (a completed job never runs again), and the job row holds all of it — number,
    start, end, plugin, version, node — so `job_attempts_of` makes it from there. One insert (and
    its index entry) less per job on the drain's hot path."""
    return a.outcome != OUTCOME_COMPLETED


def job_attempts_of(job: Job, rows: Iterable[Row]) -> list[Attempt]:
    """A job's attempts: the stored rows (ordered by number) and, for a completed job, its last
    attempt made from the job row (see `stores_attempt`; it replaces a row of that number written
    by a store before it stopped writing them)."""
    attempts = [attempt_row(job, r) for r in rows]
    if job.status != COMPLETED or job.attempts <= 0:
        return attempts
    last = Attempt(
        job.id,
        job.attempts,
        job.started_at,
        job.completed_at,
        OUTCOME_COMPLETED,
        "",
        job.plugin,
        job.plugin_version,
        job.node,
    )
    return [a for a in attempts if a.number != job.attempts] + [last]


def log_row(job: Job, row: Row) -> LogEntry:
    return LogEntry(job.id, *row)


def list_jobs(
    d: Dialect,
    flt: JobFilter,
    limit: int,
    after_seq: int | None,
    oldest_first: bool,
    offset: int,
    sort_by: str = "",
) -> Query:
    """A page of jobs (Store.list)."""
    p = Params(d)
    clauses = job_where(d, flt, p)
    if after_seq is not None:
        clauses.append(f"seq {'>' if oldest_first else '<'} {p(after_seq)}")
    where = _and(clauses)
    order = sort_sql(sort_by, not oldest_first)
    scope = sort_scope(sort_by)
    if scope:  # a column no index orders: rank the newest `scope` matching jobs only
        sql = (
            f"SELECT * FROM (SELECT {LIST_SELECT} FROM jobs{where} ORDER BY seq DESC LIMIT {int(scope)}) s"
            f" ORDER BY {order} LIMIT {p(limit)} OFFSET {p(offset)}"
        )
    else:
        sql = f"SELECT {LIST_SELECT} FROM jobs{where} ORDER BY {order} LIMIT {p(limit)} OFFSET {p(offset)}"
    return sql, p.values


def count_jobs(d: Dialect, flt: JobFilter, cap: int) -> Query:
    """One row: the number of matching jobs in each of STATUSES (in that order), each counted up
    to `cap` + 1 (so "more than cap" shows without counting a million rows)."""
    p = Params(d)
    n = p(cap + 1)
    parts = [
        f"(SELECT count(*) FROM (SELECT 1 FROM jobs{_and(job_where(d, flt, p, (st,)))} LIMIT {n}) s)"
        for st in STATUSES
    ]
    return f"SELECT {', '.join(parts)}", p.values


def counts_by_status(row: Row) -> dict[str, int]:
    return {st: int(row[i]) for i, st in enumerate(STATUSES)}


def select_ids(d: Dialect, flt: JobFilter, limit: int) -> Query:
    p = Params(d)
    where = _and(job_where(d, flt, p))
    return f"SELECT id FROM jobs{where} ORDER BY seq LIMIT {p(limit)}", p.values


def next_due(d: Dialect, handlers: Sequence[str], now: float) -> Query:
    """MIN(run_at) > now of queued jobs of these handlers (jobs_queue_due)."""
    p = Params(d)
    return (
        f"SELECT min(run_at) FROM jobs WHERE status='queued' AND run_at>{p(now)}"
        f" AND {d.any_of('handler', handlers, p)}",
        p.values,
    )


def queue_gauges(d: Dialect, now: float) -> Query:
    """Per handler and live status: jobs, and for queued ones how many are due and the oldest
    due run_at (rows for `gauges`)."""
    p = Params(d)
    due = f"run_at <= {p(now)}"
    return (
        f"SELECT handler, status, count(*), sum(CASE WHEN {due} THEN 1 ELSE 0 END),"
        f" min(CASE WHEN {due} THEN run_at END)"
        " FROM jobs WHERE status IN ('queued', 'running', 'paused') GROUP BY handler, status",
        p.values,
    )


def gauges(rows: Iterable[Row]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for handler, status, n, due, oldest in rows:
        g = out.setdefault(handler, {})
        g[status] = int(n)
        if status == "queued":
            g["due"] = int(due or 0)
            g["oldest_due"] = float(oldest or 0.0)
    return out


# Finished jobs, spelled as the partial index jobs_finished's predicate (both stores): a statement
# that reads finished jobs by completed_at repeats this term so the index fits it (SQLite matches
# a partial index's terms only word for word; PostgreSQL cannot prove it from a parameter array)
FINISHED_TERM = "status IN ('completed', 'failed', 'cancelled')"


def spend(d: Dialect, day_start: float, month_start: float) -> Query:
    """Cost of the jobs finished since `month_start` per handler and bucket (`day_start` for those
    finished since then, else `month_start`): rows for `spend_rows`."""
    p = Params(d)
    day, month = p(day_start), p(month_start)
    return (
        f"SELECT handler, CASE WHEN completed_at >= {day} THEN {day} ELSE {month} END AS b,"
        f" sum(cost_actual), count(*) FROM jobs{d.finished_index}"
        f" WHERE {FINISHED_TERM} AND completed_at >= {month} GROUP BY handler, b",
        p.values,
    )


def spend_rows(rows: Iterable[Row]) -> list[tuple[str, float, float, int]]:
    return [(h, float(b), float(c or 0.0), int(n)) for h, b, c, n in rows]


def spend_jobs(d: Dialect, month_start: float) -> Query:
    """`spend` without its GROUP BY, one row per job finished since `month_start`: (handler,
    completed_at, cost_actual), summed by `spend_sum`. SQLite groups by sorting every row first
    (a temporary b-tree of up to its cache size, freed afterwards into a heap that keeps it); the
    few sums are cheaper to keep in Python."""
    p = Params(d)
    return (
        f"SELECT handler, completed_at, cost_actual FROM jobs{d.finished_index}"
        f" WHERE {FINISHED_TERM} AND completed_at >= {p(month_start)}",
        p.values,
    )


def spend_sum(
    rows: Iterable[Row], day_start: float, month_start: float
) -> list[tuple[str, float, float, int]]:
    """`spend_jobs` rows as `spend_rows` returns `spend`'s."""
    sums: dict[tuple[str, float], list[float]] = {}
    for handler, completed_at, cost in rows:
        key = (handler, day_start if completed_at >= day_start else month_start)
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0.0, 0]
        acc[0] += cost or 0.0
        acc[1] += 1
    return [(h, b, c, int(n)) for (h, b), (c, n) in sorted(sums.items())]


PAUSED_HANDLERS = "SELECT name, reason, paused_at FROM paused_handlers"


def paused_rows(rows: Iterable[Row]) -> dict[str, tuple[str, float]]:
    return {name: (reason, at) for name, reason, at in rows}


# ---------------------------------------------------------------- metrics


def load_metrics(d: Dialect, step: int, since: int, handler: str | None) -> Query:
    p = Params(d)
    sql = f"SELECT ts, handler, data FROM metric_buckets WHERE step={p(step)} AND ts>={p(since)}"
    if handler is not None:
        sql += f" AND handler={p(handler)}"
    return sql, p.values


def metric_rows(rows: Iterable[Row]) -> list[tuple[int, str, dict[str, Any]]]:
    return [(int(ts), h, json.loads(data)) for ts, h, data in rows]


# ---------------------------------------------------------------- schedules


def get_schedule(d: Dialect, schedule_id: str) -> Query:
    p = Params(d)
    return f"SELECT {SCHEDULE_SELECT} FROM schedules WHERE id={p(schedule_id)}", p.values


def list_schedules(d: Dialect, flt: ScheduleFilter, limit: int) -> Query:
    p = Params(d)
    clauses = [d.any_of("state", flt.states, p) if flt.states else f"state != {p(DELETED)}"]
    if flt.owner:
        clauses.append(f"owner = {p(flt.owner)}")
    if flt.handler:
        clauses.append(f"handler = {p(flt.handler)}")
    return (
        f"SELECT {SCHEDULE_SELECT} FROM schedules{_and(clauses)} ORDER BY created_at, id LIMIT {p(limit)}",
        p.values,
    )


def due_schedules(d: Dialect, now: float, limit: int) -> Query:
    p = Params(d)
    return (
        f"SELECT {SCHEDULE_SELECT} FROM schedules WHERE state='active' AND next_run_at<={p(now)}"
        f" ORDER BY next_run_at LIMIT {p(limit)}",
        p.values,
    )


NEXT_SCHEDULE_AT = "SELECT min(next_run_at) FROM schedules WHERE state='active'"


def list_executions(d: Dialect, schedule_id: str, limit: int, before_seq: int) -> Query:
    p = Params(d)
    before = p(before_seq)
    return (
        f"SELECT {EXECUTION_SELECT} FROM schedule_executions WHERE schedule_id={p(schedule_id)}"
        f" AND ({before} = 0 OR seq < {before}) ORDER BY seq DESC LIMIT {p(limit)}",
        p.values,
    )


# ---------------------------------------------------------------- writes


def hold_or_release(
    d: Dialect,
    hold: bool,
    handlers: Collection[str] | None,
    reason: str,
    now: float,
    keep: Collection[str] = (),
    fit: Fit | None = None,
) -> Query | None:
    """`Store.hold_queued` (`hold`: queued jobs become paused with `reason`, but not those an
    operator let run past a budget) or `Store.release_held` (jobs paused with `reason` are queued
    again, but not those of a paused handler), for the jobs of `handlers` (bare names; None = every
    handler but those in `keep`) and, with a budget `fit`, only the jobs it holds / lets run.
    RETURNs the changed rows (LIST_SELECT); None when that is no handler at all."""
    p = Params(d)
    if hold:
        sql = f"UPDATE jobs SET status='paused', pause_reason={p(reason)}, updated_at={p(now)}"
        where = ["status='queued'", f"budget_override={d.false}"]
    else:
        sql = f"UPDATE jobs SET status='queued', pause_reason='', updated_at={p(now)}"
        where = ["status='paused'", f"pause_reason={p(reason)}"]
    if handlers is not None:
        names = list(handlers)
        if not names:
            return None
        where.append(d.any_of(d.bare_handler(), names, p))
    elif keep:
        where.append(f"NOT ({d.any_of(d.bare_handler(), list(keep), p)})")
    if fit is not None:
        cond, value = fit_condition(fit, hold, "{}")
        where.append(cond.format(p(value)))
    if not hold:
        where.append(
            f"NOT EXISTS (SELECT 1 FROM paused_handlers p WHERE p.name = {d.bare_handler('jobs.handler')})"
        )
    return f"{sql} WHERE {' AND '.join(where)} RETURNING {LIST_SELECT}", p.values


# A job's columns as every insert writes them (the rest keep their defaults), and its values in
# that order (payload as bytes: asyncpg takes no memoryview).
INSERT_COLS: tuple[str, ...] = (
    "id", "handler", "status", "priority", "payload", "max_attempts", "timeout_secs", "source",
    "parent_job_id", "cost_estimate", "created_at", "updated_at", "run_at", "retry_count", "pause_reason",
)  # fmt: skip
INSERT_LIST = ", ".join(INSERT_COLS)


def insert_values(j: Job) -> tuple[Any, ...]:
    return (
        j.id,
        j.handler,
        j.status,
        j.priority,
        bytes(j.payload),
        j.max_attempts,
        j.timeout_secs,
        j.source,
        j.parent_job_id,
        j.cost_estimate,
        j.created_at,
        j.updated_at,
        j.run_at,
        j.retry_count,
        j.pause_reason,
    )


def insert_job(d: Dialect) -> str:
    """One job's INSERT (values: `insert_values`), RETURNING nothing (append " RETURNING seq")."""
    marks = ", ".join(f"{d.mark}{i}" for i in range(1, len(INSERT_COLS) + 1))
    return f"INSERT INTO jobs ({INSERT_LIST}) VALUES ({marks})"
