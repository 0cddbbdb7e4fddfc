"""gRPC services: QNTX's QueueService and Pulse's OperatorService, on top of the Engine.

QueueService speaks QNTX's protocol exactly: the token travels in each request's `auth_token`
field and every failure is `success=false` + `error` (never a gRPC error status).

OperatorService authenticates with `authorization: Bearer <token>` metadata and reports failures
as gRPC status codes: each PulseError's `.code` names the status, its message is the details.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import secrets
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from pulse_tui import __version__
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc
from pulse_tui.protocol import queue_pb2 as qp
from pulse_tui.protocol import queue_pb2_grpc as qp_grpc
from pulse_tui.pulse import jobs as jobmodel
from pulse_tui.pulse import metrics
from pulse_tui.pulse.auth import PLUGIN, Authenticator, Principal
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.errors import (
    NotEnabled,
    NotFound,
    PermissionDenied,
    PulseError,
    ValidationError,
    reason_trailer,
)
from pulse_tui.pulse.events import Watcher, wanted
from pulse_tui.pulse.host import PluginHost, PluginState
from pulse_tui.pulse.jobs import (
    CANCELLED,
    PAUSED,
    QUEUED,
    STATUSES,
    Attempt,
    Job,
    JobDetail,
    JobFilter,
    LogEntry,
)
from pulse_tui.pulse.registry import HandlerInfo, Registry
from pulse_tui.pulse.schedule_service import ScheduleOperatorMixin
from pulse_tui.pulse.schedules import Scheduler, schedule_of
from pulse_tui.pulse.scripts import ScriptInfo, ScriptStore
from pulse_tui.vocab import Reason

if TYPE_CHECKING:
    # what grpc.aio hands a servicer method (generic only in the type stubs)
    RpcContext = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)

QUEUE_LIST_DEFAULT = 100
QUEUE_LIST_MAX = 1000
SELECT_DEFAULT = 1000
SELECT_MAX = 100_000
HEARTBEAT_SECS = 15.0
# What one list page may carry, whatever its rows hold: under gRPC's default 4 MiB receive limit,
# so any client can read it. A page is cut short there (has_more says so); errors are capped at
# conversion too (jobmodel.MAX_ERROR_BYTES), which bounds rows stored before errors were capped.
PAGE_BYTES = 3 * 1024 * 1024
WATCH_INTERVAL = 0.05  # least time between two flushes of one WatchJobs stream under steady change
BROADCAST_BACKLOG = 8 << 20  # bytes queued for one stream before it is told to resync
VIEW_MAX = 10_000  # ids one view stream may show (SetWatchView)
VIEW_COUNT_CAP = 10_000  # the counts view streams carry (the console's cap)
# least time between two messages to a view stream that bring it only changes it does not show
# and that cannot enter its list (counted, and the counts by status): what a console does with
# them it does at most once a second (app.OTHERS_INTERVAL)
VIEW_QUIET = 1.0
# longest a flush of the view streams waits for its count; a slower one follows on its own
VIEW_COUNT_WAIT = 0.02
ENCODED_CACHE = 2_048  # encoded jobs shared by per-stream watchers (see OperatorService._job_bytes)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field_number: int, wire_type: int) -> bytes:
    return _varint(field_number << 3 | wire_type)


# JobEvent pieces (proto/pulse/operator/v1/operator.proto; test_watchers checks they parse)
_KIND_BATCH = _key(1, 2) + _varint(5) + b"batch"
_KIND_UPSERT = _key(1, 2) + _varint(6) + b"upsert"
_FIELD_JOB = _key(2, 2)
_SERVER_TIME = _key(3, 1)  # a double follows
_FIELD_JOBS = _key(140, 2)


def _encode_jobs_entry(job: Job, routable: frozenset[str]) -> bytes:
    """One entry of JobEvent.jobs (field 140), uncached: the broadcast encodes each snapshot once."""
    raw = operator_job(job, routable).SerializeToString()
    return _FIELD_JOBS + _varint(len(raw)) + raw


def _serialize_event(event: op.JobEvent | bytes) -> bytes:
    return event if isinstance(event, bytes) else event.SerializeToString()


def add_operator_service(servicer: OperatorService, server: grpc.aio.Server) -> None:
    """The generated registration, except that WatchJobs' serializer passes pre-encoded JobEvent
    bytes through (see OperatorService.WatchJobs)."""

    class Capture:
        def add_generic_rpc_handlers(self, handlers: Any) -> None:
            pass

        def add_registered_method_handlers(self, name: str, handlers: dict[str, Any]) -> None:
            self.name, self.handlers = name, handlers

    capture = Capture()
    op_grpc.add_OperatorServiceServicer_to_server(servicer, capture)
    handlers = dict(capture.handlers)
    handlers["WatchJobs"] = grpc.unary_stream_rpc_method_handler(
        servicer.WatchJobs,
        request_deserializer=op.WatchJobsRequest.FromString,
        response_serializer=_serialize_event,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.name, handlers),))
    server.add_registered_method_handlers(capture.name, handlers)


# ---------------------------------------------------------------- conversions


def queue_job(job: Job, spend: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> qp.Job:
    """Our Job as QNTX's protocol.Job (timestamps in whole unix seconds). `spend`: (spent today,
    spent this month, remaining of the tightest budget covering the job, 0 = none) for PulseState."""
    return qp.Job(
        id=job.id,
        handler_name=job.handler,
        payload=job.payload,
        source=job.source,
        status=job.status,
        progress=qp.Progress(current=job.progress_current, total=job.progress_total),
        cost_estimate=job.cost_estimate,
        cost_actual=job.cost_actual,
        pulse_state=qp.PulseState(
            is_paused=job.status == PAUSED,
            pause_reason=job.pause_reason,
            spend_today=spend[0],
            spend_this_month=spend[1],
            budget_remaining=spend[2],
        ),
        error=jobmodel.cap_text(job.error, jobmodel.MAX_ERROR_BYTES),
        parent_job_id=job.parent_job_id,
        retry_count=jobmodel.wire_retry_count(job),
        created_at=int(job.created_at),
        started_at=int(job.started_at),
        completed_at=int(job.completed_at),
    )


SAME_REQUESTS_MAX = 64  # distinct requests an EnqueueMany call shares specs between


def enqueue_specs(reqs: Sequence[op.EnqueueRequest]) -> tuple[list[dict[str, Any]], set[str]]:
    """EnqueueMany's requests as Engine.submit_many specs, and their handlers. Requests alike
    (the same encoding: no id, the same fields) share one spec, which the engine validates once;
    after SAME_REQUESTS_MAX different ones, each request gets its own."""
    specs: list[dict[str, Any]] = []
    handlers: set[str] = set()
    alike: dict[bytes, dict[str, Any]] | None = {}
    for r in reqs:
        if alike is not None:
            form = r.SerializeToString()
            spec = alike.get(form)
            if spec is None:
                spec = alike[form] = _enqueue_spec(r)
                handlers.add(r.handler)
                if len(alike) > SAME_REQUESTS_MAX:
                    alike = None
        else:
            spec = _enqueue_spec(r)
            handlers.add(r.handler)
        specs.append(spec)
    return specs, handlers


def _enqueue_spec(r: op.EnqueueRequest) -> dict[str, Any]:
    return {
        "handler": r.handler,
        "payload": r.payload,
        "max_attempts": r.max_attempts,
        "timeout_secs": r.timeout_secs,
        "priority": r.priority,
        "source": r.source,
        "delay_secs": r.delay_secs,
        "parent_job_id": r.parent_job_id,
        "job_id": r.id,
        "cost_estimate": r.cost_estimate,
    }


def operator_job(job: Job, routable: frozenset[str] | None = None) -> op.Job:
    return op.Job(
        id=job.id,
        seq=job.seq,
        handler=job.handler,
        status=job.status,
        priority=job.priority,
        progress_current=job.progress_current,
        progress_total=job.progress_total,
        attempts=job.attempts,
        run_attempts=job.run_attempts,
        interrupted_attempts=job.interruptions,
        max_attempts=job.max_attempts,
        retry_count=job.retry_count,
        error=jobmodel.cap_text(job.error, jobmodel.MAX_ERROR_BYTES),
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        updated_at=job.updated_at,
        run_at=job.run_at,
        timeout_secs=job.timeout_secs,
        plugin=job.plugin,
        plugin_version=job.plugin_version,
        source=job.source,
        parent_job_id=job.parent_job_id,
        cost_estimate=job.cost_estimate,
        cost_actual=job.cost_actual,
        no_handler=routable is not None and job.status == QUEUED and job.handler not in routable,
        node=job.node,
        schedule_id=schedule_of(job),
        pause_reason=job.pause_reason,
    )


def _merge_changes(first: list[Job], later: list[Job]) -> list[Job]:
    """Two coalesced batches as one: each job once, at the place of its latest change."""
    merged = {j.id: j for j in first}
    for j in later:
        merged.pop(j.id, None)
        merged[j.id] = j
    return list(merged.values())


def operator_attempt(a: Attempt) -> op.Attempt:
    return op.Attempt(
        number=a.number,
        started_at=a.started_at,
        ended_at=a.ended_at,
        outcome=a.outcome,
        error=jobmodel.cap_text(a.error, jobmodel.MAX_ERROR_BYTES),
        plugin=a.plugin,
        plugin_version=a.plugin_version,
        node=a.node,
    )


def operator_log(e: LogEntry) -> op.LogEntry:
    return op.LogEntry(
        timestamp=e.timestamp,
        level=e.level,
        message=jobmodel.cap_text(e.message, jobmodel.MAX_LOG_MESSAGE_BYTES),
        stage=e.stage,
        metadata=e.metadata,
        attempt=e.attempt,
    )


def operator_detail(d: JobDetail, routable: frozenset[str] | None = None) -> op.JobDetail:
    return op.JobDetail(
        job=operator_job(d.job, routable),
        payload=d.job.payload,
        result=d.job.result,
        attempts=[operator_attempt(a) for a in d.attempts],
        logs=[operator_log(e) for e in d.logs],
    )


def _summary(b: metrics.Bucket, window: int) -> op.StatsSummary:
    ended = b.finished_total
    failed = b.failed_total
    return op.StatsSummary(
        enqueued=b.enqueued,
        started=b.started,
        finished=b.finished,
        completed=b.finished.get("completed", 0),
        failed=failed,
        per_min=ended * 60.0 / window if window else 0.0,
        error_pct=100.0 * failed / ended if ended else 0.0,
        run_p50=metrics.quantile(b.run, 0.5, b.run_sum),
        run_p95=metrics.quantile(b.run, 0.95, b.run_sum),
        run_p99=metrics.quantile(b.run, 0.99, b.run_sum),
        wait_p50=metrics.quantile(b.wait, 0.5, b.wait_sum),
        wait_p95=metrics.quantile(b.wait, 0.95, b.wait_sum),
        run_sum=b.run_sum,
        wait_sum=b.wait_sum,
        bounds=metrics.BOUNDS,
        run_counts=b.run,
        wait_counts=b.wait,
    )


def _series(s: metrics.Series, window: int) -> op.StatsSeries:
    out = op.StatsSeries(handler=s.handler, summary=_summary(s.total, window))
    if not s.total.empty:
        for p in s.points:
            b = p.bucket
            out.points.append(
                op.StatsPoint(
                    ts=p.ts,
                    enqueued=b.enqueued,
                    started=b.started,
                    finished=b.finished,
                    completed=b.finished.get("completed", 0),
                    failed=b.failed_total,
                    run_p50=metrics.quantile(b.run, 0.5, b.run_sum),
                    run_p95=metrics.quantile(b.run, 0.95, b.run_sum),
                    wait_p95=metrics.quantile(b.wait, 0.95, b.wait_sum),
                )
            )
    return out


def stats_response(st: metrics.Stats) -> op.GetStatsResponse:
    return op.GetStatsResponse(
        server_time=st.now,
        window_secs=st.window,
        step_secs=st.step,
        total=_series(st.total, st.window),
        handlers=[_series(h, st.window) for h in st.handlers],  # points: see metrics.MAX_HANDLER_SERIES
        gauges=[
            op.HandlerGauges(
                handler=h,
                queued=g.queued,
                due=g.due,
                running=g.running,
                paused=g.paused,
                oldest_due_age_secs=g.oldest_due_age,
            )
            for h, g in sorted(st.gauges.items())
        ],
        plugins=[op.PluginGauge(name=p.name, up=p.up, restarts=p.restarts) for p in st.plugins],
        sampled_at=st.sampled_at,
        enabled=True,
    )


def fit_page(rows: list[Any], budget: int = PAGE_BYTES) -> tuple[list[Any], bool]:
    """The leading rows whose encoded size fits `budget` (at least one); True when rows were cut."""
    used = 0
    for i, row in enumerate(rows):
        used += row.ByteSize() + 6  # + the field tag and length prefix of a repeated message
        if used > budget and i > 0:
            return rows[:i], True
    return rows, False


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValidationError(f"unknown status {status!r}; statuses are {', '.join(STATUSES)}")
    return status


def job_filter(f: op.JobFilter) -> JobFilter:
    return JobFilter(
        statuses=tuple(check_status(s) for s in dict.fromkeys(f.statuses)),
        handler=f.handler,
        text=f.text,
        handler_glob=f.handler_glob,
        payload=f.payload,
        error=f.error,
        parent_job_id=f.parent_job_id,
    )


MAX_ERROR_CHARS = 1000  # gRPC status messages travel in headers (8 KiB soft limit)


def _short(message: str) -> str:
    """An error message fit for a status header: an echoed 10 kB name must not break the reply."""
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return message[: MAX_ERROR_CHARS - 20] + f"… ({len(message):,} chars)"


# ---------------------------------------------------------------- collaborators


@dataclass(slots=True)
class ServiceContext:
    """Everything the servicers share. `host` and `registry` are optional (built-ins only)."""

    engine: Engine
    auth: Authenticator
    registry: Registry | None = None  # the engine's router when available
    host: PluginHost | None = None  # when plugins are configured
    scripts: ScriptStore | None = None  # handler scripts (python.<name>)
    scheduler: Scheduler | None = None
    listen: str = ""
    store_url: str = ""
    started_at: float = field(default_factory=time.time)

    def routable(self) -> frozenset[str]:
        return self.engine.router.routable()


async def await_plugin_handlers(ctx: ServiceContext, handlers: Iterable[str]) -> None:
    """Before an enqueue is validated: if it names a handler no plugin announced yet while
    configured plugins are still starting (right after `serve` starts, during a restart or reload),
    wait for them (up to their startup_timeout) so it is not refused by a race. A name that stays
    unknown is then refused as usual; with every plugin up this returns at once."""
    host, router = ctx.host, ctx.engine.router
    if host is None:
        return
    names = {h for h in handlers if h}
    if all(router.resolve(h) is not None for h in names):
        return
    await host.await_starting(lambda: all(router.resolve(h) is not None for h in names))


# ---------------------------------------------------------------- QueueService (QNTX)


def _queue_rpc(
    response_type: type,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Authenticate `request.auth_token`, and turn every failure into success=false + error."""

    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def rpc(self: QueueService, request: Any, context: RpcContext) -> Any:
            try:
                principal = self.ctx.auth.identify(request.auth_token)
                return await fn(self, request, principal)
            except PulseError as exc:
                return response_type(success=False, error=_short(exc.message))
            except Exception:
                log.exception("QueueService.%s failed", fn.__name__)
                return response_type(success=False, error="internal server error; see the server log")

        return rpc

    return wrap


