"""PluginProxyHandler: runs one attempt of a job through a plugin's ExecuteJob.

A plugin that serves our BatchExecService (pulse/batch.py; the host finds out at the handshake)
gets the job on its batch stream instead of a unary call: the stub the lease hands out then
carries a `batch` BatchCaller. Everything below holds for both paths: the reply is the same
ExecuteJobResponse, decoded and checked here per job; a deadline passed is a timeout; a stream
that ended under the call is UNAVAILABLE (the host's lease makes it an interruption when the
instance died); a BatchResponse that does not decode fails the calls on that stream as
protocol_error.

The proxy does not own a connection. It asks a *lease* function for a stub for the duration of
one call (`lease(job_id)` is an async context manager). The plugin host's lease binds the call to
one plugin instance — which is how a hot reload knows which in-flight calls still run on the old
instance — and waits for a restarted instance when the bound one has died. `channel_lease()`
makes a lease from a plain channel for hosts and tests that have nothing more.

Outcome mapping:
  success=true            -> HandlerResult (result, progress, cost, logs, plugin_version)
  success=false           -> HandlerError(error) carrying the partial result; outcome "timeout"
                             when the plugin's error starts with "timeout:" (SDK convention)
  UNAVAILABLE / CANCELLED -> HandlerError(outcome=plugin_unavailable, retryable) — the plugin died
                             or went away mid-call
  DEADLINE_EXCEEDED       -> HandlerError(outcome=timeout)
  a reply that breaks the -> HandlerError(outcome=protocol_error, not retried): bytes that do not
  protocol                   decode as an ExecuteJobResponse (e.g. a string field with bad UTF-8),
                             or a non-empty `result` that is not JSON (the protocol says JSON bytes;
                             we fail the attempt rather than store bytes no client can show)
  asyncio cancellation    -> propagates; grpc.aio cancels the in-flight call, and the plugin
                             sees its ExecuteJob cancelled. A CancelledError that grpc.aio raises
                             because the channel was closed under the call (our task was not
                             cancelled) is a lost plugin: plugin_unavailable, retryable.

What the reply reports is checked by the same rules as UpdateJob (`jobs.check_report`): negative
progress and a negative / NaN / infinite cost are refused — the values are not stored, the job
keeps what it had, and a warning log line on the job says so; current > total is stored as
total/total. Log messages are cut to `jobs.MAX_LOG_MESSAGE_BYTES` each.

We ask gRPC for the raw reply bytes (`plugin_stub`) and decode them here, so a reply that does not
decode is one clear error instead of gRPC's logged traceback and a None response.

Calls in flight per plugin are bounded by a semaphore shared by that plugin's handlers:
thousands of simultaneous unary calls on one channel come back CANCELLED (FIELD-NOTES).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

import grpc
from google.protobuf.message import DecodeError

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc
from pulse_tui.pulse import jobs
from pulse_tui.pulse.batch import BatchCaller, BatchDeadline, BatchStreamError
from pulse_tui.pulse.handlers import HandlerError, HandlerResult, JobContext

log = logging.getLogger("pulse.proxy")

Lease = Callable[[str], AbstractAsyncContextManager[domain_pb2_grpc.DomainPluginServiceStub]]

DEFAULT_MAX_IN_FLIGHT = 128
TIMEOUT_PREFIX = "timeout:"


EXECUTE_METHOD = "/protocol.DomainPluginService/ExecuteJob"


def plugin_stub(channel: grpc.aio.Channel) -> domain_pb2_grpc.DomainPluginServiceStub:
    """The generated stub plus `ExecuteJobRaw`: ExecuteJob returning the reply's bytes undecoded."""
    stub = domain_pb2_grpc.DomainPluginServiceStub(channel)
    # an attribute the generated class does not declare
    stub.ExecuteJobRaw = channel.unary_unary(  # type: ignore[attr-defined]
        EXECUTE_METHOD,
        request_serializer=domain_pb2.ExecuteJobRequest.SerializeToString,
        response_deserializer=None,
    )
    return stub


def channel_lease(channel: grpc.aio.Channel) -> Lease:
    """A lease that always hands out a stub on `channel`."""
    stub = plugin_stub(channel)

    @contextlib.asynccontextmanager
    async def lease(job_id: str) -> AsyncIterator[domain_pb2_grpc.DomainPluginServiceStub]:
        yield stub

    return lease


