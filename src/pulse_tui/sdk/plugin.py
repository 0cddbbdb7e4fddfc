"""`Plugin`: declare handlers and config fields, then `plugin.run()` serves DomainPluginService.

Handshake (QNTX plugin protocol): the host starts `COMMAND --port N`; we bind 127.0.0.1:N
(N=0 picks a free port), then print `QNTX_PLUGIN_PORT=<bound port>` on stdout and flush. The
host calls Metadata, then Initialize with the queue endpoint, an auth token and the plugin's
config; we answer with the handler names. Initialize may come again (a host reconnecting), so
everything it sets up is replaced, not accumulated. The endpoints Initialize brings are in
`ctx.endpoints` (`queue`, `schedule`, `ats_store`, …; empty when the host does not offer that
service — a Pulse server offers no attestation store, so `ats_store` is empty there).

Dynamic handlers: `@plugin.on_initialize` registers a function called with the config at every
Initialize; it may return a mapping of extra handler names to handler functions, which replaces
the previous dynamic set (this is how the bundled python plugin announces one handler per saved
script and re-reads the directory on reload).

A handler that waits on anything runs in its own task so that cancellation is observable: when
the host cancels the call (or `timeout_secs` expires) `ctx.cancelled` is set *before* the handler
task is cancelled, which lets code running in a thread notice it. (Its first step runs at once:
a handler that returns without waiting, like an echo, costs no task at all.)

Batched execution: every SDK plugin also serves our BatchExecService (`_BatchServicer`), so a
Pulse host sends it jobs many to a message on one stream; each job still runs on its own, as
above. Handlers need not change. QNTX hosts only know ExecuteJob, which keeps working.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import signal
import sys
import traceback
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc, exec_pb2, exec_pb2_grpc
from pulse_tui.sdk.context import Context, JobError, JobTimeout, ProgressSink, rfc3339_now

HandlerFn = Callable[[Context, Any], Awaitable[Any]]
InitHook = Callable[
    [dict[str, str]], "Mapping[str, HandlerFn] | None | Awaitable[Mapping[str, HandlerFn] | None]"
]


@dataclass(frozen=True, slots=True)
class ConfigField:
    name: str
    type: str = "string"
    description: str = ""
    default: str = ""
    required: bool = False
    min_value: str = ""  # number fields
    max_value: str = ""  # number fields
    pattern: str = ""  # string fields: a regular expression
    element_type: str = ""  # array fields


# InitializeRequest field -> key in ctx.endpoints
ENDPOINT_FIELDS = {
    "queue_endpoint": "queue",
    "schedule_endpoint": "schedule",
    "ats_store_endpoint": "ats_store",
    "file_service_endpoint": "file_service",
    "llm_endpoint": "llm",
    "embedding_endpoint": "embedding",
    "vector_search_endpoint": "vector_search",
    "ground_endpoint": "ground",
    "search_endpoint": "search",
    "fetch_endpoint": "fetch",
}


class Plugin:
    """A plugin definition. Create one per module, decorate handlers, call `run()`."""

    def __init__(
        self,
        name: str,
        *,
        version: str = "0.0.0",
        description: str = "",
        author: str = "",
        license: str = "",
        qntx_version: str = "",
        progress_interval: float = 0.05,
    ) -> None:
        if not name or "/" in name:
            raise ValueError(f"plugin name must be non-empty and contain no '/': {name!r}")
        self.name = name
        self.version = version
        self.description = description
        self.author = author
        self.license = license
        self.qntx_version = qntx_version
        self.progress_interval = progress_interval
        self.handlers: dict[str, HandlerFn] = {}
        self.config_fields: dict[str, ConfigField] = {}
        self._init_hooks: list[InitHook] = []
        self.schedules: dict[str, domain_pb2.ScheduleInfo] = {}

    # ------------------------------------------------------------ declaration

    def handler(self, name: str) -> Callable[[HandlerFn], HandlerFn]:
        """Register `async def f(ctx, payload) -> result` (a plain `def` runs in a thread)."""
        if not name or "/" in name or name != name.strip():
            raise ValueError(f"handler name must be non-empty, without '/' or surrounding spaces: {name!r}")
        if name in self.handlers:
            raise ValueError(f"handler {name!r} is already registered")

        def register(fn: HandlerFn) -> HandlerFn:
            self.handlers[name] = fn
            return fn

        return register

    def schedule(
        self, handler: str, every: int | str, *, enabled: bool = True, description: str = ""
    ) -> None:
        """Declare a recurring run of one of this plugin's handlers (QNTX `ScheduleInfo`): the host
        creates it namespaced `plugin/handler`, first run at once (paused unless `enabled`), and
        withdraws it when the plugin stops declaring it. `every`: seconds or "30s", "5m", "1h"."""
        from pulse_tui.cadence import CadenceError, parse_every

        try:
            seconds = (
                every if isinstance(every, int) and not isinstance(every, bool) else parse_every(str(every))
            )
            if seconds < 1:
                raise CadenceError(f"interval must be at least 1 second, got {seconds}")
        except CadenceError as exc:
            raise ValueError(f"schedule for {handler!r}: {exc.message}") from None
        if handler in self.schedules:
            raise ValueError(f"a schedule for {handler!r} is already declared")
        self.schedules[handler] = domain_pb2.ScheduleInfo(
            handler_name=handler,
            interval_seconds=seconds,
            enabled_by_default=enabled,
            description=description,
        )

    def config(
        self,
        name: str,
        *,
        description: str = "",
        default: str = "",
        type: str = "string",
        required: bool = False,
        min_value: str = "",
        max_value: str = "",
        pattern: str = "",
        element_type: str = "",
    ) -> None:
        """Declare a config key (reported by ConfigSchema; `ctx.config` carries its default).
        `min_value` / `max_value` (numbers), `pattern` (strings) and `element_type` (arrays) are
        told to the host as QNTX's ConfigFieldSchema has them; the plugin checks its own values."""
        self.config_fields[name] = ConfigField(
            name, type, description, default, required, min_value, max_value, pattern, element_type
        )

    def on_initialize(self, fn: InitHook) -> InitHook:
        """Run `fn(config)` at every Initialize; a returned mapping adds dynamic handlers."""
        self._init_hooks.append(fn)
        return fn

    # ------------------------------------------------------------ running

    def run(self, argv: list[str] | None = None) -> None:
        """Parse `--port N` (and `--host`), serve until Shutdown or SIGTERM/SIGINT."""
        parser = argparse.ArgumentParser(prog=self.name, description=self.description or None)
        parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = pick a free one)")
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        args = parser.parse_args(argv)
        asyncio.run(self._main(args.host, args.port))

    async def _main(self, host: str, port: int) -> None:
        server = await self.start(host, port)
        print(f"QNTX_PLUGIN_PORT={server.port}", flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, server.request_stop)
        if not _exit_with_host():
            server.request_stop()  # the host that started us is already gone
        await server.wait_stopped()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> PluginServer:
        """Start serving in the running loop (useful to embed a plugin in a test or a program)."""
        server = PluginServer(self)
        await server.start(host, port)
        return server


