"""Async client for a Pulse server, used by the TUI and the CLI.

Three kinds of endpoint are understood, detected by :meth:`PulseClient.probe`:

* ``operator`` — a Pulse server with ``pulse.operator.v1.OperatorService`` (everything works);
* ``compat`` — a server that only speaks ``protocol.QueueService`` (QNTX and friends): jobs are
  listed by polling, cancel is ``UpdateJob(status=cancelled)`` and retry re-enqueues a copy with
  ``parent_job_id`` and ``retry_count + 1``;
* ``plugin`` — a bare plugin endpoint (``protocol.DomainPluginService``): metadata, health and
  config schema only.

Every method returns protobuf messages of the operator API (compat results are converted), and every
gRPC failure surfaces as :class:`ClientError` with a message that says what to do. The client does
not reconnect on its own: gRPC channels reconnect transparently, and the caller (the TUI) decides
when to try again and how to show it.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message

from pulse_tui.protocol import (
    domain_pb2,
    domain_pb2_grpc,
    operator_pb2,
    operator_pb2_grpc,
    queue_pb2,
    queue_pb2_grpc,
)
from pulse_tui.vocab import (
    CAPABILITIES,
    FINISHED,
    REASON_METADATA_KEY,
    Capability,
    EndpointMode,
    JobStatus,
    Reason,
)
from pulse_tui.vocab import STATUSES as STATUSES  # re-exported: the console imports it from here

OPERATOR = EndpointMode.OPERATOR
COMPAT = EndpointMode.COMPAT
PLUGIN = EndpointMode.PLUGIN

DEFAULT_TIMEOUT = 10.0
COMPAT_LIST_LIMIT = 1000  # per status; QueueService has no pagination


class ClientError(Exception):
    """A failed call: ``code`` is the gRPC status name, ``message`` says what happened and what to do,
    ``reason`` is the machine-readable why (:class:`Reason`): what a Pulse server sent as the
    ``pulse-reason`` trailing metadata, or what the client itself knows (``UNREACHABLE``,
    ``UNSUPPORTED``), else ``UNKNOWN``. A reason the client does not know stays the plain string."""

    def __init__(
        self, code: str, message: str, detail: str = "", reason: Reason | str = Reason.UNKNOWN
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
        self.reason: Reason | str = _as_reason(reason)

    def __str__(self) -> str:
        return self.message

    @property
    def unavailable(self) -> bool:
        return self.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")


def _as_reason(value: Reason | str) -> Reason | str:
    try:
        return Reason(value or Reason.UNKNOWN)
    except ValueError:
        return value


def _reason_of(exc: grpc.aio.AioRpcError) -> Reason | str:
    """The ``pulse-reason`` a Pulse server sent with the failure; else what the client can tell
    from the status alone: an UNAVAILABLE without one never came from a server (it is the
    transport's), an UNIMPLEMENTED without one is an endpoint without that RPC."""
    for key, value in exc.trailing_metadata() or ():
        if key == REASON_METADATA_KEY:
            return _as_reason(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return Reason.UNREACHABLE
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return Reason.UNSUPPORTED
    return Reason.UNKNOWN


def _human(
    code: grpc.StatusCode, detail: str, address: str, reason: Reason | str, what: str = "server"
) -> str:
    """The message for a failed call to the ``what`` ("server" or "plugin") at ``address``."""
    name = code.name
    hint = "is `pulse-tui serve` running?" if what == "server" else "is the plugin process still running?"
    if name == "UNAVAILABLE":
        if reason == Reason.UNREACHABLE or not detail:
            return f"{what} at {address} is not reachable; {hint}"
        return f"{what} at {address} is unavailable: {detail}"  # the server said why (e.g. db locked)
    if name == "UNAUTHENTICATED":
        return "token rejected; check --token-file / PULSE_TOKEN"
    if name == "PERMISSION_DENIED" and reason not in (Reason.READ_ONLY, Reason.UNKNOWN) and detail:
        return detail  # not a read-only token: e.g. a plugin's token, and the server says what it may do
    if name == "PERMISSION_DENIED":
        return "this token is read-only; use the admin token to change anything"
    if name == "DEADLINE_EXCEEDED":
        return f"{what} at {address} did not answer in time; it may be overloaded — try again"
    if name == "UNIMPLEMENTED":
        return f"the {what} at {address} does not offer this ({detail or 'unimplemented'})"
    return detail or name.lower().replace("_", " ")


@dataclass(slots=True)
class PluginEndpointInfo:
    """What a bare plugin endpoint tells about itself."""

    name: str
    version: str
    description: str = ""
    author: str = ""
    license: str = ""
    healthy: bool = False
    health_message: str = ""
    health_details: dict[str, str] = field(default_factory=dict)
    config_schema: list[operator_pb2.ConfigField] = field(default_factory=list)
    # "" when ConfigSchema answered (an empty list then means "declares no configuration"); else why
    # the schema is unknown, e.g. the plugin does not implement the RPC
    config_schema_error: str = ""


def job_filter(
    statuses: Iterable[str] = (),
    handler: str = "",
    text: str = "",
    *,
    handler_glob: str = "",
    payload: str = "",
    error: str = "",
    parent_job_id: str = "",
) -> operator_pb2.JobFilter:
    return operator_pb2.JobFilter(
        statuses=list(statuses),
        handler=handler,
        text=text,
        handler_glob=handler_glob,
        payload=payload,
        error=error,
        parent_job_id=parent_job_id,
    )


def filter_matches(flt: operator_pb2.JobFilter | None, job: operator_pb2.Job) -> bool:
    """Client-side twin of the server's JobFilter semantics. A list Job carries no payload: a
    ``payload`` criterion is not checked here (a payload never changes, so a row that matched still
    does; a job new to the list needs the server to say — see JobTable.upsert)."""
    if flt is None:
        return True
    if flt.statuses and job.status not in flt.statuses:
        return False
    if flt.handler and job.handler != flt.handler:
        return False
    if flt.parent_job_id and job.parent_job_id != flt.parent_job_id:
        return False
    if flt.handler_glob and not fnmatch.fnmatchcase(job.handler, flt.handler_glob):
        return False
    if flt.error and flt.error.lower() not in job.error.lower():
        return False
    if flt.text:
        t = flt.text.lower()
        if t not in job.id.lower() and t not in job.handler.lower() and t not in job.error.lower():
            return False
    return True


def _from_queue_job(q: queue_pb2.Job) -> operator_pb2.Job:
    return operator_pb2.Job(
        id=q.id,
        seq=int(q.created_at),
        handler=q.handler_name,
        status=q.status,
        progress_current=q.progress.current,
        progress_total=q.progress.total,
        retry_count=q.retry_count,
        error=q.error,
        created_at=float(q.created_at),
        started_at=float(q.started_at),
        completed_at=float(q.completed_at),
        updated_at=float(max(q.created_at, q.started_at, q.completed_at)),
        source=q.source,
        parent_job_id=q.parent_job_id,
        cost_estimate=q.cost_estimate,
        cost_actual=q.cost_actual,
        attempts=1 if q.started_at else 0,
        pause_reason=q.pulse_state.pause_reason,
    )


class PulseClient:
    """Async gRPC client. ``address`` is ``host:port``; ``tls`` is channel credentials or True."""

    def __init__(
        self,
        address: str,
        token: str = "",
        *,
        tls: grpc.ChannelCredentials | bool | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.address = address
        self.token = token
        self.timeout = timeout
        self.mode: EndpointMode | None = None
        self.info: operator_pb2.ServerInfo | None = None
        self.plugin_info: PluginEndpointInfo | None = None
        self._tls = tls
        self._channel: grpc.aio.Channel | None = None
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.retried_as: dict[str, str] = {}  # compat retries: old job id -> the new copy's id

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> None:
        """Create the channel lazily: grpc.aio binds it to the running event loop."""
        if self._channel is not None:
            return
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            # the console paces reconnects itself (capped, jittered): the channel's own backoff
            # (up to 120 s by default) must not keep it failing fast after the server is back
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ]
        if self._tls:
            tls = self._tls
            creds = tls if isinstance(tls, grpc.ChannelCredentials) else grpc.ssl_channel_credentials()
            self._channel = grpc.aio.secure_channel(self.address, creds, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self.address, options=options)
        self._op_stub = operator_pb2_grpc.OperatorServiceStub(self._channel)
        self._queue_stub = queue_pb2_grpc.QueueServiceStub(self._channel)
        self._plugin_stub = domain_pb2_grpc.DomainPluginServiceStub(self._channel)

    @property
    def _op(self) -> operator_pb2_grpc.OperatorServiceStub:
        self._connect()
        return self._op_stub

    @property
    def _queue(self) -> queue_pb2_grpc.QueueServiceStub:
        self._connect()
        return self._queue_stub

    @property
    def _plugin(self) -> domain_pb2_grpc.DomainPluginServiceStub:
        self._connect()
        return self._plugin_stub

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES.get(self.mode, frozenset()) if self.mode is not None else frozenset()

    def can(self, capability: Capability) -> bool:
        """Whether the endpoint offers `capability`. A name that is no Capability raises ValueError:
        a typo must not read as "not available"."""
        return Capability(capability) in self.capabilities

    @property
    def read_only(self) -> bool:
        return bool(self.info is not None and self.info.read_only)

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def __aenter__(self) -> PulseClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def kind(self) -> str:
        """What the endpoint is, for messages: "plugin" for a bare plugin endpoint, else "server"."""
        return "plugin" if self.mode == PLUGIN else "server"

    def _error(self, exc: grpc.aio.AioRpcError) -> ClientError:
        code = exc.code()
        detail = exc.details() or ""
        reason = _reason_of(exc)
        return ClientError(code.name, _human(code, detail, self.address, reason, self.kind), detail, reason)

    async def _call(
        self, method: Callable[..., Awaitable[Any]], request: Message, *, timeout: float | None = None
    ) -> Any:  # the reply: its type is the stub method's, which the generated code does not declare
        try:
            return await method(request, metadata=self._metadata, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    def _need(self, capability: Capability) -> None:
        if not self.can(capability):
            mode = self.mode or "unknown"
            raise ClientError(
                "UNIMPLEMENTED",
                f"{capability} is not available on {self.address} ({mode} endpoint)",
                reason=Reason.UNSUPPORTED,
            )

    async def probe(self, wait: float = 0.0) -> str:
        """Find out what the endpoint speaks; sets and returns :attr:`mode`.

        With ``wait`` (seconds) the first call waits that long for the channel to (re)connect
        instead of failing at once (a reconnect: the server may be coming back right now).
        Raises ClientError for an unreachable server or a rejected token.
        """
        try:
            self.info = await self._op.GetServerInfo(
                operator_pb2.ServerInfoRequest(),
                metadata=self._metadata,
                timeout=wait or self.timeout,
                wait_for_ready=bool(wait),
            )
            self.mode = OPERATOR
            return self.mode
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise self._error(exc) from None
        try:
            resp = await self._queue.ListJobs(
                queue_pb2.ListJobsRequest(auth_token=self.token, limit=1),
                metadata=self._metadata,
                timeout=self.timeout,
            )
            if not resp.success and "auth" in resp.error.lower():
                raise ClientError(
                    "UNAUTHENTICATED",
                    _human(grpc.StatusCode.UNAUTHENTICATED, "", self.address, Reason.UNAUTHENTICATED),
                    reason=Reason.UNAUTHENTICATED,
                )
            self.info = None
            self.mode = COMPAT
            return self.mode
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise self._error(exc) from None
        try:
            md = await self._plugin.Metadata(
                domain_pb2.Empty(), metadata=self._metadata, timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise ClientError(
                    "UNIMPLEMENTED",
                    f"{self.address} speaks neither the Pulse operator API, QueueService nor the plugin "
                    "protocol; check the address",
                    reason=Reason.UNSUPPORTED,
                ) from None
            raise self._error(exc) from None
        self.plugin_info = PluginEndpointInfo(
            name=md.name,
            version=md.version,
            description=md.description,
            author=md.author,
            license=md.license,
        )
        self.mode = PLUGIN
        return self.mode

    # ------------------------------------------------------------------ server

    async def server_info(self) -> operator_pb2.ServerInfo:
        self._need(Capability.PLUGINS)
        self.info = await self._call(self._op.GetServerInfo, operator_pb2.ServerInfoRequest())
        return self.info

    # ------------------------------------------------------------------ jobs

    async def list_jobs(
        self,
        flt: operator_pb2.JobFilter | None = None,
        *,
        limit: int = 100,
        after_seq: int | None = None,
        oldest_first: bool = False,
        offset: int = 0,
        sort_by: str = "",
    ) -> operator_pb2.ListJobsResponse:
        self._need(Capability.JOBS)
        if self.mode == COMPAT:
            return await self._compat_list(flt, limit=limit, after_seq=after_seq, offset=offset)
        req = operator_pb2.ListJobsRequest(
            filter=flt, limit=limit, oldest_first=oldest_first, offset=offset, sort_by=sort_by
        )
        if after_seq is not None:
            req.after_seq = after_seq
        return await self._call(self._op.ListJobs, req)

    async def count_jobs(
        self, flt: operator_pb2.JobFilter | None = None, *, cap: int = 10000
    ) -> operator_pb2.CountJobsResponse:
        self._need(Capability.COUNTS)
        if self.mode == COMPAT:
            jobs = await self._compat_all(flt, ignore_status=True)
            by: dict[str, int] = {}
            for j in jobs:
                by[j.status] = by.get(j.status, 0) + 1
            capped = any(n >= COMPAT_LIST_LIMIT for n in by.values())
            return operator_pb2.CountJobsResponse(
                by_status=by, capped=capped, cap=cap, total=sum(by.values())
            )
        return await self._call(self._op.CountJobs, operator_pb2.CountJobsRequest(filter=flt, cap=cap))

    async def get_job(self, job_id: str) -> operator_pb2.JobDetail:
        self._need(Capability.DETAIL)
        if self.mode == COMPAT:
            q = await self._compat_get(job_id)
            return operator_pb2.JobDetail(job=_from_queue_job(q), payload=q.payload)
        return await self._call(self._op.GetJob, operator_pb2.GetJobRequest(id=job_id))

    async def watch_jobs(
        self,
        flt: operator_pb2.JobFilter | None = None,
        *,
        view: Iterable[str] | None = None,
        from_seq: int = 0,
    ) -> AsyncGenerator[operator_pb2.JobEvent, None]:
        """Server-streaming job events ("upsert" per job, "resync", "heartbeat"). Ends with
        ClientError when the stream breaks. The server is asked for batched events (one message
        per flush); they are unpacked here, so callers see one "upsert" per job either way.

        With `view` (the ids the caller shows) the stream is a view: "upsert" only for those
        jobs, and an "others" event (`others`: counts by new status; `others_from_seq`: how many of
        them have a seq ≥ `from_seq`) when other jobs the filter wants changed, so the caller
        refetches what it shows, and a "counts" event (`counts`: every job by status, taken after
        those changes). The first heartbeat's `view_token`
        lets `set_watch_view` change the ids; a server without views sends no token and every
        change, as a plain watch."""
        self._need(Capability.WATCH)
        req = operator_pb2.WatchJobsRequest(filter=flt, batched=True)
        if view is not None:
            req.view = True
            req.view_ids.extend(view)
            req.view_from_seq = from_seq
        call = self._op.WatchJobs(req, metadata=self._metadata)
        try:
            async for event in call:
                if event.kind == "batch":
                    for job in event.jobs:
                        yield operator_pb2.JobEvent(kind="upsert", job=job, server_time=event.server_time)
                    if event.others:
                        yield operator_pb2.JobEvent(
                            kind="others",
                            others=event.others,
                            others_from_seq=event.others_from_seq,
                            server_time=event.server_time,
                        )
                    if event.HasField("counts"):
                        yield operator_pb2.JobEvent(
                            kind="counts", counts=event.counts, server_time=event.server_time
                        )
                else:
                    yield event
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()
        raise ClientError(
            "UNAVAILABLE",
            f"the job event stream from {self.address} ended; reconnecting",
            reason=Reason.UNREACHABLE,
        )

    async def set_watch_view(self, view_token: str, ids: Iterable[str], from_seq: int = 0) -> None:
        """Replace the ids a view stream (`watch_jobs(view=...)`) sends in full."""
        await self._call(
            self._op.SetWatchView,
            operator_pb2.SetWatchViewRequest(view_token=view_token, ids=ids, from_seq=from_seq),
        )

    async def enqueue(
        self,
        handler: str,
        payload: bytes | str | dict[str, Any] | None = None,
        *,
        max_attempts: int = 0,
        timeout_secs: int = 0,
        priority: int = 0,
        source: str = "pulse-tui",
        delay_secs: float = 0.0,
        parent_job_id: str = "",
        cost_estimate: float = 0.0,
        job_id: str = "",
    ) -> operator_pb2.Job:
        """Enqueue one job. With `job_id` the enqueue is idempotent: repeating it with the same
        handler and payload returns the job already stored under that id."""
        self._need(Capability.ENQUEUE)
        if payload is None:
            raw = b"{}"
        elif isinstance(payload, dict):
            raw = json.dumps(payload).encode()
        elif isinstance(payload, str):
            raw = payload.encode()
        else:
            raw = payload
        if self.mode == COMPAT:
            qjob = queue_pb2.Job(
                id=job_id,
                handler_name=handler,
                payload=raw,
                source=source,
                status=JobStatus.QUEUED,
                parent_job_id=parent_job_id,
                cost_estimate=cost_estimate,
            )
            job_id = await self._compat_enqueue(qjob)
            return operator_pb2.Job(id=job_id, handler=handler, status=JobStatus.QUEUED, source=source)
        req = operator_pb2.EnqueueRequest(
            handler=handler,
            payload=raw,
            max_attempts=max_attempts,
            timeout_secs=timeout_secs,
            priority=priority,
            source=source,
            delay_secs=delay_secs,
            parent_job_id=parent_job_id,
            cost_estimate=cost_estimate,
            id=job_id,
        )
        resp = await self._call(self._op.Enqueue, req)
        return resp.job

    async def enqueue_many(self, jobs: Sequence[operator_pb2.EnqueueRequest]) -> list[str]:
        """Enqueue many jobs in one call: all are stored or none is; the ids come in order."""
        self._need(Capability.ENQUEUE_MANY)
        resp = await self._call(
            self._op.EnqueueMany, operator_pb2.EnqueueManyRequest(jobs=jobs), timeout=max(self.timeout, 60.0)
        )
        return list(resp.ids)

    @staticmethod
    def selector(
        ids: Sequence[str] = (),
        flt: operator_pb2.JobFilter | None = None,
        *,
        limit: int = 0,
        dry_run: bool = False,
    ) -> operator_pb2.JobSelector:
        return operator_pb2.JobSelector(ids=list(ids), filter=flt, limit=limit, dry_run=dry_run)

    async def _bulk(
        self,
        capability: Capability,
        method: Callable[..., Awaitable[Any]],
        compat_one: Callable[[str, bool], Awaitable[None]] | None,
        ids: Sequence[str],
        flt: operator_pb2.JobFilter | None,
        limit: int,
        dry_run: bool,
        *,
        compat_filter: bool = True,
    ) -> operator_pb2.BulkResponse:
        """One bulk action by ids or by filter. On a QueueService-only server it runs job by job
        (``compat_one``), expanding a filter into ids first (up to ``limit`` or 1,000) where
        ``compat_filter`` says the action may take one."""
        self._need(capability)
        if self.mode == COMPAT and compat_one is not None:
            if compat_filter and not ids and flt is not None:
                ids = [j.id for j in await self._compat_all(flt)][: limit or 1000]
            return await self._compat_bulk(ids, compat_one, dry_run)
        reply: operator_pb2.BulkResponse = await self._call(
            method, self.selector(ids, flt, limit=limit, dry_run=dry_run)
        )
        return reply

    async def cancel_jobs(
        self,
        ids: Sequence[str] = (),
        flt: operator_pb2.JobFilter | None = None,
        *,
        limit: int = 0,
        dry_run: bool = False,
    ) -> operator_pb2.BulkResponse:
        return await self._bulk(
            Capability.CANCEL,
            self._op.CancelJobs,
            self._compat_cancel_one,
            ids,
            flt,
            limit,
            dry_run,
            compat_filter=False,
        )

    async def retry_jobs(
        self,
        ids: Sequence[str] = (),
        flt: operator_pb2.JobFilter | None = None,
        *,
        limit: int = 0,
        dry_run: bool = False,
    ) -> operator_pb2.BulkResponse:
        return await self._bulk(
            Capability.RETRY, self._op.RetryJobs, self._compat_retry_one, ids, flt, limit, dry_run
        )

    async def delete_jobs(
        self,
        ids: Sequence[str] = (),
        flt: operator_pb2.JobFilter | None = None,
        *,
        limit: int = 0,
        dry_run: bool = False,
    ) -> operator_pb2.BulkResponse:
        """Delete finished jobs (by ids, or those matching ``flt`` up to ``limit``)."""
        return await self._bulk(Capability.DELETE, self._op.DeleteJobs, None, ids, flt, limit, dry_run)

    async def pause_jobs(
        self,
        ids: Sequence[str] = (),
        flt: operator_pb2.JobFilter | None = None,
        *,
        limit: int = 0,
        dry_run: bool = False,
    ) -> operator_pb2.BulkResponse:
        """Pause queued or delayed jobs (by ids, or those matching ``flt`` up to ``limit``)."""
        return await self._bulk(
            Capability.PAUSE, self._op.PauseJobs, self._compat_pause_one, ids, flt, limit, dry_run
        )

    async def resume_jobs(
        self,
        ids: Sequence[str] = (),
        flt: operator_pb2.JobFilter | None = None,
        *,
        limit: int = 0,
        dry_run: bool = False,
    ) -> operator_pb2.BulkResponse:
        """Resume paused jobs: back to the queue at their old place."""
        return await self._bulk(
            Capability.PAUSE, self._op.ResumeJobs, self._compat_resume_one, ids, flt, limit, dry_run
        )

    async def pause_handler(self, name: str) -> operator_pb2.Handler:
        self._need(Capability.PAUSE_HANDLERS)
        return await self._call(self._op.PauseHandler, operator_pb2.HandlerNameRequest(name=name))

    async def resume_handler(self, name: str) -> operator_pb2.Handler:
        self._need(Capability.PAUSE_HANDLERS)
        return await self._call(self._op.ResumeHandler, operator_pb2.HandlerNameRequest(name=name))

    async def pause(self, job_id: str) -> operator_pb2.BulkResponse:
        resp = await self.pause_jobs([job_id])
        self._raise_single(resp)
        return resp

    async def resume(self, job_id: str) -> operator_pb2.BulkResponse:
        resp = await self.resume_jobs([job_id])
        self._raise_single(resp)
        return resp

    async def cancel(self, job_id: str) -> operator_pb2.BulkResponse:
        resp = await self.cancel_jobs([job_id])
        self._raise_single(resp)
        return resp

    async def retry(self, job_id: str) -> operator_pb2.BulkResponse:
        resp = await self.retry_jobs([job_id])
        self._raise_single(resp)
        return resp

    @staticmethod
    def _raise_single(resp: operator_pb2.BulkResponse) -> None:
        if resp.failures:
            f = resp.failures[0]
            raise ClientError(
                "FAILED_PRECONDITION", f.error or f"job {f.id} was not changed", reason=f.reason
            )

    # ------------------------------------------------------------------ plugins & handlers

    async def list_plugins(self) -> list[operator_pb2.Plugin]:
        self._need(Capability.PLUGINS)
        resp = await self._call(self._op.ListPlugins, operator_pb2.ListPluginsRequest())
        return list(resp.plugins)

    async def get_plugin(self, name: str, *, tail_lines: int = 50) -> operator_pb2.Plugin:
        self._need(Capability.PLUGINS)
        return await self._call(
            self._op.GetPlugin, operator_pb2.GetPluginRequest(name=name, tail_lines=tail_lines)
        )

    async def reload_plugin(self, name: str) -> operator_pb2.ReloadPluginResponse:
        self._need(Capability.PLUGINS)
        return await self._call(
            self._op.ReloadPlugin, operator_pb2.PluginNameRequest(name=name), timeout=120.0
        )

    async def set_plugin_enabled(self, name: str, enabled: bool) -> operator_pb2.Plugin:
        self._need(Capability.PLUGINS)
        req = operator_pb2.SetPluginEnabledRequest(name=name, enabled=enabled)
        return await self._call(self._op.SetPluginEnabled, req, timeout=60.0)

    async def get_stats(
        self, handler: str = "", *, window_secs: int = 3600, step_secs: int = 0
    ) -> operator_pb2.GetStatsResponse:
        """Throughput and latency series (GetStats) over the last `window_secs`."""
        self._need(Capability.STATS)
        req = operator_pb2.GetStatsRequest(handler=handler, window_secs=window_secs, step_secs=step_secs)
        return await self._call(self._op.GetStats, req)

    async def list_handlers(self, *, conflicts_only: bool = False) -> list[operator_pb2.Handler]:
        self._need(Capability.HANDLERS)
        req = operator_pb2.ListHandlersRequest(conflicts_only=conflicts_only)
        resp = await self._call(self._op.ListHandlers, req)
        return list(resp.handlers)

    # ------------------------------------------------------------------ schedules

    async def list_schedules(
        self, states: Iterable[str] = (), owner: str = "", handler: str = "", limit: int = 0
    ) -> list[operator_pb2.Schedule]:
        self._need(Capability.SCHEDULES)
        req = operator_pb2.ListSchedulesRequest(
            states=list(states), owner=owner, handler=handler, limit=limit
        )
        return list((await self._call(self._op.ListSchedules, req)).schedules)

    async def get_schedule(
        self, schedule_id: str, *, executions: int = 20, before_seq: int = 0
    ) -> operator_pb2.ScheduleDetail:
        self._need(Capability.SCHEDULES)
        req = operator_pb2.GetScheduleRequest(
            id=schedule_id, executions_limit=executions, executions_before_seq=before_seq
        )
        return await self._call(self._op.GetSchedule, req)

    async def create_schedule(
        self, handler: str, payload: bytes = b"{}", **fields: Any
    ) -> operator_pb2.Schedule:
        """fields: interval_secs | cron (+ timezone), overlap, jitter_secs, paused, run_at_once, ..."""
        self._need(Capability.SCHEDULES)
        req = operator_pb2.CreateScheduleRequest(handler=handler, payload=payload, **fields)
        return await self._call(self._op.CreateSchedule, req)

    async def update_schedule(self, schedule_id: str, **fields: Any) -> operator_pb2.Schedule:
        self._need(Capability.SCHEDULES)
        req = operator_pb2.UpdateScheduleRequest(id=schedule_id, **fields)
        return await self._call(self._op.UpdateSchedule, req)

    async def schedule_action(self, action: str, schedule_id: str) -> Any:
        """action: pause | resume | delete | run (run returns RunScheduleResponse)."""
        self._need(Capability.SCHEDULES)
        method = {
            "pause": self._op.PauseSchedule,
            "resume": self._op.ResumeSchedule,
            "delete": self._op.DeleteSchedule,
            "run": self._op.RunSchedule,
        }[action]
        return await self._call(method, operator_pb2.ScheduleIdRequest(id=schedule_id))

    async def watch_schedules(self) -> AsyncGenerator[operator_pb2.ScheduleEvent, None]:
        self._need(Capability.SCHEDULES)
        call = self._op.WatchSchedules(operator_pb2.WatchSchedulesRequest(), metadata=self._metadata)
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()
        raise ClientError(
            "UNAVAILABLE",
            f"the schedule event stream from {self.address} ended; reconnecting",
            reason=Reason.UNREACHABLE,
        )

    # ------------------------------------------------------------------ scripts (handler editor)

    async def list_scripts(self) -> list[operator_pb2.Script]:
        self._need(Capability.SCRIPTS)
        resp = await self._call(self._op.ListScripts, operator_pb2.ListScriptsRequest())
        return list(resp.scripts)

    async def get_script(self, name: str) -> operator_pb2.Script:
        self._need(Capability.SCRIPTS)
        return await self._call(self._op.GetScript, operator_pb2.GetScriptRequest(name=name))

    async def save_script(
        self, name: str, code: str, base_version: str = ""
    ) -> operator_pb2.SaveScriptResponse:
        self._need(Capability.SCRIPTS)
        req = operator_pb2.SaveScriptRequest(name=name, code=code, base_version=base_version)
        return await self._call(self._op.SaveScript, req, timeout=120.0)

    async def delete_script(self, name: str, base_version: str = "") -> bool:
        self._need(Capability.SCRIPTS)
        req = operator_pb2.DeleteScriptRequest(name=name, base_version=base_version)
        resp = await self._call(self._op.DeleteScript, req)
        return resp.deleted

    # ------------------------------------------------------------------ bare plugin endpoint

    async def plugin_endpoint(self) -> PluginEndpointInfo:
        """Metadata, health and config schema of a bare plugin endpoint."""
        self._need(Capability.PLUGIN_ENDPOINT)
        md = await self._call(self._plugin.Metadata, domain_pb2.Empty())
        info = PluginEndpointInfo(
            name=md.name, version=md.version, description=md.description, author=md.author, license=md.license
        )
        try:
            h = await self._call(self._plugin.Health, domain_pb2.Empty())
            info.healthy, info.health_message, info.health_details = h.healthy, h.message, dict(h.details)
        except ClientError as exc:
            info.health_message = exc.message
        try:
            schema = await self._call(self._plugin.ConfigSchema, domain_pb2.Empty())
            info.config_schema = [
                operator_pb2.ConfigField(
                    name=k,
                    type=v.type,
                    description=v.description,
                    default_value=v.default_value,
                    required=v.required,
                    min_value=v.min_value,
                    max_value=v.max_value,
                    pattern=v.pattern,
                    element_type=v.element_type,
                )
                for k, v in sorted(schema.fields.items())
            ]
        except ClientError as exc:  # an optional RPC: say which way it is missing
            info.config_schema_error = (
                "this plugin does not implement ConfigSchema, so its configuration keys are unknown"
                if exc.code == "UNIMPLEMENTED"
                else f"its configuration schema could not be read: {exc.message}"
            )
        self.plugin_info = info
        return info

    # ------------------------------------------------------------------ compat (QueueService only)

    def _compat_check(self, success: bool, error: str) -> None:
        if not success:
            low = error.lower()
            code = (
                "NOT_FOUND"
                if "not found" in low
                else "UNAUTHENTICATED"
                if "auth" in low
                else "FAILED_PRECONDITION"
            )
            # QueueService says why only in words: NOT_FOUND and UNAUTHENTICATED are reasons too
            reason = code if code != "FAILED_PRECONDITION" else Reason.UNKNOWN
            raise ClientError(code, error or "the queue refused the request", reason=reason)

    async def _compat_all(
        self, flt: operator_pb2.JobFilter | None, *, ignore_status: bool = False
    ) -> list[operator_pb2.Job]:
        statuses = list(flt.statuses) if flt is not None and flt.statuses and not ignore_status else [""]
        jobs: dict[str, operator_pb2.Job] = {}
        for status in statuses:
            req = queue_pb2.ListJobsRequest(auth_token=self.token, status=status, limit=COMPAT_LIST_LIMIT)
            resp = await self._call(self._queue.ListJobs, req)
            self._compat_check(resp.success, resp.error)
            for q in resp.jobs:
                jobs[q.id] = _from_queue_job(q)
        rest = operator_pb2.JobFilter(handler=flt.handler, text=flt.text) if flt is not None else None
        out = [j for j in jobs.values() if filter_matches(rest, j)]
        out.sort(key=lambda j: (j.created_at, j.id), reverse=True)
        for i, j in enumerate(reversed(out)):
            j.seq = i + 1
        return out

    async def _compat_list(
        self, flt: operator_pb2.JobFilter | None, *, limit: int, after_seq: int | None, offset: int
    ) -> operator_pb2.ListJobsResponse:
        jobs = await self._compat_all(flt)
        if after_seq is not None:
            jobs = [j for j in jobs if j.seq < after_seq]
        else:
            jobs = jobs[offset:]
        page = jobs[:limit]
        return operator_pb2.ListJobsResponse(
            jobs=page, has_more=len(jobs) > limit, next_after_seq=page[-1].seq if page else 0
        )

    async def _compat_get(self, job_id: str) -> queue_pb2.Job:
        resp = await self._call(
            self._queue.GetJob, queue_pb2.GetJobRequest(auth_token=self.token, job_id=job_id)
        )
        self._compat_check(resp.success, resp.error)
        return resp.job

    async def _compat_enqueue(self, job: queue_pb2.Job) -> str:
        resp = await self._call(self._queue.Enqueue, queue_pb2.EnqueueRequest(auth_token=self.token, job=job))
        self._compat_check(resp.success, resp.error)
        return resp.job_id

    async def _compat_cancel_one(self, job_id: str, dry_run: bool) -> None:
        q = await self._compat_get(job_id)
        if q.status in FINISHED:
            raise ClientError(
                "FAILED_PRECONDITION",
                f"job {job_id} is {q.status}; it cannot be cancelled",
                reason=Reason.INVALID_STATE,
            )
        if dry_run:
            return
        q.status = JobStatus.CANCELLED
        resp = await self._call(
            self._queue.UpdateJob, queue_pb2.UpdateJobRequest(auth_token=self.token, job=q)
        )
        self._compat_check(resp.success, resp.error)

    async def _compat_set_status(self, job_id: str, allowed: str, status: str, dry_run: bool) -> None:
        q = await self._compat_get(job_id)
        if q.status != allowed:
            if status == "paused":
                msg = "only queued or delayed jobs can be paused"
                if q.status == "running":
                    msg = "a running job cannot be paused; cancel it instead"
            else:
                msg = "only paused jobs can be resumed"
            raise ClientError("FAILED_PRECONDITION", f"job {job_id} is {q.status}; {msg}")
        if dry_run:
            return
        resp = await self._call(
            self._queue.UpdateJob,
            queue_pb2.UpdateJobRequest(auth_token=self.token, job=queue_pb2.Job(id=job_id, status=status)),
        )
        self._compat_check(resp.success, resp.error)

    async def _compat_pause_one(self, job_id: str, dry_run: bool) -> None:  # UpdateJob status=paused
        await self._compat_set_status(job_id, "queued", "paused", dry_run)

    async def _compat_resume_one(self, job_id: str, dry_run: bool) -> None:
        await self._compat_set_status(job_id, "paused", "queued", dry_run)

    async def _compat_retry_one(self, job_id: str, dry_run: bool) -> None:
        """QueueService has no retry: enqueue a copy (parent_job_id = the old one); its id is
        remembered in ``retried_as``."""
        q = await self._compat_get(job_id)
        if q.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise ClientError(
                "FAILED_PRECONDITION",
                f"job {job_id} is {q.status}; only failed or cancelled jobs retry",
                reason=Reason.INVALID_STATE,
            )
        if dry_run:
            return
        copy = queue_pb2.Job(
            handler_name=q.handler_name,
            payload=q.payload,
            source=q.source,
            status=JobStatus.QUEUED,
            parent_job_id=q.id,
            retry_count=q.retry_count + 1,
            cost_estimate=q.cost_estimate,
        )
        self.retried_as[job_id] = await self._compat_enqueue(copy)

    async def _compat_bulk(
        self, ids: Sequence[str], one: Callable[[str, bool], Awaitable[None]], dry_run: bool
    ) -> operator_pb2.BulkResponse:
        resp = operator_pb2.BulkResponse(matched=len(ids))
        for job_id in ids:
            try:
                await one(job_id, dry_run)
            except ClientError as exc:
                if exc.unavailable:
                    raise
                resp.failures.append(
                    operator_pb2.ActionFailure(id=job_id, error=exc.message, reason=exc.reason)
                )
            else:
                resp.affected_ids.append(job_id)
        return resp


def config_constraints(f: operator_pb2.ConfigField) -> str:
    """`1..100`, `pattern ^[a-z]+$`, `of string`: what a plugin declares beyond type and default."""
    parts = []
    if f.min_value or f.max_value:
        parts.append(f"{f.min_value or '…'}..{f.max_value or '…'}")
    if f.pattern:
        parts.append(f"pattern {f.pattern}")
    if f.element_type:
        parts.append(f"of {f.element_type}")
    return ", ".join(parts)
