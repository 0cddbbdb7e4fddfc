"""The host side of batched execution (proto/pulse/exec/v1/exec.proto, `BatchExecService`).

A plugin that answers `Describe` gets its jobs over one `ExecuteBatch` stream per instance instead
of one unary `ExecuteJob` call per job; a plugin that does not (any QNTX plugin: UNIMPLEMENTED)
stays on the unary path. The proxy (pulse/proxy.py) uses `BatchCaller.execute` in place of the
unary call and maps its outcomes exactly as it maps the unary call's.

Batching without waiting: `execute` appends the job to an outbox and wakes the writer task; the
writer runs after every job task that became ready in the same loop turn (a claim round starts
its jobs together), so one message carries what is claimable now, and jobs arriving while a write
is under way join the next message. A job alone on an idle queue is written at the next loop turn.

Each job keeps its own:
- deadline: `execute(request, deadline)` raises `BatchDeadline` on time and tells the plugin to cancel;
  `timeout_secs` also reaches the plugin, which enforces it too;
- cancellation: cancelling the task awaiting `execute` (operator cancel, shutdown) sends the
  call's id in `cancel_call_ids` (or drops the job from the outbox if it was not written yet);
- result: the plugin writes each job's `ExecuteJobResponse` when that job ends; the proxy decodes
  and checks it on its own, so one job's bad reply does not touch its batchmates.
The stream ending (the plugin died, its channel was closed) fails every call still in flight with
`BatchStreamError`; the host's lease turns that into an interruption as for a unary call cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

import grpc
from google.protobuf.message import DecodeError

from pulse_tui.protocol import domain_pb2, exec_pb2, exec_pb2_grpc

log = logging.getLogger("pulse.batch")

EXECUTE_BATCH_METHOD = "/pulse.exec.v1.BatchExecService/ExecuteBatch"
PROTOCOL_VERSION = 1


class BatchStreamError(Exception):
    """The stream a call was on ended before its result came (`code`: a grpc.StatusCode name, or
    "PROTOCOL" when the plugin wrote bytes that are not a BatchResponse)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class BatchDeadline(Exception):
    """The call's deadline passed; the plugin was told to cancel the job."""


async def describe(channel: grpc.aio.Channel, wait: float) -> exec_pb2.DescribeResponse | None:
    """Ask whether the plugin serves BatchExecService: its answer, or None (not offered)."""
    stub = exec_pb2_grpc.BatchExecServiceStub(channel)
    try:
        resp: exec_pb2.DescribeResponse = await stub.Describe(exec_pb2.DescribeRequest(), timeout=wait)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
            log.info(
                "BatchExecService.Describe failed (%s: %s); using ExecuteJob", exc.code().name, exc.details()
            )
        return None
    if resp.version < PROTOCOL_VERSION:
        return None
    return resp


