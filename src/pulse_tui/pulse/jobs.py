"""Job model: statuses, the legal transitions between them, and the records we keep."""

from __future__ import annotations

import fnmatch
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from pulse_tui.pulse.errors import Precondition, ValidationError
from pulse_tui.sorting import SORT_NAMES
from pulse_tui.sorting import sort_scope as sort_scope  # the stores import it from here
from pulse_tui.vocab import FINISHED, JobStatus, PauseReason
from pulse_tui.vocab import STATUSES as STATUSES  # re-exported: the server imports it from here

# the statuses are the shared vocabulary's (pulse_tui.vocab), spelled here as the server always has
QUEUED = JobStatus.QUEUED
RUNNING = JobStatus.RUNNING
PAUSED = JobStatus.PAUSED
COMPLETED = JobStatus.COMPLETED
FAILED = JobStatus.FAILED
CANCELLED = JobStatus.CANCELLED

# Why a paused job is held (Job.pause_reason; QNTX's PulseState.pause_reason): the vocabulary's
REASON_USER = PauseReason.USER_REQUESTED  # an operator paused the job
REASON_HANDLER = PauseReason.HANDLER_PAUSED  # its handler is paused (released when the handler resumes)
REASON_BUDGET = PauseReason.BUDGET_EXCEEDED  # a spend budget covering it is used up
PAUSE_REASONS: tuple[str, ...] = (REASON_USER, REASON_HANDLER, REASON_BUDGET)

# Every legal move. Anything else is refused with IllegalTransition.
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, PAUSED, CANCELLED}),
    PAUSED: frozenset({QUEUED, CANCELLED}),
    # running -> queued: retry after a failed attempt, interrupted by a restart, or re-queued at shutdown
    RUNNING: frozenset({COMPLETED, FAILED, CANCELLED, QUEUED}),
    FAILED: frozenset({QUEUED}),  # operator retry
    CANCELLED: frozenset({QUEUED}),  # operator retry
    COMPLETED: frozenset(),
}

# Attempt outcomes.
OUTCOME_RUNNING = "running"
OUTCOME_COMPLETED = "completed"
OUTCOME_FAILED = "failed"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_CANCELLED = "cancelled"
OUTCOME_INTERRUPTED = "interrupted"
OUTCOME_UNAVAILABLE = "plugin_unavailable"
OUTCOME_PROTOCOL_ERROR = "protocol_error"  # the plugin's reply broke the protocol (not retried)
OUTCOME_CRASHED = "crashed"  # the job was running at CRASH_LIMIT crashes in a row: the likely cause

# An attempt cut short by something other than the job (a plugin crash it was caught in, a reload,
# a shutdown, a lost lease) is `interrupted`: not charged, re-run. A job running at this many
# crashes in a row (of its plugin, or of the server) is the likely cause: it fails, `crashed`.
CRASH_LIMIT = 3
SERVER_INTERRUPTED_ERROR = "interrupted: the server stopped while this job ran; re-queued"
SERVER_CRASHED_ERROR = (
    f"crashed: the server stopped while this job ran {CRASH_LIMIT} times in a row; "
    "it is the likely cause, so it is not run again (retry it by hand if it was not)"
)

DEFAULT_MAX_ATTEMPTS = 3
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_ERROR_BYTES = 8 * 1024  # a stored error (job and attempt) is cut to this, see cap_text
MAX_LOG_MESSAGE_BYTES = 8 * 1024  # one log entry's message / metadata


