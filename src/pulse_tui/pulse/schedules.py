"""Schedules: the recurring half of Pulse.

A schedule fires one job per run (`source = "schedule:<id>"`) on an interval or a cron expression
in a time zone, and records each run as an *execution* (running → completed / failed / cancelled
from its job's end) — the history QNTX keeps.

The ticker (`Scheduler`) never polls the table: it sleeps until the earliest `next_run_at` among
active schedules and is woken early by any change (create, resume, update, run now; on PostgreSQL
also by other nodes' changes, through NOTIFY). A run is *claimed in the database*: the store
advances `next_run_at` with a compare-and-set on its old value and, in the same transaction,
inserts the job and the execution. On a shared PostgreSQL queue exactly one node wins each run,
and a node dying between runs loses none (any other node's ticker claims the next one).

Policies, per schedule:
- overlap `skip` (default): while the previous run's job is unfinished, a due run is skipped (and
  recorded as `skipped`); `allow` fires regardless;
- missed runs (the server was down over several due times) coalesce into ONE run, whose
  execution says how many it stands for;
- jitter: each next run is moved later by a random 0..jitter_secs.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from cronsim import CronSim

from pulse_tui import cadence
from pulse_tui.cadence import MAX_INTERVAL_SECS, CadenceError  # noqa: F401
from pulse_tui.pulse.errors import Conflict, NotFound, Precondition, PulseError, ValidationError
from pulse_tui.pulse.jobs import Job
from pulse_tui.vocab import FINISHED, Reason

if TYPE_CHECKING:
    from pulse_tui.pulse.engine import Engine
    from pulse_tui.pulse.store.base import Store

_P = ParamSpec("_P")
_R = TypeVar("_R")

log = logging.getLogger("pulse.schedules")

ACTIVE = "active"
PAUSED = "paused"
STOPPING = "stopping"
INACTIVE = "inactive"  # its handler is gone (a plugin stopped declaring it)
DELETED = "deleted"  # tombstone: kept so a re-declared plugin schedule gets a fresh id
STATES: tuple[str, ...] = (ACTIVE, PAUSED, STOPPING, INACTIVE, DELETED)

OVERLAP_SKIP = "skip"
OVERLAP_ALLOW = "allow"
OVERLAPS: tuple[str, ...] = (OVERLAP_SKIP, OVERLAP_ALLOW)

# execution statuses
EX_RUNNING = "running"
EX_COMPLETED = "completed"
EX_FAILED = "failed"
EX_CANCELLED = "cancelled"
EX_SKIPPED = "skipped"

OWNER_OPERATOR = "operator"
OWNER_CONFIG = "config"
PLUGIN_OWNER_PREFIX = "plugin:"

SOURCE_PREFIX = "schedule:"
MAX_JITTER_SECS = 86400
MAX_MISSED_COUNT = 100_000  # counting missed cron runs stops here ("at least N")
SCHEDULE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
MULTINODE_RECHECK_SECS = 15.0  # a missed NOTIFY from another node costs at most this much
LOOKAHEAD_SECS = 1.0  # runs due this soon are fetched at once and fired on time from memory


class AlreadyDeclared(Precondition):
    """Another node (or a concurrent reconcile) already created this declared schedule."""

    reason = Reason.DUPLICATE_SCHEDULE

    def __init__(self, owner: str, handler: str) -> None:
        super().__init__(f"{owner} already has a declared schedule for {handler!r}")


def new_schedule_id() -> str:
    t = int(time.time() * 1000) & 0xFFFFFFFFFF
    return f"s{t:010x}{os.urandom(3).hex()}"


def new_execution_id() -> str:
    t = int(time.time() * 1000) & 0xFFFFFFFFFF
    return f"x{t:010x}{os.urandom(3).hex()}"


def plugin_owner(plugin: str) -> str:
    return PLUGIN_OWNER_PREFIX + plugin


def schedule_of(job: Job) -> str:
    """The schedule id a job was fired by ("" for other jobs)."""
    return job.source[len(SOURCE_PREFIX) :] if job.source.startswith(SOURCE_PREFIX) else ""


@dataclass(slots=True)
class Schedule:
    id: str
    handler: str
    payload: bytes = b"{}"
    interval_secs: int = 0
    cron: str = ""
    timezone: str = ""  # IANA name for cron; "" = UTC
    state: str = ACTIVE
    overlap: str = OVERLAP_SKIP
    jitter_secs: int = 0
    next_run_at: float = 0.0
    last_run_at: float = 0.0
    last_execution_id: str = ""
    last_job_id: str = ""
    last_status: str = ""  # the last run's outcome (execution status)
    run_count: int = 0
    owner: str = OWNER_OPERATOR
    metadata: str = "{}"  # JSON object text
    description: str = ""
    ats_code: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    declared: bool = False  # declared by its owner (plugin Initialize, config), reconciled on change

    @property
    def cadence(self) -> str:
        """ "every 5m" or "0 3 * * * Europe/Paris"."""
        return cadence.describe(self.interval_secs, self.cron, self.timezone)


SCHEDULE_COLS: tuple[str, ...] = tuple(f.name for f in fields(Schedule))


@dataclass(slots=True)
class Execution:
    id: str
    schedule_id: str
    job_id: str = ""
    status: str = EX_RUNNING
    started_at: float = 0.0
    completed_at: float = 0.0
    duration_ms: int = 0
    error: str = ""
    note: str = ""  # e.g. "coalesced 3 missed runs", "run now by operator"
    seq: int = 0


EXECUTION_COLS: tuple[str, ...] = tuple(f.name for f in fields(Execution) if f.name != "seq")


@dataclass(slots=True)
class ScheduleFilter:
    states: tuple[str, ...] = ()  # empty: every state but deleted
    owner: str = ""
    handler: str = ""


# ---------------------------------------------------------------- cadence


def _user_error(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn the cadence module's CadenceError into the server's ValidationError."""

    def wrapped(*args: _P.args, **kw: _P.kwargs) -> _R:
        try:
            return fn(*args, **kw)
        except CadenceError as exc:
            raise ValidationError(exc.message) from None

    wrapped.__doc__ = fn.__doc__
    return wrapped