class QueueService(qp_grpc.QueueServiceServicer):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    @_queue_rpc(qp.EnqueueResponse)
    async def Enqueue(self, request: qp.EnqueueRequest, principal: Principal) -> qp.EnqueueResponse:
        if not request.HasField("job"):
            if principal.role != PLUGIN:
                principal.require_admin("enqueue jobs")
            raise ValidationError("request has no job; set job.handler_name and job.payload")
        j = request.job
        if principal.role == PLUGIN:
            parent = self._child_parent(principal, request.auth_token, j.parent_job_id)
        else:
            principal.require_admin("enqueue jobs")
            parent = j.parent_job_id
        await await_plugin_handlers(self.ctx, (j.handler_name,))
        job = await self.engine.enqueue(
            j.handler_name,
            j.payload,
            source=j.source,
            parent_job_id=parent,
            retry_count=j.retry_count,
            job_id=j.id,
            cost_estimate=j.cost_estimate,
        )
        return qp.EnqueueResponse(success=True, job_id=job.id)

    def _child_parent(self, principal: Principal, token: str, asked: str) -> str:
        """The parent of a job a plugin enqueues: a job running on the plugin instance that holds
        `token`. A parent it names must be one of those (anything else is refused, never
        rewritten); naming none is fine while the instance runs exactly one job."""
        host = self.ctx.host
        mine = host.jobs_of_token(principal.plugin, token) if host is not None else None
        if mine is None:  # no host-managed instance (an engine without a plugin host)
            mine = set(self.engine.running_jobs(principal.plugin))
        else:
            mine &= set(self.engine.running_jobs(principal.plugin))
        if asked:
            if asked not in mine:
                raise PermissionDenied(
                    f"job {asked} is not running on this instance of plugin {principal.plugin!r}; "
                    "a plugin may enqueue children only of a job it is running"
                )
            return asked
        if not mine:
            raise PermissionDenied(
                f"plugin {principal.plugin!r} may not enqueue jobs while it runs none; a plugin "
                "token enqueues children of a job it is running"
            )
        if len(mine) > 1:
            raise ValidationError(
                f"plugin {principal.plugin!r} runs {len(mine)} jobs on this instance; set "
                "job.parent_job_id to the one this child belongs to"
            )
        return next(iter(mine))

    @_queue_rpc(qp.GetJobResponse)
    async def GetJob(self, request: qp.GetJobRequest, principal: Principal) -> qp.GetJobResponse:
        if not request.job_id:
            raise ValidationError("job_id is empty")
        self._check_plugin_job(principal, request.job_id)
        job = await self.engine.get_job(request.job_id)
        return qp.GetJobResponse(success=True, job=queue_job(job, self.engine.budget_view(job.handler)))

    @_queue_rpc(qp.UpdateJobResponse)
    async def UpdateJob(self, request: qp.UpdateJobRequest, principal: Principal) -> qp.UpdateJobResponse:
        if not request.HasField("job") or not request.job.id:
            raise ValidationError("request has no job id; set job.id")
        j = request.job
        self._check_plugin_job(principal, j.id)
        if principal.role != PLUGIN:
            principal.require_admin("update jobs")
        current = await self.engine.get_job(j.id)
        if j.status and j.status != current.status:
            check_status(j.status)
            if principal.role == PLUGIN:
                raise PermissionDenied(
                    f"plugins may not change a job's status (asked {current.status} -> {j.status}); "
                    "return the outcome from ExecuteJob instead"
                )
            if j.status == PAUSED:
                await self.engine.pause(j.id)
                return qp.UpdateJobResponse(success=True)
            if j.status == QUEUED and current.status == PAUSED:
                await self.engine.resume(j.id)
                return qp.UpdateJobResponse(success=True)
            if j.status != CANCELLED:
                raise ValidationError(
                    f"UpdateJob can cancel (status='{CANCELLED}'), pause ('{PAUSED}') or resume a paused job "
                    f"('{QUEUED}'); {current.status} -> {j.status} is up to the server (use "
                    "OperatorService.RetryJobs to retry)"
                )
            await self.engine.cancel(j.id)
            return qp.UpdateJobResponse(success=True)
        has_progress = j.HasField("progress")
        if has_progress or j.cost_actual:
            current_p = (j.progress.current, j.progress.total) if has_progress else None
            cur, total = current_p or (current.progress_current, current.progress_total)
            await self.engine.report_progress(
                j.id,
                cur,
                total,
                cost=j.cost_actual or None,
                plugin=principal.plugin if principal.role == PLUGIN else None,
            )
        return qp.UpdateJobResponse(success=True)

    @_queue_rpc(qp.ListJobsResponse)
    async def ListJobs(self, request: qp.ListJobsRequest, principal: Principal) -> qp.ListJobsResponse:
        if principal.role == PLUGIN:
            raise PermissionDenied("plugin tokens may not list jobs")
        limit = request.limit if request.HasField("limit") else QUEUE_LIST_DEFAULT
        if limit < 0:
            raise ValidationError(f"limit must not be negative, got {limit}")
        flt = JobFilter(statuses=(check_status(request.status),) if request.status else ())
        found, _ = await self.engine.list_jobs(flt, min(limit or QUEUE_LIST_DEFAULT, QUEUE_LIST_MAX))
        page, _ = fit_page(
            [queue_job(j, self.engine.budget_view(j.handler)) for j in found]
        )  # QNTX has no has_more: the page is short
        return qp.ListJobsResponse(success=True, jobs=page)

    def _check_plugin_job(self, principal: Principal, job_id: str) -> None:
        if principal.role == PLUGIN and job_id not in self.engine.running_jobs(principal.plugin):
            raise PermissionDenied(
                f"job {job_id} is not running on plugin {principal.plugin!r}; "
                "a plugin may only read and update the jobs it is running"
            )