def cap_text(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (plus a note "… (N bytes cut)")."""
    if len(text) * 4 <= limit:  # cannot be over: at most 4 bytes a character
        return text
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    kept = raw[: max(0, limit - 40)].decode("utf-8", "ignore")  # room for the note; whole characters
    return f"{kept}… ({len(raw) - len(kept.encode('utf-8', 'surrogatepass')):,} bytes cut)"


def check_report(current: int, total: int, cost: float | None) -> tuple[str, bool]:
    """The rules for what a plugin reports about a running job, on both paths (UpdateJob while it
    runs, the final ExecuteJobResponse). Returns (refusal, clamp): a non-empty refusal means the
    values are refused — negative progress, or a cost that is negative, NaN or infinite; clamp is
    True when current > total > 0, which is stored as total/total."""
    if current < 0 or total < 0:
        return f"progress must not be negative (got {current}/{total})", False
    if cost is not None and not (cost >= 0 and cost != float("inf")):
        return f"cost must be a non-negative finite number (got {cost})", False
    return "", total > 0 and current > total


class IllegalTransition(Precondition):
    """A status change the state machine does not allow."""

    def __init__(self, job_id: str, current: str, target: str, hint: str = "") -> None:
        msg = f"job {job_id} is {current}; it cannot become {target}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
        self.job_id, self.current, self.target = job_id, current, target


def check_transition(job_id: str, current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        hint = ""
        if target == CANCELLED and current in FINISHED:
            hint = "it has already finished"
        elif target == QUEUED and current in (RUNNING, QUEUED, PAUSED):
            hint = "only failed or cancelled jobs can be retried"
        elif target == QUEUED and current == COMPLETED:
            hint = "completed jobs are not retried; enqueue a new job"
        raise IllegalTransition(job_id, current, target, hint)


def parent_ended_reason(parent_id: str, parent_status: str) -> str:
    """Why a child job was cancelled: its parent ended failed or cancelled (Engine._cascade_loop)."""
    return f"parent {parent_id} {parent_status}"


def wire_retry_count(job: Job) -> int:
    """`Job.retry_count` on QNTX's wire: retries, the attempts after the first (2 after three
    attempts), and never less than the retry_count the job was enqueued with (a QNTX client that
    re-enqueues a copy sets it) or the operator retries."""
    return max(job.retry_count, job.attempts - 1, 0)


def check_pause(job_id: str, current: str) -> None:
    """Only a queued (or delayed) job can be paused; say what to do otherwise."""
    if current == QUEUED:
        return
    if current == RUNNING:
        hint = "a running job cannot be paused; cancel it instead"
    elif current == PAUSED:
        hint = "it is already paused"
    else:
        hint = "it has already finished; only queued or delayed jobs can be paused"
    raise IllegalTransition(job_id, current, PAUSED, hint)


def check_resume(job_id: str, current: str) -> None:
    if current != PAUSED:
        raise IllegalTransition(job_id, current, QUEUED, "only paused jobs can be resumed")


def handler_base(handler: str) -> str:
    """The handler name a job's handler is paused under: `a.b` for `a.b` and `plugin/a.b`
    (the stores compute the same with substr/instr)."""
    return handler.partition("/")[2] or handler


RETRYABLE_BY_OPERATOR: frozenset[str] = frozenset({FAILED, CANCELLED})


def check_operator_retry(job_id: str, current: str) -> None:
    """An operator retry re-queues a failed or cancelled job; nothing else."""
    if current not in RETRYABLE_BY_OPERATOR:
        if current == COMPLETED:
            hint = "completed jobs are not retried; enqueue a new job"
        else:
            hint = "only failed or cancelled jobs can be retried"
        raise IllegalTransition(job_id, current, QUEUED, hint)


_id_lock = threading.Lock()
_id_last_ms = 0
_id_counter = 0


def new_job_id() -> str:
    """A 128-bit time-ordered id with the UUIDv7 layout (RFC 9562), as 32 lowercase hex digits.

    48 bits of Unix milliseconds (good until the year 10889), the version (7), 12 bits of a
    per-millisecond counter (ids made by this process sort in creation order), the variant, and
    62 random bits (a collision needs two ids in the same millisecond with equal counters and
    equal random bits). Ids are opaque strings to the stores: older 16-digit ids keep working."""
    with _id_lock:
        ms, counter = _id_stamp(time.time_ns() // 1_000_000)
    rand = int.from_bytes(os.urandom(8)) & ((1 << 62) - 1)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return f"{value:032x}"


def new_job_ids(n: int) -> list[str]:
    """n ids as n calls of new_job_id() make them (in creation order), reading the clock and the
    OS's random bits once for all of them (bulk enqueue). The stamps of consecutive ids count up
    as one number (ms << 12 | counter: a full counter carries into the next millisecond, as
    _id_stamp does); the ids are packed as bytes and hex-encoded at once."""
    if n <= 0:
        return []
    rands = struct.unpack(f">{n}Q", os.urandom(8 * n))
    with _id_lock:
        global _id_last_ms, _id_counter
        ms, counter = _id_stamp(time.time_ns() // 1_000_000)
        first = ms << 12 | counter
        _id_last_ms, _id_counter = divmod(first + n - 1, 1 << 12)  # the last id's stamp
    words = [0] * (2 * n)
    words[0::2] = [
        ((t >> 12) & 0xFFFF_FFFF_FFFF) << 16 | 0x7 << 12 | (t & 0xFFF) for t in range(first, first + n)
    ]
    words[1::2] = [0b10 << 62 | (r & ((1 << 62) - 1)) for r in rands]
    digits = struct.pack(f">{2 * n}Q", *words).hex()
    return [digits[i : i + 32] for i in range(0, 32 * n, 32)]


def _id_stamp(ms: int) -> tuple[int, int]:
    """The next id's (millisecond, counter), `ms` being the clock now; under _id_lock."""
    global _id_last_ms, _id_counter
    if ms > _id_last_ms:
        _id_last_ms = ms
        _id_counter = int.from_bytes(os.urandom(2)) & 0x1FF  # leaves 3.5k ids of room per ms
    else:  # same millisecond (or the clock stepped back): keep order with the counter
        _id_counter += 1
        if _id_counter > 0xFFF:  # more than the counter holds: borrow the next millisecond
            _id_last_ms += 1
            _id_counter = 0
    return _id_last_ms, _id_counter