parse_every = _user_error(cadence.parse_every)
check_interval = _user_error(cadence.check_interval)
check_cron = _user_error(cadence.check_cron)
check_cadence = _user_error(cadence.check_cadence)
zone = _user_error(cadence.zone)
cron_runs = cadence.cron_runs
format_interval = cadence.format_interval
rfc3339 = cadence.rfc3339


def next_runs(s: Schedule, after: float, count: int = 3) -> list[float]:
    """Upcoming run times of a schedule after `after` (no jitter) — for previews."""
    if s.cron:
        return cron_runs(s.cron, s.timezone, after, count)
    return [after + s.interval_secs * (i + 1) for i in range(count)]


def advance(s: Schedule, due: float, now: float) -> tuple[float, int]:
    """After the run that was due at `due` fires at `now`: (the next due time, how many further
    due times in (due, now] were missed and coalesced into this run). Interval schedules keep
    their phase; cron ones follow the expression. Jitter is added by the caller."""
    if s.cron:
        runs = cron_runs(s.cron, s.timezone, due, 1)
        if not runs:
            raise Precondition(f"cron expression {s.cron!r} has no future run")
        if runs[0] > now:
            return runs[0], 0
        missed = 0
        it = CronSim(s.cron, datetime.fromtimestamp(math.floor(due), zone(s.timezone)))
        for d in it:
            ts = d.timestamp()
            if ts <= due:
                continue
            if ts > now:
                return ts, missed
            missed += 1
            if missed >= MAX_MISSED_COUNT:  # far behind: stop counting, resume from now
                return cron_runs(s.cron, s.timezone, now, 1)[0], missed
        raise Precondition(f"cron expression {s.cron!r} has no future run")
    iv = s.interval_secs
    if now < due + iv:
        return due + iv, 0
    missed = int((now - due) // iv)
    return due + (missed + 1) * iv, missed


def first_run(s: Schedule, now: float, *, at_once: bool) -> float:
    """When a new (or resumed) schedule runs first: at once, or at its next cadence point."""
    if at_once:
        return now
    if s.cron:
        return cron_runs(s.cron, s.timezone, now, 1)[0]
    return now + s.interval_secs


def check_metadata(metadata: str) -> str:
    try:
        value = json.loads(metadata or "{}")
    except ValueError as exc:
        raise ValidationError(f"metadata is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object")
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- the ticker


class Scheduler:
    """Owns the schedules of one server: validation, changes, and the ticker that fires runs."""

    def __init__(
        self, store: Store, engine: Engine, *, batch: int = 256, multinode: bool | None = None
    ) -> None:
        self.store = store
        self.engine = engine
        self.batch = batch
        self.multinode = multinode if multinode is not None else bool(store.lease_secs)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._stopping = False
        self._side: set[asyncio.Task[None]] = set()
        self.listeners: list[Callable[[Schedule], None]] = []  # schedule change events
        self.fired = 0
        self.lateness: list[float] = []  # seconds each run fired after its due time (bounded)
        self.keep_lateness = False
        # from now on (jobs recovered and run before the ticker starts included), every scheduled
        # job's end is recorded on its execution
        engine.job_ended = self._job_ended
        engine.route_listeners.append(self._routes_changed)
        self.metrics = engine.metrics

    # ---- lifecycle
    async def start(self) -> None:
        self.store.on_schedule_change = self._remote_change
        self._task = asyncio.create_task(self._loop(), name="pulse-scheduler")
        self._spawn(self._reactivate())  # handlers that came back while the server was down
        retention = self.engine.retention_secs
        if retention:
            self._retention = asyncio.create_task(self._retention_loop(float(retention)))

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._retention is not None:
            self._retention.cancel()
            await asyncio.gather(self._retention, return_exceptions=True)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._side:
            await asyncio.gather(*self._side, return_exceptions=True)

    async def _retention_loop(self, retention: float) -> None:
        """Runs' records are kept as long as finished jobs are (the engine's retention)."""
        while not self._stopping:
            try:
                cutoff = time.time() - retention
                # a yield to the loop between chunks, not a wait for a condition
                while await self.store.prune_executions(cutoff, 5000) == 5000:  # noqa: ASYNC110
                    await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except PulseError as exc:  # the store said why (disk full, damaged): no traceback
                log.warning("pruning old schedule runs failed (%s)", exc.message)
            except Exception:
                log.exception("pruning old schedule runs failed")
            await asyncio.sleep(600.0)

    def wake(self) -> None:
        self._wake.set()

    def _remote_change(self, schedule_ids: list[str], wake: bool = True) -> None:
        """Another node changed these schedules (`wake`: in a way that may bring a run earlier —
        created, resumed, updated; a run only moves the next one later)."""
        if wake:
            self._wake.set()
        if self.listeners:  # only watchers need the changed rows
            for sid in schedule_ids:
                self._spawn(self._announce_id(sid))

    def _routes_changed(self) -> None:
        """Handlers came or went: an inactive schedule whose handler is back becomes active."""
        if not self._stopping:
            self._spawn(self._reactivate())

    async def _reactivate(self) -> None:
        try:
            inactive = await self.store.list_schedules(ScheduleFilter(states=(INACTIVE,)), 100_000)
            back = False
            for s in inactive:
                if self.engine.router.resolve(s.handler) is None:
                    continue
                got = await self.store.update_schedule(
                    s.id, (INACTIVE,), {"state": ACTIVE, "updated_at": time.time()}
                )
                if got is not None:
                    back = True
                    self._changed(got)
            if back:
                self.wake()
        except asyncio.CancelledError:
            raise
        except PulseError as exc:  # the store said why (disk full, damaged): no traceback
            log.warning("re-activating schedules whose handler is back failed (%s)", exc.message)
        except Exception:
            log.exception("re-activating schedules whose handler is back failed")

    async def _deactivate(self, s: Schedule, now: float) -> None:
        """`s` came due but its handler is gone: mark it inactive (no failed run each tick) until
        the handler returns. Its next run stays, so it runs once (coalesced) when activated."""
        got = await self.store.update_schedule(s.id, (ACTIVE,), {"state": INACTIVE, "updated_at": now})
        if got is None:
            return  # changed meanwhile (paused, deleted, or another node did it)
        log.warning("schedule %s is inactive: no handler %r is registered", s.id, s.handler)
        if self.metrics is not None:
            self.metrics.schedule_run(s.handler, INACTIVE)
        self._changed(got)
        if self.engine.router.resolve(s.handler) is not None:  # it came back meanwhile
            await self._reactivate()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._side.add(t)
        t.add_done_callback(self._side.discard)

    def _changed(self, s: Schedule | None) -> None:
        if s is None:
            return
        for fn in list(self.listeners):
            try:
                fn(s)
            except Exception:
                log.exception("a schedule listener failed")

    async def _announce_id(self, sid: str) -> None:
        s = await self.store.get_schedule(sid)
        self._changed(s)

    # ---- the loop
    async def _loop(self) -> None:
        """Fetch the runs due within LOOKAHEAD_SECS (earliest first), sleep until each one's due
        time and fire it then (one store write), so a run's lateness is one write, not a query
        round. The next batch is fetched as soon as the last run of this one is fired, not when
        its writes are done: runs still being fired are left out of it (their rows are not
        advanced yet), so the first runs of each batch do not wait for the previous batch's
        commits and a query. Any change wakes the loop, which re-reads; a run fetched early but
        paused or changed meanwhile simply loses its compare-and-set claim. Nothing due soon:
        sleep until the earliest next run (or a change)."""
        inflight: dict[str, asyncio.Task[Execution | None]] = {}  # schedule id → its run being fired
        try:
            await self._ticks(inflight)
        finally:
            if inflight:
                await asyncio.gather(*inflight.values(), return_exceptions=True)

    async def _ticks(self, inflight: dict[str, asyncio.Task[Execution | None]]) -> None:
        while not self._stopping:
            self._wake.clear()
            for sid in [sid for sid, t in inflight.items() if t.done()]:
                del inflight[sid]  # committed before the read below starts: it sees the new row
            nxt: float | None = None
            try:
                upcoming = await self.store.due_schedules(
                    time.time() + LOOKAHEAD_SECS, self.batch + len(inflight)
                )
                upcoming = [s for s in upcoming if s.id not in inflight][: self.batch]
                if not upcoming and not inflight:
                    nxt = await self.store.next_schedule_at()
            except asyncio.CancelledError:
                raise
            except PulseError as exc:  # the store said why (disk full, damaged): no traceback
                if self._stopping:
                    return
                log.warning("the schedule ticker failed (%s); retrying in 1s", exc.message)
                upcoming, nxt = [], time.time() + 1.0
            except Exception:
                if self._stopping:
                    return
                log.exception("the schedule ticker failed; retrying in 1s")
                upcoming, nxt = [], time.time() + 1.0
            if upcoming:
                for s in upcoming:
                    delay = s.next_run_at - time.time()
                    if delay > 0 and await self._sleep(delay):
                        break  # something changed: re-read after the runs already fired
                    if self._stopping:
                        break
                    inflight[s.id] = asyncio.create_task(self._fire(s, time.time()))
                continue
            if inflight:  # nothing else due soon: let the runs being fired finish, then re-read
                await asyncio.wait(list(inflight.values()))
                continue
            timeout = None if nxt is None else max(0.0, nxt - time.time())
            if self.multinode:
                timeout = MULTINODE_RECHECK_SECS if timeout is None else min(timeout, MULTINODE_RECHECK_SECS)
            if timeout != 0.0:
                await self._sleep(timeout)

    async def _sleep(self, timeout: float | None) -> bool:
        """Sleep up to `timeout` s (None: until woken); True when woken by a change."""
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
            return True
        except TimeoutError:
            return False

    async def _fire(self, s: Schedule, now: float, *, manual: str = "") -> Execution | None:
        """Fire one run of `s`. `manual` (a note) marks a run-now: the cadence is unchanged.
        Returns the execution recorded, or None when another node claimed the run first."""
        try:
            return await self._fire_inner(s, now, manual)
        except PulseError as exc:  # the store said why (disk full, damaged): no traceback
            log.warning("firing schedule %s failed (%s)", s.id, exc.message)
            return None
        except Exception:
            log.exception("firing schedule %s failed", s.id)
            return None

    async def _fire_inner(self, s: Schedule, now: float, manual: str) -> Execution | None:
        changes: dict[str, Any] = {"updated_at": now}
        notes: list[str] = []
        expected: float | None = None
        if manual:
            notes.append(manual)
        else:
            expected = s.next_run_at
            nxt, missed = advance(s, s.next_run_at, now)
            if s.jitter_secs:
                nxt += random.uniform(0, s.jitter_secs)
            changes["next_run_at"] = nxt
            if missed:
                notes.append(
                    f"coalesced {missed}{'+' if missed >= MAX_MISSED_COUNT else ''} missed run"
                    f"{'s' if missed != 1 else ''} into this one (due since {rfc3339(s.next_run_at)})"
                )
        ex = Execution(id=new_execution_id(), schedule_id=s.id, started_at=now, note="; ".join(notes))
        job: Job | None = None
        if not manual and s.overlap == OVERLAP_SKIP and s.last_job_id:
            prev = await self.store.get(s.last_job_id, with_payload=False)
            if prev is not None and prev.status not in FINISHED:
                ex.status, ex.completed_at = EX_SKIPPED, now
                ex.error = f"skipped: the previous run's job {prev.id} is still {prev.status} (overlap=skip)"
        if ex.status == EX_RUNNING and not manual and self.engine.router.resolve(s.handler) is None:
            await self._deactivate(s, now)
            return None
        if ex.status == EX_RUNNING:
            if self.engine.router.resolve(s.handler) is None:
                ex.status, ex.completed_at = EX_FAILED, now
                ex.error = f"no handler {s.handler!r} is registered; no job was enqueued"
            else:
                try:
                    job = self.engine.validate_new(s.handler, s.payload, source=SOURCE_PREFIX + s.id)
                except ValidationError as exc:
                    ex.status, ex.completed_at, ex.error = EX_FAILED, now, exc.message
        if job is not None:
            ex.job_id = job.id
            changes["last_job_id"] = job.id
        if ex.status != EX_SKIPPED:  # a skipped run leaves "the last run" (still going) in place
            changes["last_execution_id"] = ex.id
            changes["last_status"] = ex.status
            changes["last_run_at"] = now
        fired = await self.store.fire_schedule(s.id, expected, changes, job, ex)
        if fired is None:
            return None  # another node (or a concurrent change) got there first
        if self.keep_lateness and not manual and len(self.lateness) < 1_000_000:
            self.lateness.append(time.time() - s.next_run_at)  # due → job stored
        self.fired += 1
        if self.metrics is not None:
            self.metrics.schedule_run(s.handler, "enqueued" if job is not None else ex.status)
        if job is not None:
            self.engine.adopt_inserted(job)
        self._changed(fired)
        return ex

    # ---- job ends → execution ends
    def _job_ended(self, job: Job) -> None:
        if job.source.startswith(SOURCE_PREFIX):
            self._spawn(self._end_execution(job))

    async def _end_execution(self, job: Job) -> None:
        status = {"completed": EX_COMPLETED, "cancelled": EX_CANCELLED}.get(job.status, EX_FAILED)
        try:
            s = await self.store.end_execution(
                job.id, status, job.completed_at or time.time(), job.error if status != EX_COMPLETED else ""
            )
        except PulseError as exc:  # the store said why (disk full, damaged): no traceback
            log.warning("recording the end of scheduled job %s failed (%s)", job.id, exc.message)
            return
        except Exception:
            log.exception("recording the end of scheduled job %s failed", job.id)
            return
        self._changed(s)

    # ---- operations (services call these; validation at the door)
    async def create(
        self,
        handler: str,
        payload: bytes = b"{}",
        *,
        interval_secs: int = 0,
        cron: str = "",
        timezone: str = "",
        overlap: str = OVERLAP_SKIP,
        jitter_secs: int = 0,
        owner: str = OWNER_OPERATOR,
        metadata: str = "{}",
        description: str = "",
        ats_code: str = "",
        paused: bool = False,
        at_once: bool = False,
        schedule_id: str = "",
        check_handler: bool = True,
        declared: bool = False,
    ) -> Schedule:
        now = time.time()
        s = Schedule(
            id=schedule_id or new_schedule_id(),
            handler=handler,
            payload=payload,
            interval_secs=interval_secs,
            cron=cron.strip(),
            timezone=timezone.strip(),
            state=PAUSED if paused else ACTIVE,
            overlap=overlap or OVERLAP_SKIP,
            jitter_secs=jitter_secs,
            owner=owner,
            metadata=metadata,
            description=description,
            ats_code=ats_code,
            created_at=now,
            updated_at=now,
            declared=declared,
        )
        self.validate(s, check_handler=check_handler)
        s.next_run_at = first_run(s, now, at_once=at_once)
        await self.store.insert_schedule(s)
        self._changed(s)
        self.wake()
        return s

    def validate(self, s: Schedule, *, check_handler: bool = True) -> None:
        if not SCHEDULE_ID_RE.match(s.id):
            raise ValidationError(f"schedule id {s.id!r} must be 1-64 of [A-Za-z0-9._:-]")
        check_cadence(s.interval_secs, s.cron, s.timezone)
        if s.overlap not in OVERLAPS:
            raise ValidationError(f"overlap must be one of {', '.join(OVERLAPS)}, got {s.overlap!r}")
        if not 0 <= s.jitter_secs <= MAX_JITTER_SECS:
            raise ValidationError(f"jitter must be 0 to {MAX_JITTER_SECS} seconds, got {s.jitter_secs}")
        s.metadata = check_metadata(s.metadata)
        if check_handler:
            job = self.engine.validate_new(s.handler, s.payload)  # handler, payload: the job's own rules
            s.payload = job.payload
        else:
            s.payload = bytes(s.payload or b"") or b"{}"
            try:
                json.loads(s.payload)
            except ValueError as exc:
                raise ValidationError(f"payload is not JSON: {exc}") from None

    async def get(self, schedule_id: str, *, include_deleted: bool = True) -> Schedule:
        s = await self.store.get_schedule(schedule_id)
        if s is None or (s.state == DELETED and not include_deleted):
            raise NotFound(f"no schedule with id {schedule_id!r}")
        return s

    async def list(self, flt: ScheduleFilter | None = None, limit: int = 1000) -> list[Schedule]:
        flt = flt or ScheduleFilter()
        for st in flt.states:
            if st not in STATES:
                raise ValidationError(f"unknown schedule state {st!r}; states are {', '.join(STATES)}")
        return await self.store.list_schedules(flt, limit)

    async def executions(
        self, schedule_id: str, limit: int = 50, before_seq: int = 0
    ) -> builtins.list[Execution]:
        return await self.store.list_executions(schedule_id, limit, before_seq)

    async def _update(
        self, schedule_id: str, allowed: tuple[str, ...], changes: dict[str, Any], verb: str
    ) -> Schedule:
        changes = {**changes, "updated_at": time.time()}
        s = await self.store.update_schedule(schedule_id, allowed, changes)
        if s is None:
            cur = await self.get(schedule_id)
            raise Precondition(f"schedule {schedule_id} is {cur.state}; it cannot be {verb}")
        self._changed(s)
        self.wake()
        return s

    async def pause(self, schedule_id: str) -> Schedule:
        cur = await self.get(schedule_id)
        if cur.state == PAUSED:
            return cur
        return await self._update(schedule_id, (ACTIVE, INACTIVE), {"state": PAUSED}, "paused")

    async def resume(self, schedule_id: str) -> Schedule:
        cur = await self.get(schedule_id)
        if cur.state == ACTIVE:
            return cur
        now = time.time()
        nxt = cur.next_run_at if cur.next_run_at > now else first_run(cur, now, at_once=False)
        return await self._update(schedule_id, (PAUSED,), {"state": ACTIVE, "next_run_at": nxt}, "resumed")

    async def delete(self, schedule_id: str) -> Schedule:
        cur = await self.get(schedule_id)
        if cur.state == DELETED:
            return cur
        return await self._update(
            schedule_id, tuple(s for s in STATES if s != DELETED), {"state": DELETED}, "deleted"
        )

    async def update(self, schedule_id: str, **changes: Any) -> Schedule:
        """Change cadence / payload / handler / policies. A cadence change recomputes the next run."""
        cur = await self.get(schedule_id)
        if cur.state == DELETED:
            raise Precondition(f"schedule {schedule_id} is deleted; create a new one")
        new = Schedule(**{c: getattr(cur, c) for c in SCHEDULE_COLS})
        for k, v in changes.items():
            if v is None:
                continue
            if k not in ("handler", "payload", "interval_secs", "cron", "timezone", "overlap", "jitter_secs",
                         "metadata", "description", "ats_code"):  # fmt: skip
                raise ValidationError(f"schedule field {k!r} cannot be updated")
            setattr(new, k, v)
        if "interval_secs" in changes and changes["interval_secs"] and changes.get("cron") is None:
            new.cron, new.timezone = "", ""
        if changes.get("cron") and changes.get("interval_secs") is None:
            new.interval_secs = 0
        self.validate(new, check_handler=new.handler != cur.handler or new.payload != cur.payload)
        diff = {c: getattr(new, c) for c in SCHEDULE_COLS if getattr(new, c) != getattr(cur, c)}
        if not diff:
            return cur
        if {"interval_secs", "cron", "timezone"} & diff.keys():
            now = time.time()
            base = cur.last_run_at or now
            if new.cron:
                diff["next_run_at"] = cron_runs(new.cron, new.timezone, now, 1)[0]
            else:
                diff["next_run_at"] = max(now, base + new.interval_secs)
        return await self._update(schedule_id, (ACTIVE, PAUSED, INACTIVE, STOPPING), diff, "updated")

    async def run_now(self, schedule_id: str, note: str = "run now by operator") -> Execution:
        """One run at once; the cadence (next_run_at) is unchanged. Works on paused schedules too."""
        s = await self.get(schedule_id)
        if s.state == DELETED:
            raise Precondition(f"schedule {schedule_id} is deleted")
        ex = await self._fire_inner(s, time.time(), note)
        if ex is None:
            raise Conflict(f"schedule {schedule_id} changed while it was being run; try again")
        return ex

    # ---- declared schedules (plugins, config)
    async def reconcile(
        self, owner: str, declared: builtins.list[dict[str, Any]], *, namespace: str = ""
    ) -> dict[str, builtins.list[str]]:
        """Make `owner`'s schedules match `declared` (dicts with handler, interval_secs, cron,
        timezone, payload, overlap, enabled, description, ats_code). QNTX semantics: new ones run
        at once (paused unless enabled); a changed cadence updates in place; one no longer
        declared is withdrawn (deleted); a re-declared one gets a fresh schedule, never the
        tombstone; an operator's pause survives."""
        existing = await self.store.list_schedules(ScheduleFilter(owner=owner), 100_000)
        live = {s.handler: s for s in existing if s.declared and s.state != DELETED}
        report: dict[str, list[str]] = {"created": [], "updated": [], "withdrawn": [], "errors": []}
        seen: set[str] = set()
        for d in declared:
            handler = d["handler"]
            if namespace and "/" not in handler:
                handler = f"{namespace}/{handler}"
            seen.add(handler)
            cur = live.get(handler)
            try:
                if cur is None:
                    s = await self.create(
                        handler,
                        d.get("payload") or b"{}",
                        interval_secs=int(d.get("interval_secs") or 0),
                        cron=d.get("cron", ""),
                        timezone=d.get("timezone", ""),
                        overlap=d.get("overlap") or OVERLAP_SKIP,
                        jitter_secs=int(d.get("jitter_secs") or 0),
                        owner=owner,
                        description=d.get("description", ""),
                        ats_code=d.get("ats_code", ""),
                        paused=not d.get("enabled", True),
                        at_once=d.get("at_once", True),
                        check_handler=False,
                        declared=True,
                    )
                    report["created"].append(s.id)
                    continue
                changes: dict[str, Any] = {}
                for key in ("interval_secs", "cron", "timezone", "overlap", "jitter_secs", "description",
                            "ats_code"):  # fmt: skip
                    if key in d and d[key] is not None and d[key] != getattr(cur, key):
                        changes[key] = d[key]
                if "payload" in d and d["payload"] is not None and bytes(d["payload"]) != cur.payload:
                    changes["payload"] = bytes(d["payload"])
                if changes:
                    await self.update(cur.id, **changes)
                    report["updated"].append(cur.id)
                if cur.state == INACTIVE:  # its handler is back
                    await self.store.update_schedule(
                        cur.id, (INACTIVE,), {"state": ACTIVE, "updated_at": time.time()}
                    )
                    self.wake()
            except AlreadyDeclared:
                continue  # another node reconciled the same declaration first
            except Exception as exc:  # one bad declaration must not stop the others
                report["errors"].append(f"{handler}: {getattr(exc, 'message', exc)}")
        for handler, s in live.items():
            if handler not in seen:
                await self.store.update_schedule(
                    s.id,
                    tuple(x for x in STATES if x != DELETED),
                    {"state": DELETED, "updated_at": time.time()},
                )
                report["withdrawn"].append(s.id)
                self._spawn(self._announce_id(s.id))
        return report
