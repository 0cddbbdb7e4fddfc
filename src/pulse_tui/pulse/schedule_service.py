"""Schedules over gRPC: QNTX's ScheduleService (for plugins, at `schedule_endpoint`) and the
schedule RPCs of Pulse's OperatorService (a mixin the OperatorService class inherits).

Token rules (ScheduleService): a plugin token creates schedules it owns and may pause / resume /
delete / get only those; the admin token may do anything; the read-only token may only get.
Failures are `success=false` + `error`, like QueueService.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import schedule_pb2 as sp
from pulse_tui.protocol import schedule_pb2_grpc as sp_grpc
from pulse_tui.pulse import schedules as S
from pulse_tui.pulse.auth import ADMIN, PLUGIN, Authenticator, Principal
from pulse_tui.pulse.errors import (
    NotEnabled,
    PermissionDenied,
    PulseError,
    ReadOnly,
    ValidationError,
    reason_trailer,
)
from pulse_tui.vocab import Reason

if TYPE_CHECKING:
    from pulse_tui.pulse.services import ServiceContext

    # what grpc.aio hands a servicer method (generic only in the type stubs)
    RpcContext = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 1000
LIST_DEFAULT = 1000
EXECUTIONS_DEFAULT = 20
EXECUTIONS_MAX = 1000


def _short(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 20] + "…"


# ---------------------------------------------------------------- conversions


def scheduled_job(s: S.Schedule) -> sp.ScheduledJob:
    """Our schedule as QNTX's protocol.ScheduledJob (RFC3339 times)."""
    return sp.ScheduledJob(
        id=s.id,
        ats_code=s.ats_code,
        handler_name=s.handler,
        payload=s.payload,
        interval_seconds=s.interval_secs,
        next_run_at=S.rfc3339(s.next_run_at),
        last_run_at=S.rfc3339(s.last_run_at),
        last_execution_id=s.last_execution_id,
        state=s.state,
        metadata=s.metadata,
        created_at=S.rfc3339(s.created_at),
        updated_at=S.rfc3339(s.updated_at),
    )


def operator_schedule(s: S.Schedule) -> op.Schedule:
    return op.Schedule(
        id=s.id,
        handler=s.handler,
        payload=s.payload,
        interval_secs=s.interval_secs,
        cron=s.cron,
        timezone=s.timezone,
        state=s.state,
        overlap=s.overlap,
        jitter_secs=s.jitter_secs,
        next_run_at=s.next_run_at,
        last_run_at=s.last_run_at,
        last_execution_id=s.last_execution_id,
        last_job_id=s.last_job_id,
        last_status=s.last_status,
        run_count=s.run_count,
        owner=s.owner,
        metadata=s.metadata,
        description=s.description,
        cadence=s.cadence,
        created_at=s.created_at,
        updated_at=s.updated_at,
    )


def operator_execution(e: S.Execution) -> op.Execution:
    return op.Execution(
        id=e.id,
        schedule_id=e.schedule_id,
        job_id=e.job_id,
        status=e.status,
        started_at=e.started_at,
        completed_at=e.completed_at,
        duration_ms=e.duration_ms,
        error=e.error,
        note=e.note,
        seq=e.seq,
    )


# ---------------------------------------------------------------- ScheduleService (QNTX)