@dataclass(slots=True)
class Job:
    id: str
    handler: str
    status: str = QUEUED
    seq: int = 0
    priority: int = 0
    payload: bytes = b"{}"
    result: bytes = b""
    error: str = ""
    progress_current: int = 0
    progress_total: int = 0
    attempts: int = 0  # attempts started over the whole history
    run_attempts: int = 0  # attempts in the current run (reset by an operator retry)
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_count: int = 0  # operator retries
    timeout_secs: int = 0
    source: str = ""
    parent_job_id: str = ""
    cost_estimate: float = 0.0
    cost_actual: float = 0.0
    created_at: float = 0.0
    started_at: float = 0.0
    completed_at: float = 0.0
    updated_at: float = 0.0
    run_at: float = 0.0
    plugin: str = ""
    plugin_version: str = ""
    node: str = ""
    interruptions: int = 0  # uncharged attempts in the current run (crash, reload, shutdown, lease)
    crashes: int = 0  # attempts in a row that ended in a crash of the plugin or the server
    pause_reason: str = ""  # why a paused job is held (REASON_*); "" unless paused

    def snapshot(self, *, result: bool = False) -> Job:
        """A copy for watchers: the payload left out, and the result unless `result`. A copy
        slot by slot (~4x cheaper than `dataclasses.replace`, which goes through __init__);
        made for every event of every job while someone watches."""
        return _snapshot(self, self.result if result else b"")


def _make_snapshot() -> Callable[[Job, bytes], Job]:
    """The copier behind Job.snapshot, written out from the dataclass's fields (so a new field
    is copied without anyone remembering to), as `dataclasses` writes its own methods."""
    lines = [f"    c.{f.name} = j.{f.name}" for f in fields(Job) if f.name not in ("payload", "result")]
    src = (
        "def snapshot(j, result):\n    c = new(Job)\n"
        + "\n".join(lines)
        + "\n    c.payload = b''\n    c.result = result\n    return c\n"
    )
    scope: dict[str, Any] = {"new": object.__new__, "Job": Job}
    exec(src, scope)  # generated from the field names above, nothing else
    fn: Callable[[Job, bytes], Job] = scope["snapshot"]
    return fn


_snapshot = _make_snapshot()


