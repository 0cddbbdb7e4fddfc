"""The store interface. Backends hide their SQL dialect behind it; the engine speaks only this.

Semantics every backend keeps:
- `seq` is a monotonic integer per job (insertion order) used for FIFO and keyset pagination;
- `claim` moves queued jobs whose `run_at` has come to running, highest priority first, FIFO
  within a priority, atomically (two claimers never get the same job);
- every method that changes jobs returns or accepts whole rows so the engine can publish events.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pulse_tui.pulse.jobs import Attempt, Job, JobDetail, JobFilter, LogEntry
from pulse_tui.pulse.schedules import EXECUTION_COLS, SCHEDULE_COLS, Execution, Schedule, ScheduleFilter

if TYPE_CHECKING:
    from pulse_tui.pulse.budgets import Fit
    from pulse_tui.pulse.store.sql import Dialect


def fit_condition(fit: Fit, held: bool, param: str) -> tuple[str, float]:
    """SQL on `cost_estimate` for the jobs a budget fit holds (`held`) or lets run, with `param`
    the placeholder of the one value it takes: (condition, value). See budgets.Fit.holds."""
    if fit.unestimated_held:
        if held:
            return f"(cost_estimate <= 0 OR cost_estimate > {param})", fit.headroom
        return f"(cost_estimate > 0 AND cost_estimate <= {param})", fit.headroom
    # only estimated jobs over the headroom are held (the headroom is positive: nothing reached)
    return f"cost_estimate {'>' if held else '<='} {param}", max(fit.headroom, 0.0)


# Columns of `jobs` shared by every backend, named like the Job fields (payload/result are kept
# apart so listing queries can skip them).
JOB_COLS: tuple[str, ...] = (
    "id", "handler", "status", "seq", "priority", "error", "progress_current", "progress_total",
    "attempts", "run_attempts", "max_attempts", "retry_count", "timeout_secs", "source",
    "parent_job_id", "cost_estimate", "cost_actual", "created_at", "started_at", "completed_at",
    "updated_at", "run_at", "plugin", "plugin_version", "node", "interruptions", "crashes", "pause_reason",
)  # fmt: skip
LIST_SELECT = ", ".join(JOB_COLS)
FULL_SELECT = LIST_SELECT + ", payload, result"
SCHEDULE_SELECT = ", ".join(SCHEDULE_COLS)
EXECUTION_SELECT = ", ".join(EXECUTION_COLS) + ", seq"
# schedule columns a change may set (fire_schedule / update_schedule)
SCHEDULE_WRITABLE = frozenset(SCHEDULE_COLS) - {"id", "created_at"}


def schedule_changes(changes: dict[str, Any]) -> list[str]:
    """The columns a schedule change sets, in order; ValueError for one it may not set."""
    bad = set(changes) - SCHEDULE_WRITABLE
    if bad:
        raise ValueError(f"schedule columns {sorted(bad)} cannot be written")
    return list(changes)


@dataclass(slots=True)
class Finish:
    """The end of one attempt: the job's new row values plus the attempt record and logs. A
    completed attempt is stored in the job row only (`sql.stores_attempt`): the job's started_at,
    completed_at, plugin, plugin_version and node are then the attempt's."""

    job: Job  # full new state (status completed/failed/cancelled/queued)
    attempt: Attempt
    logs: list[LogEntry] = field(default_factory=list)
    write_result: bool = True  # result/payload columns changed