def _schedule_rpc(
    response_type: type,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def rpc(self: ScheduleService, request: Any, context: RpcContext) -> Any:
            try:
                principal = self.auth.identify(request.auth_token)
                return await fn(self, request, principal)
            except PulseError as exc:
                return response_type(success=False, error=_short(exc.message))
            except Exception:
                log.exception("ScheduleService.%s failed", fn.__name__)
                return response_type(success=False, error="internal server error; see the server log")

        return rpc

    return wrap


class ScheduleService(sp_grpc.ScheduleServiceServicer):
    def __init__(self, scheduler: S.Scheduler, auth: Authenticator) -> None:
        self.scheduler = scheduler
        self.auth = auth

    async def _owned(self, principal: Principal, schedule_id: str, action: str) -> S.Schedule:
        if not schedule_id:
            raise ValidationError("schedule_id is empty")
        if principal.role not in (ADMIN, PLUGIN):
            raise ReadOnly(f"the read-only token may not {action} schedules; use the admin token")
        s = await self.scheduler.get(schedule_id)
        if principal.role == PLUGIN and s.owner != S.plugin_owner(principal.plugin):
            raise PermissionDenied(
                f"schedule {schedule_id} is not owned by plugin {principal.plugin!r}; "
                "a plugin may only manage its own schedules"
            )
        return s

    @_schedule_rpc(sp.CreateScheduleResponse)
    async def CreateSchedule(self, request: sp.CreateScheduleRequest, principal: Principal) -> Any:
        if principal.role == PLUGIN:
            owner = S.plugin_owner(principal.plugin)
        else:
            principal.require_admin("create schedules")
            owner = S.OWNER_OPERATOR
        if request.interval_seconds <= 0:
            raise ValidationError(f"interval_seconds must be positive, got {request.interval_seconds}")
        s = await self.scheduler.create(
            request.handler_name,
            request.payload,
            interval_secs=request.interval_seconds,
            owner=owner,
            metadata=json.dumps(dict(request.metadata)),
            at_once=True,
        )
        return sp.CreateScheduleResponse(success=True, schedule_id=s.id)

    @_schedule_rpc(sp.PauseScheduleResponse)
    async def PauseSchedule(self, request: sp.PauseScheduleRequest, principal: Principal) -> Any:
        await self._owned(principal, request.schedule_id, "pause")
        await self.scheduler.pause(request.schedule_id)
        return sp.PauseScheduleResponse(success=True)

    @_schedule_rpc(sp.ResumeScheduleResponse)
    async def ResumeSchedule(self, request: sp.ResumeScheduleRequest, principal: Principal) -> Any:
        await self._owned(principal, request.schedule_id, "resume")
        await self.scheduler.resume(request.schedule_id)
        return sp.ResumeScheduleResponse(success=True)

    @_schedule_rpc(sp.DeleteScheduleResponse)
    async def DeleteSchedule(self, request: sp.DeleteScheduleRequest, principal: Principal) -> Any:
        await self._owned(principal, request.schedule_id, "delete")
        await self.scheduler.delete(request.schedule_id)
        return sp.DeleteScheduleResponse(success=True)

    @_schedule_rpc(sp.GetScheduleResponse)
    async def GetSchedule(self, request: sp.GetScheduleRequest, principal: Principal) -> Any:
        if not request.schedule_id:
            raise ValidationError("schedule_id is empty")
        s = await self.scheduler.get(request.schedule_id)
        if principal.role == PLUGIN and s.owner != S.plugin_owner(principal.plugin):
            raise PermissionDenied(
                f"schedule {request.schedule_id} is not owned by plugin {principal.plugin!r}; "
                "a plugin may only read its own schedules"
            )
        return sp.GetScheduleResponse(success=True, job=scheduled_job(s))


# ---------------------------------------------------------------- OperatorService (mixin)


class ScheduleOperatorMixin:
    """The schedule RPCs of OperatorService. The host class provides `ctx` (with `.scheduler`),
    `authorize(context, mutation)` and `heartbeat_secs`."""

    ctx: ServiceContext
    heartbeat_secs: float

    def authorize(self, context: RpcContext, mutation: str | None) -> Principal:  # pragma: no cover
        raise NotImplementedError

    @property
    def scheduler(self) -> S.Scheduler:
        sched = self.ctx.scheduler
        if sched is None:
            raise NotEnabled("this server runs no scheduler")
        return sched

    async def _call(self, context: RpcContext, mutation: str | None, fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            self.authorize(context, mutation)
            return await fn()
        except PulseError as exc:
            await context.abort(grpc.StatusCode[exc.code], _short(exc.message), reason_trailer(exc.reason))
        except grpc.aio.AbortError:
            raise
        except Exception:
            log.exception("OperatorService schedule call failed")
            await context.abort(
                grpc.StatusCode.INTERNAL,
                "internal server error; see the server log",
                reason_trailer(Reason.INTERNAL),
            )

    async def ListSchedules(self, request: op.ListSchedulesRequest, context: RpcContext) -> Any:
        async def go() -> op.ListSchedulesResponse:
            flt = S.ScheduleFilter(states=tuple(request.states), owner=request.owner, handler=request.handler)
            if request.limit < 0:
                raise ValidationError(f"limit must not be negative, got {request.limit}")
            found = await self.scheduler.list(flt, min(request.limit or LIST_DEFAULT, 100_000))
            return op.ListSchedulesResponse(schedules=[operator_schedule(s) for s in found])

        return await self._call(context, None, go)

    async def GetSchedule(self, request: op.GetScheduleRequest, context: RpcContext) -> Any:
        async def go() -> op.ScheduleDetail:
            if not request.id:
                raise ValidationError("schedule id is empty")
            if not 0 <= request.executions_limit <= EXECUTIONS_MAX:
                raise ValidationError(f"executions_limit must be 0 to {EXECUTIONS_MAX}")
            s = await self.scheduler.get(request.id)
            exs = await self.scheduler.executions(
                s.id, request.executions_limit or EXECUTIONS_DEFAULT, request.executions_before_seq
            )
            upcoming = [s.next_run_at, *S.next_runs(s, s.next_run_at, 2)] if s.state == S.ACTIVE else []
            return op.ScheduleDetail(
                schedule=operator_schedule(s),
                executions=[operator_execution(e) for e in exs],
                next_runs=upcoming,
            )

        return await self._call(context, None, go)

    async def CreateSchedule(self, request: op.CreateScheduleRequest, context: RpcContext) -> Any:
        async def go() -> op.Schedule:
            s = await self.scheduler.create(
                request.handler,
                request.payload,
                interval_secs=request.interval_secs,
                cron=request.cron,
                timezone=request.timezone,
                overlap=request.overlap or S.OVERLAP_SKIP,
                jitter_secs=request.jitter_secs,
                paused=request.paused,
                at_once=request.run_at_once,
                metadata=request.metadata or "{}",
                description=request.description,
            )
            return operator_schedule(s)

        return await self._call(context, "create schedules", go)

    async def UpdateSchedule(self, request: op.UpdateScheduleRequest, context: RpcContext) -> Any:
        async def go() -> op.Schedule:
            if not request.id:
                raise ValidationError("schedule id is empty")
            changes = {
                name: getattr(request, name)
                for name in (
                    "handler",
                    "payload",
                    "interval_secs",
                    "cron",
                    "timezone",
                    "overlap",
                    "jitter_secs",
                    "description",
                )  # fmt: skip
                if request.HasField(name)
            }
            return operator_schedule(await self.scheduler.update(request.id, **changes))

        return await self._call(context, "update schedules", go)

    def _simple(
        self, verb: str, action: Callable[[str], Awaitable[S.Schedule]]
    ) -> Callable[..., Awaitable[Any]]:
        async def rpc(request: op.ScheduleIdRequest, context: RpcContext) -> Any:
            async def go() -> op.Schedule:
                if not request.id:
                    raise ValidationError("schedule id is empty")
                return operator_schedule(await action(request.id))

            return await self._call(context, f"{verb} schedules", go)

        return rpc

    async def PauseSchedule(self, request: op.ScheduleIdRequest, context: RpcContext) -> Any:
        return await self._simple("pause", lambda i: self.scheduler.pause(i))(request, context)

    async def ResumeSchedule(self, request: op.ScheduleIdRequest, context: RpcContext) -> Any:
        return await self._simple("resume", lambda i: self.scheduler.resume(i))(request, context)

    async def DeleteSchedule(self, request: op.ScheduleIdRequest, context: RpcContext) -> Any:
        return await self._simple("delete", lambda i: self.scheduler.delete(i))(request, context)

    async def RunSchedule(self, request: op.ScheduleIdRequest, context: RpcContext) -> Any:
        async def go() -> op.RunScheduleResponse:
            if not request.id:
                raise ValidationError("schedule id is empty")
            ex = await self.scheduler.run_now(request.id)
            s = await self.scheduler.get(request.id)
            return op.RunScheduleResponse(execution=operator_execution(ex), schedule=operator_schedule(s))

        return await self._call(context, "run schedules", go)

    async def WatchSchedules(
        self, request: op.WatchSchedulesRequest, context: RpcContext
    ) -> AsyncIterator[op.ScheduleEvent]:
        """Stream schedule changes (coalesced per schedule). The first event is a heartbeat sent
        once the watch is registered."""
        try:
            self.authorize(context, None)
            sched = self.scheduler
        except PulseError as exc:
            await context.abort(grpc.StatusCode[exc.code], _short(exc.message), reason_trailer(exc.reason))
        pending: dict[str, S.Schedule] = {}
        wake = asyncio.Event()

        def offer(s: S.Schedule) -> None:
            if len(pending) < 20_000 or s.id in pending:
                pending[s.id] = s
            wake.set()

        sched.listeners.append(offer)
        try:
            yield op.ScheduleEvent(kind="heartbeat", server_time=time.time())
            while True:
                try:
                    async with asyncio.timeout(self.heartbeat_secs):
                        await wake.wait()
                except TimeoutError:
                    yield op.ScheduleEvent(kind="heartbeat", server_time=time.time())
                    continue
                wake.clear()
                batch, pending = list(pending.values()), {}
                now = time.time()
                for s in batch:
                    yield op.ScheduleEvent(kind="upsert", schedule=operator_schedule(s), server_time=now)
        finally:
            try:
                sched.listeners.remove(offer)
            except ValueError:
                pass