class BatchCaller:
    """Jobs of one plugin instance over one ExecuteBatch stream (opened at the first call, and
    again after it ended)."""

    def __init__(self, channel: grpc.aio.Channel, plugin: str, max_in_flight: int = 0) -> None:
        self.plugin = plugin
        self._open: grpc.aio.StreamStreamMultiCallable[exec_pb2.BatchRequest, bytes] = channel.stream_stream(
            EXECUTE_BATCH_METHOD,
            request_serializer=exec_pb2.BatchRequest.SerializeToString,
            response_deserializer=None,  # raw bytes: a reply that does not decode is our error to report
        )
        self._limit = asyncio.Semaphore(max_in_flight) if max_in_flight > 0 else None
        self._call: grpc.aio.StreamStreamCall[exec_pb2.BatchRequest, bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._outbox: list[exec_pb2.BatchJob] = []
        self._cancels: list[int] = []
        self._wake = asyncio.Event()
        self._next_id = 0
        self.messages = 0  # BatchRequests written (for tests and the bench)
        self.jobs = 0  # jobs written

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def execute(self, request: domain_pb2.ExecuteJobRequest, deadline: float | None) -> bytes:
        """Run one job; return its encoded ExecuteJobResponse. Raises BatchDeadline, BatchStreamError,
        or CancelledError (the plugin is told to cancel the job)."""
        if self._limit is None:
            return await self._execute(request, deadline)
        async with self._limit:
            return await self._execute(request, deadline)

    async def _execute(self, request: domain_pb2.ExecuteJobRequest, deadline: float | None) -> bytes:
        self._ensure_stream()
        self._next_id += 1
        call_id = self._next_id
        job = exec_pb2.BatchJob(
            job_id=request.job_id, handler_name=request.handler_name, payload=request.payload, call_id=call_id
        )
        if request.HasField("timeout_secs"):
            job.timeout_secs = request.timeout_secs
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        self._pending[call_id] = fut
        self._outbox.append(job)
        self._wake.set()
        # a plain timer, not asyncio.timeout: a third of the cost per job, and a result that came
        # in before the deadline is never lost to it
        timer = loop.call_later(deadline, self._expire, call_id, job) if deadline is not None else None
        try:
            return await fut
        except asyncio.CancelledError:
            self._give_up(call_id, job)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, call_id: int, job: exec_pb2.BatchJob) -> None:
        """The call's deadline passed: give it up (the plugin is told to cancel) and fail it."""
        fut = self._pending.get(call_id)
        if fut is None or fut.done():
            return
        self._give_up(call_id, job)
        fut.set_exception(BatchDeadline())

    def _give_up(self, call_id: int, job: exec_pb2.BatchJob) -> None:
        if self._pending.pop(call_id, None) is None:
            return  # already answered or failed
        try:
            self._outbox.remove(job)  # not written yet: the plugin never hears of it
        except ValueError:
            self._cancels.append(call_id)
            self._wake.set()

    def _ensure_stream(self) -> None:
        if self._call is not None:
            return
        call = self._call = self._open()
        self._tasks = [
            asyncio.create_task(self._write(call), name=f"{self.plugin}-batch-write"),
            asyncio.create_task(self._read(call), name=f"{self.plugin}-batch-read"),
        ]

    async def _write(self, call: grpc.aio.StreamStreamCall[exec_pb2.BatchRequest, bytes]) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if not self._outbox and not self._cancels:
                    continue
                req = exec_pb2.BatchRequest(jobs=self._outbox, cancel_call_ids=self._cancels)
                self.messages += 1
                self.jobs += len(self._outbox)
                self._outbox, self._cancels = [], []
                await call.write(req)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the stream broke under the write: the reader sees it end too
            self._end(call, BatchStreamError(_code(exc), _details(exc)))

    async def _read(self, call: grpc.aio.StreamStreamCall[exec_pb2.BatchRequest, bytes]) -> None:
        error = BatchStreamError("UNAVAILABLE", "the plugin ended the batch stream")
        try:
            while True:
                raw = await call.read()
                if raw is grpc.aio.EOF:
                    break
                msg = exec_pb2.BatchResponse()
                try:
                    msg.ParseFromString(cast(bytes, raw))  # no deserializer: bytes (the stubs say object)
                except DecodeError as exc:
                    error = BatchStreamError(
                        "PROTOCOL", f"sent a BatchResponse that cannot be decoded: {exc}"
                    )
                    break
                pending = self._pending
                for r in msg.results:
                    fut = pending.pop(r.call_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(r.response)
        except grpc.aio.AioRpcError as exc:
            error = BatchStreamError(exc.code().name, exc.details() or "")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                self._end(call, BatchStreamError("CANCELLED", "the batch stream was closed"))
                raise
            error = BatchStreamError("CANCELLED", "the plugin's connection was closed")
        self._end(call, error)

    def _end(
        self, call: grpc.aio.StreamStreamCall[exec_pb2.BatchRequest, bytes], error: BatchStreamError
    ) -> None:
        """The stream is over: every call still waiting on it fails with `error`."""
        if self._call is not call:
            return
        self._call = None
        call.cancel()
        pending, self._pending = self._pending, {}
        self._outbox, self._cancels = [], []
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(error)
                fut.add_done_callback(_retrieved)  # its caller may be cancelled before it looks
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()

    async def close(self) -> None:
        call, tasks = self._call, self._tasks
        if call is not None:
            self._end(call, BatchStreamError("CANCELLED", "the plugin instance was closed"))
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


def _retrieved(fut: asyncio.Future[bytes]) -> None:
    if not fut.cancelled():
        fut.exception()


def _code(exc: BaseException) -> str:
    return exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "UNAVAILABLE"


def _details(exc: BaseException) -> str:
    return (exc.details() or "") if isinstance(exc, grpc.aio.AioRpcError) else f"{type(exc).__name__}: {exc}"