class Store(abc.ABC):
    url: str
    node: str
    dialect: Dialect  # how its SQL differs (store.sql builds the statements both backends share)
    # "" while the store can write; else what stops it (e.g. "the job store's disk is full"),
    # reported to clients in ServerInfo.store_condition
    condition: str = ""
    # shared (multi-node) stores: seconds a node's claim on a running job lasts unless renewed by
    # `heartbeat`; None on single-node stores (nothing to renew, no other node to ask)
    lease_secs: float | None = None
    # shared stores call it when another node changed schedules (their ids; True: in a way that may
    # bring a run earlier); set by the scheduler
    on_schedule_change: Callable[[builtins.list[str], bool], None] | None = None

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    # ---- writes
    @abc.abstractmethod
    async def insert(self, jobs: Sequence[Job]) -> list[Job]:
        """Insert new jobs; returns them with `seq` assigned."""

    async def insert_stream(self, chunks: Iterable[Sequence[Job]]) -> None:
        """Insert the jobs of every chunk (in order, `seq` assigned) in one transaction, or none
        (an exception from the iterator stores none). A store may write a chunk while the next
        one is made; this one takes them all, then inserts."""
        await self.insert([job for chunk in chunks for job in chunk])

    @abc.abstractmethod
    async def claim(self, limit: int, handlers: Collection[str], now: float) -> list[Job]:
        """Claim up to `limit` due queued jobs whose handler is in `handlers`; returns them running."""

    @abc.abstractmethod
    async def finish(self, items: Sequence[Finish]) -> None:
        """Record attempt ends (job row + attempt + logs) in one transaction."""

    @abc.abstractmethod
    async def set_progress(self, updates: Sequence[tuple[str, int, int, float | None, float]]) -> None:
        """(job_id, current, total, cost_or_None, updated_at) for running jobs."""

    @abc.abstractmethod
    async def transition(
        self, job_id: str, allowed_from: Collection[str], changes: dict[str, Any]
    ) -> Job | None:
        """Atomically apply `changes` if the job's status is in `allowed_from`. Returns the new row,
        or None if the job exists but its status did not allow it. Raises NotFound if no such job."""

    @abc.abstractmethod
    async def cancel_children(
        self, parents: Sequence[tuple[str, str]], now: float
    ) -> tuple[list[Job], list[str]]:
        """Children of ended parents, given as (parent id, its status): in one transaction, cancel
        the queued and paused ones (error "parent <id> <status>", see jobs.parent_ended_reason)
        and return (those rows, the ids of the running ones). Grandchildren are left to the
        caller (a cancelled child is an ended parent in turn)."""

    @abc.abstractmethod
    async def orphaned_children(self) -> list[tuple[str, str]]:
        """Parents that ended failed or cancelled while children of theirs are still unfinished,
        as (parent id, its status): what a server killed between a parent's end and the
        cancelling of its children leaves. A queued or paused child counts when nothing changed
        it since the parent ended (a child an operator retried or added later does not), a
        running one when it was running then. Read at start (see `cancel_children`)."""

    @abc.abstractmethod
    async def recover(self, now: float) -> list[Job]:
        """Re-queue jobs left running by a dead server (this node's, or expired leases); their open
        attempt is recorded as interrupted and not charged (`interruptions` + 1, `crashes` + 1). A
        job whose `crashes` reaches CRASH_LIMIT fails instead (outcome `crashed`). Returns the rows."""

    @abc.abstractmethod
    async def prune(
        self,
        finished_before: float,
        statuses: Collection[str],
        limit: int,
        *,
        handlers: Collection[str] | None = None,
        exclude_handlers: Collection[str] = (),
    ) -> int:
        """Delete up to `limit` jobs (with attempts and logs) in `statuses` that finished before
        `finished_before`: of `handlers` only when given, never of `exclude_handlers`."""

    @abc.abstractmethod
    async def delete(self, ids: Sequence[str], statuses: Collection[str]) -> list[str]:
        """Delete these jobs (with attempts and logs) where their status is in ``statuses``;
        returns the ids deleted."""

    # ---- paused handlers (a table, so a pause survives restarts and is shared by every node)
    @abc.abstractmethod
    async def hold_handler(self, name: str, reason: str, now: float) -> list[Job]:
        """Record handler `name` as paused (kept if it already is) and hold its queued jobs (handler
        `name` or `plugin/name`): they become paused with pause_reason `handler_paused`. Returns
        the rows changed. The claim never takes a job of a paused handler, whatever its status."""

    @abc.abstractmethod
    async def release_handler(self, name: str, now: float) -> list[Job]:
        """Forget that `name` is paused and re-queue its jobs held for that reason (seq unchanged:
        they keep their FIFO place). Returns the rows changed."""

    @abc.abstractmethod
    async def paused_handlers(self) -> dict[str, tuple[str, float]]:
        """{name: (reason, paused_at)} of every paused handler."""

    async def hold_queued(
        self,
        handlers: Collection[str] | None,
        reason: str,
        now: float,
        keep: Collection[str] = (),
        fit: Fit | None = None,
    ) -> list[Job]:
        """Hold the queued jobs of these handlers (bare names, qualified forms too; None = every
        handler but those in `keep`): paused with `reason`. With a budget `fit`, only the jobs it
        holds (by their `cost_estimate`, see budgets.Fit). A job an operator released over its
        budget (`budget_override`) is left queued. Returns the rows changed."""
        from pulse_tui.pulse.store import sql

        return await self._held(sql.hold_or_release(self.dialect, True, handlers, reason, now, keep, fit))

    async def release_held(
        self,
        handlers: Collection[str] | None,
        reason: str,
        now: float,
        keep: Collection[str] = (),
        fit: Fit | None = None,
    ) -> list[Job]:
        """Re-queue the jobs of these handlers (None = every handler but those in `keep`) paused
        with `reason`, except those of a paused handler; with a budget `fit`, only the jobs it
        does not hold. Returns the rows changed."""
        from pulse_tui.pulse.store import sql

        return await self._held(sql.hold_or_release(self.dialect, False, handlers, reason, now, keep, fit))

    @abc.abstractmethod
    async def _held(self, query: tuple[str, builtins.list[Any]] | None) -> builtins.list[Job]:
        """Run a `hold_or_release` UPDATE (None: nothing to do); the changed rows in seq order."""

    @abc.abstractmethod
    async def spend(self, day_start: float, month_start: float) -> list[tuple[str, float, float, int]]:
        """Cost of the jobs finished since `month_start`: (handler, bucket, sum of cost_actual,
        jobs) where bucket is `day_start` for those finished since `day_start`, else
        `month_start`."""

    # ---- reads
    @abc.abstractmethod
    async def get(self, job_id: str, *, with_payload: bool = True) -> Job | None: ...

    @abc.abstractmethod
    async def detail(self, job_id: str) -> JobDetail | None: ...

    @abc.abstractmethod
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
        """A page of jobs. With ``sort_by`` (a key of jobs.SORT_COLUMNS) the order is that
        column's (descending unless ``oldest_first``) and only ``offset`` pages (``after_seq``
        must be None)."""

    @abc.abstractmethod
    async def count(self, flt: JobFilter, cap: int) -> dict[str, int]: ...

    @abc.abstractmethod
    async def handler_counts(self, statuses: Collection[str]) -> dict[str, dict[str, int]]: ...

    @abc.abstractmethod
    async def select_ids(self, flt: JobFilter, limit: int) -> builtins.list[str]: ...

    @abc.abstractmethod
    async def next_due(self, handlers: Collection[str], now: float) -> float | None:
        """Earliest run_at > now among queued jobs for these handlers (None when none)."""

    # ---- metrics (pulse/metrics.py): per-node buckets, readers sum every node's rows
    @abc.abstractmethod
    async def add_metrics(self, node: str, rows: Sequence[tuple[int, int, str, dict[str, Any]]]) -> None:
        """Add (step, bucket start, handler, counters) to this node's rows, merging with what is
        stored (counters are summed: see metrics.Bucket)."""

    @abc.abstractmethod
    async def load_metrics(
        self, step: int, since: int, handler: str | None
    ) -> builtins.list[tuple[int, str, dict[str, Any]]]:
        """Rows of every node with this step and bucket start >= since: (start, handler, counters)."""

    @abc.abstractmethod
    async def prune_metrics(self, minute_before: float, hour_before: float) -> int:
        """Drop minute rows older than `minute_before` and hour rows older than `hour_before`."""

    @abc.abstractmethod
    async def queue_gauges(self, now: float) -> dict[str, dict[str, float]]:
        """Per handler: queued, due (queued with run_at <= now), running, paused counts and
        oldest_due (the smallest run_at of a due job; 0 when none)."""

    # ---- schedules (see pulse/schedules.py)
    @abc.abstractmethod
    async def insert_schedule(self, s: Schedule) -> None:
        """Store a new schedule; ValidationError if the id is taken."""

    @abc.abstractmethod
    async def get_schedule(self, schedule_id: str) -> Schedule | None: ...

    @abc.abstractmethod
    async def list_schedules(self, flt: ScheduleFilter, limit: int) -> builtins.list[Schedule]:
        """Oldest first; without states in the filter, every state but deleted."""

    @abc.abstractmethod
    async def update_schedule(
        self, schedule_id: str, allowed_states: Collection[str], changes: dict[str, Any]
    ) -> Schedule | None:
        """Apply `changes` if the state is in `allowed_states`: the new row, or None if the state
        did not allow it. NotFound if no such schedule."""

    @abc.abstractmethod
    async def due_schedules(self, now: float, limit: int) -> builtins.list[Schedule]:
        """Active schedules whose next_run_at <= now, earliest first."""

    @abc.abstractmethod
    async def next_schedule_at(self) -> float | None:
        """The earliest next_run_at among active schedules."""

    @abc.abstractmethod
    async def fire_schedule(
        self,
        schedule_id: str,
        expected_next: float | None,
        changes: dict[str, Any],
        job: Job | None,
        ex: Execution,
    ) -> Schedule | None:
        """Claim one run, in one transaction: apply `changes` (run_count +1 unless the execution is
        skipped) if the schedule is active and its next_run_at still equals `expected_next`
        (None: a run-now, any state but deleted), insert `job` (if any) and the execution.
        Returns the new row, or None when the claim lost (another node fired this run)."""

    @abc.abstractmethod
    async def end_execution(
        self, job_id: str, status: str, completed_at: float, error: str
    ) -> Schedule | None:
        """Record the end of the run whose job is `job_id`; returns its schedule (None if the job
        is not a scheduled run)."""

    @abc.abstractmethod
    async def prune_executions(self, finished_before: float, limit: int) -> int:
        """Delete up to `limit` ended runs (not running) that ended before `finished_before`."""

    @abc.abstractmethod
    async def list_executions(
        self, schedule_id: str, limit: int, before_seq: int = 0
    ) -> builtins.list[Execution]:
        """Newest first; `before_seq` pages back."""

    # ---- multi-node (no-ops for single-node stores)
    async def heartbeat(self, now: float, running: Sequence[str] | None = None) -> None:  # noqa: B027
        """Extend the leases of the jobs this node runs (`running`: the engine's own list) and
        re-queue jobs whose lease expired."""

    async def listen(self, on_event: Callable[[builtins.list[Job]], Awaitable[None]]) -> None:  # noqa: B027
        """Subscribe to other nodes' changes (PostgreSQL LISTEN); no-op on single-node stores."""

    async def notify(self, job_ids: Sequence[str]) -> None:  # noqa: B027
        """Tell other nodes these jobs changed (no-op on single-node stores)."""

    async def request_cancel(self, job_id: str) -> str | None:
        """Ask the node running `job_id` to cancel it: that node's name, or None when the job is
        not running (anymore). Single-node stores have no other node: None."""
        return None

    async def cancel_requests(self) -> builtins.list[str]:
        """Ids of jobs running on this node that another node asked to cancel."""
        return []
