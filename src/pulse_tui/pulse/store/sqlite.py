"""SQLite store: WAL, one writer thread with group commits, reader threads for listing.

Why not one aiosqlite call per statement: aiosqlite hops to its thread for every statement, so a
job that needs an insert, a claim and a finish pays several hops plus a commit each. Here every
write is a small function queued to ONE writer thread; the writer takes everything queued since
its last commit and runs it in a single transaction (group commit), one thread hop per batch.
With 64 jobs finishing at once that is one WAL commit (one fsync with `durability="full"`, none
with "normal") instead of 64. Reads run on a
small pool of reader threads, each with its own connection (WAL lets them run beside the writer).
This is the design FIELD-NOTES points at (group commits and batch claims are where SQLite
throughput comes from); aiosqlite's one-hop-per-statement model cannot batch a group of
heterogeneous statements into one hop, so the store drives sqlite3 from its own threads.

Schema versioning: `PRAGMA user_version`; MIGRATIONS[i] upgrades from version i to i+1.

Defences (see docs/RELIABILITY.md):
- durability: "full" (default, `synchronous=FULL`: an acknowledged write survives power loss) or
  "normal" (`synchronous=NORMAL`: it survives a crash of the process, but the last commits may be
  lost on power loss or an OS crash);
- a write that fails (disk full, I/O error, corruption) fails its callers at once with a specific
  error; the transaction is rolled back if SQLite has not already done so, and the writer keeps
  going: the next batch tries again (so writes succeed as soon as space is freed). While the disk
  is full `condition` says so (the server reports it in ServerInfo);
- at open, `PRAGMA quick_check` refuses a damaged file; a missing or zero-byte file is created
  fresh only when nothing says a store lived here before (the marker `<db>.created` written when
  the database is created, a non-empty `-wal`/`-journal` file, or — for a zero-byte file — the
  server's token file beside it);
- a SQLite error while serving (a damaged page met by a read or a write) becomes StoreCorrupt /
  Unavailable naming the file, never an INTERNAL error or a hang;
- another process holding the write lock: a write waits `lock_timeout` (5 s) for it, then fails
  with Unavailable. From then on the database is known locked: each later batch of writes only
  probes the lock (LOCKED_PROBE_MS) and fails at once while it is still held, so writes queued
  behind the first do not each wait the full timeout in turn; the first batch that gets the lock
  clears the state. While locked `condition` says so.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pulse_tui.pulse.errors import (
    DuplicateJob,
    DuplicateSchedule,
    NotFound,
    PulseError,
    StoreCorrupt,
    StoreFull,
    Unavailable,
)
from pulse_tui.pulse.jobs import (
    CRASH_LIMIT,
    OUTCOME_CRASHED,
    OUTCOME_INTERRUPTED,
    PAUSED,
    QUEUED,
    REASON_HANDLER,
    SERVER_CRASHED_ERROR,
    SERVER_INTERRUPTED_ERROR,
    Job,
    JobDetail,
    JobFilter,
    handler_base,
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
    LIST_SELECT,
    SCHEDULE_SELECT,
    Finish,
    Store,
    schedule_changes,
)
from pulse_tui.pulse.store.sql import SQLITE as D

MIGRATIONS: list[str] = [
    # 0 -> 1
    """
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        handler TEXT NOT NULL,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        payload BLOB NOT NULL DEFAULT X'7B7D',
        result BLOB NOT NULL DEFAULT X'',
        error TEXT NOT NULL DEFAULT '',
        progress_current INTEGER NOT NULL DEFAULT 0,
        progress_total INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        run_attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        retry_count INTEGER NOT NULL DEFAULT 0,
        timeout_secs INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL DEFAULT '',
        parent_job_id TEXT NOT NULL DEFAULT '',
        cost_estimate REAL NOT NULL DEFAULT 0,
        cost_actual REAL NOT NULL DEFAULT 0,
        created_at REAL NOT NULL DEFAULT 0,
        started_at REAL NOT NULL DEFAULT 0,
        completed_at REAL NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL DEFAULT 0,
        run_at REAL NOT NULL DEFAULT 0,
        plugin TEXT NOT NULL DEFAULT '',
        plugin_version TEXT NOT NULL DEFAULT '',
        node TEXT NOT NULL DEFAULT ''
    );
    -- the claim: due queued jobs, priority then FIFO
    CREATE INDEX jobs_queue ON jobs(priority DESC, seq) WHERE status = 'queued';
    CREATE INDEX jobs_queue_due ON jobs(run_at) WHERE status = 'queued';
    -- listing / counting by status and by handler, newest first
    CREATE INDEX jobs_status_seq ON jobs(status, seq);
    CREATE INDEX jobs_handler_seq ON jobs(handler, seq);
    CREATE INDEX jobs_handler_status ON jobs(handler, status);
    CREATE INDEX jobs_finished ON jobs(status, completed_at);
    CREATE TABLE attempts (
        job_seq INTEGER NOT NULL,
        number INTEGER NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        plugin TEXT NOT NULL DEFAULT '',
        plugin_version TEXT NOT NULL DEFAULT '',
        node TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (job_seq, number)
    ) WITHOUT ROWID;
    CREATE TABLE job_logs (
        job_seq INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        stage TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX job_logs_job ON job_logs(job_seq);
    """,
    # 1 -> 2: metric buckets (pulse/metrics.py); `data` is JSON counters and histograms
    """
    CREATE TABLE metric_buckets (
        node TEXT NOT NULL,
        step INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        handler TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (step, ts, handler, node)
    );
    CREATE INDEX metric_buckets_handler ON metric_buckets(handler, step, ts);
    """,
    # 2 -> 3: uncharged interruptions in the current run; crashes in a row (plugin or server)
    """
    ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;
    """,
    # 3 -> 4: schedules and their runs (executions)
    """
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        handler TEXT NOT NULL,
        payload BLOB NOT NULL DEFAULT X'7B7D',
        interval_secs INTEGER NOT NULL DEFAULT 0,
        cron TEXT NOT NULL DEFAULT '',
        timezone TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL,
        overlap TEXT NOT NULL DEFAULT 'skip',
        jitter_secs INTEGER NOT NULL DEFAULT 0,
        next_run_at REAL NOT NULL DEFAULT 0,
        last_run_at REAL NOT NULL DEFAULT 0,
        last_execution_id TEXT NOT NULL DEFAULT '',
        last_job_id TEXT NOT NULL DEFAULT '',
        last_status TEXT NOT NULL DEFAULT '',
        run_count INTEGER NOT NULL DEFAULT 0,
        owner TEXT NOT NULL DEFAULT '',
        metadata TEXT NOT NULL DEFAULT '{}',
        description TEXT NOT NULL DEFAULT '',
        ats_code TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL DEFAULT 0,
        declared INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX schedules_due ON schedules(next_run_at) WHERE state = 'active';
    CREATE INDEX schedules_owner ON schedules(owner, created_at);
    -- one live declared schedule per owner and handler, even when several nodes reconcile at once
    CREATE UNIQUE INDEX schedules_declared ON schedules (owner, handler) WHERE declared != 0 AND state != 'deleted';
    CREATE TABLE schedule_executions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        schedule_id TEXT NOT NULL,
        job_id TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        completed_at REAL NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX schedule_executions_schedule ON schedule_executions(schedule_id, seq);
    CREATE INDEX schedule_executions_job ON schedule_executions(job_id) WHERE job_id != '';
    """,
    # 4 -> 5: child jobs: a parent's children (listing, counting, cancelling them with the parent)
    """
    CREATE INDEX jobs_parent ON jobs(parent_job_id, seq) WHERE parent_job_id != '';
    """,
    # 5 -> 6: pause: why a paused job is held; paused handlers (the claim skips their jobs)
    """
    ALTER TABLE jobs ADD COLUMN pause_reason TEXT NOT NULL DEFAULT '';
    -- 1: an operator resumed it over its budget (it runs once, cleared when the attempt ends)
    ALTER TABLE jobs ADD COLUMN budget_override INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE paused_handlers (
        name TEXT PRIMARY KEY,
        reason TEXT NOT NULL DEFAULT '',
        paused_at REAL NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    """,
    # 6 -> 7: jobs_finished holds finished jobs only, so enqueue and claim write no entry in it
    # and a finish writes one (was: an entry moved at every status change)
    """
    DROP INDEX jobs_finished;
    CREATE INDEX jobs_finished ON jobs(status, completed_at) WHERE status IN ('completed', 'failed', 'cancelled');
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# page caches (PRAGMA cache_size, negative = KiB): bounded server memory. Readers fetch pages of
# 100 rows, 2 MB is plenty; a read that visits every job of a period (the spend) recycles a few
# pages instead (it wants none of them again; see `spend`)
READER_CACHE = -2000
SCAN_CACHE = -128

# [server] durability -> PRAGMA synchronous (what each promises: module docstring, README)
DURABILITY: dict[str, str] = {"full": "FULL", "normal": "NORMAL"}
LOCKED_PROBE_MS = 100  # how long a write waits for the lock once the database is known locked
LOCKED = "the job store is locked by another process"
MARKER_SUFFIX = ".created"  # written beside the database when it is created (see _check_fresh)
TOKEN_FILE = "token"  # the server's token file: a data dir a server has used before


def _is_unique(exc: sqlite3.IntegrityError) -> bool:
    """A UNIQUE (or primary key) constraint refused the row: SQLite's extended result code."""
    return exc.sqlite_errorcode in (sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)


def _is_full(exc: BaseException) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def _is_locked(exc: BaseException) -> bool:
    msg = str(exc)
    return "locked" in msg or "busy" in msg


def _is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    return "malformed" in str(exc) or "not a database" in str(exc)


_INSERT_JOB = q.insert_job(D) + " RETURNING seq"


def _insert_job(conn: sqlite3.Connection, j: Job) -> None:
    j.seq = conn.execute(_INSERT_JOB, q.insert_values(j)).fetchone()[0]


# the claim's guard: no job of a paused handler (bare `a.b` or qualified `plugin/a.b`)
NOT_PAUSED_HANDLER = "NOT EXISTS (SELECT 1 FROM paused_handlers p WHERE p.name = substr(jobs.handler, instr(jobs.handler, '/') + 1))"
# jobs of handler ? (bare or qualified)
OF_HANDLER = "substr(handler, instr(handler, '/') + 1) = ?"


def _update_if(
    conn: sqlite3.Connection,
    table: str,
    state_col: str,
    select: str,
    key: str,
    allowed: Sequence[str],
    cols: Sequence[str],
    changes: dict[str, Any],
    what: str,
) -> tuple[Any, ...] | None:
    """Compare-and-set: apply `changes` to row `key` only while its `state_col` is in `allowed`.
    Returns the updated row, None when the state did not allow it; NotFound when there is no row."""
    row: tuple[Any, ...] | None = conn.execute(
        f"UPDATE {table} SET {', '.join(f'{c}=?' for c in cols)} WHERE id=?"
        f" AND {state_col} IN ({','.join('?' * len(allowed))}) RETURNING {select}",
        (*[changes[c] for c in cols], key, *allowed),
    ).fetchone()
    if row is None and conn.execute(f"SELECT 1 FROM {table} WHERE id=?", (key,)).fetchone() is None:
        raise NotFound(f"no {what} with id {key!r}")
    return row


def claim_sql(n_handlers: int, *, paused_guard: bool) -> str:
    """The claim: the first `limit` due queued jobs of these handlers, priority then FIFO, marked
    running. The subquery walks the partial index jobs_queue in its order and stops at `limit`
    (INDEXED BY: without statistics the planner took jobs_finished on `status` and sorted every
    queued job on each claim, 4.5 ms per claim with 20,000 queued, against 0.14 ms)."""
    ph = ",".join("?" * n_handlers)
    guard = f" AND {NOT_PAUSED_HANDLER}" if paused_guard else ""
    return (
        "UPDATE jobs SET status='running', attempts=attempts+1, run_attempts=run_attempts+1,"
        " started_at=?, updated_at=?, node=?, completed_at=0"
        " WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_queue WHERE status='queued' AND run_at<=?"
        f" AND +handler IN ({ph}){guard} ORDER BY priority DESC, seq LIMIT ?)"
        f" RETURNING {LIST_SELECT}, payload, result"
    )


class _CountFlight:
    """One count read shared by the callers that asked it before it began (`SQLiteStore.count`)."""

    __slots__ = ("started", "fut", "waiters")

    def __init__(self, started: list[bool], fut: asyncio.Future[dict[str, int]]) -> None:
        self.started = started  # set by the reader thread as the read begins
        self.fut = fut
        self.waiters = 0  # callers awaiting it: the read is abandoned when the last is cancelled


def prune_select(
    finished_before: float,
    statuses: Collection[str],
    limit: int,
    handlers: Collection[str] | None = None,
    exclude_handlers: Collection[str] = (),
) -> q.Query:
    """The seqs of up to `limit` jobs for `prune`: through jobs_finished (see FINISHED_TERM), or
    for given handlers whichever index the planner prefers (jobs_handler_status for a rare one)."""
    sts = tuple(statuses)
    only, without = tuple(handlers or ()), tuple(exclude_handlers)
    where = f"status IN ({','.join('?' * len(sts))}) AND {q.FINISHED_TERM} AND completed_at < ?"
    if handlers is not None:
        where += f" AND handler IN ({','.join('?' * len(only))})"
    if without:
        where += f" AND handler NOT IN ({','.join('?' * len(without))})"
    args = [*sts, finished_before, *only, *without, limit]
    index = q.SQLITE.finished_index if handlers is None else ""
    return f"SELECT seq FROM jobs{index} WHERE {where} LIMIT ?", args


class SQLiteStore(Store):
    dialect = D

    def __init__(
        self,
        path: str,
        *,
        node: str = "",
        readers: int = 2,
        max_batch: int = 512,
        durability: str = "full",
        quick_check: bool = True,
        lock_timeout: float = 5.0,
    ) -> None:
        if durability not in DURABILITY:
            raise ValueError(
                f"durability must be one of {', '.join(map(repr, DURABILITY))}, got {durability!r}"
            )
        self.path = path
        self.durability = durability
        self.quick_check = quick_check
        self.lock_timeout = lock_timeout  # how long a write waits for another process's lock
        self._locked = False  # the last write found the database locked (writer thread only)
        self.quick_check_secs = 0.0  # what the check at open cost (reported in the start-up log)
        self.condition = ""  # "" = healthy; else why writes fail (disk full, corrupt file)
        self.url = f"sqlite:{path}"
        self.node = node
        self.max_batch = max_batch
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="pulse-sqlite-w")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="pulse-sqlite-r")
        # counts asked while the same count waits for a reader thread share its answer (`count`)
        self._count_flights: dict[tuple[str, int], _CountFlight] = {}
        self._local = threading.local()
        self._wconn: sqlite3.Connection | None = None
        # a handler is paused: the claim checks paused_handlers (one process writes this file, so
        # the writer thread keeps this exact; True errs on the safe side)
        self._any_paused = True
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._read_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.commits = 0
        self.ops = 0

    # ------------------------------------------------------------ lifecycle
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.lock_timeout
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={DURABILITY[self.durability]}")
        conn.execute(f"PRAGMA busy_timeout={int(self.lock_timeout * 1000)}")
        conn.execute("PRAGMA cache_size=-4000")  # 4 MB for the writer: bounded server memory
        return conn

    @property
    def marker_path(self) -> str:
        return self.path + MARKER_SUFFIX

    def _move_aside_hint(self) -> str:
        name = os.path.basename(self.path)
        return (
            f"restore it from a backup, or move {name} (with its -wal/-shm files and {name}{MARKER_SUFFIX}) "
            "aside to start with an empty store"
        )

    def _check_fresh(self, zero_byte: bool) -> None:
        """The database file is missing or empty: create it only if nothing says a store lived here."""
        signs = []
        if os.path.exists(self.marker_path):
            signs.append(f"{os.path.basename(self.marker_path)} says a store was created here")
        for suffix in ("-wal", "-journal"):
            if os.path.exists(self.path + suffix) and os.path.getsize(self.path + suffix) > 0:
                signs.append(f"{os.path.basename(self.path)}{suffix} holds uncommitted data")
        token = os.path.join(os.path.dirname(os.path.abspath(self.path)), TOKEN_FILE)
        if zero_byte and os.path.exists(token):
            signs.append("a server has used this data dir before (its token file exists)")
        if not signs:
            return
        what = "is empty (0 bytes)" if zero_byte else "is missing"
        raise StoreCorrupt(f"{self.path} {what} but {'; '.join(signs)}: {self._move_aside_hint()}")

    def _write_marker(self) -> None:
        tmp = f"{self.marker_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(
                f"pulse-tui job store {os.path.basename(self.path)} created "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}.\n"
                "While this file exists, the server refuses to start on a missing or empty database.\n"
            )
        os.replace(tmp, self.marker_path)

    def _open_sync(self) -> None:
        d = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(d):
            raise Unavailable(f"data directory {d} does not exist")
        if not os.access(d, os.W_OK):
            raise Unavailable(f"data directory {d} is not writable")
        if os.path.exists(self.path) and not os.access(self.path, os.R_OK | os.W_OK):
            raise Unavailable(f"database {self.path} is not writable; fix its permissions (chmod u+rw)")
        existed = os.path.exists(self.path)
        size = os.path.getsize(self.path) if existed else 0
        if size == 0:
            self._check_fresh(zero_byte=existed)
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
            if size and self.quick_check:
                t0 = time.perf_counter()
                rows = [r[0] for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
                self.quick_check_secs = time.perf_counter() - t0
                if rows != ["ok"]:
                    lines = [ln.strip() for r in rows for ln in str(r).splitlines()]
                    found = "; ".join(ln for ln in lines if ln and not ln.startswith("***"))
                    raise sqlite3.DatabaseError(f"quick_check: {found[:200]}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise Unavailable(
                    f"{self.path} has schema version {version}, newer than this pulse-tui "
                    f"understands ({SCHEMA_VERSION}); upgrade pulse-tui"
                )
            for v in range(version, SCHEMA_VERSION):
                conn.execute("BEGIN IMMEDIATE")
                for stmt in MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute(f"PRAGMA user_version={v + 1}")
                conn.execute("COMMIT")
            if not os.path.exists(self.marker_path):
                self._write_marker()  # also adopts a store made before markers existed
        except PulseError:
            if conn is not None:
                conn.close()
            raise
        except sqlite3.OperationalError as exc:
            if conn is not None:
                conn.close()
            msg = str(exc)
            if "locked" in msg or "busy" in msg:
                raise Unavailable(f"database {self.path} is locked by another process ({msg})") from None
            if _is_full(exc):
                raise StoreFull(
                    f"the job store's disk is full ({self.path}: {msg}); free some space"
                ) from None
            raise Unavailable(f"cannot open database {self.path}: {msg}") from None
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise StoreCorrupt(
                f"{self.path} is damaged or not a SQLite database ({exc}): {self._move_aside_hint()}"
            ) from None
        except OSError as exc:
            if conn is not None:
                conn.close()
            raise Unavailable(f"cannot write {self.marker_path}: {exc.strerror or exc}") from None
        self._any_paused = conn.execute("SELECT 1 FROM paused_handlers LIMIT 1").fetchone() is not None
        self._wconn = conn

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._open_sync)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._write_loop(), name="pulse-sqlite-writer")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            assert self._wake is not None  # set with the task, in open()
            self._wake.set()
            await self._task
        loop = asyncio.get_running_loop()

        def _close_w() -> None:
            if self._wconn is not None:
                try:
                    self._wconn.execute("PRAGMA optimize")
                except sqlite3.Error:
                    pass
                self._wconn.close()

        await loop.run_in_executor(self._writer, _close_w)
        with self._lock:
            for c in self._read_conns:
                c.close()
            self._read_conns.clear()
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)

    # ------------------------------------------------------------ plumbing
    async def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise Unavailable("store is closed")
        assert self._wake is not None, "the store is not open"
        fut: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, fut))
        self._wake.set()
        return await fut

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                results = await loop.run_in_executor(self._writer, self._run_batch, [fn for fn, _ in batch])
            except asyncio.CancelledError:
                self._settle(batch, [(False, Unavailable("the store is closing"))] * len(batch))
                raise
            except Exception as exc:  # _run_batch answers for SQLite; anything else must not kill us
                log.exception("the job store's writer failed a batch of %d write(s)", len(batch))
                results = [(False, exc)] * len(batch)
            self._settle(batch, results)

    @staticmethod
    def _settle(batch: list[tuple[Any, asyncio.Future[Any]]], results: list[tuple[bool, Any]]) -> None:
        for (_, fut), (ok, value) in zip(batch, results, strict=True):
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _error(self, exc: sqlite3.Error, doing: str) -> PulseError:
        """A SQLite failure as the specific error its callers get."""
        msg = str(exc)
        if _is_full(exc):
            return StoreFull(f"the job store's disk is full ({self.path}: {msg}); nothing was stored")
        if _is_corrupt(exc):
            return StoreCorrupt(
                f"the job store {self.path} is damaged ({msg}) while {doing}; stop the server and "
                f"check it (sqlite3 {os.path.basename(self.path)} 'PRAGMA integrity_check'), or restore "
                "it from a backup"
            )
        if _is_locked(exc):
            return Unavailable(f"database {self.path} is locked by another process ({msg})")
        return Unavailable(f"the job store {self.path} failed while {doing} ({msg})")

    def _set_condition(self, condition: str) -> None:
        if condition == self.condition:
            return
        if condition:
            log.warning("%s; writes fail until this is fixed", condition)
        else:
            log.warning("the job store %s can write again", self.path)
        self.condition = condition

    def _run_batch(self, fns: list[Callable[[sqlite3.Connection], Any]]) -> list[tuple[bool, Any]]:
        """Run a group of writes in one transaction, or fail the whole group with a specific error
        (nothing of it stored) and leave the connection ready for the next group."""
        conn = self._wconn
        assert conn is not None
        try:
            out = self._try_batch(conn, fns)
        except sqlite3.Error as exc:
            self._rollback(conn)
            err = self._error(exc, "writing")
            if isinstance(err, StoreFull):
                self._set_condition("the job store's disk is full")
            elif isinstance(err, StoreCorrupt):
                self._set_condition("the job store is damaged")
            elif _is_locked(exc):
                self._set_locked(conn, True)
            return [(False, err)] * len(fns)
        except Exception as exc:
            self._rollback(conn)
            return [(False, exc)] * len(fns)
        self.commits += 1
        self.ops += len(fns)
        if self._locked:
            self._set_locked(conn, False)
        if self.condition == "the job store's disk is full":
            self._set_condition("")
        return out

    def _set_locked(self, conn: sqlite3.Connection, locked: bool) -> None:
        """Known locked: later writes only probe the lock (fail fast); unlocked: wait in full again."""
        if locked == self._locked:
            return
        self._locked = locked
        wait_ms = LOCKED_PROBE_MS if locked else int(self.lock_timeout * 1000)
        conn.execute(f"PRAGMA busy_timeout={wait_ms}")
        if locked:
            self._set_condition(LOCKED)
        elif self.condition == LOCKED:
            self._set_condition("")

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        """Roll back if a transaction is open: SQLite rolls back by itself on some errors (a full
        disk at COMMIT), and a second ROLLBACK would raise."""
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("rolling back a failed write raised %s", exc)

    def _try_batch(
        self, conn: sqlite3.Connection, fns: list[Callable[[sqlite3.Connection], Any]]
    ) -> list[tuple[bool, Any]]:
        """Optimistic: all ops straight through; only if one raises is the transaction rolled back
        and the group re-run with a savepoint per op, so one bad op fails alone and the common case
        pays no savepoint statements. An error that ends the transaction (full disk, damaged page,
        I/O error) is raised: it fails the whole group."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            out: list[tuple[bool, Any]] = [(True, fn(conn)) for fn in fns]
        except Exception as exc:
            if self._fatal(conn, exc):
                raise
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            out = []
            for fn in fns:
                conn.execute("SAVEPOINT op")
                try:
                    out.append((True, fn(conn)))
                    conn.execute("RELEASE op")
                except Exception as exc:  # one bad op must not sink the batch
                    if self._fatal(conn, exc):
                        raise
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    out.append((False, exc))
        conn.execute("COMMIT")
        return out

    @staticmethod
    def _fatal(conn: sqlite3.Connection, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.Error) and (
            not conn.in_transaction or _is_full(exc) or _is_corrupt(exc) or "I/O" in str(exc)
        )

    def _rconn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            conn.execute(f"PRAGMA cache_size={READER_CACHE}")
            self._local.conn = conn
            with self._lock:
                self._read_conns.append(conn)
        return conn

    def _read_error(self, exc: sqlite3.Error) -> PulseError:
        """A reader's SQLite error as the store's (a damaged file also sets the store's condition)."""
        err = self._error(exc, "reading")
        if isinstance(err, StoreCorrupt):
            self._set_condition("the job store is damaged")
        return err

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise Unavailable("store is closed")

        # a read whose caller went away (a console typing a filter on cancels the page and the
        # count of the previous one) stops in SQLite (the progress handler says so every 10,000
        # VM steps), so it does not hold a reader through a scan of a million rows
        abandoned = False

        def run() -> _T:
            if abandoned:
                raise Unavailable("the read was abandoned")
            try:
                conn = self._rconn()  # opened at a thread's first read: the file may be damaged by then
            except sqlite3.Error as exc:
                raise self._read_error(exc) from None
            conn.set_progress_handler(lambda: abandoned, 10_000)
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                if abandoned:
                    raise Unavailable("the read was abandoned") from None
                raise self._read_error(exc) from None
            finally:
                conn.set_progress_handler(None, 0)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
        except asyncio.CancelledError:
            abandoned = True
            raise

    # ------------------------------------------------------------ writes
    async def insert(self, jobs: Sequence[Job]) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            paused = {r[0] for r in conn.execute("SELECT name FROM paused_handlers")}
            if paused:  # a queued job of a paused handler is held at the door (as on PostgreSQL)
                for j in jobs:
                    if j.status == QUEUED and handler_base(j.handler) in paused:
                        j.status, j.pause_reason = PAUSED, REASON_HANDLER
            cols = q.insert_job(D)
            rows = [q.insert_values(j) for j in jobs]
            if len(rows) == 1:
                try:
                    jobs[0].seq = conn.execute(cols + " RETURNING seq", rows[0]).fetchone()[0]
                except sqlite3.IntegrityError as exc:
                    if _is_unique(exc):
                        raise DuplicateJob(jobs[0].id) from None
                    raise
                return list(jobs)
            # many rows: one executemany. In this transaction only this connection writes, so
            # AUTOINCREMENT gives the rows consecutive seqs ending at last_insert_rowid(); the first
            # row's seq is checked, and read back row by row should that ever not hold.
            before = conn.total_changes
            try:
                conn.executemany(cols, rows)
            except sqlite3.IntegrityError as exc:
                if not _is_unique(exc):
                    raise
                # the rows before the refused one went in (the batch rolls them back): it is the next
                done = conn.total_changes - before
                raise DuplicateJob(jobs[done].id if done < len(jobs) else "") from None
            last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            first = last - len(rows) + 1
            got = conn.execute("SELECT seq FROM jobs WHERE id = ?", (jobs[0].id,)).fetchone()
            if got is not None and got[0] == first:
                for k, j in enumerate(jobs):
                    j.seq = first + k
            else:
                for j in jobs:
                    j.seq = conn.execute("SELECT seq FROM jobs WHERE id = ?", (j.id,)).fetchone()[0]
            return list(jobs)

        return await self._write(op)

    async def claim(self, limit: int, handlers: Collection[str], now: float) -> list[Job]:
        names = list(handlers)
        node = self.node

        def op(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                claim_sql(len(names), paused_guard=self._any_paused), (now, now, node, now, *names, limit)
            ).fetchall()
            jobs = [q.job_row(r) for r in rows]
            jobs.sort(key=lambda j: (-j.priority, j.seq))
            return jobs

        if not names or limit <= 0:
            return []
        return await self._write(op)

    async def finish(self, items: Sequence[Finish]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE jobs SET status=?, result=?, error=?, progress_current=?, progress_total=?,"
                " cost_actual=?, completed_at=?, updated_at=?, run_at=?, plugin=?, plugin_version=?,"
                " run_attempts=?, attempts=?, interruptions=?, crashes=?, pause_reason=?, budget_override=0,"
                " started_at=?"
                " WHERE seq=?",
                [
                    (
                        j.status,
                        j.result,
                        j.error,
                        j.progress_current,
                        j.progress_total,
                        j.cost_actual,
                        j.completed_at,
                        j.updated_at,
                        j.run_at,
                        j.plugin,
                        j.plugin_version,
                        j.run_attempts,
                        j.attempts,
                        j.interruptions,
                        j.crashes,
                        j.pause_reason,
                        it.attempt.started_at,  # the attempt's start (a job claimed ahead: its hand-over)
                        j.seq,
                    )
                    for it in items
                    for j in (it.job,)
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO attempts (job_seq, number, started_at, ended_at, outcome, error,"
                " plugin, plugin_version, node) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        it.job.seq,
                        a.number,
                        a.started_at,
                        a.ended_at,
                        a.outcome,
                        a.error,
                        a.plugin,
                        a.plugin_version,
                        a.node,
                    )
                    for it in items
                    for a in (it.attempt,)
                    if q.stores_attempt(a)  # a completed attempt is kept in its job row only
                ],
            )
            logs = [
                (it.job.seq, e.attempt, e.timestamp, e.level, e.message, e.stage, e.metadata)
                for it in items
                if it.logs
                for e in it.logs
            ]
            if logs:
                conn.executemany(
                    "INSERT INTO job_logs (job_seq, attempt, timestamp, level, message, stage, metadata)"
                    " VALUES (?,?,?,?,?,?,?)",
                    logs,
                )

        if items:
            await self._write(op)

    async def set_progress(self, updates: Sequence[tuple[str, int, int, float | None, float]]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE jobs SET progress_current=?, progress_total=?, cost_actual=COALESCE(?, cost_actual),"
                " updated_at=? WHERE id=? AND status='running'",
                [(c, t, cost, ts, jid) for jid, c, t, cost, ts in updates],
            )

        if updates:
            await self._write(op)

    async def transition(
        self, job_id: str, allowed_from: Collection[str], changes: dict[str, Any]
    ) -> Job | None:
        allowed = tuple(allowed_from)
        cols = list(changes)

        def op(conn: sqlite3.Connection) -> Job | None:
            row = _update_if(conn, "jobs", "status", FULL_SELECT, job_id, allowed, cols, changes, "job")
            return q.job_row(row) if row is not None else None

        return await self._write(op)

    async def cancel_children(
        self, parents: Sequence[tuple[str, str]], now: float
    ) -> tuple[list[Job], list[str]]:
        def having(conn: sqlite3.Connection) -> set[str]:
            ids = [p for p, _ in parents]
            found: set[str] = set()
            for i in range(0, len(ids), 500):  # one query per 500 parents (SQLite's variable limit)
                chunk = ids[i : i + 500]
                found.update(
                    r[0]
                    for r in conn.execute(
                        "SELECT DISTINCT parent_job_id FROM jobs WHERE parent_job_id != ''"
                        f" AND parent_job_id IN ({','.join('?' * len(chunk))})"
                        " AND status IN ('queued', 'paused', 'running')",
                        chunk,
                    )
                )
            return found

        # most ended jobs have no children: a read (the partial index) spares the writer a transaction
        with_children = await self._read(having)
        parents = [p for p in parents if p[0] in with_children]
        if not parents:
            return [], []

        def op(conn: sqlite3.Connection) -> tuple[list[Job], list[str]]:
            cancelled: list[Job] = []
            running: list[str] = []
            for parent, status in parents:
                rows = conn.execute(
                    "UPDATE jobs SET status='cancelled', error=?, completed_at=?, updated_at=?"
                    " WHERE parent_job_id=? AND parent_job_id != '' AND status IN ('queued', 'paused')"
                    f" RETURNING {LIST_SELECT}",
                    (parent_ended_reason(parent, status), now, now, parent),
                ).fetchall()
                cancelled.extend(q.job_row(r) for r in rows)
                running.extend(
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM jobs WHERE parent_job_id=? AND parent_job_id != '' AND status='running'",
                        (parent,),
                    )
                )
            return cancelled, running

        return await self._write(op)

    async def orphaned_children(self) -> list[tuple[str, str]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return [
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT DISTINCT p.id, p.status FROM jobs AS c JOIN jobs AS p ON p.id = c.parent_job_id"
                    " WHERE c.parent_job_id != '' AND p.status IN ('failed', 'cancelled')"
                    # untouched since the parent ended (an operator's retry of a child, or a child added
                    # later, is left alone), or already running then
                    " AND ((c.status IN ('queued', 'paused') AND c.updated_at <= p.completed_at)"
                    "  OR (c.status = 'running' AND c.started_at <= p.completed_at))"
                )
            ]

        return await self._read(op)

    async def recover(self, now: float) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            # the attempt is not charged; a job running at CRASH_LIMIT server crashes in a row is
            # the likely cause and fails (charged) instead of taking the server down forever
            rows = conn.execute(
                f"UPDATE jobs SET status=CASE WHEN crashes+1>=? THEN 'failed' ELSE 'queued' END,"
                f" run_attempts=CASE WHEN crashes+1>=? THEN run_attempts ELSE MAX(run_attempts-1, 0) END,"
                f" interruptions=CASE WHEN crashes+1>=? THEN interruptions ELSE interruptions+1 END,"
                f" completed_at=CASE WHEN crashes+1>=? THEN ? ELSE 0 END,"
                f" crashes=crashes+1, run_at=?, updated_at=?,"
                f" error=CASE WHEN crashes+1>=? THEN ? ELSE ? END"
                f" WHERE status='running' RETURNING {LIST_SELECT}",
                (
                    CRASH_LIMIT,
                    CRASH_LIMIT,
                    CRASH_LIMIT,
                    CRASH_LIMIT,
                    now,
                    now,
                    now,
                    CRASH_LIMIT,
                    SERVER_CRASHED_ERROR,
                    SERVER_INTERRUPTED_ERROR,
                ),
            ).fetchall()
            jobs = [q.job_row(r) for r in rows]
            conn.executemany(
                "INSERT OR REPLACE INTO attempts (job_seq, number, started_at, ended_at, outcome, error,"
                " plugin, node) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        j.seq,
                        j.attempts,
                        j.started_at,
                        now,
                        OUTCOME_CRASHED if j.status == "failed" else OUTCOME_INTERRUPTED,
                        "server stopped while the attempt ran",
                        j.plugin,
                        j.node,
                    )
                    for j in jobs
                ],
            )
            return jobs

        return await self._write(op)

    async def prune(
        self,
        finished_before: float,
        statuses: Collection[str],
        limit: int,
        *,
        handlers: Collection[str] | None = None,
        exclude_handlers: Collection[str] = (),
    ) -> int:
        sql, args = prune_select(finished_before, statuses, limit, handlers, exclude_handlers)

        def op(conn: sqlite3.Connection) -> int:
            seqs = [r[0] for r in conn.execute(sql, args).fetchall()]
            if not seqs:
                return 0
            q = ",".join("?" * len(seqs))
            conn.execute(f"DELETE FROM attempts WHERE job_seq IN ({q})", seqs)
            conn.execute(f"DELETE FROM job_logs WHERE job_seq IN ({q})", seqs)
            conn.execute(f"DELETE FROM jobs WHERE seq IN ({q})", seqs)
            return len(seqs)

        return await self._write(op)

    async def delete(self, ids: Sequence[str], statuses: Collection[str]) -> list[str]:
        sts = tuple(statuses)
        wanted = list(dict.fromkeys(ids))

        def op(conn: sqlite3.Connection) -> list[str]:
            out: list[str] = []
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                rows = conn.execute(
                    f"SELECT seq, id FROM jobs WHERE id IN ({','.join('?' * len(chunk))})"
                    f" AND status IN ({','.join('?' * len(sts))})",
                    (*chunk, *sts),
                ).fetchall()
                if not rows:
                    continue
                seqs = [r[0] for r in rows]
                q = ",".join("?" * len(seqs))
                conn.execute(f"DELETE FROM attempts WHERE job_seq IN ({q})", seqs)
                conn.execute(f"DELETE FROM job_logs WHERE job_seq IN ({q})", seqs)
                conn.execute(f"DELETE FROM jobs WHERE seq IN ({q})", seqs)
                out.extend(r[1] for r in rows)
            return out

        return await self._write(op)

    # ------------------------------------------------------------ paused handlers
    async def hold_handler(self, name: str, reason: str, now: float) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            self._any_paused = True
            conn.execute(
                "INSERT INTO paused_handlers (name, reason, paused_at) VALUES (?,?,?) ON CONFLICT(name) DO NOTHING",
                (name, reason, now),
            )
            rows = conn.execute(
                f"UPDATE jobs SET status='paused', pause_reason=?, updated_at=?"
                f" WHERE status='queued' AND {OF_HANDLER} RETURNING {LIST_SELECT}",
                (REASON_HANDLER, now, name),
            ).fetchall()
            return sorted((q.job_row(r) for r in rows), key=lambda j: j.seq)

        return await self._write(op)

    async def release_handler(self, name: str, now: float) -> list[Job]:
        def op(conn: sqlite3.Connection) -> list[Job]:
            conn.execute("DELETE FROM paused_handlers WHERE name=?", (name,))
            # (a rolled-back delete leaves the row, and this True)
            self._any_paused = conn.execute("SELECT 1 FROM paused_handlers LIMIT 1").fetchone() is not None
            rows = conn.execute(
                f"UPDATE jobs SET status='queued', pause_reason='', updated_at=?"
                f" WHERE status='paused' AND pause_reason=? AND {OF_HANDLER} RETURNING {LIST_SELECT}",
                (now, REASON_HANDLER, name),
            ).fetchall()
            return sorted((q.job_row(r) for r in rows), key=lambda j: j.seq)

        return await self._write(op)

    async def _held(self, query: q.Query | None) -> list[Job]:  # see Store.hold_queued
        if query is None:
            return []
        sql, args = query

        def op(conn: sqlite3.Connection) -> list[Job]:
            return sorted((q.job_row(r) for r in conn.execute(sql, args).fetchall()), key=lambda j: j.seq)

        return await self._write(op)

    async def spend(self, day_start: float, month_start: float) -> list[tuple[str, float, float, int]]:
        # the engine re-reads the spend every 30 s, with or without budgets: this visits every job
        # finished this month. Its pages, which no console read wants, filled the reader's cache,
        # and SQLite's GROUP BY sorted every row in memory first; freed, both stayed in the heap
        # (server RSS +14 % over 200,000 jobs, +4 % without this read). So the read goes through
        # a small cache that recycles its pages, and the few sums are kept in Python.
        sql, args = q.spend_jobs(D, month_start)

        def op(conn: sqlite3.Connection) -> list[tuple[str, float, float, int]]:
            conn.execute(f"PRAGMA cache_size={SCAN_CACHE}")
            try:
                return q.spend_sum(conn.execute(sql, args), day_start, month_start)
            finally:
                conn.execute(f"PRAGMA cache_size={READER_CACHE}")

        return await self._read(op)

    async def paused_handlers(self) -> dict[str, tuple[str, float]]:
        def op(conn: sqlite3.Connection) -> dict[str, tuple[str, float]]:
            return q.paused_rows(conn.execute(q.PAUSED_HANDLERS))

        return await self._read(op)

    # ------------------------------------------------------------ reads
    async def get(self, job_id: str, *, with_payload: bool = True) -> Job | None:
        sql, args = q.get_job(D, job_id, with_payload)

        def op(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(sql, args).fetchone()
            return q.job_row(row) if row else None

        return await self._read(op)

    async def detail(self, job_id: str) -> JobDetail | None:
        def op(conn: sqlite3.Connection) -> JobDetail | None:
            row = conn.execute(*q.get_job(D, job_id)).fetchone()
            if row is None:
                return None
            job = q.job_row(row)
            attempts = q.job_attempts_of(job, conn.execute(*q.job_attempts(D, job)))
            logs = [q.log_row(job, r) for r in conn.execute(*q.job_logs(D, job))]
            return JobDetail(job, attempts, logs)

        return await self._read(op)

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
        sql, args = q.list_jobs(D, flt, limit, after_seq, oldest_first, offset, sort_by)

        def op(conn: sqlite3.Connection) -> list[Job]:
            return [q.job_row(r) for r in conn.execute(sql, args)]

        return await self._read(op)

    async def count(self, flt: JobFilter, cap: int) -> dict[str, int]:
        """Counts by status. Many consoles ask the same count at the same moment (each refetches
        when jobs change): a call that finds the same count still waiting for a reader thread
        shares its answer, which is then read after this call began, so it is as fresh. The read
        is abandoned (interrupted in SQLite, like any read whose caller went away) when every
        caller sharing it is cancelled; while one still waits it goes on."""
        key = (repr(flt), cap)
        flight = self._count_flights.get(key)
        if flight is None or flight.started[0]:
            sql, args = q.count_jobs(D, flt, cap)
            started = [False]

            def op(conn: sqlite3.Connection) -> dict[str, int]:
                started[0] = True  # from here on, a caller arriving may miss what is committed next
                return q.counts_by_status(conn.execute(sql, args).fetchone())

            flight = _CountFlight(started, asyncio.ensure_future(self._read(op)))
            self._count_flights[key] = flight
            flight.fut.add_done_callback(lambda _: self._count_landed(key, flight))
        flight.waiters += 1
        try:
            return dict(await asyncio.shield(flight.fut))
        except asyncio.CancelledError:
            if flight.waiters == 1 and not flight.fut.done():  # the last caller went away
                self._count_landed(key, flight)  # nobody joins a read being abandoned
                flight.fut.cancel()
            raise
        finally:
            flight.waiters -= 1

    def _count_landed(self, key: tuple[str, int], flight: _CountFlight) -> None:
        if self._count_flights.get(key) is flight:
            del self._count_flights[key]
        if flight.fut.done() and not flight.fut.cancelled():
            flight.fut.exception()  # retrieved: a failure nobody waits for is not logged as lost

    async def handler_counts(self, statuses: Collection[str]) -> dict[str, dict[str, int]]:
        sts = tuple(statuses)

        def op(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for st in sts:
                for handler, n in conn.execute(
                    "SELECT handler, COUNT(*) FROM jobs WHERE status=? GROUP BY handler", (st,)
                ):
                    out.setdefault(handler, {})[st] = n
            return out

        return await self._read(op)

    async def select_ids(self, flt: JobFilter, limit: int) -> builtins.list[str]:
        sql, args = q.select_ids(D, flt, limit)

        def op(conn: sqlite3.Connection) -> list[str]:
            return [r[0] for r in conn.execute(sql, args)]

        return await self._read(op)

    async def next_due(self, handlers: Collection[str], now: float) -> float | None:
        names = list(handlers)
        if not names:
            return None
        sql, args = q.next_due(D, names, now)

        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(sql, args).fetchone()
            return row[0] if row and row[0] is not None else None

        return await self._read(op)

    # ------------------------------------------------------------ metrics
    async def add_metrics(self, node: str, rows: Sequence[tuple[int, int, str, dict[str, Any]]]) -> None:
        from pulse_tui.pulse.metrics import Bucket

        def op(conn: sqlite3.Connection) -> None:
            for step, ts, handler, data in rows:
                old = conn.execute(
                    "SELECT data FROM metric_buckets WHERE step=? AND ts=? AND handler=? AND node=?",
                    (step, ts, handler, node),
                ).fetchone()
                b = Bucket.from_json(data)
                if old is not None:
                    b.add(Bucket.from_json(json.loads(old[0])))
                conn.execute(
                    "INSERT OR REPLACE INTO metric_buckets (node, step, ts, handler, data) VALUES (?,?,?,?,?)",
                    (node, step, ts, handler, json.dumps(b.to_json(), separators=(",", ":"))),
                )

        await self._write(op)

    async def load_metrics(
        self, step: int, since: int, handler: str | None
    ) -> builtins.list[tuple[int, str, dict[str, Any]]]:
        sql, args = q.load_metrics(D, step, since, handler)

        def op(conn: sqlite3.Connection) -> list[tuple[int, str, dict[str, Any]]]:
            return q.metric_rows(conn.execute(sql, args))

        return await self._read(op)

    async def prune_metrics(self, minute_before: float, hour_before: float) -> int:
        def op(conn: sqlite3.Connection) -> int:
            a = conn.execute("DELETE FROM metric_buckets WHERE step=60 AND ts<?", (minute_before,)).rowcount
            b = conn.execute("DELETE FROM metric_buckets WHERE step=3600 AND ts<?", (hour_before,)).rowcount
            return a + b

        return await self._write(op)

    async def queue_gauges(self, now: float) -> dict[str, dict[str, float]]:
        sql, args = q.queue_gauges(D, now)

        def op(conn: sqlite3.Connection) -> dict[str, dict[str, float]]:
            return q.gauges(conn.execute(sql, args))

        return await self._read(op)

    # ------------------------------------------------------------ schedules
    async def insert_schedule(self, s: Schedule) -> None:
        values = [getattr(s, c) for c in SCHEDULE_COLS]

        def op(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM schedules WHERE id=?", (s.id,)).fetchone() is not None:
                raise DuplicateSchedule(s.id)
            try:
                conn.execute(
                    f"INSERT INTO schedules ({SCHEDULE_SELECT}) VALUES ({','.join('?' * len(values))})",
                    values,
                )
            except sqlite3.IntegrityError as exc:
                if not _is_unique(exc):
                    raise
                raise AlreadyDeclared(s.owner, s.handler) from None

        await self._write(op)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        sql, args = q.get_schedule(D, schedule_id)

        def op(conn: sqlite3.Connection) -> Schedule | None:
            row = conn.execute(sql, args).fetchone()
            return q.schedule_row(row) if row else None

        return await self._read(op)

    async def list_schedules(self, flt: ScheduleFilter, limit: int) -> builtins.list[Schedule]:
        sql, args = q.list_schedules(D, flt, limit)

        def op(conn: sqlite3.Connection) -> list[Schedule]:
            return [q.schedule_row(r) for r in conn.execute(sql, args)]

        return await self._read(op)

    async def update_schedule(
        self, schedule_id: str, allowed_states: Collection[str], changes: dict[str, Any]
    ) -> Schedule | None:
        cols = schedule_changes(changes)
        allowed = tuple(allowed_states)

        def op(conn: sqlite3.Connection) -> Schedule | None:
            row = _update_if(
                conn, "schedules", "state", SCHEDULE_SELECT, schedule_id, allowed, cols, changes, "schedule"
            )
            return q.schedule_row(row) if row is not None else None

        return await self._write(op)

    async def due_schedules(self, now: float, limit: int) -> builtins.list[Schedule]:
        sql, args = q.due_schedules(D, now, limit)

        def op(conn: sqlite3.Connection) -> list[Schedule]:
            return [q.schedule_row(r) for r in conn.execute(sql, args)]

        return await self._read(op)

    async def next_schedule_at(self) -> float | None:
        def op(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(q.NEXT_SCHEDULE_AT).fetchone()
            return row[0] if row and row[0] is not None else None

        return await self._read(op)

    async def fire_schedule(
        self,
        schedule_id: str,
        expected_next: float | None,
        changes: dict[str, Any],
        job: Job | None,
        ex: Execution,
    ) -> Schedule | None:
        cols = schedule_changes(changes)
        inc = 0 if ex.status == EX_SKIPPED else 1
        cond_args: tuple[str | float, ...]
        if expected_next is None:
            cond, cond_args = "state != ?", (DELETED,)
        else:
            cond, cond_args = "state = 'active' AND next_run_at = ?", (expected_next,)

        def op(conn: sqlite3.Connection) -> Schedule | None:
            row = conn.execute(
                f"UPDATE schedules SET {', '.join(f'{c}=?' for c in cols)}, run_count=run_count+?"
                f" WHERE id=? AND {cond} RETURNING {SCHEDULE_SELECT}",
                (*[changes[c] for c in cols], inc, schedule_id, *cond_args),
            ).fetchone()
            if row is None:
                return None
            if job is not None:
                _insert_job(conn, job)
            conn.execute(
                f"INSERT INTO schedule_executions ({', '.join(EXECUTION_COLS)})"
                f" VALUES ({','.join('?' * len(EXECUTION_COLS))})",
                [getattr(ex, c) for c in EXECUTION_COLS],
            )
            return q.schedule_row(row)

        return await self._write(op)

    async def end_execution(
        self, job_id: str, status: str, completed_at: float, error: str
    ) -> Schedule | None:
        def op(conn: sqlite3.Connection) -> Schedule | None:
            row = conn.execute(
                "UPDATE schedule_executions SET status=?, completed_at=?,"
                " duration_ms=CAST(MAX(0, (? - started_at) * 1000) AS INTEGER), error=?"
                " WHERE job_id=? RETURNING schedule_id, id",
                (status, completed_at, completed_at, error, job_id),
            ).fetchone()
            if row is None:
                return None
            srow = conn.execute(
                f"UPDATE schedules SET last_status=? WHERE id=? AND last_execution_id=?"
                f" RETURNING {SCHEDULE_SELECT}",
                (status, row[0], row[1]),
            ).fetchone()
            if srow is None:
                srow = conn.execute(*q.get_schedule(D, row[0])).fetchone()
            return q.schedule_row(srow) if srow else None

        return await self._write(op)

    async def prune_executions(self, finished_before: float, limit: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM schedule_executions WHERE seq IN (SELECT seq FROM schedule_executions"
                " WHERE status != 'running' AND completed_at < ? ORDER BY seq LIMIT ?)",
                (finished_before, limit),
            ).rowcount

        return await self._write(op)

    async def list_executions(
        self, schedule_id: str, limit: int, before_seq: int = 0
    ) -> builtins.list[Execution]:
        sql, args = q.list_executions(D, schedule_id, limit, before_seq)

        def op(conn: sqlite3.Connection) -> list[Execution]:
            return [q.execution_row(r) for r in conn.execute(sql, args)]

        return await self._read(op)