def job_reader(cols: Sequence[str]) -> Callable[[Any], Job]:
    """A function making a Job of a row whose values are the columns `cols` in that order (the
    other fields at their defaults). Written out like Job.snapshot's copier: a store reads one
    row per claimed job, and `Job(**dict(zip(cols, row)))` cost ~3x as much."""
    at = {c: i for i, c in enumerate(cols)}
    scope: dict[str, Any] = {"new": object.__new__, "Job": Job}
    lines = []
    for f in fields(Job):
        if f.name in at:
            lines.append(f"    j.{f.name} = row[{at[f.name]}]")
        else:
            assert f.default is not MISSING, f"Job.{f.name} has no default: a row must hold it"
            scope[f"d_{f.name}"] = f.default
            lines.append(f"    j.{f.name} = d_{f.name}")
    unknown = set(cols) - {f.name for f in fields(Job)}
    assert not unknown, f"not fields of Job: {sorted(unknown)}"
    exec("def read(row):\n    j = new(Job)\n" + "\n".join(lines) + "\n    return j\n", scope)
    fn: Callable[[Any], Job] = scope["read"]  # a row read by position (tuple, Record)
    return fn


@dataclass(slots=True)
class Attempt:
    job_id: str
    number: int
    started_at: float
    ended_at: float = 0.0
    outcome: str = OUTCOME_RUNNING
    error: str = ""
    plugin: str = ""
    plugin_version: str = ""
    node: str = ""


@dataclass(slots=True)
class LogEntry:
    job_id: str
    attempt: int
    timestamp: str  # RFC3339
    level: str
    message: str
    stage: str = ""
    metadata: str = ""


# Columns a listing may be sorted by (ListJobsRequest.sort_by) → the SQL expression. Ties (and
# "") go by seq, the insertion order. status, handler and id ride an index; the others sort the
# matching rows for each page (see README: sorting 1M jobs).
SORT_COLUMNS: dict[str, str] = {
    "id": "id",
    "handler": "handler",
    "status": "status",
    "priority": "priority",
    "attempts": "attempts",
    "progress": "(CASE WHEN progress_total > 0 THEN progress_current * 1.0 / progress_total ELSE 0 END)",
    "created": "seq",
    "started": "started_at",
    "finished": "completed_at",
    "updated": "updated_at",
    "error": "error",
}
assert tuple(SORT_COLUMNS) == SORT_NAMES, "pulse_tui.sorting.SORT_NAMES and SORT_COLUMNS disagree"


def sort_sql(sort_by: str, desc: bool) -> str:
    """ORDER BY text for a listing (seq breaks ties in the same direction)."""
    if sort_by and sort_by not in SORT_COLUMNS:
        raise ValidationError(f"cannot sort by {sort_by!r}; one of {', '.join(SORT_COLUMNS)}")
    d = "DESC" if desc else "ASC"
    expr = SORT_COLUMNS.get(sort_by, "seq")
    return f"seq {d}" if expr == "seq" else f"{expr} {d}, seq {d}"


@dataclass(slots=True)
class JobFilter:
    statuses: tuple[str, ...] = ()
    handler: str = ""
    text: str = ""
    handler_glob: str = ""  # `*` / `?` glob over the handler name (case-sensitive)
    payload: str = ""  # substring of the payload bytes (case-sensitive)
    error: str = ""  # substring of the last error (case-insensitive)
    parent_job_id: str = ""  # exact: the children of this job

    def matches(self, job: Job) -> bool:
        if self.statuses and job.status not in self.statuses:
            return False
        if self.parent_job_id and job.parent_job_id != self.parent_job_id:
            return False
        if self.handler and job.handler != self.handler:
            return False
        if self.handler_glob and not fnmatch.fnmatchcase(job.handler, self.handler_glob):
            return False
        if self.payload and self.payload.encode() not in job.payload:
            return False
        if self.error and self.error.lower() not in job.error.lower():
            return False
        if self.text:
            t = self.text.lower()
            if (
                t not in job.id.lower()
                and t not in job.handler.lower()
                and t not in job.error.lower()
                and t not in job.source.lower()
            ):
                return False
        return True


@dataclass(slots=True)
class JobDetail:
    job: Job
    attempts: list[Attempt] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