def _exit_with_host() -> bool:
    """When started by a Pulse host (PULSE_HOST_PID), get SIGTERM if that process dies, even by
    SIGKILL (Linux PR_SET_PDEATHSIG), so a crashed server leaves no orphaned plugins. Returns
    False when the host is already gone."""
    host = os.environ.get("PULSE_HOST_PID", "")
    if not host.isdigit():
        return True
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    return os.getppid() == int(host)


class PluginServer:
    """A running gRPC server for one Plugin."""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        self.port = 0
        self.servicer = _Servicer(plugin, self)
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.max_send_message_length", 64 << 20),
            ]
        )
        domain_pb2_grpc.add_DomainPluginServiceServicer_to_server(self.servicer, self._server)
        exec_pb2_grpc.add_BatchExecServiceServicer_to_server(_BatchServicer(self.servicer), self._server)
        self._stop = asyncio.Event()

    async def start(self, host: str, port: int) -> None:
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"could not listen on {host}:{port}")
        await self._server.start()

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()
        await self.stop()

    async def stop(self, grace: float = 1.0) -> None:
        self._stop.set()
        await self._server.stop(grace)
        await self.servicer.close()


class _Servicer(domain_pb2_grpc.DomainPluginServiceServicer):
    def __init__(self, plugin: Plugin, server: PluginServer) -> None:
        self.plugin = plugin
        self.server = server
        self.config: dict[str, str] = {f.name: f.default for f in plugin.config_fields.values()}
        self.dynamic: dict[str, HandlerFn] = {}
        self.endpoints: dict[str, str] = {}
        self.sink: ProgressSink | None = None
        self.running: set[str] = set()
        self.executed = 0

    async def close(self) -> None:
        if self.sink is not None:
            await self.sink.close()

    def _handlers(self) -> dict[str, HandlerFn]:
        return {**self.dynamic, **self.plugin.handlers}

    async def Metadata(self, request: domain_pb2.Empty, context: Any) -> domain_pb2.MetadataResponse:
        p = self.plugin
        return domain_pb2.MetadataResponse(
            name=p.name,
            version=p.version,
            qntx_version=p.qntx_version,
            description=p.description,
            author=p.author,
            license=p.license,
        )

    async def Initialize(
        self, request: domain_pb2.InitializeRequest, context: Any
    ) -> domain_pb2.InitializeResponse:
        config = {f.name: f.default for f in self.plugin.config_fields.values()}
        config.update(request.config)
        missing = [
            f.name for f in self.plugin.config_fields.values() if f.required and not config.get(f.name)
        ]
        if missing:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"missing required config: {', '.join(missing)}"
            )
        dynamic: dict[str, HandlerFn] = {}
        for hook in self.plugin._init_hooks:
            try:
                hooked = hook(config)
                extra = await hooked if inspect.isawaitable(hooked) else hooked
            except Exception as exc:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"initialize failed: {exc}")
            dynamic.update(extra or {})
        self.config, self.dynamic = config, dynamic
        self.endpoints = {key: getattr(request, name) for name, key in ENDPOINT_FIELDS.items()}
        if self.sink is not None:
            await self.sink.close()
        self.sink = ProgressSink(
            request.queue_endpoint, request.auth_token, interval=self.plugin.progress_interval
        )
        return domain_pb2.InitializeResponse(
            handler_names=sorted(self._handlers()), schedules=list(self.plugin.schedules.values())
        )

    async def Shutdown(self, request: domain_pb2.Empty, context: Any) -> domain_pb2.Empty:
        # Answer first; the stop runs once this call has returned.
        asyncio.get_running_loop().call_soon(self.server.request_stop)
        return domain_pb2.Empty()

    async def Health(self, request: domain_pb2.Empty, context: Any) -> domain_pb2.HealthResponse:
        details = {"running_jobs": str(len(self.running)), "executed": str(self.executed)}
        if self.sink is not None:
            details["progress_rpcs"] = str(self.sink.sent)
            details["progress_failures"] = str(self.sink.failures)
        return domain_pb2.HealthResponse(healthy=True, message="ok", details=details)

    async def ConfigSchema(self, request: domain_pb2.Empty, context: Any) -> domain_pb2.ConfigSchemaResponse:
        fields = {
            f.name: domain_pb2.ConfigFieldSchema(
                type=f.type,
                description=f.description,
                default_value=f.default,
                required=f.required,
                min_value=f.min_value,
                max_value=f.max_value,
                pattern=f.pattern,
                element_type=f.element_type,
            )
            for f in self.plugin.config_fields.values()
        }
        return domain_pb2.ConfigSchemaResponse(fields=fields)

    async def ExecuteJob(
        self, request: domain_pb2.ExecuteJobRequest, context: Any
    ) -> domain_pb2.ExecuteJobResponse:
        return await self.execute(request)

    async def execute(
        self, request: domain_pb2.ExecuteJobRequest | exec_pb2.BatchJob
    ) -> domain_pb2.ExecuteJobResponse:
        """One job, from a unary ExecuteJob or from a batch (the same fields)."""
        version = self.plugin.version
        name = request.handler_name
        # a declared handler wins over a dynamic one of the same name (as in _handlers())
        fn = self.plugin.handlers.get(name) or self.dynamic.get(name)
        if fn is None:
            known = ", ".join(sorted(self._handlers())) or "none"
            return domain_pb2.ExecuteJobResponse(
                success=False,
                error=f"plugin {self.plugin.name} has no handler {request.handler_name!r} (it handles: {known})",
                plugin_version=version,
            )
        try:
            payload = json.loads(request.payload) if request.payload else {}
        except ValueError as exc:
            return domain_pb2.ExecuteJobResponse(
                success=False, error=f"payload is not JSON: {exc}", plugin_version=version
            )
        timeout = (
            float(request.timeout_secs)
            if request.HasField("timeout_secs") and request.timeout_secs > 0
            else None
        )
        ctx = Context(
            job_id=request.job_id,
            handler=request.handler_name,
            config=dict(self.config),
            timeout=timeout,
            sink=self.sink,
            endpoints=dict(self.endpoints),
        )
        self.running.add(request.job_id)
        try:
            error = ""
            result = b""
            try:
                value = await self._run_handler(fn, ctx, payload)
            except JobError as exc:
                error = str(exc)
            except Exception as exc:
                error = _describe(exc, ctx)
            else:
                try:
                    result = json.dumps(value).encode()
                except (TypeError, ValueError) as exc:
                    error = f"handler returned a value that is not JSON-serialisable: {exc}"
        finally:
            self.running.discard(request.job_id)
            self.executed += 1
            if self.sink is not None:
                self.sink.forget(request.job_id)
        return domain_pb2.ExecuteJobResponse(
            success=not error,
            error=error,
            result=result,
            progress_current=ctx.progress_current,
            progress_total=ctx.progress_total,
            cost_actual=ctx.cost_actual or 0.0,
            log_entries=ctx.finish_logs(),
            plugin_version=version,
        )

    async def _run_handler(self, fn: HandlerFn, ctx: Context, payload: Any) -> Any:
        """Run the handler in its own task; set ctx.cancelled before cancelling it.

        An async handler's first step runs here, at once: one that returns without waiting on
        anything (an echo, a computation) needs no task, no wait and no timer, and nothing could
        have cancelled it. Only a handler that waits continues in a task of its own."""
        if inspect.iscoroutinefunction(fn):
            coro = fn(ctx, payload)
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                return stop.value
            task = asyncio.create_task(_continue(coro, yielded))
        else:
            task = asyncio.create_task(asyncio.to_thread(fn, ctx, payload))
        try:
            done, _ = await asyncio.wait({task}, timeout=ctx.timeout)
        except asyncio.CancelledError:  # the host cancelled the ExecuteJob call
            ctx._cancelled = True
            task.cancel()
            raise
        if not done:
            ctx._cancelled = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise JobTimeout(f"handler {ctx.handler} exceeded the job's timeout of {ctx.timeout:g}s")
        return task.result()