class PluginProxyHandler:
    """A Handler whose work is done by `plugin`'s handler `name` (the bare announced name)."""

    def __init__(
        self,
        plugin: str,
        name: str,
        lease: Lease,
        *,
        semaphore: asyncio.Semaphore | None = None,
    ) -> None:
        self.plugin = plugin
        self.name = name
        self._lease = lease
        self._semaphore = semaphore or asyncio.Semaphore(DEFAULT_MAX_IN_FLIGHT)

    def __repr__(self) -> str:
        return f"PluginProxyHandler({self.plugin}/{self.name})"

    async def run(self, ctx: JobContext) -> HandlerResult:
        started = time.monotonic()
        async with self._semaphore, self._lease(ctx.job.id) as stub:
            request = domain_pb2.ExecuteJobRequest(
                job_id=ctx.job.id, handler_name=self.name, payload=ctx.payload
            )
            deadline: float | None = None
            if ctx.timeout:
                deadline = max(0.001, ctx.timeout - (time.monotonic() - started))
                request.timeout_secs = max(1, math.ceil(deadline))
            raw_call = getattr(stub, "ExecuteJobRaw", None)
            batch: BatchCaller | None = getattr(stub, "batch", None)
            try:
                if batch is not None:  # the plugin serves BatchExecService (pulse/batch.py)
                    reply = await batch.execute(request, deadline)
                elif raw_call is not None:
                    reply = await raw_call(request, timeout=deadline)
                else:  # a stub made elsewhere: gRPC decodes, and returns None when it cannot
                    reply = await stub.ExecuteJob(request, timeout=deadline)
            except grpc.aio.AioRpcError as exc:
                raise self._rpc_error(exc, ctx) from None
            except BatchDeadline:
                raise self._timeout(ctx) from None
            except BatchStreamError as exc:
                raise self._stream_error(exc) from None
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the engine cancelled the job (operator cancel / timeout / shutdown)
                # Nobody cancelled us: grpc.aio reports a call cut off by closing its channel (the
                # host closing a dead or drained instance) as CancelledError. That is a lost plugin.
                raise HandlerError(
                    f"plugin {self.plugin} went away while the job ran (connection closed); retried while attempts remain",
                    outcome=jobs.OUTCOME_UNAVAILABLE,
                    retryable=True,
                ) from None
        resp = self._decode(reply)
        result = self._convert(resp, ctx)
        if resp.success:
            return result
        error = resp.error or f"plugin {self.plugin} reported a failure without an error message"
        outcome = jobs.OUTCOME_TIMEOUT if error.startswith(TIMEOUT_PREFIX) else jobs.OUTCOME_FAILED
        raise HandlerError(error, outcome=outcome, retryable=True, result=result)

    def _rpc_error(self, exc: grpc.aio.AioRpcError, ctx: JobContext) -> HandlerError:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return self._timeout(ctx)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return HandlerError(
                f"plugin {self.plugin} unavailable ({code.name}: {details}); retried while attempts remain",
                outcome=jobs.OUTCOME_UNAVAILABLE,
                retryable=True,
            )
        return HandlerError(f"plugin {self.plugin} ExecuteJob failed: {code.name}: {details}", retryable=True)

    def _timeout(self, ctx: JobContext) -> HandlerError:
        return HandlerError(
            f"timeout: {self.plugin}/{self.name} did not finish within {ctx.timeout:g}s",
            outcome=jobs.OUTCOME_TIMEOUT,
            retryable=True,
        )

    def _stream_error(self, exc: BatchStreamError) -> HandlerError:
        if exc.code == "PROTOCOL":  # bytes that are not a BatchResponse: the calls it may carry are lost
            message = f"plugin {self.plugin} {exc.details}"
            log.warning("%s (handler %s)", message, self.name)
            return HandlerError(message, outcome=jobs.OUTCOME_PROTOCOL_ERROR, retryable=False)
        return HandlerError(
            f"plugin {self.plugin} unavailable ({exc.code} on its batch stream: {exc.details}); "
            "retried while attempts remain",
            outcome=jobs.OUTCOME_UNAVAILABLE,
            retryable=True,
        )

    def _protocol_error(self, what: str) -> HandlerError:
        message = f"plugin {self.plugin} sent an ExecuteJobResponse that {what}"
        log.warning("%s (handler %s)", message, self.name)  # one line, no traceback
        return HandlerError(message, outcome=jobs.OUTCOME_PROTOCOL_ERROR, retryable=False)

    def _decode(self, reply: bytes | domain_pb2.ExecuteJobResponse | None) -> domain_pb2.ExecuteJobResponse:
        if isinstance(reply, domain_pb2.ExecuteJobResponse):
            return reply
        if reply is None:
            raise self._protocol_error("cannot be decoded (see the gRPC error logged above)")
        resp = domain_pb2.ExecuteJobResponse()
        try:
            resp.ParseFromString(reply)
        except DecodeError as exc:
            raise self._protocol_error(f"cannot be decoded: {exc}") from None
        return resp

    def _convert(self, resp: domain_pb2.ExecuteJobResponse, ctx: JobContext) -> HandlerResult:
        if resp.result:
            try:
                json.loads(resp.result)
            except (ValueError, UnicodeDecodeError) as exc:
                raise self._protocol_error(
                    f"has a result that is not JSON ({len(resp.result):,} bytes: {exc}); "
                    "results must be JSON-encoded bytes"
                ) from None
        cap = jobs.MAX_LOG_MESSAGE_BYTES
        logs = [
            jobs.LogEntry(
                ctx.job.id,
                ctx.attempt,
                e.timestamp[:64],
                e.level[:32],
                jobs.cap_text(e.message, cap),
                e.stage[:200],
                jobs.cap_text(e.metadata, cap),
            )
            for e in resp.log_entries
        ]
        current, total = resp.progress_current, resp.progress_total
        has_progress = bool(total or current)
        cost = resp.cost_actual or None
        progress_refusal, clamp = jobs.check_report(current, total, None)
        cost_refusal, _ = jobs.check_report(0, 0, cost)
        for refusal in (progress_refusal, cost_refusal):
            if refusal:
                self._note(logs, ctx, f"plugin {self.plugin} reported {refusal}; the value was not stored")
        if progress_refusal:
            has_progress = False  # the job keeps the progress it had
        if cost_refusal:
            cost = None
        if clamp:
            self._note(
                logs,
                ctx,
                f"plugin {self.plugin} reported progress {current}/{total}; stored as {total}/{total}",
            )
            current = total
        return HandlerResult(
            result=resp.result,
            progress_current=current if has_progress else None,
            progress_total=total if has_progress else None,
            cost_actual=cost,
            logs=logs,
            plugin_version=resp.plugin_version[:200],
        )

    def _note(self, logs: list[jobs.LogEntry], ctx: JobContext, message: str) -> None:
        """A warning on the job's log and one line in the server log."""
        log.warning("job %s (%s/%s): %s", ctx.job.id, self.plugin, self.name, message)
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        logs.append(jobs.LogEntry(ctx.job.id, ctx.attempt, stamp, "warn", message, "pulse"))