# ---------------------------------------------------------------- OperatorService


def _metadata(context: RpcContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return v if isinstance(v, str) else v.decode("utf-8", "replace")
    return None


def _operator_rpc(
    mutation: str | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Authenticate the bearer token (admin required when `mutation` names an action) and map
    PulseErrors to gRPC status codes."""

    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def rpc(self: OperatorService, request: Any, context: RpcContext) -> Any:
            try:
                principal = self.authorize(context, mutation)
                return await fn(self, request, principal)
            except PulseError as exc:
                await context.abort(
                    grpc.StatusCode[exc.code], _short(exc.message), reason_trailer(exc.reason)
                )
            except grpc.aio.AbortError:
                raise
            except Exception:
                log.exception("OperatorService.%s failed", fn.__name__)
                await context.abort(
                    grpc.StatusCode.INTERNAL,
                    "internal server error; see the server log",
                    reason_trailer(Reason.INTERNAL),
                )

        return rpc

    return wrap


class _Subscriber:
    """One batched WatchJobs stream fed by the Broadcast: what is queued for it and not yet sent.

    An all-events stream queues encoded flushes (`chunks`). A view stream (`view` is the set of
    ids it shows) queues the encoded entries of its viewed jobs (`chunks`) and a count, by new
    status, of the other changes its filter wants (`others`); the event is assembled when sent,
    so several flushes make one event with their counts summed."""

    __slots__ = (
        "chunks",
        "size",
        "event",
        "resync",
        "view",
        "filter",
        "others",
        "token",
        "from_seq",
        "near",
        "counts",
        "sent_at",
    )

    def __init__(self, view: set[str] | None = None, flt: JobFilter | None = None, token: str = "") -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.event = asyncio.Event()
        self.resync = False
        self.view = view
        self.filter = flt
        self.others: dict[str, int] = {}
        self.token = token
        self.from_seq = 0  # the viewer's lowest seq held: changes at or above it are `near`
        self.near = 0  # of the pending others, those with seq >= from_seq
        self.counts: op.CountJobsResponse | None = None  # the latest, taken after the pending changes
        self.sent_at = -VIEW_QUIET  # when pending changes were last released to the stream (monotonic)

    def drop_pending(self) -> None:
        self.chunks, self.size, self.others, self.near, self.counts = [], 0, {}, 0, None


class Broadcast:
    """The unfiltered, batched WatchJobs streams (what `jobs watch` and compatible clients open)
    and every view stream (what the console opens) share one bus watcher: each flush of changes is
    taken once. For the all-events streams it is encoded once and the same bytes are queued for
    every stream, so 64 such watchers cost one encoding and 64 writes of every job per flush.
    A view stream gets only the jobs it shows (each encoded once per flush, whoever shows it) and
    per-status counts of the rest, so 64 consoles cost a few small writes per flush, not 64
    copies of every change. A stream that falls more than `BROADCAST_BACKLOG` bytes behind (a
    client that stopped reading) is told to resync instead. Several queued flushes go out as one
    message: concatenated JobEvent encodings parse as one event whose `jobs` are all of theirs,
    in order (a job may then appear more than once; the last is its latest state)."""

    def __init__(self, service: OperatorService) -> None:
        self._service = service
        self._subs: set[_Subscriber] = set()
        self._views: dict[str, _Subscriber] = {}  # view token -> its stream
        self._viewing: dict[str, set[_Subscriber]] = {}  # job id -> view streams that show it
        self._task: asyncio.Task[None] | None = None
        self._watcher: Watcher | None = None
        self._count_task: asyncio.Task[op.CountJobsResponse] | None = None  # the consoles' count
        self._flushes = 0  # flushes so far (a late count goes out only if none was taken since)
        self._count_awaited: asyncio.Task[op.CountJobsResponse] | None = None  # a release waits for it

    def subscribe(
        self, view: Iterable[str] | None = None, flt: JobFilter | None = None, from_seq: int = 0
    ) -> _Subscriber:
        if view is None:
            sub = _Subscriber()
        else:
            token = secrets.token_urlsafe(12)
            sub = _Subscriber(set(), None if flt is None or flt == JobFilter() else flt, token)
            self._views[token] = sub
            try:
                self.set_view(token, view, from_seq)
            except PulseError:  # refused (too many ids): the stream is not opened, nor its token kept
                del self._views[token]
                raise
        self._subs.add(sub)
        if self._task is None:
            # registered now, synchronously: every change from here on reaches this subscriber
            self._watcher = self._service.engine.bus.watch(None)
            self._task = asyncio.create_task(self._run(self._watcher), name="pulse-watch-broadcast")
        return sub

    def set_view(self, token: str, ids: Iterable[str], from_seq: int = 0) -> None:
        sub = self._views.get(token)
        if sub is None or sub.view is None:
            raise NotFound("no such watch view (the stream ended); open a new one")
        new = set(ids)
        if len(new) > VIEW_MAX:
            raise ValidationError(f"a view shows at most {VIEW_MAX} jobs (got {len(new)})")
        for job_id in sub.view - new:
            viewers = self._viewing.get(job_id)
            if viewers is not None:
                viewers.discard(sub)
                if not viewers:
                    del self._viewing[job_id]
        for job_id in new - sub.view:
            self._viewing.setdefault(job_id, set()).add(sub)
        sub.view = new
        sub.from_seq = from_seq

    def unsubscribe(self, sub: _Subscriber) -> None:
        self._subs.discard(sub)
        if sub.view is not None:
            self.set_view(sub.token, ())
            self._views.pop(sub.token, None)
        if not self._subs and self._task is not None:
            self._task.cancel()
            if self._watcher is not None:
                self._watcher.close()
            self._task = self._watcher = None

    async def _run(self, watcher: Watcher) -> None:
        service = self._service
        sent_at = 0.0
        try:
            while not watcher.closed:
                # view streams holding quiet changes (see _release) are due at a time: wake for it
                held = self._held_until()
                timeout = None if held is None else max(0.0, held - time.monotonic())
                batch, resync = await watcher.next_batch(timeout)
                if not batch and not resync:
                    if held is not None:
                        await self._release()
                    continue
                if not resync:
                    # the more streams share the flushes, the fewer flushes: each costs a write per
                    # stream (50 ms up to 16 streams, up to 200 ms from 64 on)
                    interval = service.watch_interval * min(4.0, max(1.0, len(self._subs) / 16))
                    wait = sent_at + interval - time.monotonic()
                    if wait > 0:  # pace a steady stream; the changes meanwhile join this flush
                        await asyncio.sleep(wait)
                        more, resync = await watcher.next_batch(timeout=0)
                        if more:
                            batch = _merge_changes(batch, more)
                sent_at = time.monotonic()
                if resync:
                    for sub in self._subs:
                        sub.resync = True
                        sub.drop_pending()
                        sub.event.set()
                    continue
                if batch:
                    self._flush(batch)
                    if self._views:
                        await self._release()
        finally:
            watcher.close()
            if self._count_task is not None:
                self._count_task.cancel()

    def _held_until(self) -> float | None:
        """When the earliest view stream holding quiet changes may be sent them (None: none holds)."""
        due = [sub.sent_at for sub in self._views.values() if sub.others and not sub.resync]
        return min(due) + VIEW_QUIET if due else None

    async def _release(self) -> None:
        """Send the view streams what they hold, with the counts by status taken after it: at once
        to a stream whose shown jobs changed or that has changes at or above its lowest seq held
        (new jobs that may enter its list); to one that holds only other changes (counted by
        status: nothing it shows moved) at most once per VIEW_QUIET. During a steady drain 64
        consoles that show none of the running jobs then cost one small message each per second,
        and one count per second, instead of one each per flush (a console acts on such changes
        at most once a second anyway, app.OTHERS_INTERVAL)."""
        now = time.monotonic()
        due = [
            sub
            for sub in self._views.values()
            if not sub.resync and (sub.chunks or sub.near or (sub.others and now - sub.sent_at >= VIEW_QUIET))
        ]
        if not due:
            return
        counts = await self._count(due)
        for sub in due:
            sub.sent_at = now
            if not sub.resync:
                sub.counts = counts  # None rather than an older count: it would precede the changes
                sub.event.set()

    async def _count(self, subs: list[_Subscriber]) -> op.CountJobsResponse | None:
        """One count for the view streams released together, taken after their changes. A release
        never waits long for it (the reader threads may be busy with scans of consoles' filters):
        a count still running from an earlier release is not asked again (its answer is older than
        these changes), and one that takes longer than VIEW_COUNT_WAIT follows on its own when it
        lands, unless more changes were taken meanwhile. Without counts, consoles count themselves."""
        if self._count_task is not None:
            return None
        task = asyncio.create_task(self._service.count_response(JobFilter(), VIEW_COUNT_CAP))
        self._count_task = task
        flush = self._flushes  # the changes it is taken after
        task.add_done_callback(lambda t: self._count_landed(t, flush, subs))
        self._count_awaited = task
        try:
            done, _ = await asyncio.wait((task,), timeout=VIEW_COUNT_WAIT)
        finally:
            self._count_awaited = None
        return self._count_result(task) if done else None

    def _count_landed(
        self, task: asyncio.Task[op.CountJobsResponse], flush: int, subs: list[_Subscriber]
    ) -> None:
        if self._count_task is task:
            self._count_task = None
        if self._count_awaited is task or self._flushes != flush:
            # its release still waits for it (and reads it), or more changes were taken since
            if not task.cancelled():
                task.exception()  # retrieved
            return
        counts = self._count_result(task)
        if counts is None:
            return
        for sub in subs:
            if sub in self._subs and not sub.resync:
                sub.counts = counts
                sub.event.set()

    @staticmethod
    def _count_result(task: asyncio.Task[op.CountJobsResponse]) -> op.CountJobsResponse | None:
        if task.cancelled():
            return None
        exc = task.exception()
        if exc is None:
            return task.result()
        if not isinstance(exc, PulseError):  # CountJobs reports a PulseError to each console
            log.warning("counting jobs for the consoles failed: %r", exc)
        return None

    def _flush(self, batch: list[Job]) -> None:
        """Queue a flush of changes: for the all-events streams, sent at once; for the view
        streams, held until `_release` (which attaches the counts) says it goes out."""
        self._flushes += 1
        routable = self._service.ctx.routable()
        everything = [sub for sub in self._subs if sub.view is None]
        if everything:
            data = b"".join(
                [_KIND_BATCH, _SERVER_TIME, struct.pack("<d", time.time())]
                + [_encode_jobs_entry(j, routable) for j in batch]
            )
            for sub in everything:
                self._queue(sub, data)
                sub.event.set()
        if len(everything) == len(self._subs):
            return
        # view streams: the viewed jobs, each encoded once; the other changes counted by status
        # and, of those, the ones at or above the viewer's lowest seq held (`near`)
        shown: dict[_Subscriber, dict[str, int]] = {}  # per view stream: its viewed jobs by status
        shown_near: dict[_Subscriber, int] = {}
        for job in batch:
            viewers = self._viewing.get(job.id)
            if viewers:
                entry = _encode_jobs_entry(job, routable)
                for sub in viewers:
                    if not sub.resync:
                        self._queue(sub, entry)
                    by = shown.setdefault(sub, {})
                    by[job.status] = by.get(job.status, 0) + 1
                    if job.seq >= sub.from_seq:
                        shown_near[sub] = shown_near.get(sub, 0) + 1
        totals: dict[str, int] | None = None
        seqs: list[int] = []
        for sub in self._subs:
            if sub.view is None or sub.resync:
                continue
            if sub.filter is None:
                if totals is None:
                    totals = {}
                    for job in batch:
                        totals[job.status] = totals.get(job.status, 0) + 1
                    seqs = sorted(job.seq for job in batch)
                others = totals
                mine = shown.get(sub)
                if mine:
                    others = {k: n - mine.get(k, 0) for k, n in totals.items()}
                near = len(seqs) - bisect.bisect_left(seqs, sub.from_seq) - shown_near.get(sub, 0)
            else:
                others, view, flt, near = {}, sub.view, sub.filter, 0
                for job in batch:
                    if job.id not in view and wanted(flt, job):
                        others[job.status] = others.get(job.status, 0) + 1
                        near += job.seq >= sub.from_seq
            pending = sub.others
            for status, n in others.items():
                if n:
                    pending[status] = pending.get(status, 0) + n
            sub.near += near

    @staticmethod
    def _queue(sub: _Subscriber, data: bytes) -> None:
        """Queue data for a stream (the caller wakes it), or tell one too far behind to resync."""
        if sub.resync:
            return
        if sub.size and sub.size + len(data) > BROADCAST_BACKLOG:
            sub.resync = True
            sub.drop_pending()
            sub.event.set()
        else:
            sub.chunks.append(data)
            sub.size += len(data)


class OperatorService(ScheduleOperatorMixin, op_grpc.OperatorServiceServicer):
    def __init__(self, ctx: ServiceContext, heartbeat_secs: float = HEARTBEAT_SECS) -> None:
        self.ctx = ctx
        self.heartbeat_secs = heartbeat_secs
        self.watch_interval = WATCH_INTERVAL
        self._encoded: dict[int, tuple[Job, bool, tuple[bytes, bytes]]] = {}
        self._broadcast = Broadcast(self)

    @property
    def engine(self) -> Engine:
        return self.ctx.engine

    def authorize(self, context: RpcContext, mutation: str | None) -> Principal:
        principal = self.ctx.auth.identify_bearer(_metadata(context, "authorization"))
        if principal.role == PLUGIN:
            raise PermissionDenied("plugin tokens may only use QueueService")
        if mutation:
            principal.require_admin(mutation)
        return principal

    # ---- server
    @_operator_rpc()
    async def GetServerInfo(self, request: op.ServerInfoRequest, principal: Principal) -> op.ServerInfo:
        try:
            counts = await self.engine.count_jobs(JobFilter())
        except PulseError:
            if not self.engine.store.condition:
                raise
            counts = {}  # a damaged store: still say so (store_condition) rather than fail the call
        stats = self.engine.stats()
        today, month, _ = self.engine.budget_view("")
        return op.ServerInfo(
            version=__version__,
            listen=self.ctx.listen,
            store=self.ctx.store_url,
            started_at=self.ctx.started_at,
            read_only=not principal.is_admin,
            node=self.engine.node,
            counts=counts,
            running=int(stats.get("running", 0)),
            concurrency=int(stats.get("concurrency", 0)),
            jobs_per_s=float(stats.get("jobs_per_s", 0.0)),
            builtin_handlers=self._builtin_handlers(),
            store_condition=self.engine.store.condition,
            budgets=[
                op.Budget(
                    scope=b.scope,
                    period=b.period,
                    limit=b.limit,
                    spent=b.spent,
                    remaining=b.remaining,
                    reached=b.reached,
                    jobs=b.jobs,
                )
                for b in self.engine.budget_states
            ],
            spend_today=today,
            spend_this_month=month,
        )

    @_operator_rpc()
    async def GetStats(self, request: op.GetStatsRequest, principal: Principal) -> op.GetStatsResponse:
        recorder = self.engine.metrics
        if recorder is None:
            return op.GetStatsResponse(server_time=time.time(), enabled=False)
        stats = await recorder.stats(request.handler, int(request.window_secs), int(request.step_secs))
        return stats_response(stats)

    # ---- jobs
    @_operator_rpc()
    async def ListJobs(self, request: op.ListJobsRequest, principal: Principal) -> op.ListJobsResponse:
        after = request.after_seq if request.HasField("after_seq") else None
        found, has_more = await self.engine.list_jobs(
            job_filter(request.filter),
            request.limit,
            after_seq=after,
            oldest_first=request.oldest_first,
            offset=request.offset,
            sort_by=request.sort_by,
        )
        routable = self.ctx.routable()
        page, cut = fit_page([operator_job(j, routable) for j in found])
        return op.ListJobsResponse(
            jobs=page,
            has_more=has_more or cut,
            next_after_seq=page[-1].seq if page else (after or 0),
        )

    @_operator_rpc()
    async def CountJobs(self, request: op.CountJobsRequest, principal: Principal) -> op.CountJobsResponse:
        flt = job_filter(request.filter)
        flt.statuses = ()
        return await self.count_response(flt, request.cap)

    async def count_response(self, flt: JobFilter, cap: int = 0) -> op.CountJobsResponse:
        counts = await self.engine.count_jobs(flt, cap)
        cap = cap or 10_000
        by_status: dict[str, int] = {s: min(int(counts.get(s, 0)), cap) for s in STATUSES}
        return op.CountJobsResponse(
            by_status=by_status,
            capped=any(int(counts.get(s, 0)) > cap for s in STATUSES),
            cap=cap,
            total=sum(by_status.values()),
        )

    @_operator_rpc()
    async def GetJob(self, request: op.GetJobRequest, principal: Principal) -> op.JobDetail:
        if not request.id:
            raise ValidationError("job id is empty")
        return operator_detail(await self.engine.get_detail(request.id), self.ctx.routable())

    async def WatchJobs(
        self, request: op.WatchJobsRequest, context: RpcContext
    ) -> AsyncIterator[op.JobEvent | bytes]:
        """Stream job changes. The first event is a heartbeat sent once the watch is registered:
        a client that fetches a snapshot after it sees that event misses nothing.

        Under a steady stream of changes a watcher sends at most one flush per `watch_interval`
        (changes to one job in between coalesce), so many watchers cost the engine little; after
        a quiet spell the first change goes out at once. Each job snapshot is encoded once,
        whatever the number of watchers (`_job_bytes`), and change events go out as pre-encoded
        JobEvent bytes (`add_operator_service` registers a serializer that passes bytes on)."""
        try:
            self.authorize(context, None)
            flt = job_filter(request.filter)
        except PulseError as exc:
            await context.abort(grpc.StatusCode[exc.code], _short(exc.message), reason_trailer(exc.reason))
        batched = request.batched
        if request.view:  # a console: the jobs it shows, counts of the rest (the shared broadcast)
            try:
                sub = self._broadcast.subscribe(request.view_ids, flt, request.view_from_seq)
            except PulseError as exc:  # too many ids
                await context.abort(
                    grpc.StatusCode[exc.code], _short(exc.message), reason_trailer(exc.reason)
                )
            async for event in self._watch_broadcast(sub):
                yield event
            return
        if batched and flt == JobFilter():  # unfiltered: the shared broadcast
            async for event in self._watch_broadcast(self._broadcast.subscribe()):
                yield event
            return
        interval = self.watch_interval
        with self.engine.bus.watch(flt) as watcher:
            yield op.JobEvent(kind="heartbeat", server_time=time.time())
            sent_at = 0.0
            while True:
                batch, resync = await watcher.next_batch(timeout=self.heartbeat_secs)
                if resync:
                    yield op.JobEvent(kind="resync", server_time=time.time())
                    continue
                if not batch:
                    yield op.JobEvent(kind="heartbeat", server_time=time.time())
                    continue
                wait = sent_at + interval - time.monotonic()
                if wait > 0:  # pace a steady stream; the changes meanwhile join this flush
                    await asyncio.sleep(wait)
                    more, resync = await watcher.next_batch(timeout=0)
                    if resync:
                        yield op.JobEvent(kind="resync", server_time=time.time())
                        continue
                    if more:
                        batch = _merge_changes(batch, more)
                sent_at = time.monotonic()
                stamp = _SERVER_TIME + struct.pack("<d", time.time())
                routable = self.ctx.routable()
                encode = self._job_bytes
                if batched:
                    yield b"".join([_KIND_BATCH, stamp, *(encode(j, routable)[1] for j in batch)])
                else:
                    for job in batch:
                        yield b"".join((_KIND_UPSERT, encode(job, routable)[0], stamp))

    async def _watch_broadcast(self, sub: _Subscriber) -> AsyncIterator[op.JobEvent | bytes]:
        try:
            yield op.JobEvent(kind="heartbeat", server_time=time.time(), view_token=sub.token)
            while True:
                try:
                    async with asyncio.timeout(self.heartbeat_secs):
                        await sub.event.wait()
                except TimeoutError:
                    yield op.JobEvent(kind="heartbeat", server_time=time.time())
                    continue
                sub.event.clear()
                if sub.resync:
                    sub.resync = False
                    yield op.JobEvent(kind="resync", server_time=time.time())
                    continue
                chunks, others, near, counts = sub.chunks, sub.others, sub.near, sub.counts
                sub.drop_pending()
                if sub.view is not None:
                    if chunks or others or counts is not None:
                        head = op.JobEvent(
                            kind="batch",
                            server_time=time.time(),
                            others=others,
                            others_from_seq=near,
                            counts=counts,
                        )
                        yield b"".join([head.SerializeToString(), *chunks])
                elif chunks:
                    yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
        finally:
            self._broadcast.unsubscribe(sub)

    @_operator_rpc()
    async def SetWatchView(
        self, request: op.SetWatchViewRequest, principal: Principal
    ) -> op.SetWatchViewResponse:
        self._broadcast.set_view(request.view_token, request.ids, request.from_seq)
        return op.SetWatchViewResponse()

    def _job_bytes(self, job: Job, routable: frozenset[str]) -> tuple[bytes, bytes]:
        """The snapshot encoded as JobEvent field `job` (2) and as one entry of `jobs` (140), done
        once per published snapshot for all per-stream watchers (filtered or unbatched streams,
        which take the same snapshots within a flush interval or two). Snapshots are immutable;
        the cache is keyed by identity and holds the snapshot, so ids are not reused while cached;
        it is small (memory: a few MB at most) and cleared when full."""
        no_handler = job.status == QUEUED and job.handler not in routable
        hit = self._encoded.get(id(job))
        if hit is not None and hit[0] is job and hit[1] == no_handler:
            return hit[2]
        raw = operator_job(job, routable).SerializeToString()
        size = _varint(len(raw))
        pair = (_FIELD_JOB + size + raw, _FIELD_JOBS + size + raw)
        if len(self._encoded) >= ENCODED_CACHE:
            self._encoded.clear()
        self._encoded[id(job)] = (job, no_handler, pair)
        return pair

    @_operator_rpc("enqueue jobs")
    async def Enqueue(self, request: op.EnqueueRequest, principal: Principal) -> op.EnqueueResponse:
        await await_plugin_handlers(self.ctx, (request.handler,))
        job, existed = await self.engine.submit(
            request.handler,
            request.payload,
            max_attempts=request.max_attempts,
            timeout_secs=request.timeout_secs,
            priority=request.priority,
            source=request.source,
            delay_secs=request.delay_secs,
            parent_job_id=request.parent_job_id,
            job_id=request.id,
            cost_estimate=request.cost_estimate,
        )
        return op.EnqueueResponse(job=operator_job(job, self.ctx.routable()), existed=existed)

    @_operator_rpc("enqueue jobs")
    async def EnqueueMany(
        self, request: op.EnqueueManyRequest, principal: Principal
    ) -> op.EnqueueManyResponse:
        specs, handlers = enqueue_specs(request.jobs)
        await await_plugin_handlers(self.ctx, handlers)
        jobs, existed = await self.engine.submit_many(specs)
        return op.EnqueueManyResponse(ids=[j.id for j in jobs], existed=existed)

    @_operator_rpc("cancel jobs")
    async def CancelJobs(self, request: op.JobSelector, principal: Principal) -> op.BulkResponse:
        return await self._bulk(request, CANCELLED, self.engine.cancel)

    @_operator_rpc("retry jobs")
    async def RetryJobs(self, request: op.JobSelector, principal: Principal) -> op.BulkResponse:
        return await self._bulk(request, QUEUED, self.engine.retry)

    @_operator_rpc("pause jobs")
    async def PauseJobs(self, request: op.JobSelector, principal: Principal) -> op.BulkResponse:
        return await self._bulk(request, PAUSED, self.engine.pause)

    @_operator_rpc("resume jobs")
    async def ResumeJobs(self, request: op.JobSelector, principal: Principal) -> op.BulkResponse:
        return await self._bulk(request, "resume", self.engine.resume)

    @_operator_rpc("delete jobs")
    async def DeleteJobs(self, request: op.JobSelector, principal: Principal) -> op.BulkResponse:
        ids, truncated = await self._select(request)
        deleted, refused = await self.engine.delete_jobs(ids, dry_run=request.dry_run)
        resp = op.BulkResponse(matched=len(ids), truncated=truncated, affected_ids=deleted)
        resp.failures.extend(op.ActionFailure(id=i, error=e) for i, e in refused.items())
        return resp

    async def _select(self, sel: op.JobSelector) -> tuple[list[str], bool]:
        if sel.ids:
            ids = list(dict.fromkeys(sel.ids))
            if len(ids) > SELECT_MAX:
                raise ValidationError(f"at most {SELECT_MAX:,} ids per request, got {len(ids):,}")
            return ids, False
        if sel.limit < 0:
            raise ValidationError(f"limit must not be negative, got {sel.limit}")
        if sel.limit > SELECT_MAX:
            raise ValidationError(f"limit must be at most {SELECT_MAX:,}, got {sel.limit:,}")
        return await self.engine.select_ids(job_filter(sel.filter), sel.limit or SELECT_DEFAULT)

    async def _bulk(
        self, sel: op.JobSelector, target: str, action: Callable[[str], Awaitable[Job]]
    ) -> op.BulkResponse:
        if sel.ids:
            ids = list(dict.fromkeys(sel.ids))
            if len(ids) > SELECT_MAX:
                raise ValidationError(f"at most {SELECT_MAX:,} ids per request, got {len(ids):,}")
            truncated = False
        else:
            if sel.limit < 0:
                raise ValidationError(f"limit must not be negative, got {sel.limit}")
            if sel.limit > SELECT_MAX:
                raise ValidationError(f"limit must be at most {SELECT_MAX:,}, got {sel.limit:,}")
            ids, truncated = await self.engine.select_ids(job_filter(sel.filter), sel.limit or SELECT_DEFAULT)
        resp = op.BulkResponse(matched=len(ids), truncated=truncated)
        for job_id in ids:
            try:
                if sel.dry_run:
                    current = await self.engine.get_job(job_id)
                    if target == QUEUED:
                        jobmodel.check_operator_retry(job_id, current.status)
                    elif target == PAUSED:
                        jobmodel.check_pause(job_id, current.status)
                    elif target == "resume":
                        jobmodel.check_resume(job_id, current.status)
                    else:
                        jobmodel.check_transition(job_id, current.status, target)
                else:
                    await action(job_id)
            except PulseError as exc:
                resp.failures.append(op.ActionFailure(id=job_id, error=exc.message, reason=exc.reason))
            else:
                resp.affected_ids.append(job_id)
        return resp

    # ---- plugins
    @_operator_rpc()
    async def ListPlugins(
        self, request: op.ListPluginsRequest, principal: Principal
    ) -> op.ListPluginsResponse:
        host = self.ctx.host
        if host is None:
            return op.ListPluginsResponse()
        return op.ListPluginsResponse(plugins=[self._plugin(p) for p in host.list()])

    @_operator_rpc()
    async def GetPlugin(self, request: op.GetPluginRequest, principal: Principal) -> op.Plugin:
        return self._plugin(self._host(request.name).get(request.name), tail=request.tail_lines, full=True)

    @_operator_rpc("reload plugins")
    async def ReloadPlugin(
        self, request: op.PluginNameRequest, principal: Principal
    ) -> op.ReloadPluginResponse:
        host = self._host(request.name)
        report = await host.reload(request.name)
        return op.ReloadPluginResponse(
            plugin=self._plugin(host.get(request.name)),
            added=report.added,
            removed=report.removed,
            conflicts=report.conflicts,
            drained_jobs=report.drained_jobs,
            draining_jobs=report.draining,
        )

    @_operator_rpc("enable or disable plugins")
    async def SetPluginEnabled(self, request: op.SetPluginEnabledRequest, principal: Principal) -> op.Plugin:
        state = await self._host(request.name).set_enabled(request.name, request.enabled)
        return self._plugin(state)

    def _host(self, name: str) -> PluginHost:
        """The plugin host to ask about `name` (its methods raise NotFound for an unknown name)."""
        if not name:
            raise ValidationError("plugin name is empty")
        if self.ctx.host is None:
            raise NotFound(f"no plugin named {name!r}; this server has no plugins configured")
        return self.ctx.host

    def _plugin(self, p: PluginState, *, tail: int = 0, full: bool = False) -> op.Plugin:
        msg = op.Plugin(
            name=p.name,
            state=p.state,
            healthy=p.healthy,
            health_message=p.health_message,
            version=p.version,
            description=p.description,
            pid=p.pid,
            endpoint=p.endpoint,
            started_at=p.started_at,
            restarts=p.restarts,
            handlers=p.handlers,
            last_error=p.last_error,
            enabled=p.enabled,
            refused_handlers=p.refused_handlers,
            unserved=p.unserved,
            next_restart_at=p.next_restart_at,
            draining_jobs=p.draining_jobs,
            draining_instances=p.draining_instances,
            running_jobs=len(self.engine.running_jobs(p.name)),
        )
        if full:
            msg.output_tail.extend(p.output_tail[-tail:] if tail > 0 else p.output_tail)
            msg.config_schema.extend(
                op.ConfigField(
                    name=f.name,
                    type=f.type,
                    description=f.description,
                    default_value=f.default_value,
                    required=f.required,
                    min_value=f.min_value,
                    max_value=f.max_value,
                    pattern=f.pattern,
                    element_type=f.element_type,
                )
                for f in p.config_schema
            )
        return msg

    # ---- handlers
    @_operator_rpc()
    async def ListHandlers(
        self, request: op.ListHandlersRequest, principal: Principal
    ) -> op.ListHandlersResponse:
        counts = await self.engine.handler_counts()
        registry = self.ctx.registry
        if registry is not None:
            infos = [self._handler(h) for h in registry.handlers()]
        else:
            infos = [
                op.Handler(name=name, builtin=name in self._builtin_handlers(), explanation="built-in")
                for name in sorted(self.ctx.routable())
                if "/" not in name
            ]
        out = op.ListHandlersResponse()
        for h in infos:
            if request.conflicts_only and not h.conflict:
                continue
            c = counts.get(h.name, {})
            h.queued, h.running, h.failed = (
                c.get(jobmodel.QUEUED, 0),
                c.get(jobmodel.RUNNING, 0),
                c.get(jobmodel.FAILED, 0),
            )
            h.paused_jobs = c.get(jobmodel.PAUSED, 0)
            self._handler_pause(h)
            out.handlers.append(h)
        return out

    def _handler_pause(self, h: op.Handler) -> op.Handler:
        reason, at = self.engine.paused_handlers.get(h.name, ("", 0.0))
        h.paused, h.pause_reason, h.paused_at = bool(at or reason), reason, at
        return h

    async def _one_handler(self, name: str) -> op.Handler:
        registry = self.ctx.registry
        h = None
        if registry is not None and hasattr(registry, "handlers"):
            h = next((self._handler(x) for x in registry.handlers() if x.name == name), None)
        if h is None:
            h = op.Handler(name=name, builtin=name in self._builtin_handlers())
        c = (await self.engine.handler_counts()).get(name, {})
        h.queued, h.running, h.failed = (
            c.get(jobmodel.QUEUED, 0),
            c.get(jobmodel.RUNNING, 0),
            c.get(jobmodel.FAILED, 0),
        )
        h.paused_jobs = c.get(jobmodel.PAUSED, 0)
        return self._handler_pause(h)

    @_operator_rpc("pause handlers")
    async def PauseHandler(self, request: op.HandlerNameRequest, principal: Principal) -> op.Handler:
        held = await self.engine.pause_handler(request.name)
        h = await self._one_handler(request.name)
        h.changed_jobs = len(held)
        return h

    @_operator_rpc("resume handlers")
    async def ResumeHandler(self, request: op.HandlerNameRequest, principal: Principal) -> op.Handler:
        released = await self.engine.resume_handler(request.name)
        h = await self._one_handler(request.name)
        h.changed_jobs = len(released)
        return h

    @staticmethod
    def _handler(h: HandlerInfo) -> op.Handler:
        return op.Handler(
            name=h.name,
            owner=h.owner,
            claimants=h.claimants,
            conflict=h.conflict,
            explanation=h.explanation,
            builtin=h.builtin,
            pinned=h.pinned,
            qualified=h.qualified,
        )

    def _builtin_handlers(self) -> list[str]:
        from pulse_tui.pulse.handlers import builtin_handlers

        return sorted(h.name for h in builtin_handlers())

    # ---- scripts (handler editor)
    def _scripts(self) -> ScriptStore:
        if self.ctx.scripts is None:
            raise NotEnabled("handler scripts are not enabled on this server")
        return self.ctx.scripts

    def _script(self, info: ScriptInfo, *, with_code: bool) -> op.Script:
        return op.Script(
            name=info.name,
            code=info.code if with_code else "",
            version=info.version,
            modified_at=info.modified_at,
            handler=info.handler,
            live=self._scripts().is_live(info.name),
        )

    @_operator_rpc()
    async def ListScripts(
        self, request: op.ListScriptsRequest, principal: Principal
    ) -> op.ListScriptsResponse:
        return op.ListScriptsResponse(
            scripts=[self._script(i, with_code=False) for i in self._scripts().list()]
        )

    @_operator_rpc()
    async def GetScript(self, request: op.GetScriptRequest, principal: Principal) -> op.Script:
        return self._script(self._scripts().get(request.name), with_code=True)

    @_operator_rpc("save handler scripts")
    async def SaveScript(self, request: op.SaveScriptRequest, principal: Principal) -> op.SaveScriptResponse:
        out = await self._scripts().save(request.name, request.code, request.base_version)
        return op.SaveScriptResponse(
            saved=out.saved,
            script=self._script(out.script, with_code=True) if out.script else None,
            error=out.error,
            error_line=out.line,
            error_column=out.column,
            live=out.live,
            reload_message=out.reload_message,
        )

    @_operator_rpc("delete handler scripts")
    async def DeleteScript(
        self, request: op.DeleteScriptRequest, principal: Principal
    ) -> op.DeleteScriptResponse:
        await self._scripts().delete(request.name, request.base_version)
        return op.DeleteScriptResponse(deleted=True)
