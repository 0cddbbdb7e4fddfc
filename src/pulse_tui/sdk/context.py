"""What a handler sees while it runs: `Context`, and the progress sink behind `ctx.progress`.

Progress travels out of band: the plugin calls the server's `QueueService.UpdateJob` with the
`queue_endpoint` and `auth_token` it received at Initialize. A handler may call `ctx.progress`
in a tight loop, so calls only record the latest value; one sender task per plugin wakes when
something changed, sends the newest value of every job that changed, then waits `interval`
before the next round. 10,000 progress calls therefore cost a handful of RPCs. Reporting is
best effort by design: a failed UpdateJob is noted on stderr (once per distinct error) and never
fails the job, because the final progress is also carried by the ExecuteJob response.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

import grpc

from pulse_tui.protocol import domain_pb2, queue_pb2, queue_pb2_grpc

MAX_LOG_ENTRIES = 1000


class JobError(Exception):
    """Raise to fail the job with exactly this message (no traceback is attached)."""


class JobTimeout(JobError):
    """The job ran out of time. The message starts with "timeout:" so hosts can tell it apart."""

    def __init__(self, message: str) -> None:
        super().__init__(message if message.startswith("timeout:") else f"timeout: {message}")


def rfc3339_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProgressSink:
    """Coalesces progress per job and sends it with UpdateJob, at most once per `interval`."""

    def __init__(self, endpoint: str, token: str, *, interval: float = 0.05) -> None:
        self.endpoint = endpoint
        self.token = token
        self.interval = interval
        self.sent = 0  # RPCs made (tests and Health details read it)
        self.failures = 0
        self._pending: dict[str, queue_pb2.Job] = {}
        self._wake = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None
        self._reported_errors: set[str] = set()
        self._enqueue_channel: grpc.aio.Channel | None = None

    async def enqueue(self, job: queue_pb2.Job) -> str:
        """QueueService.Enqueue with this plugin's token; the new job's id, or JobError."""
        if not self.endpoint:
            raise JobError("cannot enqueue: this plugin was given no queue endpoint at Initialize")
        if self._enqueue_channel is None:
            self._enqueue_channel = grpc.aio.insecure_channel(self.endpoint)
        stub = queue_pb2_grpc.QueueServiceStub(self._enqueue_channel)
        try:
            resp: queue_pb2.EnqueueResponse = await stub.Enqueue(
                queue_pb2.EnqueueRequest(auth_token=self.token, job=job), timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            raise JobError(
                f"enqueue {job.handler_name!r} failed: {exc.code().name}: {exc.details()}"
            ) from None
        if not resp.success:
            raise JobError(f"enqueue {job.handler_name!r} refused: {resp.error}")
        return resp.job_id

    def put(self, job_id: str, handler: str, current: int, total: int, cost: float | None) -> None:
        if not self.endpoint:
            return
        job = queue_pb2.Job(
            id=job_id,
            handler_name=handler,
            status="running",
            progress=queue_pb2.Progress(current=current, total=total),
        )
        if cost is not None:
            job.cost_actual = cost
        self._pending[job_id] = job
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._send_loop(), name="progress-sink")

    def forget(self, job_id: str) -> None:
        """Drop an unsent update: the ExecuteJob response carries the final values."""
        self._pending.pop(job_id, None)

    async def close(self) -> None:
        if self._enqueue_channel is not None:
            await self._enqueue_channel.close()
            self._enqueue_channel = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _send_loop(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.endpoint)
        stub = queue_pb2_grpc.QueueServiceStub(self._channel)
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            # one round: every changed job's newest value, sent concurrently (bounded by the round)
            await asyncio.gather(*(self._send(stub, job) for job in batch.values()))
            await asyncio.sleep(self.interval)  # throttle: later calls coalesce meanwhile

    async def _send(self, stub: queue_pb2_grpc.QueueServiceStub, job: queue_pb2.Job) -> None:
        self.sent += 1
        try:
            resp = await stub.UpdateJob(queue_pb2.UpdateJobRequest(auth_token=self.token, job=job), timeout=5)
            error = "" if resp.success else resp.error
        except grpc.aio.AioRpcError as exc:
            error = f"{exc.code().name}: {exc.details()}"
        if error:
            self.failures += 1
            if error not in self._reported_errors and len(self._reported_errors) < 20:
                self._reported_errors.add(error)
                print(f"progress report for job {job.id} failed: {error}", file=sys.stderr, flush=True)


class Context:
    """Per-job handle passed to every handler as `ctx`.

    `ctx.cancelled` turns true when the host cancels the ExecuteJob call (or the job's timeout
    expires) before the handler task itself is cancelled, so code running in a thread can poll it.
    """

    def __init__(
        self,
        *,
        job_id: str,
        handler: str,
        config: dict[str, str],
        timeout: float | None,
        sink: ProgressSink | None,
        endpoints: dict[str, str] | None = None,
    ) -> None:
        self.job_id = job_id
        self.handler = handler
        self.config = config
        # service endpoints from Initialize: queue, schedule, ats_store, file_service, llm, … ("" =
        # the host does not offer it; a Pulse server has no attestation store: ats_store is "")
        self.endpoints = endpoints or {}
        self.timeout = timeout
        self.progress_current = 0
        self.progress_total = 0
        self.cost_actual: float | None = None
        self.logs: list[domain_pb2.JobLogEntry] = []
        self._dropped_logs = 0
        self._sink = sink
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def progress(self, current: int, total: int) -> None:
        self.progress_current, self.progress_total = int(current), int(total)
        if self._sink is not None:
            self._sink.put(
                self.job_id, self.handler, self.progress_current, self.progress_total, self.cost_actual
            )

    def cost(self, value: float) -> None:
        self.cost_actual = float(value)
        if self._sink is not None:
            self._sink.put(
                self.job_id, self.handler, self.progress_current, self.progress_total, self.cost_actual
            )

    async def enqueue(
        self, handler: str, payload: Any = None, *, job_id: str = "", cost_estimate: float = 0.0
    ) -> str:
        """Enqueue a child job of this job and return its id. The host makes this job its parent
        (its `parent_job_id`); if this job fails or is cancelled, its unfinished children are
        cancelled. `job_id` makes the enqueue idempotent (repeating it returns the same job).
        A refusal (unknown handler, a limit on children) raises JobError with the host's reason."""
        if self._sink is None:
            raise JobError("cannot enqueue: this plugin was not initialized by a host")
        raw = (
            payload if isinstance(payload, bytes) else json.dumps({} if payload is None else payload).encode()
        )
        return await self._sink.enqueue(
            queue_pb2.Job(
                id=job_id,
                handler_name=handler,
                payload=raw,
                parent_job_id=self.job_id,
                cost_estimate=cost_estimate,
            )
        )

    def log(self, level: str, message: str, *, stage: str = "", metadata: Any = None) -> None:
        """Append a log line to the job (returned with the ExecuteJob response).

        `metadata` is any JSON-serialisable value (or a ready JSON string). At most
        MAX_LOG_ENTRIES lines are kept per job; the rest are counted and reported once.
        """
        if len(self.logs) >= MAX_LOG_ENTRIES:
            self._dropped_logs += 1
            return
        meta = metadata if isinstance(metadata, str) else ("" if metadata is None else json.dumps(metadata))
        self.logs.append(
            domain_pb2.JobLogEntry(
                timestamp=rfc3339_now(), level=str(level), message=str(message), stage=stage, metadata=meta
            )
        )

    def finish_logs(self) -> list[domain_pb2.JobLogEntry]:
        logs = list(self.logs)
        if self._dropped_logs:
            logs.append(
                domain_pb2.JobLogEntry(
                    timestamp=rfc3339_now(),
                    level="warn",
                    message=f"{self._dropped_logs} more log lines were dropped (limit {MAX_LOG_ENTRIES})",
                )
            )
        return logs
