"""PluginProxyHandler: runs one attempt of a job through a plugin's ExecuteJob.

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
  asyncio cancellation    -> propagates; grpc.aio cancels the in-flight call, and the plugin
                             sees its ExecuteJob cancelled. A CancelledError that grpc.aio raises
                             because the channel was closed under the call (our task was not
                             cancelled) is a lost plugin: plugin_unavailable, retryable.

Calls in flight per plugin are bounded by a semaphore shared by that plugin's handlers:
thousands of simultaneous unary calls on one channel come back CANCELLED (FIELD-NOTES).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import grpc

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc
from pulse_tui.pulse import jobs
from pulse_tui.pulse.handlers import HandlerError, HandlerResult, JobContext

Lease = Callable[[str], AbstractAsyncContextManager[domain_pb2_grpc.DomainPluginServiceStub]]

DEFAULT_MAX_IN_FLIGHT = 128
TIMEOUT_PREFIX = "timeout:"


def channel_lease(channel: grpc.aio.Channel) -> Lease:
    """A lease that always hands out a stub on `channel`."""
    stub = domain_pb2_grpc.DomainPluginServiceStub(channel)

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
            try:
                resp = await stub.ExecuteJob(request, timeout=deadline)
            except grpc.aio.AioRpcError as exc:
                raise self._rpc_error(exc, ctx) from None
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
        result = self._convert(resp, ctx)
        if resp.success:
            return result
        error = resp.error or f"plugin {self.plugin} reported a failure without an error message"
        outcome = jobs.OUTCOME_TIMEOUT if error.startswith(TIMEOUT_PREFIX) else jobs.OUTCOME_FAILED
        raise HandlerError(error, outcome=outcome, retryable=True, result=result)

    def _rpc_error(self, exc: grpc.aio.AioRpcError, ctx: JobContext) -> HandlerError:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return HandlerError(
                f"timeout: {self.plugin}/{self.name} did not finish within {ctx.timeout:g}s",
                outcome=jobs.OUTCOME_TIMEOUT,
                retryable=True,
            )
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
            return HandlerError(
                f"plugin {self.plugin} unavailable ({code.name}: {details}); retried while attempts remain",
                outcome=jobs.OUTCOME_UNAVAILABLE,
                retryable=True,
            )
        return HandlerError(f"plugin {self.plugin} ExecuteJob failed: {code.name}: {details}", retryable=True)

    def _convert(self, resp: domain_pb2.ExecuteJobResponse, ctx: JobContext) -> HandlerResult:
        has_progress = resp.progress_total or resp.progress_current
        return HandlerResult(
            result=resp.result,
            progress_current=resp.progress_current if has_progress else None,
            progress_total=resp.progress_total if has_progress else None,
            cost_actual=resp.cost_actual or None,
            logs=[
                jobs.LogEntry(ctx.job.id, ctx.attempt, e.timestamp, e.level, e.message, e.stage, e.metadata)
                for e in resp.log_entries
            ],
            plugin_version=resp.plugin_version,
        )
