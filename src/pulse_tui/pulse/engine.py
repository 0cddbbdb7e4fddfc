"""The queue engine: validation at the door, dispatch, retries, timeouts, cancellation, recovery.

One task owns each resource:
- the dispatcher task owns claiming: it sleeps on an Event (set by enqueue, a finished job when
  capacity was the limit, a due retry timer, or a change of routes) — never a polling loop;
- each running job has one task that owns its attempt from its start to its end; the ends of one
  loop turn are then stored as one group by one writer task (_write_ends); a job stays in
  `_running` until its end is stored (its concurrency slot is freed when its handler part ends);
- the deadlines of running jobs are kept in 5 ms slots, one timer per slot (_DeadlineSlot), not
  one `asyncio.timeout` per job;
- the store's writer task owns the database connection (group commits, see store/sqlite.py).

Guarantees: FIFO within priority (the store's claim order), every attempt recorded, an operator
cancel never reported as a failure, a job running when the server stops is re-queued (attempt
recorded as interrupted), timeouts enforced by Pulse (the handler's task is cancelled).

Charging: an attempt cut short by something other than the job — a plugin crash it was caught in,
a reload or stop of its plugin instance, a server shutdown or crash, a lost lease — is recorded
`interrupted`, does not count against `max_attempts` (`run_attempts`), and is counted apart
(`interruptions`). A job caught in CRASH_LIMIT crashes in a row (`crashes`) is the likely cause and
fails with outcome `crashed`. A job whose streak reached PROBATION_AFTER crashes is on probation:
such jobs run one at a time per plugin, so the last crash can tell the culprit from its neighbours.
Probation starts at the second crash, not the first: after one crash (a node dying with fifty jobs
running, a plugin killed by the OOM killer) everything re-runs in parallel at full speed; only jobs
caught in two crashes in a row are serialised, and the culprit then crashes alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import random
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pulse_tui.pulse import budgets as bud
from pulse_tui.pulse.errors import (
    Conflict,
    DuplicateJob,
    NotFound,
    PermissionDenied,
    Precondition,
    PulseError,
    Unavailable,
    UnknownHandler,
    ValidationError,
)
from pulse_tui.pulse.events import EventBus
from pulse_tui.pulse.handlers import Handler, HandlerError, HandlerResult, Interrupted, JobContext, Router
from pulse_tui.pulse.jobs import (
    CANCELLED,
    COMPLETED,
    CRASH_LIMIT,
    DEFAULT_MAX_ATTEMPTS,
    FAILED,
    MAX_ERROR_BYTES,
    MAX_LOG_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    OUTCOME_CANCELLED,
    OUTCOME_COMPLETED,
    OUTCOME_CRASHED,
    OUTCOME_FAILED,
    OUTCOME_INTERRUPTED,
    OUTCOME_TIMEOUT,
    OUTCOME_UNAVAILABLE,
    PAUSED,
    QUEUED,
    REASON_BUDGET,
    REASON_HANDLER,
    REASON_USER,
    RUNNING,
    STATUSES,
    Attempt,
    Job,
    JobDetail,
    JobFilter,
    LogEntry,
    cap_text,
    check_operator_retry,
    check_pause,
    check_report,
    check_resume,
    check_transition,
    handler_base,
    new_job_id,
    new_job_ids,
    parent_ended_reason,
    sort_sql,
)
from pulse_tui.pulse.store.base import Finish, Store
from pulse_tui.vocab import FINISHED

if TYPE_CHECKING:
    from pulse_tui.pulse.metrics import Recorder

PROBATION_AFTER = CRASH_LIMIT - 1  # crashes in a row before a job runs alone (see the docstring)
log = logging.getLogger("pulse.engine")

JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")  # used with fullmatch
MAX_LIST_LIMIT = 1000
MAX_SELECT_LIMIT = 100_000
MAX_ATTEMPTS_LIMIT = 100
ENQUEUE_MANY_MAX = 100_000  # jobs in one enqueue_many call
BULK_CHUNK = 2_000  # enqueue_many validates (and the store may write) in chunks of this many
SAME_SPECS_MAX = 64  # distinct specs an enqueue_many call remembers to validate repeats once
# Job's fields after the id, in order: a job made like another is Job(id, *its values of these)
# (every field's value is immutable: no default factories)
_JOB_REST = tuple(f.name for f in dataclasses.fields(Job))[1:]
MAX_LOGS_PER_ATTEMPT = 2000
EVENT_RANK_MEMORY = 100_000  # jobs whose last published event order is remembered (see _fresh)
FINISH_RETRY_DELAYS = (0.1, 0.5, 2.0, None)  # writing an attempt's end: 4 tries, then give up
REMOTE_CANCEL_WAIT = 10.0  # seconds a cancel waits for the node running the job
CANCEL_LAPS = 20  # a cancel follows at most this many moves of the job (claimed, re-queued, ...)
SPEND_REFRESH_SECS = 30.0  # spend re-read from the store (other nodes' jobs; period roll-over)
# while no budget is reached, queued jobs with a cost estimate are re-checked against the spend at
# most this often (a sweep of the queued jobs; new ones are checked at the door every time)
BUDGET_RECHECK_SECS = 1.0
DEFAULT_MAX_CHILDREN = 10_000  # children per job ([server] max_children)
DEFAULT_MAX_CHILD_DEPTH = 5  # levels of children below a top job ([server] max_child_depth)
CASCADE_BATCH = 500  # ended parents whose children one store call cancels
END_LOST = (
    "it stays running in the store and is re-queued at restart (or when its lease lapses on a shared store)"
)
# running jobs' deadlines are kept in slots of this many seconds, one timer per slot (not one per
# job): a job's timeout fires at most this much late, never early
DEADLINE_SLOT = 0.005


def _json_equal(a: bytes, b: bytes) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return False


class _Run:
    """A job running on this node: the task that owns its attempt and what it reported so far."""

    __slots__ = (
        "job",
        "handler",
        "task",
        "logs",
        "cancel_reason",
        "cancel_message",
        "plugin",
        "cancellable",
        "clamp_logged",
        "children",
        "depth",
        "holds",
        "slot",
        "expired",
        "ending",
        "ended",
    )

    def __init__(self, job: Job, handler: Handler | None) -> None:
        self.job = job
        self.handler = handler
        self.plugin = handler.plugin if handler is not None else ""
        self.task: asyncio.Task[None] | None = None
        self.logs: list[LogEntry] = []
        self.cancel_reason: str | None = None  # "operator" | "shutdown"
        self.cancel_message = "cancelled by operator"  # the job's error when cancel_reason is "operator"
        self.cancellable = False  # the handler part of its task is under way
        self.clamp_logged = False  # progress current > total was clamped and logged (once a run)
        self.children: int | None = None  # children it has (counted once, then kept here)
        self.depth: int | None = None  # levels below its top job (found once, then kept here)
        self.holds = False  # holds one of the engine's `concurrency` slots (see Engine._slot_freed)
        self.slot: _DeadlineSlot | None = None  # where its deadline is kept while the handler runs
        # its deadline passed: 1 = its task was cancelled for it (a cancel still to take back),
        # 2 = before its task began (or after that cancel was taken back)
        self.expired = 0
        # its end is computed (_end_item): the job's values are what its end write stores, and a
        # progress report arriving now (UpdateJob, after the reply) must not change them
        self.ending = False
        self.ended: asyncio.Event | None = None  # made when someone waits for its end to be stored

    def stop(self, reason: str, message: str = "") -> None:
        """Stop the attempt for `reason` ("operator" | "shutdown"); the first reason wins.

        Only the handler part of the task is cancelled. A task cancelled before its first step
        never runs its body (no attempt end, no store write: the job is left running), so a run
        not started yet sees the reason when it starts; and a run whose handler already ended
        is recording that end, which a cancellation would cut short."""
        if self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        if message:
            self.cancel_message = message
        if self.cancellable and self.task is not None:
            self.task.cancel()


class _DeadlineSlot:
    """The running jobs whose deadlines fall in one DEADLINE_SLOT: one timer for all of them.
    A job leaves its slot when its handler part ends; the last one to leave cancels the timer."""

    __slots__ = ("runs", "handle", "key")

    def __init__(self, key: float) -> None:
        self.runs: set[_Run] = set()
        self.handle: asyncio.TimerHandle | None = None
        self.key = key  # its end, in loop time

    def fire(self, slots: dict[float, _DeadlineSlot]) -> None:
        if slots.get(self.key) is self:
            del slots[self.key]
        for run in self.runs:
            run.slot = None
            if run.cancellable and run.task is not None:
                run.expired = 1
                run.task.cancel()
            else:  # its task has not begun (see _Run.stop): it times out when it begins
                run.expired = 2
        self.runs = set()


def _rank(job: Job) -> int:
    """Where a snapshot stands in a job's history, without clocks: attempts started, then running
    < ended, as one int (2 * attempts, +1 once ended): a small int is shared, where a tuple per job
    cost 64 bytes in `Engine._ranks` (up to EVENT_RANK_MEMORY of them while anyone watches). Holds
    across nodes (see Engine._fresh)."""
    return 2 * job.attempts + (0 if job.status == RUNNING else 1)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    d: float = min(cap, base * (2 ** max(0, attempt - 1)))
    return d / 2 + random.uniform(0, d / 2)


class Engine:
    def __init__(
        self,
        store: Store,
        router: Router,
        *,
        node: str = "",
        concurrency: int = 128,
        handler_limits: dict[str, int] | None = None,
        default_timeout: float = 3600.0,
        max_payload: int = MAX_PAYLOAD_BYTES,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        retention_secs: float | None = 7 * 86400,
        retention_handlers: dict[str, dict[str, float | None]] | None = None,
        claim_batch: int = 128,
        progress_flush_secs: float = 0.1,
        metrics: Recorder | None = None,
        max_children: int = DEFAULT_MAX_CHILDREN,
        max_child_depth: int = DEFAULT_MAX_CHILD_DEPTH,
        budgets: bud.BudgetConfig | None = None,
        prefetch: int = 0,
    ) -> None:
        if concurrency < 1:
            raise ValidationError("concurrency must be at least 1")
        if prefetch < 0:
            raise ValidationError("prefetch must not be negative")
        self.store = store
        self.router = router
        self.node = node or store.node  # multi-node: the store names this node when not configured
        self.concurrency = concurrency
        self.handler_limits = dict(handler_limits or {})
        self.default_timeout = default_timeout
        self.max_payload = max_payload
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retention_secs = retention_secs  # completed jobs; None = kept forever
        # per handler: finished status -> seconds kept (None = forever), overriding retention_secs
        self.retention_handlers = {h: dict(r) for h, r in (retention_handlers or {}).items()}
        self.pruned = asyncio.Event()  # set after each pass of the retention loop
        self.claim_batch = claim_batch
        # jobs claimed ahead of a free slot, at most (see _slot_freed); 0: claim only for free slots
        self.prefetch = prefetch
        self.progress_flush_secs = progress_flush_secs
        self.bus = EventBus()
        self.started_at = 0.0
        self.metrics = metrics  # pulse/metrics.py: counters bumped at enqueue, start and finish
        self.max_children = max_children  # children one job may have ([server] max_children)
        self.max_child_depth = max_child_depth  # levels of children below a job ([server] max_child_depth)
        self.route_listeners: list[Callable[[], None]] = []  # told when handlers come or go

        self._running: dict[str, _Run] = {}
        # Slots and claimed-ahead jobs. A run holds a slot from its start until its handler part
        # ends, not until its end is written: the end is queued to the store's writer before the
        # claim that reuses the slot, so both go in one commit and the store never has more than
        # `concurrency` + `prefetch` jobs of this node running (see _slot_freed).
        self._busy = 0  # runs holding a slot
        self._ahead: OrderedDict[str, Job] = OrderedDict()  # claimed, waiting for a slot (FIFO)
        # jobs claimed ahead that may not run (handler paused or gone, a budget reached), being
        # put back in the store uncharged (see _put_back): id -> the task writing it
        self._returning: dict[str, asyncio.Task[Job | None]] = {}
        # jobs put back queued because a budget held them (then held by the store, see
        # _apply_budgets): one claimed again was released over its budget by an operator
        self._budget_returned: OrderedDict[str, None] = OrderedDict()
        self._budget_returns = 0  # jobs put back for a budget so far (see _apply_budgets)
        self._deadlines: dict[float, _DeadlineSlot] = {}  # slot end (loop time) -> its runs
        # attempt ends not stored yet: the ends of one loop turn are written as one group
        self._ends: list[tuple[_Run, Finish]] = []
        self._end_writers: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        # Wake-ups are counted, never just flagged: a claim round may await the store while a
        # kick (enqueue, retry, a job's end, a due timer, a route change) lands, and a round
        # only settles what it saw. "Maybe queued" is kicks != settled; "due unknown" is
        # due_epoch != due_known. A round records both counters before its first await and, when
        # it found the queue drained, settles to those values, so any kick that landed during the
        # round keeps the dispatcher going (see _claim_round).
        self._kicks = 1  # bumped by every _kick
        self._settled = 0  # the _kicks value of the last round that drained the queue
        self._due_epoch = 1  # bumped when the next due time must be asked of the store
        self._due_known = 0  # the _due_epoch the last next_due answer covered
        self._in_round = False  # a claim round is awaiting the store
        self._round_idle = asyncio.Event()  # set when no round is under way
        self._round_idle.set()
        self._blocked = False  # the last claim stopped at a concurrency limit
        self._due_timer: asyncio.TimerHandle | None = None
        self._due_at = 0.0
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._progress_dirty: dict[str, _Run] = {}
        self._progress_task: asyncio.Task[None] | None = None
        self._completions: deque[tuple[int, int]] = deque(maxlen=16)  # (second, count)
        self._ranks: OrderedDict[str, int] = OrderedDict()  # see _fresh
        self._probation: dict[str, asyncio.Lock] = {}  # per plugin: jobs caught in a crash, one at a time
        # parents that ended failed or cancelled, whose unfinished children are to be cancelled
        # (id -> status; see _cascade_loop)
        self._cascade: dict[str, str] = {}
        self._cascade_wake = asyncio.Event()
        self._cascade_cancels: set[asyncio.Task[None]] = set()
        # called (synchronously) with every job of this node that reaches a finished status
        # (the scheduler records its runs' ends through it)
        self.job_ended: Callable[[Job], None] | None = None
        # paused handlers {name: (reason, paused_at)}, as the store has them (every node's pauses
        # on a shared store: reloaded at start and with each lease heartbeat). The store's claim
        # is what holds their jobs back; this copy decides the status of new and re-queued jobs.
        self.paused_handlers: dict[str, tuple[str, float]] = {}
        # spend budgets (pulse/budgets.py): what is spent, which scopes are held now
        self.budgets = budgets if budgets is not None and not budgets.empty else None
        self.spend = bud.SpendBook()
        self.budget_states: list[bud.BudgetState] = []
        self._budget_all = False  # a total budget is reached (jobs without an estimate held)
        self._budget_handlers: set[str] = set()  # handlers whose own budget is reached
        # what the budgets let run: (handlers without a budget of their own, {handler: its own})
        self._budget_fit: tuple[bud.Fit | None, dict[str, bud.Fit]] = (None, {})
        self._budget_applied: tuple[Any, ...] | None = None  # the fits the store holds by
        self._budget_reached_logged: tuple[bool, frozenset[str]] | None = None
        self._budget_applied_at = 0.0  # monotonic

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.started_at = time.time()
        # before recovery re-queues them: a child running when its parent ended still shows it
        orphaned = await self.store.orphaned_children()
        recovered = await self.store.recover(self.started_at)
        if recovered:
            failed = sum(1 for j in recovered if j.status == FAILED)
            log.warning(
                "re-queued %d job(s) left running by a previous server%s",
                len(recovered) - failed,
                f"; {failed} failed as `crashed` (running at {CRASH_LIMIT} server crashes in a row)"
                if failed
                else "",
            )
            self.bus.publish_many(recovered)
            for j in recovered:
                self._note_ended(j)
        await self._cancel_orphaned_children(orphaned)
        await self._load_paused_handlers(sweep=True)
        await self._load_spend(time.time())  # kept with or without budgets (QNTX's PulseState)
        await self._apply_budgets()
        self._tasks.append(asyncio.create_task(self._budget_loop(), name="pulse-spend"))
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="pulse-dispatcher"))
        self._tasks.append(asyncio.create_task(self._cascade_loop(), name="pulse-children"))
        if self.retention_secs or self.retention_handlers:
            self._tasks.append(asyncio.create_task(self._retention_loop(), name="pulse-retention"))
        # multi-node (shared stores, e.g. PostgreSQL; no-ops on SQLite): hear other nodes, keep leases
        await self.store.listen(self._on_remote)
        lease = self.store.lease_secs
        if lease:
            self._tasks.append(asyncio.create_task(self._lease_loop(lease), name="pulse-lease"))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; give running jobs `grace` seconds; re-queue the rest as interrupted."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._due_timer is not None:
            self._due_timer.cancel()
        for t in self._tasks:
            if t.get_name() != "pulse-dispatcher":
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for t in list(self._cascade_cancels):
            t.cancel()
        # jobs claimed ahead never got a slot: re-queued as interrupted (not charged), as at a crash
        while self._ahead:
            self._release_ahead(next(iter(self._ahead)), "shutdown")
        await self._returned()
        tasks = {r.task: r for r in self._running.values() if r.task is not None}
        if tasks:
            log.info("waiting up to %.1fs for %d running job(s)", grace, len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, grace))
            left = [tasks[t] for t in pending]
            for r in left:
                r.stop("shutdown")
            if left:
                log.info("re-queued %d job(s) still running after the grace period", len(left))
                await asyncio.wait(pending)
        while self._end_writers:  # ends of jobs whose tasks are done, not stored yet
            await asyncio.wait(set(self._end_writers))
        await self._flush_progress()

    # ------------------------------------------------------------ enqueue
    async def enqueue(
        self,
        handler: str,
        payload: bytes = b"",
        *,
        max_attempts: int = 0,
        timeout_secs: int = 0,
        priority: int = 0,
        source: str = "",
        delay_secs: float = 0.0,
        parent_job_id: str = "",
        job_id: str = "",
        retry_count: int = 0,
        cost_estimate: float = 0.0,
    ) -> Job:
        job, _ = await self.submit(
            handler,
            payload,
            max_attempts=max_attempts,
            timeout_secs=timeout_secs,
            priority=priority,
            source=source,
            delay_secs=delay_secs,
            parent_job_id=parent_job_id,
            job_id=job_id,
            retry_count=retry_count,
            cost_estimate=cost_estimate,
        )
        return job

    async def submit(self, handler: str, payload: bytes = b"", **kwargs: Any) -> tuple[Job, bool]:
        """`enqueue`, saying whether the job already existed: (job, existed).

        Idempotent enqueue: with a client-supplied `job_id` that is taken, a request repeating
        the stored job's handler and payload gets that job back (existed=True, nothing stored);
        a different handler or payload is refused. Concurrent duplicates cannot both be stored
        (the id is the store's unique key): the loser gets the winner's job.
        With a `parent_job_id` the job is a child: the parent must exist, and the limits on
        children per job and on depth hold (see _reserve_children)."""
        job = self.validate_new(handler, payload, **kwargs)
        if kwargs.get("job_id"):
            existing = await self.store.get(job.id)
            if existing is not None:
                return self._same_job(existing, job), True
        release = await self._reserve_children(job.parent_job_id) if job.parent_job_id else None
        try:
            await self.store.insert([job])  # a taken id: the store raises DuplicateJob
        except DuplicateJob:
            if release is not None:
                release()
            existing = await self.store.get(job.id) if kwargs.get("job_id") else None
            if existing is None:
                raise
            return self._same_job(existing, job), True
        except BaseException:
            if release is not None:
                release()
            raise
        if self.metrics:
            self.metrics.enqueued(job.handler)
        self._publish(job)
        if job.status != QUEUED:  # held at the door (its handler is paused)
            return job, False
        if job.run_at > job.created_at:
            self._note_due(job.run_at)
        else:
            self._kick()
        return job, False

    def _same_job(self, existing: Job, asked: Job) -> Job:
        """The stored job for a repeated enqueue of its id, or a refusal (DuplicateJob, saying
        what differs) when the request is not the same."""
        if existing.handler != asked.handler:
            what = f"handler {existing.handler!r}, not {asked.handler!r}"
        elif existing.payload != asked.payload and not _json_equal(existing.payload, asked.payload):
            what = "a different payload"
        else:
            return self._overlay(existing)
        err = DuplicateJob(asked.id)
        err.message = (
            f"a job with id {asked.id!r} already exists with {what}; repeat an enqueue with the same "
            "handler and payload, or use a new id"
        )
        err.args = (err.message,)
        raise err

    async def _reserve_children(self, parent_id: str, n: int = 1) -> Callable[[], None]:
        """Check `n` new children against their parent: the parent exists, a child is at most
        `max_child_depth` levels below the top job, and the parent keeps at most `max_children`
        children. Counts them against the parent; the returned call takes them back (the insert
        failed). A running parent's count is kept in memory after the first count, so a plugin
        enqueuing thousands of children pays for one count."""
        run = self._running.get(parent_id)
        if run is not None and run.depth is not None:
            depth = run.depth + 1
        else:
            parent = await self.store.get(parent_id, with_payload=False)
            if parent is None:
                raise ValidationError(f"parent job {parent_id!r} does not exist")
            cur: Job | None
            depth, cur = 1, parent
            while cur is not None and cur.parent_job_id and depth <= self.max_child_depth:
                depth += 1
                cur = await self.store.get(cur.parent_job_id, with_payload=False)
            if run is not None and depth <= self.max_child_depth:
                run.depth = depth - 1
        if depth > self.max_child_depth:
            raise ValidationError(
                f"a child of job {parent_id} would be more than {self.max_child_depth} levels below "
                f"its top job (limit [server] max_child_depth = {self.max_child_depth})"
            )
        if run is not None and run.children is None:
            counted = await self._count_children(parent_id)
            if run.children is None:
                run.children = counted
        have = (
            run.children
            if run is not None and run.children is not None
            else await self._count_children(parent_id)
        )
        if have + n > self.max_children:
            raise ValidationError(
                f"job {parent_id} already has {have} children"
                + (f"; {n} more would pass the limit" if n > 1 and have < self.max_children else "")
                + f" (limit [server] max_children = {self.max_children})"
            )
        if run is None:
            return lambda: None
        run.children = have + n

        def release() -> None:
            if run.children is not None:
                run.children = max(0, run.children - n)

        return release

    async def _count_children(self, parent_id: str) -> int:
        counts = await self.store.count(JobFilter(parent_job_id=parent_id), self.max_children)
        return sum(counts.values())

    async def enqueue_many(self, specs: Sequence[Mapping[str, Any]]) -> list[Job]:
        """Bulk enqueue: each spec holds `enqueue`'s keyword arguments (handler, payload, ...).
        Every job is validated first; then all are stored in one transaction, or none is. The
        jobs come back in the order of `specs`. A bad spec raises ValidationError naming its
        index, and nothing is stored. Client-supplied ids are idempotent as in `submit`."""
        jobs, _ = await self.submit_many(specs)
        return jobs

    async def submit_many(self, specs: Sequence[Mapping[str, Any]]) -> tuple[list[Job], list[bool]]:
        """`enqueue_many`, saying for each job whether it already existed. A client-supplied id
        that is taken, by a stored job or by an earlier spec of the same call, with the same
        handler and payload gives that job (existed=True, nothing stored for it); with a
        different handler or payload the whole call is refused (DuplicateJob naming the spec's
        index and the id), and nothing is stored."""
        if len(specs) > ENQUEUE_MANY_MAX:
            raise ValidationError(f"at most {ENQUEUE_MANY_MAX:,} jobs per call, got {len(specs):,}")
        named = [i for i, spec in enumerate(specs) if spec.get("job_id")]
        chunks = self._validated(specs, len(specs) - len(named))
        if not named and len(specs) >= 2 * BULK_CHUNK and not any(s.get("parent_job_id") for s in specs):
            # no client ids and no children: the store may write a chunk while the next one is
            # validated (one transaction; a bad spec stores none)
            jobs: list[Job] = []

            def collected() -> Iterator[list[Job]]:
                for chunk in chunks:
                    jobs.extend(chunk)
                    yield chunk

            await self.store.insert_stream(collected())
            self._inserted(jobs)
            return jobs, [False] * len(jobs)
        jobs = [job for chunk in chunks for job in chunk]
        if not jobs:
            return jobs, []
        repeat_of: dict[int, int] = {}  # a spec repeating an earlier spec's id -> that spec
        first: dict[str, int] = {}
        for i in named:
            j = first.setdefault(jobs[i].id, i)
            if j != i:
                self._same_in_call(i, len(specs), jobs[j], jobs[i])
                repeat_of[i] = j
        stored: dict[str, Job] = {}  # ids already in the store (the same jobs)
        for attempt in range(3):
            new = [job for i, job in enumerate(jobs) if i not in repeat_of and job.id not in stored]
            try:
                await self._insert_many(new)
                break
            except DuplicateJob:
                if not named or attempt == 2:
                    raise
            # a taken id (nothing was stored): look the client ids up, then store the rest; a
            # concurrent call may store one meanwhile (the next round finds it)
            for i in named:
                if i in repeat_of or jobs[i].id in stored:
                    continue
                existing = await self.store.get(jobs[i].id)
                if existing is not None:
                    stored[jobs[i].id] = self._same_in_call(i, len(specs), existing, jobs[i])
        out: list[Job] = []
        existed: list[bool] = []
        for i, job in enumerate(jobs):
            job = stored.get(job.id, jobs[repeat_of.get(i, i)])
            out.append(job)
            existed.append(i in repeat_of or job.id in stored)
        return out, existed

    def _validated(self, specs: Sequence[Mapping[str, Any]], unnamed: int) -> Iterator[list[Job]]:
        """submit_many's validation: the jobs of `specs` in chunks of BULK_CHUNK (`unnamed`: the
        specs without a client id, given new ids made at once). A bad spec raises
        ValidationError naming its index."""
        jobs: list[Job] = []
        seen: dict[Any, Any] = {}  # handlers and small payloads checked once per call
        fresh = iter(new_job_ids(unnamed))
        now = time.time()  # one enqueue time for the call's jobs (stored in one transaction)
        # Specs without an id that repeat an earlier spec's fields but the payload are validated
        # once: the job is the first one's with its own id and payload (the payload checked on its
        # own). A spec object given again is found by identity (the specs list holds them all).
        same: dict[Any, tuple[Any, ...]] | None = {}  # fields but the payload -> the job's
        same_obj: dict[int, tuple[Any, ...]] = {}  # id(spec) -> the job's fields (_JOB_REST)
        for i, spec in enumerate(specs):
            if len(jobs) >= BULK_CHUNK:
                yield jobs
                jobs = []
            like = same_obj.get(id(spec))
            if like is not None:
                jobs.append(Job(next(fresh), *like))
                continue
            key = None
            if same is not None and not spec.get("job_id"):
                try:
                    rest = dict(spec)
                    payload = rest.pop("payload", b"")
                    key = tuple(rest.items())
                    like = same.get(key)
                except TypeError:  # an unhashable value: checked on its own
                    key = like = None
                if like is not None:
                    try:
                        payload = self._payload_once(payload, seen)
                    except ValidationError as exc:
                        raise ValidationError(f"job {i} of {len(specs)}: {exc.message}") from None
                    job = Job(next(fresh), *like)
                    job.payload = payload
                    jobs.append(job)
                    continue
            try:
                args = dict(spec)
                handler, payload = args.pop("handler", ""), args.pop("payload", b"")
                new_id = "" if args.get("job_id") else next(fresh)
                job = self.validate_new(handler, payload, **args, _seen=seen, _new_id=new_id, _now=now)
            except ValidationError as exc:
                raise ValidationError(f"job {i} of {len(specs)}: {exc.message}") from None
            except TypeError as exc:  # a spec with a field enqueue does not take
                raise ValidationError(f"job {i} of {len(specs)}: {exc}") from None
            jobs.append(job)
            if key is not None and same is not None:
                same[key] = same_obj[id(spec)] = tuple(getattr(job, f) for f in _JOB_REST)
                if len(same) > SAME_SPECS_MAX:  # varied specs: no more look-ups
                    same = None
        if jobs:
            yield jobs

    def _same_in_call(self, i: int, n: int, existing: Job, asked: Job) -> Job:
        try:
            return self._same_job(existing, asked)
        except DuplicateJob as exc:
            exc.message = f"job {i} of {n}: {exc.message}"
            exc.args = (exc.message,)
            raise

    async def _insert_many(self, jobs: list[Job]) -> None:
        """Store `jobs` in one transaction (children counted against their parents first)."""
        if not jobs:
            return
        per_parent: dict[str, int] = {}
        for job in jobs:
            if job.parent_job_id:
                per_parent[job.parent_job_id] = per_parent.get(job.parent_job_id, 0) + 1
        releases: list[Callable[[], None]] = []
        try:
            for parent_id, n in per_parent.items():
                releases.append(await self._reserve_children(parent_id, n))
        except ValidationError:
            for release in releases:
                release()
            raise
        try:
            await self.store.insert(jobs)  # one taken id: DuplicateJob, and none is stored
        except BaseException:
            for release in releases:
                release()
            raise
        self._inserted(jobs)

    def _inserted(self, jobs: list[Job]) -> None:
        """After new jobs are stored: their events, and the dispatcher woken (or its next due
        time noted)."""
        if self.bus.watcher_count:
            self.bus.publish_many([j.snapshot(result=True) for j in jobs if self._fresh(j)])
        due = [j.run_at for j in jobs if j.run_at > j.created_at]
        if due:
            self._note_due(min(due))
        if len(due) < len(jobs):
            self._kick()

    def validate_new(
        self,
        handler: str,
        payload: bytes,
        *,
        max_attempts: int = 0,
        timeout_secs: int = 0,
        priority: int = 0,
        source: str = "",
        delay_secs: float = 0.0,
        parent_job_id: str = "",
        job_id: str = "",
        retry_count: int = 0,
        cost_estimate: float = 0.0,
        _seen: dict[Any, Any] | None = None,
        _new_id: str = "",
        _now: float = 0.0,
    ) -> Job:
        """Every check done at the door; returns the Job to insert or raises ValidationError.
        `_seen` (enqueue_many): handlers and payloads already checked in this call, checked once;
        `_new_id`: the id to give the job when `job_id` is empty (enqueue_many makes them at once);
        `_now`: the enqueue time (enqueue_many: one for the call, as its jobs share a transaction)."""
        if _seen is None:
            self._check_handler(handler)
            payload = self._check_payload(payload)
        else:
            if handler not in _seen:
                self._check_handler(handler)
                _seen[handler] = True
            payload = self._payload_once(payload, _seen)
        if max_attempts < 0 or max_attempts > MAX_ATTEMPTS_LIMIT:
            raise ValidationError(
                f"max_attempts must be 0 (default) to {MAX_ATTEMPTS_LIMIT}, got {max_attempts}"
            )
        if timeout_secs < 0:
            raise ValidationError(f"timeout must not be negative, got {timeout_secs}")
        if timeout_secs > 7 * 86400:
            raise ValidationError(f"timeout {timeout_secs}s is over the 7-day limit")
        if delay_secs < 0 or delay_secs != delay_secs or delay_secs > 365 * 86400:
            raise ValidationError(f"delay must be between 0 and one year, got {delay_secs}")
        if not -1000 <= priority <= 1000:
            raise ValidationError(f"priority must be between -1000 and 1000, got {priority}")
        if job_id and not JOB_ID_RE.fullmatch(job_id):
            raise ValidationError(f"job id {job_id!r} must be 1-64 of [A-Za-z0-9._:-]")
        if len(source) > 200 or len(parent_job_id) > 64:
            raise ValidationError("source or parent_job_id is too long")
        if not (cost_estimate >= 0 and cost_estimate != float("inf")):
            raise ValidationError(f"cost_estimate must be a non-negative finite number, got {cost_estimate}")
        now = _now or time.time()
        reason = self._hold_reason(handler, cost_estimate)
        return Job(
            id=job_id or _new_id or new_job_id(),
            handler=handler,
            status=PAUSED if reason else QUEUED,
            pause_reason=reason,
            priority=priority,
            payload=payload,
            max_attempts=max_attempts or DEFAULT_MAX_ATTEMPTS,
            timeout_secs=timeout_secs,
            source=source,
            parent_job_id=parent_job_id,
            created_at=now,
            updated_at=now,
            run_at=now + delay_secs,
            retry_count=retry_count,
            cost_estimate=float(cost_estimate),
        )

    def _check_handler(self, handler: str) -> None:
        if not handler or not handler.strip():
            raise ValidationError("handler name is empty")
        if len(handler) > 200:
            raise ValidationError(f"handler name is {len(handler):,} characters long; at most 200")
        if any(ord(c) < 32 or c.isspace() for c in handler):
            raise ValidationError(f"handler name {handler!r} has spaces or control characters")
        if self.router.resolve(handler) is None:
            msg = f"unknown handler {handler!r}"
            hints = self.router.suggest(handler)
            if hints:
                msg += f"; did you mean {', '.join(repr(h) for h in hints[:3])}?"
            else:
                msg += "; list them with `pulse-tui handlers list`"
            raise UnknownHandler(handler, msg)

    def _payload_once(self, payload: bytes, seen: dict[Any, Any]) -> bytes:
        """_check_payload, once per small payload in an enqueue_many call (`seen`)."""
        payload = bytes(payload or b"")
        key = (b"p", payload)
        checked = seen.get(key) if len(payload) <= 256 else None
        if checked is None:
            checked = self._check_payload(payload)
            if len(payload) <= 256:
                seen[key] = checked
        return checked

    def _check_payload(self, payload: bytes) -> bytes:
        payload = bytes(payload or b"")
        if not payload.strip():
            payload = b"{}"
        if len(payload) > self.max_payload:
            raise ValidationError(
                f"payload is {len(payload):,} bytes; the limit is {self.max_payload:,} bytes"
            )
        try:
            json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(f"payload is not JSON: {exc}") from None
        return payload

    # ------------------------------------------------------------ reads
    async def get_job(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return self._overlay(job)

    async def delete_jobs(self, ids: list[str], *, dry_run: bool = False) -> tuple[list[str], dict[str, str]]:
        """Delete finished jobs by id: (deleted ids, {id: why not} for the others). Queued, paused
        and running jobs are refused (cancel them first); unknown ids are reported."""
        refused: dict[str, str] = {}
        finished: list[str] = []
        for job_id in dict.fromkeys(ids):
            job = await self.store.get(job_id, with_payload=False)
            if job is None:
                refused[job_id] = f"no job with id {job_id!r}"
            elif job.status not in FINISHED:
                refused[job_id] = (
                    f"job {job_id} is {job.status}; only finished jobs can be deleted (cancel it first)"
                )
            else:
                finished.append(job_id)
        if dry_run or not finished:
            return finished, refused
        deleted = await self.store.delete(finished, tuple(FINISHED))
        gone = set(deleted)
        for job_id in finished:
            if job_id not in gone:  # changed (a retry) between the check and the delete
                refused[job_id] = f"job {job_id} changed while deleting; try again"
        if deleted:
            self.bus.resync_all()
        return deleted, refused

    async def get_detail(self, job_id: str) -> JobDetail:
        d = await self.store.detail(job_id)
        if d is None:
            raise NotFound(f"no job with id {job_id!r}")
        self._overlay(d.job)
        run = self._running.get(job_id)
        if run is not None:
            d.attempts.append(
                Attempt(job_id, run.job.attempts, run.job.started_at, plugin=run.plugin, node=self.node)
            )
            d.logs.extend(run.logs)
        return d

    async def list_jobs(
        self,
        flt: JobFilter,
        limit: int = 100,
        after_seq: int | None = None,
        oldest_first: bool = False,
        offset: int = 0,
        sort_by: str = "",
    ) -> tuple[list[Job], bool]:
        self._check_filter(flt)
        sort_sql(sort_by, True)  # an unknown column is a ValidationError before any query
        if sort_by and after_seq is not None:
            raise ValidationError("after_seq pages the seq order; a sorted listing pages by offset")
        if limit < 0:
            raise ValidationError(f"limit must not be negative, got {limit}")
        if offset < 0:
            raise ValidationError(f"offset must not be negative, got {offset}")
        limit = min(limit or 100, MAX_LIST_LIMIT)
        if sort_by:
            jobs = await self.store.list(flt, limit + 1, after_seq, oldest_first, offset, sort_by=sort_by)
        else:
            jobs = await self.store.list(flt, limit + 1, after_seq, oldest_first, offset)
        has_more = len(jobs) > limit
        return [self._overlay(j) for j in jobs[:limit]], has_more

    async def count_jobs(self, flt: JobFilter, cap: int = 10_000) -> dict[str, int]:
        self._check_filter(flt)
        if cap < 0:
            raise ValidationError(f"cap must not be negative, got {cap}")
        cap = min(cap or 10_000, 10_000_000)
        counts = await self.store.count(flt, cap)
        return {k: min(v, cap + 1) for k, v in counts.items()}

    async def handler_counts(self) -> dict[str, dict[str, int]]:
        return await self.store.handler_counts((QUEUED, RUNNING, FAILED, PAUSED))

    async def select_ids(self, flt: JobFilter, limit: int = 1000) -> tuple[list[str], bool]:
        self._check_filter(flt)
        if limit < 0:
            raise ValidationError(f"limit must not be negative, got {limit}")
        limit = min(limit or 1000, MAX_SELECT_LIMIT)
        ids = await self.store.select_ids(flt, limit + 1)
        return ids[:limit], len(ids) > limit

    def running_jobs(self, plugin: str | None = None) -> list[str]:
        if plugin is None:
            return list(self._running)
        return [jid for jid, r in self._running.items() if r.plugin == plugin]

    def is_routable(self, handler: str) -> bool:
        return self.router.resolve(handler) is not None

    def stats(self) -> dict[str, Any]:
        now = int(time.monotonic())
        done = sum(n for s, n in self._completions if now - s < 10)
        span = min(10.0, max(1.0, time.time() - self.started_at)) if self.started_at else 10.0
        return {
            "running": len(self._running),
            "concurrency": self.concurrency,
            "jobs_per_s": done / span,
            "watchers": self.bus.watcher_count,
        }

    @staticmethod
    def _check_filter(flt: JobFilter) -> None:
        bad = [s for s in flt.statuses if s not in STATUSES]
        if bad:
            raise ValidationError(f"unknown status {bad[0]!r}; statuses are {', '.join(STATUSES)}")
        if (
            max(
                len(flt.text),
                len(flt.handler),
                len(flt.handler_glob),
                len(flt.payload),
                len(flt.error),
                len(flt.parent_job_id),
            )
            > 200
        ):
            raise ValidationError("filter text is too long (200 characters at most)")

    def _overlay(self, job: Job) -> Job:
        run = self._running.get(job.id)
        if run is not None and job.status == RUNNING:
            job.progress_current = run.job.progress_current
            job.progress_total = run.job.progress_total
            job.cost_actual = run.job.cost_actual
            job.plugin = run.plugin
        return job

    # ------------------------------------------------------------ operator actions
    async def cancel(self, job_id: str, reason: str = "cancelled by operator") -> Job:
        """Cancel a queued, paused or running job; the returned row is `cancelled` (error `reason`).

        The job can move while we ask (claimed, ended, re-queued for a retry): each lap of the
        loop follows one such move, and only a finished job (or one that keeps moving) is refused."""
        for _ in range(CANCEL_LAPS):
            returning = self._returning.get(job_id)
            if returning is not None:  # being put back (queued or paused): cancelled there
                await asyncio.wait([returning])
            run = self._running.get(job_id)
            if run is None and job_id in self._ahead:
                run = self._release_ahead(job_id, "operator", reason)  # it ends before it begins
            if run is None:
                now = time.time()
                job = await self.store.transition(
                    job_id,
                    (QUEUED, PAUSED),
                    {
                        "status": CANCELLED,
                        "completed_at": now,
                        "updated_at": now,
                        "error": reason,
                    },
                )
                if job is not None:
                    self._publish(job)
                    return job
                if self._in_round:  # claimed while we asked, maybe here: the round starts it
                    await self._round_idle.wait()
                run = self._running.get(job_id)
                if run is None:
                    current = await self.get_job(job_id)
                    if current.status in (QUEUED, PAUSED):
                        continue  # it ran and was re-queued while we asked
                    if current.status == RUNNING:
                        if current.node == self.store.node:
                            continue  # claimed here by a round that began after we asked
                        return await self._cancel_remote(current)
                    check_transition(job_id, current.status, CANCELLED)  # finished: say so
                    raise Precondition(f"job {job_id} could not be cancelled")
            run.stop("operator", reason)
            await self._wait_ended(run)
            job = await self.get_job(job_id)
            if job.status == CANCELLED:
                return job
            if job.status not in (QUEUED, PAUSED, RUNNING):
                check_transition(job_id, job.status, CANCELLED)  # it ended first: say so
                raise Precondition(f"job {job_id} could not be cancelled")
            # the attempt ended on its own before the cancel reached it and the job is queued
            # for a retry (or claimed again): the next lap cancels that
        raise Unavailable(f"job {job_id} kept changing while it was being cancelled; try again")

    async def retry(self, job_id: str) -> Job:
        current = await self.get_job(job_id)
        check_operator_retry(job_id, current.status)
        now = time.time()
        job = await self.store.transition(
            job_id,
            (FAILED, CANCELLED),
            {
                "status": QUEUED,
                "run_attempts": 0,
                "retry_count": current.retry_count + 1,
                "run_at": now,
                "updated_at": now,
                "completed_at": 0,
                "error": "",
                "progress_current": 0,
                "interruptions": 0,
                "crashes": 0,
            },
        )
        if job is None:
            latest = await self.get_job(job_id)
            check_operator_retry(job_id, latest.status)
            raise Conflict(f"job {job_id} changed while retrying; try again")
        self._publish(job)
        self._budget_recheck([job])
        self._kick()
        return job

    async def pause(self, job_id: str, reason: str = REASON_USER) -> Job:
        """Hold a queued (or delayed) job: `paused`, not claimed until resumed. A running job is
        refused (cancel it instead), a finished one too."""
        current = await self.get_job(job_id)
        check_pause(job_id, current.status)
        job = await self.store.transition(
            job_id, (QUEUED,), {"status": PAUSED, "pause_reason": reason, "updated_at": time.time()}
        )
        if job is None:  # claimed (or cancelled) while we asked
            latest = await self.get_job(job_id)
            check_pause(job_id, latest.status)
            raise Conflict(f"job {job_id} changed while pausing; try again")
        self._publish(job)
        return job

    async def resume(self, job_id: str) -> Job:
        """Put a paused job back in the queue at its old place (its seq, so FIFO order, is kept;
        a delayed job still waits for its run_at). A job held by its paused handler is refused."""
        current = await self.get_job(job_id)
        check_resume(job_id, current.status)
        base = handler_base(current.handler)
        if current.pause_reason == REASON_HANDLER and base in self.paused_handlers:
            raise Precondition(
                f"job {job_id} is held because handler {base!r} is paused; resume the handler "
                f"(pulse-tui handlers resume {base})"
            )
        changes: dict[str, Any] = {"status": QUEUED, "pause_reason": "", "updated_at": time.time()}
        if self._budget_holds(current.handler, current.cost_estimate):
            changes["budget_override"] = True  # the operator lets it run once over the budget
        job = await self.store.transition(job_id, (PAUSED,), changes)
        if job is None:
            latest = await self.get_job(job_id)
            check_resume(job_id, latest.status)
            raise Conflict(f"job {job_id} changed while resuming; try again")
        self._publish(job)
        self._queued([job])
        return job

    async def pause_handler(self, name: str) -> list[Job]:
        """Pause handler `name` (kept in the store): its queued jobs and every new one are held
        `paused` (reason handler_paused); running ones finish. Returns the jobs held now."""
        self._check_pausable_name(name)
        if name not in self.paused_handlers and self.router.resolve(name) is None:
            hints = self.router.suggest(name)
            hint = f"; did you mean {', '.join(repr(h) for h in hints[:3])}?" if hints else ""
            raise NotFound(f"no handler named {name!r}{hint}")
        now = time.time()
        was = self.paused_handlers.get(name)
        self.paused_handlers.setdefault(name, (REASON_USER, now))  # no slot takes its jobs from now
        try:
            held = await self.store.hold_handler(name, REASON_USER, now)
        except BaseException:
            if was is None:
                self.paused_handlers.pop(name, None)
            raise
        await self._load_paused_handlers(sweep=False)
        self._publish_many(held)
        # its jobs claimed ahead (running in the store, not started) are held too
        back = await self._hold_ahead()
        held += sorted(
            (j for j in back if j.status == PAUSED and handler_base(j.handler) == name), key=lambda j: j.seq
        )
        return held

    async def resume_handler(self, name: str) -> list[Job]:
        """Resume handler `name`: its held jobs go back to the queue in their FIFO order."""
        self._check_pausable_name(name)
        released = await self.store.release_handler(name, time.time())
        self.paused_handlers.pop(name, None)
        await self._load_paused_handlers(sweep=False)
        self._publish_many(released)
        self._queued(released)
        self._due_epoch += 1  # jobs of it that were queued all along (held by the claim) are due too
        self._kick()
        return released

    # ------------------------------------------------------------ budgets
    def _budget_holds(self, handler: str, estimate: float) -> bool:
        """A job of `handler` with this cost estimate (0: none) would go over a budget now."""
        if self.budgets is None:
            return False
        rest, own = self._budget_fit
        fit = own.get(handler_base(handler), rest)
        return fit is not None and fit.holds(estimate)

    def _hold_reason(self, handler: str, estimate: float) -> str:
        """Why a job of `handler` that would be queued now is held instead ("" = it is not)."""
        if handler_base(handler) in self.paused_handlers:
            return REASON_HANDLER
        if self._budget_holds(handler, estimate):
            return REASON_BUDGET
        return ""

    def _budget_recheck(self, jobs: Sequence[Job]) -> None:
        """Jobs queued again outside the door (retried, released): one with a cost estimate may
        go over a budget that is not reached, so the next claim round applies the budgets (jobs
        without one are held by the rounds while a budget is reached)."""
        if self.budgets is not None and any(j.cost_estimate > 0 and j.status == QUEUED for j in jobs):
            self._budget_applied = None

    def _budget_due(self) -> bool:
        """The budgets changed since they were applied: now when what is reached changed or
        something asked for it (None), else (only the headroom for estimated jobs moved) at most
        every BUDGET_RECHECK_SECS."""
        if self._budget_applied is None or self._budget_reached_logged != (
            self._budget_all,
            frozenset(self._budget_handlers),
        ):
            return True
        if self._budget_key() == self._budget_applied:
            return False
        wait = self._budget_applied_at + BUDGET_RECHECK_SECS - time.monotonic()
        if wait > 0:
            self._note_due(time.time() + wait)  # a round then, even if nothing else comes
            return False
        return True

    def _budget_key(self) -> tuple[Any, ...]:
        rest, own = self._budget_fit
        return (rest, tuple(sorted(own.items())))

    def _evaluate_budgets(self) -> bool:
        """Recompute the budgets from the spend book; True when what is held changed."""
        if self.budgets is None:
            return False
        self.budget_states = bud.states(self.budgets, self.spend)
        self._budget_all, self._budget_handlers = bud.held_scopes(self.budget_states)
        self._budget_fit = bud.fits(self.budget_states)
        return self._budget_applied != self._budget_key()

    async def _load_spend(self, now: float) -> None:
        day, month = bud.period_starts(now)
        self.spend.load(day, month, await self.store.spend(day, month))
        self._evaluate_budgets()

    async def _apply_budgets(self) -> None:
        """Make the store hold what the budgets cover now: queued jobs that would go over a
        budget (by their cost estimate, or the average cost when they have none) become paused
        (budget_exceeded); held jobs that fit again go back to the queue."""
        if self.budgets is None:
            return
        # jobs claimed ahead that a budget holds now go back to the queue first (the hold below
        # then takes them, leaving an operator's release over the budget queued)
        await self._hold_ahead()
        await self._returned()
        returns = self._budget_returns
        now = time.time()
        key = self._budget_key()
        rest, own = self._budget_fit
        reached = (self._budget_all, frozenset(self._budget_handlers))
        was = self._budget_reached_logged
        changed: list[Job] = []
        if rest is None:  # no total budget: only handlers with their own are held
            changed += await self.store.release_held(None, REASON_BUDGET, now, keep=own)
        else:
            changed += await self.store.release_held(None, REASON_BUDGET, now, keep=own, fit=rest)
            changed += await self.store.hold_queued(None, REASON_BUDGET, now, keep=own, fit=rest)
        for name, fit in own.items():
            changed += await self.store.release_held([name], REASON_BUDGET, now, fit=fit)
            changed += await self.store.hold_queued([name], REASON_BUDGET, now, fit=fit)
        if reached != was:
            if reached[0] or reached[1]:
                scope = (
                    "every queued job"
                    if reached[0]
                    else "the queued jobs of " + ", ".join(sorted(reached[1]))
                )
                log.warning("spend budget reached: holding %s (paused, budget_exceeded)", scope)
            elif was is not None:
                log.info("spend budgets no longer reached: budget-held jobs released")
        self._budget_reached_logged = reached
        self._publish_many(changed)
        self._queued([j for j in changed if j.status == QUEUED])
        # a job put back for a budget meanwhile is held by the next round
        self._budget_applied = key if returns == self._budget_returns else None
        self._budget_applied_at = time.monotonic()

    async def _budget_loop(self) -> None:
        """Re-read the spend every SPEND_REFRESH_SECS (other nodes' jobs) and at each period start."""
        while True:
            now = time.time()
            day, _ = bud.period_starts(now)
            await asyncio.sleep(min(SPEND_REFRESH_SECS, max(0.05, day + 86400 - now)))
            try:
                await self._load_spend(time.time())
                await self._apply_budgets()
            except asyncio.CancelledError:
                raise
            except PulseError as exc:
                log.warning("reading the spend for budgets failed (%s)", exc.message)
            except Exception:
                log.exception("reading the spend for budgets failed")

    def budget_view(self, handler: str) -> tuple[float, float, float]:
        """(spent today, spent this month, remaining of the tightest budget covering `handler`,
        0 when none covers it) for QNTX's PulseState."""
        today = self.spend.spent(bud.DAILY).total
        month = self.spend.spent(bud.MONTHLY).total
        left = bud.remaining_for(self.budget_states, handler)
        return today, month, left if left is not None else 0.0

    @staticmethod
    def _check_pausable_name(name: str) -> None:
        if not name or not name.strip():
            raise ValidationError("handler name is empty")
        if "/" in name:
            raise ValidationError(
                f"pause the handler by its bare name ({name.partition('/')[2]!r}); it holds the "
                "qualified forms too"
            )
        if len(name) > 200 or any(ord(c) < 32 or c.isspace() for c in name):
            raise ValidationError(f"handler name {name[:60]!r} has spaces or control characters")

    async def _load_paused_handlers(self, *, sweep: bool) -> None:
        """Reload the paused handlers from the store. With `sweep`, hold again any queued job of
        theirs (re-queued by recovery at start, or enqueued on a node that did not know yet)."""
        paused = await self.store.paused_handlers()
        self.paused_handlers = paused
        if sweep:
            for name, (reason, _) in paused.items():
                self._publish_many(await self.store.hold_handler(name, reason, time.time()))

    def _publish_many(self, jobs: Sequence[Job]) -> None:
        if jobs and self.bus.watcher_count:
            self.bus.publish_many([j.snapshot() for j in jobs if self._fresh(j)])

    def _queued(self, jobs: Sequence[Job]) -> None:
        """Jobs that became queued outside the claim loop: wake it, or note when they come due."""
        self._budget_recheck(jobs)
        now = time.time()
        later = [j.run_at for j in jobs if j.status == QUEUED and j.run_at > now]
        if later:
            self._note_due(min(later))
        if len(later) < len(jobs):
            self._kick()

    async def report_progress(
        self, job_id: str, current: int, total: int, cost: float | None = None, plugin: str | None = None
    ) -> None:
        """Progress from outside the handler task (a plugin's QueueService.UpdateJob)."""
        run = self._running.get(job_id)
        if run is None or run.ending:
            raise Precondition(
                f"job {job_id} is not running on this server; only a running job's progress can be updated"
            )
        if plugin is not None and run.plugin != plugin:
            raise PermissionDenied(f"job {job_id} is not running on plugin {plugin!r}")
        refusal, clamp = check_report(current, total, cost)  # the rules of the final reply too
        if refusal:
            raise ValidationError(refusal)
        if clamp:
            if not run.clamp_logged:
                run.clamp_logged = True
                log.warning(
                    "job %s: plugin %s reported progress %d/%d; stored as %d/%d",
                    job_id,
                    run.plugin,
                    current,
                    total,
                    total,
                    total,
                )
            current = total
        self._on_progress(run, current, total)
        if cost is not None:
            run.job.cost_actual = cost

    # ------------------------------------------------------------ multi-node (begin)
    # Shared stores (PostgreSQL) let several nodes serve one queue. The store tells this engine
    # about other nodes' changes (`listen`), the engine keeps its leases alive (`heartbeat`, which
    # also re-queues the jobs of nodes whose leases expired) and cancels jobs other nodes asked it
    # to cancel (`cancel_requests`). On single-node stores these calls are no-ops.
    async def _on_remote(self, jobs: list[Job]) -> None:
        """Jobs another node changed (or re-queued after a lease expired)."""
        if self.bus.watcher_count:
            self.bus.publish_many([j for j in jobs if self._fresh(j)])
        if self._stopping:
            return
        now = time.time()
        for job in jobs:
            if job.status == QUEUED:
                if job.run_at > now:
                    self._note_due(job.run_at)
                else:
                    self._kick()
        await self._cancel_requested()

    async def _cancel_requested(self) -> None:
        for job_id in await self.store.cancel_requests():
            run = self._running.get(job_id)
            job = run.job if run is not None else self._ahead.get(job_id)
            if job is None:
                continue
            # the reason first: a job claimed ahead is started only to end at once, with it
            reason = await self._remote_cancel_reason(job) or "cancelled by operator"
            run = self._running.get(job_id)
            if run is None and job_id in self._ahead:
                run = self._release_ahead(job_id, "operator", reason)
            if run is not None:
                run.stop("operator", reason)

    async def _remote_cancel_reason(self, job: Job) -> str:
        """Why another node asked to cancel `job` ("" = an operator). A child that was running when
        its parent ended failed or cancelled is cancelled by that node's cascade: it ends here with
        the parent's reason, once (the other node then has nothing to rewrite). Same rule as
        `orphaned_children`: a child started after its parent ended was not the cascade's."""
        if not job.parent_job_id:
            return ""
        try:
            parent = await self.store.get(job.parent_job_id, with_payload=False)
        except PulseError:
            return ""  # the other node rewrites the reason after the fact, as before
        if parent is None or parent.status not in (FAILED, CANCELLED):
            return ""
        if job.started_at > parent.completed_at:
            return ""
        return parent_ended_reason(parent.id, parent.status)

    async def _lease_loop(self, lease: float) -> None:
        while True:
            await asyncio.sleep(lease / 3)  # the heartbeat period
            try:
                await self.store.heartbeat(time.time(), [*self._running, *self._ahead, *self._returning])
                await self._cancel_requested()
                await self._load_paused_handlers(sweep=False)
                await self._hold_ahead()  # jobs claimed ahead of a handler another node paused
            except Exception:
                log.exception("renewing the leases of running jobs failed")
            self._kick()  # a missed NOTIFY costs at most one heartbeat period of latency

    async def _cancel_remote(self, job: Job) -> Job:
        """Cancel a job running on another node: ask that node, wait until it stopped the job.

        `job` is the running row read from the store. The wait ends only on a snapshot ordered
        after that attempt (same order as _fresh: more attempts, or the same attempt ended):
        events from other nodes arrive late, and a `queued` row fetched before the other node
        claimed the job says nothing about whether it stopped."""
        if self.store.lease_secs is None:  # a single-node store: no other node to ask
            raise Precondition(f"job {job.id} is running on node {job.node or '?'}, not this one")
        running_rank = 2 * job.attempts  # _rank of its running snapshot
        with self.bus.watch() as watcher:
            node = await self.store.request_cancel(job.id)
            if node is None:  # it ended (or was re-queued) meanwhile
                return await self.cancel(job.id)
            deadline = time.monotonic() + REMOTE_CANCEL_WAIT
            current = await self.get_job(job.id)  # read after the request: never stale
            while current.status == RUNNING or _rank(current) <= running_rank:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Unavailable(
                        f"asked node {node} to cancel job {job.id} but it has not confirmed within "
                        f"{REMOTE_CANCEL_WAIT:g}s; the job is cancelled when that node sees the request "
                        "or, if the node is down, when its lease expires"
                    )
                batch, resync = await watcher.next_batch(timeout=left)
                if resync:
                    current = await self.get_job(job.id)
                for j in batch:
                    if j.id == job.id and _rank(j) > running_rank:
                        current = j
        latest = await self.get_job(job.id)
        if latest.status in (QUEUED, PAUSED):
            # the attempt ended some other way (a retry, a lost lease) just before the cancel
            # reached it: the job is queued again, so this cancel applies to it here
            return await self.cancel(job.id)
        return latest

    # ------------------------------------------------------------ multi-node (end)

    def adopt_inserted(self, job: Job) -> None:
        """A job someone else inserted into the store (the scheduler, in the transaction that
        claims a run): announce it and wake the dispatcher, as `enqueue` does."""
        self._publish(job)
        if job.run_at > time.time():
            self._note_due(job.run_at)
        else:
            self._kick()

    def _publish(self, job: Job) -> None:
        """Publish a snapshot (payload and result left out: watchers fetch them with GetJob).
        No watcher, no copy: the hot path pays for events only when someone listens."""
        self._note_ended(job)
        if self.job_ended is not None and job.status in FINISHED and job.source:
            try:
                self.job_ended(job)
            except Exception:
                log.exception("job_ended hook failed for %s", job.id)
        if self.bus.watcher_count and self._fresh(job):
            self.bus.publish(job.snapshot())

    # ------------------------------------------------------------ children of ended parents
    def _note_ended(self, job: Job) -> None:
        """A job that ended failed or cancelled: its unfinished children are to be cancelled."""
        if job.status in (FAILED, CANCELLED) and not self._stopping:
            self._cascade[job.id] = job.status
            self._cascade_wake.set()

    async def _cancel_orphaned_children(self, orphaned: list[tuple[str, str]]) -> None:
        """At start, before anything is claimed: a server killed between a parent's end and the
        cancelling of its children left them unfinished; cancel them as if it had lived (the
        parent's status gives the reason), generation by generation. Children running on
        another node (a shared store), or re-queued by recovery, are left to the cascade loop."""
        if orphaned:
            log.warning(
                "cancelling the unfinished children of %d job(s) that ended failed or cancelled"
                " before a previous server stopped",
                len(orphaned),
            )
        while orphaned:
            cancelled: list[Job] = []
            for i in range(0, len(orphaned), CASCADE_BATCH):
                done, _ = await self.store.cancel_children(orphaned[i : i + CASCADE_BATCH], time.time())
                cancelled.extend(done)
            self._publish_many(cancelled)
            if not cancelled:  # what is left has running children only
                self._cascade.update(orphaned)
                self._cascade_wake.set()
                return
            orphaned = await self.store.orphaned_children()

    async def _cascade_loop(self) -> None:
        """Cancel the unfinished children of parents that ended failed or cancelled, with the
        reason "parent <id> failed" / "parent <id> cancelled". Queued and paused children are
        cancelled in the store in batches; running ones are stopped like an operator cancel. A
        cancelled child is an ended parent in turn, so grandchildren follow."""
        while True:
            await self._cascade_wake.wait()
            self._cascade_wake.clear()
            while self._cascade:
                batch = list(itertools.islice(self._cascade.items(), CASCADE_BATCH))
                for parent_id, _ in batch:
                    del self._cascade[parent_id]
                try:
                    cancelled, running = await self.store.cancel_children(batch, time.time())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "could not cancel the children of %d ended job(s) (%s); they keep running",
                        len(batch),
                        exc.message if isinstance(exc, PulseError) else repr(exc),
                    )
                    continue
                for child in cancelled:
                    self._publish(child)
                statuses = dict(batch)
                for child_id in running:
                    task = asyncio.create_task(self._cancel_child(child_id, statuses))
                    self._cascade_cancels.add(task)
                    task.add_done_callback(self._cascade_cancels.discard)

    async def _cancel_child(self, child_id: str, statuses: dict[str, str]) -> None:
        try:
            child = await self.store.get(child_id, with_payload=False)
            if child is None or child.parent_job_id not in statuses:
                return
            reason = parent_ended_reason(child.parent_job_id, statuses[child.parent_job_id])
            job = await self.cancel(child_id, reason)
            if job.status == CANCELLED and job.error != reason:
                # it ran on another node that could not tell (see _remote_cancel_reason): say why
                job = await self.store.transition(child_id, (CANCELLED,), {"error": reason}) or job
                self._publish(job)
        except PulseError as exc:  # it ended meanwhile, or runs on a node that did not answer
            log.info("child job %s was not cancelled with its parent: %s", child_id, exc.message)
        except Exception:
            log.exception("cancelling child job %s failed", child_id)

    def _fresh(self, job: Job) -> bool:
        """False for a snapshot older than one already published for the job. Publishers race:
        `enqueue` publishes "queued" after its insert returns, by which time this node's
        dispatcher or another node (woken by the insert's NOTIFY) may have run the job and
        published "completed"; the late "queued" must not overwrite it in watchers. Order is
        (attempts, running < ended) — no clocks, so it holds across nodes. Bounded memory."""
        rank = _rank(job)
        last = self._ranks.get(job.id)
        if last is not None and rank < last:
            return False
        self._ranks[job.id] = rank
        self._ranks.move_to_end(job.id)
        if len(self._ranks) > EVENT_RANK_MEMORY:
            self._ranks.popitem(last=False)
        return True

    def routes_changed(self) -> None:
        self._due_epoch += 1
        self._kick()
        for fn in list(self.route_listeners):
            try:
                fn()
            except Exception:
                log.exception("a routes listener failed")

    # ------------------------------------------------------------ dispatch
    def _kick(self) -> None:
        self._kicks += 1
        self._wake.set()

    @property
    def _maybe_queued(self) -> bool:
        """A claim may find something: a kick came after the last round that drained the queue."""
        return self._kicks != self._settled

    def _probation_lock(self, key: str) -> asyncio.Lock:
        lock = self._probation.get(key)
        if lock is None:
            lock = self._probation[key] = asyncio.Lock()
        return lock

    def _note_due(self, when: float) -> None:
        if self._due_timer is None or when < self._due_at:
            if self._due_timer is not None:
                self._due_timer.cancel()
            loop = asyncio.get_running_loop()
            self._due_at = when
            self._due_timer = loop.call_at(
                loop.time() + max(0.0, when - time.time()) + 0.001, self._due_fired
            )

    def _due_fired(self) -> None:
        self._due_timer = None
        self._due_epoch += 1
        self._kick()

    @property
    def _full(self) -> bool:
        """No slot free and no room for a job claimed ahead: claiming waits for a slot."""
        return self._busy >= self.concurrency and len(self._ahead) >= self.prefetch

    def _hand_over(self, job: Job) -> None:
        """Start `job` in a slot (it holds the slot until its handler part ends). Its attempt
        (timeout, `started_at`) starts now, however long it waited claimed ahead."""
        job.started_at = time.time()
        self._start(job)
        run = self._running[job.id]
        run.holds = True
        self._busy += 1

    def _slot_freed(self, run: _Run) -> None:
        """`run`'s handler part ended (its end is about to be queued to the store's writer): its
        slot goes to the oldest job claimed ahead, whose attempt (timeout, `started_at`) starts
        now; the dispatcher is woken to claim for the slot or to refill what was claimed ahead.
        The dispatcher runs after this loop turn, so its claim joins the writer queue behind the
        ends written in this turn: one commit carries both when the writer is free."""
        if not run.holds:
            return
        run.holds = False
        self._busy -= 1
        was_full = self._busy + 1 >= self.concurrency and len(self._ahead) >= self.prefetch
        if self._ahead and not self._stopping:
            waiting = len(self._ahead)
            job = self._take_ahead()
            if job is not None:
                self._hand_over(job)
            if job is None or len(self._ahead) < waiting - 1:
                was_full = True  # jobs were put back: claim for the slot, or for the room ahead
        if self._blocked or self._in_round or was_full:
            # a slot freed: claim again if a limit held jobs back, or might have (a round
            # awaiting the store may have counted this job as busy)
            self._blocked = False
            self._kick()

    def _release_ahead(self, job_id: str, reason: str, message: str = "") -> _Run:
        """Start a job claimed ahead outside the slots, stopped before it begins (cancel with
        `message`, shutdown): its attempt ends at once as cancelled or interrupted, through the
        usual path."""
        job = self._ahead.pop(job_id)
        job.started_at = time.time()
        self._start(job)
        run = self._running[job_id]
        run.stop(reason, message)
        return run

    def _ahead_hold(self, job: Job) -> tuple[str, str] | None:
        """(status, pause_reason) to put a job claimed ahead back with, when it may not run now:
        its handler is paused (held paused) or no longer routed (queued); a budget holds it
        (queued, then held by the store's budget hold unless an operator released it over the
        budget: one put back before and claimed again runs). None: it may run."""
        if handler_base(job.handler) in self.paused_handlers:
            return PAUSED, REASON_HANDLER
        if self.router.resolve(job.handler) is None:
            return QUEUED, ""
        if self._budget_holds(job.handler, job.cost_estimate):
            if job.id in self._budget_returned:
                del self._budget_returned[job.id]
                return None
            return QUEUED, REASON_BUDGET
        return None

    def _take_ahead(self) -> Job | None:
        """The oldest job claimed ahead that may run now; those before it that may not are put
        back (see _ahead_hold)."""
        while self._ahead:
            _, job = self._ahead.popitem(last=False)
            hold = self._ahead_hold(job)
            if hold is None:
                return job
            self._put_back(job, *hold)
        return None

    def _put_back(self, job: Job, status: str, why: str) -> asyncio.Task[Job | None]:
        """Give a job claimed ahead that may not run back to the store, as if it had never been
        claimed (no attempt recorded, nothing charged): `status` with pause reason `why` (a
        budget's queued jobs are held by the next claim round's budget hold)."""
        task = asyncio.create_task(self._return_job(job, status, why), name=f"pulse-return-{job.id}")
        self._returning[job.id] = task
        return task

    async def _return_job(self, job: Job, status: str, why: str) -> Job | None:
        changes: dict[str, Any] = {
            "status": status,
            "pause_reason": why if status == PAUSED else "",
            "attempts": max(0, job.attempts - 1),
            "run_attempts": max(0, job.run_attempts - 1),
            "updated_at": time.time(),
        }
        if job.attempts <= 1:
            changes["started_at"] = 0.0  # never started
        row: Job | None = None
        try:
            row = await self.store.transition(job.id, (RUNNING,), changes)
            if row is None:
                log.warning("job %s claimed ahead could not be put back (it changed meanwhile)", job.id)
        except Exception as exc:
            log.warning(
                "could not put back job %s claimed ahead (%s); it stays running in the store and is"
                " re-queued at restart (or when its lease lapses on a shared store)",
                job.id,
                exc.message if isinstance(exc, PulseError) else repr(exc),
            )
        finally:
            self._returning.pop(job.id, None)
        if row is None:
            return None
        if why == REASON_BUDGET:
            self._budget_returned[job.id] = None
            while len(self._budget_returned) > EVENT_RANK_MEMORY:
                self._budget_returned.popitem(last=False)
            # the next round's budget hold takes it (see _ahead_hold)
            self._budget_returns += 1
            self._budget_applied = None
        # its attempts count went back: the running snapshot published at the claim is not newer
        # (see _fresh; this node owned the job, so no other snapshot of it is in flight here)
        self._ranks.pop(job.id, None)
        self._publish(row)
        if row.status == QUEUED and not self._stopping:
            self._due_epoch += 1
            self._kick()
        return row

    async def _hold_ahead(self) -> list[Job]:
        """Put back every job claimed ahead that may not run now (a handler paused, a budget
        reached); the rows put back."""
        tasks = []
        for job in list(self._ahead.values()):
            hold = self._ahead_hold(job)
            if hold is not None:
                del self._ahead[job.id]
                tasks.append(self._put_back(job, *hold))
        if not tasks:
            return []
        self._kick()  # room ahead: claim to refill it
        return [r for r in await asyncio.gather(*tasks) if r is not None]

    async def _returned(self) -> None:
        """Until the jobs being put back are in the store."""
        while self._returning:
            await asyncio.wait(list(self._returning.values()))

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            if self._maybe_queued:
                if self._full:
                    self._blocked = True
                else:
                    try:
                        more = await self._claim_round()
                    except PulseError as exc:  # the store said why (disk full, locked): no traceback
                        log.warning("claiming jobs failed (%s); retrying in 1s", exc.message)
                        await asyncio.sleep(1.0)
                        continue
                    except Exception:
                        log.exception("claiming jobs failed; retrying in 1s")
                        await asyncio.sleep(1.0)
                        continue
                    if more:
                        continue
            if self._stopping:
                break
            self._wake.clear()
            if self._maybe_queued and not self._full:
                continue
            await self._wake.wait()

    async def _claim_round(self) -> bool:
        """Claim and start one batch. True when a full batch came back (more may be waiting).

        What the round settles it settles as of its start: `kicks` and `due_epoch` are read
        before the first await, the same instant as `routable` and `now`. A kick or a due-time
        change during the round's awaits leaves the counters ahead, so the loop runs another
        round; a job ending during the round kicks (see _execute) so a limit the round saw as
        full is looked at again."""
        kicks, due_epoch = self._kicks, self._due_epoch
        self._in_round = True
        self._round_idle.clear()
        try:
            return await self._claim_batch(kicks, due_epoch)
        finally:
            self._in_round = False
            self._round_idle.set()

    async def _claim_batch(self, kicks: int, due_epoch: int) -> bool:
        if self.budgets is not None:
            # jobs being put back are stored before the claim (and a budget's are held by it)
            await self._returned()
            if self.spend.stale(time.time()):  # a new day or month: its spend starts afresh
                await self._load_spend(time.time())
            if self._budget_all or self._budget_handlers or self._budget_due():
                await self._apply_budgets()  # also holds what other nodes queued meanwhile
        routable = self.router.routable()
        now = time.time()
        free = max(0, self.concurrency - self._busy)
        # jobs of handlers without a limit may be claimed ahead of a free slot (`prefetch`)
        want = min(free + max(0, self.prefetch - len(self._ahead)), self.claim_batch)
        limits = {h: n for h, n in self.handler_limits.items() if h in routable}
        full = False
        claimed: list[Job] = []
        open_names = [h for h in routable if h not in limits]
        if open_names and want > 0:
            got = await self.store.claim(want, open_names, now)
            claimed.extend(got)
            full = len(got) == want
        if limits:
            # slots left once the open handlers' jobs took theirs (a round awaiting the store may
            # see slots freed meanwhile; they are claimed by the next round)
            left = max(0, free - len(claimed))
            busy: dict[str, int] = {}
            for r in self._running.values():
                if r.holds:
                    busy[r.job.handler] = busy.get(r.job.handler, 0) + 1
            limited: list[Job] = []
            for h, n in limits.items():
                room = min(n - busy.get(h, 0), left - len(limited))
                if room <= 0:
                    self._blocked = True
                    continue
                got = await self.store.claim(room, [h], now)
                limited.extend(got)
                if len(got) == room:
                    self._blocked = True
        else:
            limited = []
        for job in claimed:  # in claim order: the oldest waits least
            self._ahead[job.id] = job
        while self._busy < self.concurrency and (nxt := self._take_ahead()) is not None:
            self._hand_over(nxt)
        for job in claimed:
            if job.id in self._ahead:  # watchers see what the store has: running, on this node
                self._publish(job)
        for job in limited:
            self._hand_over(job)
        if not full:
            if self._due_known != due_epoch:
                # from the claim's `now`: a job due since then was not claimed and must be reported
                due = await self.store.next_due(routable, now)
                if due is not None:
                    self._note_due(due)
                self._due_known = due_epoch
            self._settled = kicks
        return full and not self._stopping

    def _start(self, job: Job) -> None:
        handler = self.router.resolve(job.handler)
        run = _Run(job, handler)
        job.plugin = run.plugin
        self._running[job.id] = run
        run.task = asyncio.create_task(self._execute(run), name=f"job-{job.id}")
        self._add_deadline(run, float(job.timeout_secs or self.default_timeout))
        if self.metrics:
            self.metrics.started(job.handler, job.started_at - job.run_at)
        self._publish(job)

    def _add_deadline(self, run: _Run, timeout: float) -> None:
        """Time `run` out `timeout` seconds from now (at most DEADLINE_SLOT later): jobs started
        together share one timer instead of an `asyncio.timeout` each."""
        loop = asyncio.get_running_loop()
        key = (int((loop.time() + timeout) / DEADLINE_SLOT) + 1) * DEADLINE_SLOT
        slot = self._deadlines.get(key)
        if slot is None:
            slot = self._deadlines[key] = _DeadlineSlot(key)
            slot.handle = loop.call_at(key, slot.fire, self._deadlines)
        slot.runs.add(run)
        run.slot = slot

    def _drop_deadline(self, run: _Run) -> None:
        slot = run.slot
        if slot is not None:
            run.slot = None
            slot.runs.discard(run)
            if not slot.runs and slot.handle is not None:
                slot.handle.cancel()
                if self._deadlines.get(slot.key) is slot:
                    del self._deadlines[slot.key]

    @staticmethod
    def _take_back_deadline(run: _Run, task: asyncio.Task[None]) -> int:
        """Take back the cancel the deadline made (once); the cancels still pending on `task`."""
        if run.expired == 1:
            run.expired = 2
            return task.uncancel()
        return task.cancelling()

    async def _execute(self, run: _Run) -> None:
        job = run.job
        attempt = Attempt(job.id, job.attempts, job.started_at, plugin=run.plugin, node=self.node)
        timeout = float(job.timeout_secs or self.default_timeout)
        outcome, error, retryable, crashed = OUTCOME_COMPLETED, "", True, False
        cause = ""
        res: HandlerResult | None = None
        run.cancellable = True
        try:
            if run.cancel_reason is not None:
                raise asyncio.CancelledError  # stopped before it began (see _Run.stop)
            if run.expired:
                raise TimeoutError  # its deadline passed before it began
            if run.handler is None:
                raise HandlerError(f"no handler routes {job.handler!r} any more", outcome=OUTCOME_UNAVAILABLE)
            ctx = JobContext(
                job,  # the running job itself: handlers read it; the engine owns its fields
                attempt.number,
                timeout,
                lambda c, t: self._on_progress(run, c, t),
                lambda e: self._on_log(run, e),
                lambda v: setattr(run.job, "cost_actual", v),
            )
            if job.crashes >= PROBATION_AFTER and not run.cancel_reason:
                # on probation: it was caught in a crash; run one such job per plugin at a time,
                # so the next crash tells the culprit from its neighbours
                async with self._probation_lock(run.plugin or job.handler):
                    res = await run.handler.run(ctx)
            else:
                res = await run.handler.run(ctx)
        except TimeoutError as exc:
            if run.expired:  # the handler turned the deadline's cancel into a TimeoutError
                outcome, error = OUTCOME_TIMEOUT, f"timed out after {timeout:g}s (enforced by Pulse)"
            else:
                outcome, error = OUTCOME_FAILED, f"TimeoutError: {exc}"
        except HandlerError as exc:
            outcome, error, retryable, res = exc.outcome, exc.message, exc.retryable, exc.result
            crashed = isinstance(exc, Interrupted) and exc.crashed
            cause = exc.cause if isinstance(exc, Interrupted) else error
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            if run.expired == 1 and self._take_back_deadline(run, task) == 0:
                # the deadline's cancel and no other
                outcome, error = OUTCOME_TIMEOUT, f"timed out after {timeout:g}s (enforced by Pulse)"
            elif run.cancel_reason is None and task.cancelling():
                raise  # the loop is going away; recovery re-queues the job at next start
            elif run.cancel_reason is None:
                # the handler raised CancelledError on its own (e.g. a closed channel): a failure,
                # never a job stuck in `running`
                outcome, error = OUTCOME_FAILED, "handler was cancelled unexpectedly (CancelledError)"
            elif run.cancel_reason == "operator":
                task.uncancel()
                outcome, error = OUTCOME_CANCELLED, run.cancel_message
            else:
                task.uncancel()
                outcome, error = OUTCOME_INTERRUPTED, "server shutting down; re-queued"
        except Exception as exc:  # a handler bug must not take the engine down
            log.exception("handler %s raised on job %s", job.handler, job.id)
            outcome, error = OUTCOME_FAILED, f"{type(exc).__name__}: {exc}"
        run.cancellable = False
        if run.slot is not None:
            self._drop_deadline(run)
        elif run.expired == 1:  # the handler ended some other way after the deadline's cancel
            task = asyncio.current_task()
            assert task is not None
            self._take_back_deadline(run, task)
        try:
            item = self._end_item(run, attempt, outcome, error, retryable, res, crashed=crashed, cause=cause)
        except Exception:
            if self.metrics:
                self.metrics.finished(job.handler, outcome, time.time() - job.started_at)
            log.exception("could not record the end of job %s; %s", job.id, END_LOST)
            self._slot_freed(run)
            self._release(run)
            return
        if self.metrics:  # run time up to the end's own time (updated_at), read once by _end_item
            self.metrics.finished(job.handler, outcome, job.updated_at - job.started_at)
        # the task ends here; the job stays in _running until its end is stored
        self._ends.append((run, item))
        if len(self._ends) == 1:
            writer = asyncio.create_task(self._write_ends(), name="pulse-ends")
            self._end_writers.add(writer)
            writer.add_done_callback(self._end_writers.discard)
        if item.job.status in FINISHED:
            # booked before the slot goes to the next job: a budget this spend reaches holds it
            self._book_spend(item.job)
        # the slot is freed after the group's writer was scheduled: the claim that reuses it
        # (next loop turn) is queued to the store behind this turn's ends, in the same commit
        self._slot_freed(run)

    async def _write_ends(self) -> None:
        """Store the attempt ends of one loop turn as one group (one store call, one future, one
        task step for all of them), then do what follows each end, in order. If the group's write
        fails, each end is tried alone, so one bad row cannot sink its neighbours."""
        ends, self._ends = self._ends, []
        try:
            await self._store_ends([item for _, item in ends])
        except Exception as exc:
            if len(ends) == 1:
                log.error("could not record the end of job %s (%s); %s", ends[0][1].job.id, exc, END_LOST)
                self._release(ends[0][0])
                return
            log.warning(
                "recording the ends of %d jobs together failed (%s); trying each alone", len(ends), exc
            )
            await asyncio.gather(*(self._write_end_alone(run, item) for run, item in ends))
            return
        for run, item in ends:
            self._after_end(run, item)

    async def _write_end_alone(self, run: _Run, item: Finish) -> None:
        try:
            await self._store_ends([item])
        except Exception:
            log.exception("could not record the end of job %s; %s", item.job.id, END_LOST)
            self._release(run)
            return
        self._after_end(run, item)

    async def _store_ends(self, items: list[Finish]) -> None:
        for delay in FINISH_RETRY_DELAYS:  # the row values are computed once; only the write is retried
            try:
                await self.store.finish(items)
                return
            except Exception as exc:
                if delay is None:
                    raise
                log.warning("recording the end of %d job(s) failed (%s); retrying", len(items), exc)
                await asyncio.sleep(delay)  # back off from a busy or locked store

    def _release(self, run: _Run) -> None:
        """The run's end is stored (or given up on); its slot was freed when its handler part
        ended (_slot_freed)."""
        job_id = run.job.id
        if self._running.get(job_id) is run:
            del self._running[job_id]
        self._progress_dirty.pop(job_id, None)
        if run.ended is not None:
            run.ended.set()

    async def _wait_ended(self, run: _Run) -> None:
        """Until the run's task ended and its end is stored."""
        assert run.task is not None
        await asyncio.wait([run.task])
        if self._running.get(run.job.id) is run:
            if run.ended is None:
                run.ended = asyncio.Event()
            await run.ended.wait()

    def _end_item(
        self,
        run: _Run,
        attempt: Attempt,
        outcome: str,
        error: str,
        retryable: bool,
        res: HandlerResult | None,
        *,
        crashed: bool = False,
        cause: str = "",
    ) -> Finish:
        """The job's and the attempt's values at the attempt's end (nothing stored yet)."""
        run.ending = True
        job = run.job
        now = time.time()
        if res is not None:
            if res.result:
                job.result = res.result
            if res.progress_current is not None and (res.progress_current or res.progress_total):
                job.progress_current = res.progress_current
                job.progress_total = res.progress_total or job.progress_total
            if res.cost_actual is not None and res.cost_actual:
                job.cost_actual = res.cost_actual
            if res.plugin_version:
                job.plugin_version = attempt.plugin_version = res.plugin_version
            run.logs.extend(res.logs[:MAX_LOGS_PER_ATTEMPT])
        if outcome == OUTCOME_COMPLETED:
            # a completed attempt is kept in the job row only (store.sql.stores_attempt): the row
            # says this attempt's version, not one an earlier attempt reported
            job.plugin_version = attempt.plugin_version
        job.updated_at = now
        if error:
            error = cap_text(error, MAX_ERROR_BYTES)
        job.error = error
        status = COMPLETED
        if outcome == OUTCOME_COMPLETED:
            job.completed_at = now
            if job.progress_total and job.progress_current < job.progress_total:
                job.progress_current = job.progress_total
        elif outcome == OUTCOME_CANCELLED:
            status, job.completed_at = CANCELLED, now
        elif outcome == OUTCOME_INTERRUPTED and crashed and job.crashes + 1 >= CRASH_LIMIT:
            # caught in CRASH_LIMIT crashes of its plugin in a row: the likely cause. Charged.
            job.crashes += 1
            status, job.completed_at, outcome = FAILED, now, OUTCOME_CRASHED
            error = job.error = (
                f"crashed its plugin {run.plugin or job.handler} {job.crashes} times in a row (the plugin "
                f"process died each time this job ran; last: {cause or error}); not run again"
            )
        elif outcome == OUTCOME_INTERRUPTED:
            # cut short by something other than the job (plugin crash, reload, shutdown): not charged
            status, job.run_at = QUEUED, now
            job.run_attempts = max(0, job.run_attempts - 1)
            job.interruptions += 1
            if crashed:
                job.crashes += 1
        elif retryable and job.run_attempts < job.max_attempts:
            status = QUEUED
            job.run_at = now + backoff_delay(job.run_attempts, self.backoff_base, self.backoff_cap)
        else:
            status, job.completed_at = FAILED, now
        if job.crashes and outcome not in (OUTCOME_INTERRUPTED, OUTCOME_CRASHED):
            job.crashes = 0  # the streak is broken by an attempt that ended on its own
        if status == QUEUED:
            # its handler was paused (or its budget reached) while it ran; an operator's release
            # over budget was for one attempt
            reason = self._hold_reason(job.handler, job.cost_estimate)
            if reason:
                status, job.pause_reason = PAUSED, reason
        job.status = status
        attempt.ended_at, attempt.outcome, attempt.error = now, outcome, error
        for e in run.logs:
            e.attempt = attempt.number
        return Finish(job, attempt, run.logs)

    def _after_end(self, run: _Run, item: Finish) -> None:
        """What follows an attempt's stored end: events, spend, the next attempt's timing."""
        job = item.job
        status = job.status
        try:
            self._after_end_of(job, status)
        except Exception:
            log.exception("handling the end of job %s failed", job.id)
        finally:
            self._release(run)

    def _book_spend(self, job: Job) -> None:
        """A finished job's cost, in the spend book as its attempt ends (its store write follows:
        the spend is read again from the store every SPEND_REFRESH_SECS)."""
        try:
            self.spend.add(job.handler, job.cost_actual, job.completed_at)
            if self.budgets is not None and self._evaluate_budgets():
                self._kick()  # a budget was reached: the next claim round holds what it covers
        except Exception:
            log.exception("booking the spend of job %s failed", job.id)

    def _after_end_of(self, job: Job, status: str) -> None:
        self._publish(job)
        sec = int(time.monotonic())
        if self._completions and self._completions[-1][0] == sec:
            self._completions[-1] = (sec, self._completions[-1][1] + 1)
        else:
            self._completions.append((sec, 1))
        if status == QUEUED and not self._stopping:
            if job.run_at > time.time():
                self._note_due(job.run_at)
            else:
                self._kick()

    # ------------------------------------------------------------ progress & logs
    def _on_progress(self, run: _Run, current: int, total: int) -> None:
        job = run.job
        if run.ending or (job.progress_current == current and job.progress_total == total):
            return
        job.progress_current, job.progress_total = current, total
        job.updated_at = time.time()
        self._publish(job)
        self._progress_dirty[job.id] = run
        if self._progress_task is None or self._progress_task.done():
            self._progress_task = asyncio.create_task(self._progress_flusher())

    def _on_log(self, run: _Run, entry: LogEntry) -> None:
        if len(run.logs) < MAX_LOGS_PER_ATTEMPT:
            entry.message = cap_text(entry.message, MAX_LOG_MESSAGE_BYTES)
            run.logs.append(entry)

    async def _progress_flusher(self) -> None:
        await asyncio.sleep(self.progress_flush_secs)  # coalescing window, not synchronisation
        await self._flush_progress()

    async def _flush_progress(self) -> None:
        dirty, self._progress_dirty = self._progress_dirty, {}
        if not dirty:
            return
        now = time.time()
        try:
            await self.store.set_progress(
                [
                    (jid, r.job.progress_current, r.job.progress_total, r.job.cost_actual, now)
                    for jid, r in dirty.items()
                ]
            )
        except PulseError as exc:
            log.warning("could not store progress of %d job(s) (%s)", len(dirty), exc.message)
        except Exception:
            log.exception("could not store progress of %d job(s)", len(dirty))

    # ------------------------------------------------------------ retention
    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.prune_expired()
            except asyncio.CancelledError:
                raise
            except PulseError as exc:  # the store said why (disk full, damaged): no traceback
                log.warning("pruning finished jobs failed (%s)", exc.message)
            except Exception:
                log.exception("pruning finished jobs failed")
            self.pruned.set()
            await asyncio.sleep(60.0)

    async def prune_expired(self) -> int:
        """One retention pass: completed jobs older than `retention_secs`, except for handlers
        with a `completed` rule of their own, then each handler's own rules. Returns how many."""
        now = time.time()
        total = 0

        async def prune(cutoff: float, statuses: tuple[str, ...], **which: Collection[str]) -> None:
            nonlocal total
            while (n := await self.store.prune(cutoff, statuses, 5000, **which)) > 0:
                total += n
                if n < 5000:
                    break
                await asyncio.sleep(0)

        if self.retention_secs:
            own = [h for h, rules in self.retention_handlers.items() if COMPLETED in rules]
            await prune(now - self.retention_secs, (COMPLETED,), exclude_handlers=own)
        for handler, rules in self.retention_handlers.items():
            for status, secs in rules.items():
                if secs is not None:
                    await prune(now - secs, (status,), handlers=(handler,))
        return total

    async def prune_now(self, older_than_secs: float, statuses: tuple[str, ...] = (COMPLETED,)) -> int:
        cutoff = time.time() - older_than_secs
        total = 0
        while (n := await self.store.prune(cutoff, statuses, 5000)) > 0:
            total += n
        return total


__all__ = ["Engine", "backoff_delay", "OUTCOME_FAILED"]