class _BatchServicer(exec_pb2_grpc.BatchExecServiceServicer):
    """BatchExecService (proto/pulse/exec/v1/exec.proto) for every SDK plugin: the host sends jobs
    in batches on one stream; each runs as its own task, exactly as an ExecuteJob call would (same
    timeout, cancellation, progress and logs), and its result is written when it ends, with the
    results of every other job that ended meanwhile in the same message."""

    def __init__(self, servicer: _Servicer) -> None:
        self.servicer = servicer

    async def Describe(self, request: exec_pb2.DescribeRequest, context: Any) -> exec_pb2.DescribeResponse:
        return exec_pb2.DescribeResponse(max_in_flight=0, version=1)

    async def ExecuteBatch(self, request_iterator: Any, context: Any) -> None:
        running: dict[int, asyncio.Task[None]] = {}
        done: list[exec_pb2.BatchResult] = []
        wake = asyncio.Event()
        execute = self.servicer.execute

        async def run(job: exec_pb2.BatchJob) -> None:
            try:
                resp = await execute(job)
            except Exception as exc:  # never leave the host waiting for an answer
                resp = domain_pb2.ExecuteJobResponse(
                    success=False,
                    error=f"{type(exc).__name__}: {exc}",
                    plugin_version=self.servicer.plugin.version,
                )
            finally:
                running.pop(job.call_id, None)
            done.append(exec_pb2.BatchResult(call_id=job.call_id, response=resp.SerializeToString()))
            wake.set()

        async def read() -> None:
            try:
                async for req in request_iterator:
                    for call_id in req.cancel_call_ids:  # the host gave up on it: no result is sent
                        task = running.pop(call_id, None)
                        if task is not None:
                            task.cancel()
                    for job in req.jobs:
                        running[job.call_id] = asyncio.create_task(run(job))
            finally:
                wake.set()

        reader = asyncio.create_task(read())
        try:
            while True:
                await wake.wait()
                wake.clear()
                if done:
                    results, done[:] = list(done), []
                    await context.write(exec_pb2.BatchResponse(results=results))
                if reader.done() and not running and not done:
                    return  # the host closed its side and every job has answered
        finally:
            reader.cancel()
            for task in list(running.values()):
                task.cancel()


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Drive `coro`, whose first step has already run and yielded `yielded`, from where it stopped:
    what it yielded goes to the awaiting task, what the task sends or throws goes back into it."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # a cancellation (or anything else thrown in) goes to the handler
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _continue(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    return await _resumed(coro, yielded)


def _describe(exc: BaseException, ctx: Context) -> str:
    ctx.logs.append(
        domain_pb2.JobLogEntry(
            timestamp=rfc3339_now(),
            level="error",
            message="".join(traceback.format_exception(exc)).rstrip(),
            stage="exception",
        )
    )
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
