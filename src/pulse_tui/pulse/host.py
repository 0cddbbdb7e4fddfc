"""The plugin host: starts plugin processes, shakes hands, watches health, restarts, reloads.

Structure — one owner per resource:
  * `_Instance` is one running copy of a plugin: its process (none for endpoint plugins), the
    tasks reading its stdout/stderr and waiting for its exit, its gRPC channel, and the set of
    ExecuteJob calls in flight on it. `launch()` does the handshake; `close()` does
    Shutdown -> SIGTERM -> SIGKILL (to the process group, so a plugin's children die too).
  * `_Plugin` is one configured plugin. Its supervisor task owns the *current* instance: it
    launches it, installs its handlers in the registry, polls Health, notices the exit at once
    (the instance's exit waiter wakes it), and restarts with exponential backoff
    (base 1 s, doubling, cap 60 s; the count resets once an instance stayed up a minute).
  * `PluginHost` is the public face: list/get snapshots, reload, enable/disable, start/stop.

Handshake: `COMMAND --port 0` (the plugin picks a free port) and wait up to `startup_timeout`
for `QNTX_PLUGIN_PORT=N` on stdout; then Metadata (the name must equal the configured one),
Initialize(queue_endpoint, auth_token, config) -> handler names, and ConfigSchema (optional).
Every line the plugin prints is kept in a bounded ring per plugin (across restarts) for the TUI.

Crash: the plugin's handlers stay registered while it is restarted, so jobs keep routing; a call
bound to the dead instance waits (up to `unavailable_wait`) for its successor instead of failing
at once. Calls in flight when it died fail as plugin_unavailable and the engine retries them.

Hot reload: start and initialize a NEW instance while the old one keeps serving, swap the
plugin's handler set in the registry in one step (new jobs go to the new instance), wait until
the calls in flight on the old instance finish (at most `grace_secs`), then shut it down. A call
still running after the grace period is cut off and retried by the engine, so no job is lost.

The auth token reaches a plugin only through Initialize: it is never put in its environment
(variables named PULSE_*TOKEN* are removed from the environment plugins inherit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import grpc

from pulse_tui.config import Config, PluginConfig
from pulse_tui.protocol import domain_pb2, domain_pb2_grpc
from pulse_tui.pulse import jobs
from pulse_tui.pulse.errors import NotFound, Precondition
from pulse_tui.pulse.handlers import HandlerError
from pulse_tui.pulse.proxy import DEFAULT_MAX_IN_FLIGHT, PluginProxyHandler, plugin_stub
from pulse_tui.pulse.registry import Registry, RouteDiff

log = logging.getLogger("pulse.host")

STARTING = "starting"
READY = "ready"
UNHEALTHY = "unhealthy"
CRASHED = "crashed"
BACKOFF = "backoff"
STOPPED = "stopped"
DISABLED = "disabled"

PORT_PREFIX = "QNTX_PLUGIN_PORT="
OUTPUT_LINES = 500
RPC_TIMEOUT = 5.0
HEALTH_TIMEOUT = 3.0
ENDPOINT_HEALTH_FAILURES = 3  # an endpoint plugin failing this many polls in a row is "lost"
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


class PluginStartError(Exception):
    """A plugin instance could not be brought up (the message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class ConfigField:
    name: str
    type: str
    description: str
    default_value: str
    required: bool


@dataclass(frozen=True, slots=True)
class PluginState:
    """A snapshot of one plugin for the console, the CLI and the operator API."""

    name: str
    state: str
    healthy: bool
    health_message: str
    version: str
    description: str
    pid: int
    endpoint: str
    started_at: float
    restarts: int
    handlers: tuple[str, ...]
    last_error: str
    enabled: bool
    output_tail: tuple[str, ...]
    config_schema: tuple[ConfigField, ...]
    next_restart_at: float
    running_jobs: int
    refused_handlers: tuple[str, ...] = ()  # announced names the registry refused, "'name': why"


@dataclass(frozen=True, slots=True)
class ReloadResult:
    plugin: PluginState
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    drained: int = 0  # calls in flight on the old instance that finished there

    @property
    def drained_jobs(self) -> int:
        return self.drained


def plugin_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment a plugin process gets: ours minus any token, plus its `env` table."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("PULSE_") and "TOKEN" in k)}
    env["PYTHONUNBUFFERED"] = "1"
    env["PULSE_HOST_PID"] = str(os.getpid())  # SDK plugins exit when this process dies (even SIGKILL)
    env.update(extra)
    return env


async def _wait_event(event: asyncio.Event, timeout: float) -> bool:
    """True if `event` was set within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return False


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# ---------------------------------------------------------------- one instance


class _Instance:
    """One running copy of a plugin (a process we started, or a remote endpoint)."""

    def __init__(self, cfg: PluginConfig, output: deque[str], on_exit: Callable[[], None]) -> None:
        self.cfg = cfg
        self.output = output
        self._on_exit = on_exit
        self.proc: asyncio.subprocess.Process | None = None
        self.endpoint = cfg.endpoint
        self.channel: grpc.aio.Channel | None = None
        self.stub: domain_pb2_grpc.DomainPluginServiceStub | None = None
        self.metadata = domain_pb2.MetadataResponse()
        self.handler_names: tuple[str, ...] = ()
        self.schema: tuple[ConfigField, ...] = ()
        self.started_at = 0.0
        self.exited = asyncio.Event()  # the process ended (or an endpoint plugin was lost)
        self.closing = False
        self.in_flight: set[str] = set()
        self.health_failures = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    @property
    def alive(self) -> bool:
        return not self.exited.is_set() and not self.closing

    def exit_text(self) -> str:
        return _describe_exit(self.proc.returncode if self.proc is not None else None)

    # ------------------------------------------------------------ start-up

    async def launch(self, queue_endpoint: str, token: str) -> None:
        """Start (if we own the process) and shake hands. Raises PluginStartError."""
        self.started_at = time.time()
        try:
            if self.cfg.command:
                await self._spawn()
                port = await self._wait_port()
                self.endpoint = f"127.0.0.1:{port}"
            await self._handshake(queue_endpoint, token)
        except PluginStartError:
            await self.close()
            raise
        except grpc.aio.AioRpcError as exc:
            reason = (
                f"{self.exit_text()} during the handshake"
                if self.exited.is_set()
                else f"{exc.code().name}: {exc.details()}"
            )
            await self.close()
            raise PluginStartError(
                f"plugin at {self.endpoint}: handshake failed: {reason}{self._last_output()}"
            ) from None
        except BaseException:  # cancelled mid-launch: do not leave the process behind
            await self.close()
            raise

    async def _spawn(self) -> None:
        argv = [*self.cfg.command, "--port", "0"]
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=self.cfg.cwd or None,
                env=plugin_env(self.cfg.env),
                start_new_session=True,  # own process group: stop() signals the plugin and its children
                limit=1 << 20,
            )
        except OSError as exc:
            raise PluginStartError(
                f"cannot start {argv[0]}: {exc.strerror or exc}; check `command` in [[plugins]] {self.cfg.name}"
            ) from None
        self.output.append(f"--- {self.cfg.name} started, pid {self.proc.pid} ---")
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._tasks = [
            asyncio.create_task(
                self._read(self.proc.stdout, watch_port=True), name=f"{self.cfg.name}-stdout"
            ),
            asyncio.create_task(
                self._read(self.proc.stderr, watch_port=False), name=f"{self.cfg.name}-stderr"
            ),
            asyncio.create_task(self._wait_exit(), name=f"{self.cfg.name}-wait"),
        ]

    async def _read(self, stream: asyncio.StreamReader, *, watch_port: bool) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream limit: keep going
                self.output.append("[output line too long; dropped]")
                continue
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.output.append(line)
            if watch_port and not self._port.done() and line.startswith(PORT_PREFIX):
                value = line[len(PORT_PREFIX) :].strip()
                if value.isdigit() and 0 < int(value) < 65536:
                    self._port.set_result(int(value))
                else:
                    self._port.set_exception(
                        PluginStartError(f"plugin {self.cfg.name} printed a malformed port line {line!r}")
                    )

    async def _wait_exit(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        self.output.append(f"--- {self.cfg.name} (pid {self.proc.pid}) {self.exit_text()} ---")
        self.exited.set()
        self._on_exit()

    async def _wait_port(self) -> int:
        exited = asyncio.ensure_future(self.exited.wait())
        try:
            done, _ = await asyncio.wait(
                {self._port, exited}, timeout=self.cfg.startup_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
        if self._port.done():
            return self._port.result()  # raises PluginStartError for a malformed line
        if self.exited.is_set():
            raise PluginStartError(
                f"plugin {self.cfg.name} {self.exit_text()} before printing {PORT_PREFIX}N{self._last_output()}"
            )
        raise PluginStartError(
            f"plugin {self.cfg.name} did not print {PORT_PREFIX}N within {self.cfg.startup_timeout:g}s"
            f"{self._last_output()}; is `command` a Pulse/QNTX plugin? (raise startup_timeout if it is slow)"
        )

    async def _handshake(self, queue_endpoint: str, token: str) -> None:
        self.channel = grpc.aio.insecure_channel(self.endpoint, options=CHANNEL_OPTIONS)
        self.stub = plugin_stub(self.channel)
        timeout = max(self.cfg.startup_timeout, 1.0)
        self.metadata = await self.stub.Metadata(domain_pb2.Empty(), timeout=timeout)
        if self.metadata.name != self.cfg.name:
            raise PluginStartError(
                f"plugin at {self.endpoint} reports name {self.metadata.name!r}, expected {self.cfg.name!r}; "
                "fix `name` in [[plugins]] or point it at the right plugin"
            )
        request = domain_pb2.InitializeRequest(
            queue_endpoint=queue_endpoint, auth_token=token, config=self.cfg.config
        )
        init = await self.stub.Initialize(request, timeout=timeout)
        self.handler_names = tuple(dict.fromkeys(init.handler_names))  # the registry refuses bad names
        try:
            schema = await self.stub.ConfigSchema(domain_pb2.Empty(), timeout=timeout)
            self.schema = tuple(
                ConfigField(k, f.type, f.description, f.default_value, f.required)
                for k, f in sorted(schema.fields.items())
            )
        except grpc.aio.AioRpcError:
            self.schema = ()  # optional RPC

    def _last_output(self) -> str:
        lines = [line for line in self.output if not line.startswith("--- ")]
        return f" (last output: {lines[-1][:200]!r})" if lines else ""

    # ------------------------------------------------------------ running

    @contextlib.contextmanager
    def track(self, job_id: str) -> Iterator[None]:
        self.in_flight.add(job_id)
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight.discard(job_id)
            if not self.in_flight:
                self._idle.set()

    async def drain(self, grace: float, pending: set[str] | None = None) -> int:
        """Wait (at most `grace` s) for the calls in flight; return how many of `pending` (default:
        those in flight now) finished on this instance."""
        pending = set(self.in_flight) if pending is None else pending
        await _wait_event(self._idle, grace)
        return len(pending - self.in_flight)

    async def health(self) -> domain_pb2.HealthResponse:
        assert self.stub is not None
        return await self.stub.Health(domain_pb2.Empty(), timeout=HEALTH_TIMEOUT)

    def mark_lost(self) -> None:
        """An endpoint plugin stopped answering: treat it like a process that exited."""
        if not self.exited.is_set():
            self.exited.set()
            self._on_exit()

    async def close(self, stop_timeout: float = 3.0) -> None:
        """Shutdown RPC, then SIGTERM, then SIGKILL (only for processes we started)."""
        self.closing = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            asked = False
            if self.stub is not None:
                try:
                    await self.stub.Shutdown(domain_pb2.Empty(), timeout=1.0)
                    asked = True
                except grpc.aio.AioRpcError:
                    pass
            if not (asked and await _wait_event(self.exited, stop_timeout)):
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, sig)
                    if await _wait_event(self.exited, stop_timeout):
                        break
            await self.exited.wait()
        if self.channel is not None:
            await self.channel.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# ---------------------------------------------------------------- one plugin


class _Plugin:
    """One configured plugin and the supervisor task that owns its current instance."""

    # Assigning any of these wakes `PluginHost.wait_for` callers (see __setattr__).
    _OBSERVED = frozenset(
        {"state", "healthy", "last_error", "restarts", "current", "next_restart_at", "enabled"}
    )

    def __init__(self, cfg: PluginConfig, host: PluginHost) -> None:
        self._observers: list[asyncio.Future[None]] = []
        self.cfg = cfg
        self.host = host
        self.enabled = cfg.enabled
        self.state = STARTING if cfg.enabled else DISABLED
        self.current: _Instance | None = None
        self.healthy = False
        self.health_message = ""
        self.last_error = ""
        self.restarts = 0
        self.next_restart_at = 0.0
        self.output: deque[str] = deque(maxlen=OUTPUT_LINES)
        self.semaphore = asyncio.Semaphore(host.max_in_flight)
        self.lock = asyncio.Lock()  # one launch at a time (supervisor start-up vs reload)
        self.wake = asyncio.Event()  # instance exited / instance swapped / restart now
        self.live = asyncio.Condition()  # notified when a new instance is adopted
        self.task: asyncio.Task[None] | None = None
        self.first_attempt: asyncio.Future[None] | None = None

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        if name in self._OBSERVED:
            for fut in self._observers:
                if not fut.done():
                    fut.set_result(None)
            self._observers.clear()

    async def changed(self) -> None:
        """Return at the next change of an observed attribute."""
        fut = asyncio.get_running_loop().create_future()
        self._observers.append(fut)
        await fut

    # ------------------------------------------------------------ supervisor

    def start(self) -> asyncio.Future[None]:
        """Start the supervisor; the future resolves after its first start attempt."""
        self.first_attempt = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._supervise(self.first_attempt), name=f"plugin-{self.cfg.name}")
        return self.first_attempt

    async def _supervise(self, first_attempt: asyncio.Future[None]) -> None:
        failures = 0
        try:
            while True:
                async with self.lock:
                    if not self._has_live_instance():
                        self.state = STARTING
                        try:
                            await self.adopt(await self.launch())
                        except PluginStartError as exc:
                            self.state, self.last_error = CRASHED, str(exc)
                            log.warning("plugin %s failed to start: %s", self.cfg.name, exc)
                if not first_attempt.done():
                    first_attempt.set_result(None)
                if self._has_live_instance():
                    up_since = time.monotonic()
                    await self._watch()
                    if time.monotonic() - up_since >= self.host.stable_secs:
                        failures = 0
                delay = min(self.host.backoff_cap, self.host.backoff_base * 2**failures)
                failures += 1
                self.state, self.next_restart_at = BACKOFF, time.time() + delay
                self.wake.clear()
                await _wait_event(self.wake, delay)  # a reload may cut the wait short
                self.next_restart_at = 0.0
                self.restarts += 1
        finally:
            if not first_attempt.done():
                first_attempt.set_result(None)
            if self.current is not None:
                await self.current.close(self.host.stop_timeout)

    def _has_live_instance(self) -> bool:
        return self.current is not None and self.current.alive

    async def _watch(self) -> None:
        """Poll Health until the current instance exits (a reload may swap it meanwhile)."""
        while True:
            inst = self.current
            assert inst is not None
            self.wake.clear()
            if inst.exited.is_set():
                break
            if not await _wait_event(self.wake, self.host.health_interval):
                await self._check_health(inst)
        self.state = CRASHED
        self.healthy = False
        self.last_error = f"plugin {self.cfg.name} {inst.exit_text() if inst.proc else 'stopped answering'}"
        self.last_error += inst._last_output()
        log.warning("%s; restarting", self.last_error)
        await inst.close(self.host.stop_timeout)

    async def _check_health(self, inst: _Instance) -> None:
        try:
            resp = await inst.health()
            healthy, message = resp.healthy, resp.message
            inst.health_failures = 0
        except grpc.aio.AioRpcError as exc:
            healthy, message = False, f"Health failed: {exc.code().name}: {exc.details()}"
            inst.health_failures += 1
        if self.current is not inst or not inst.alive:
            return
        self.healthy, self.health_message = healthy, message
        self.state = READY if healthy else UNHEALTHY
        if inst.proc is None and inst.health_failures >= ENDPOINT_HEALTH_FAILURES:
            inst.mark_lost()

    # ------------------------------------------------------------ instances

    async def launch(self) -> _Instance:
        inst = _Instance(self.cfg, self.output, self.wake.set)
        await inst.launch(self.host.queue_endpoint, self.host.token_for(self.cfg.name))
        return inst

    async def adopt(self, inst: _Instance) -> RouteDiff:
        """Make `inst` current and route the plugin's handlers to it (one registry swap)."""
        self.current = inst
        lease = self._lease_for(inst)
        diff = self.host.registry.set_plugin(
            self.cfg.name,
            inst.handler_names,
            lambda name: PluginProxyHandler(self.cfg.name, name, lease, semaphore=self.semaphore),
        )
        self.state, self.healthy, self.health_message = READY, True, "ok"
        self.wake.set()
        async with self.live:
            self.live.notify_all()
        self.host.notify_routes_changed()
        return diff

    def _lease_for(self, inst: _Instance) -> Callable[[str], AbstractAsyncContextManager]:
        @contextlib.asynccontextmanager
        async def lease(job_id: str) -> AsyncIterator[domain_pb2_grpc.DomainPluginServiceStub]:
            target = inst if inst.alive else await self._successor()
            assert target.stub is not None
            with target.track(job_id):
                yield target.stub

        return lease

    async def _successor(self) -> _Instance:
        """The live instance replacing a dead one, waiting for a restart if needed."""
        wait = self.host.unavailable_wait
        try:
            async with asyncio.timeout(wait), self.live:
                await self.live.wait_for(self._has_live_instance)
        except TimeoutError:
            raise HandlerError(
                f"plugin {self.cfg.name} is {self.state} and did not come back within {wait:g}s"
                + (f": {self.last_error}" if self.last_error else ""),
                outcome=jobs.OUTCOME_UNAVAILABLE,
                retryable=True,
            ) from None
        assert self.current is not None
        return self.current

    async def stop(self, final_state: str) -> None:
        """Stop routing to the plugin, let calls in flight finish (grace), stop the process."""
        self.host.registry.remove_plugin(self.cfg.name)
        self.host.notify_routes_changed()
        if self.current is not None and self.current.alive:
            await self.current.drain(self.host.grace_secs)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        self.current = None
        self.state, self.healthy, self.next_restart_at = final_state, False, 0.0

    def snapshot(self) -> PluginState:
        inst = self.current
        running = self.host.running_jobs(self.cfg.name) if self.host.running_jobs else None
        return PluginState(
            name=self.cfg.name,
            state=self.state,
            healthy=self.healthy and self.state == READY,
            health_message=self.health_message,
            version=inst.metadata.version if inst else "",
            description=inst.metadata.description if inst else "",
            pid=inst.pid if inst and inst.alive else 0,
            endpoint=inst.endpoint if inst else self.cfg.endpoint,
            started_at=inst.started_at if inst else 0.0,
            restarts=self.restarts,
            handlers=tuple(self.host.registry.plugin_handlers(self.cfg.name)),
            last_error=self.last_error,
            enabled=self.enabled,
            output_tail=tuple(self.output),
            config_schema=inst.schema if inst else (),
            next_restart_at=self.next_restart_at,
            running_jobs=len(running) if running is not None else (len(inst.in_flight) if inst else 0),
            refused_handlers=self.host.registry.refused_of(self.cfg.name),
        )


# ---------------------------------------------------------------- the host


class PluginHost:
    """Runs the configured plugins and keeps the registry's plugin handlers in step with them."""

    def __init__(
        self,
        configs: Config | Sequence[PluginConfig],
        registry: Registry,
        *,
        queue_endpoint: str = "",
        token_for: Callable[[str], str] = lambda name: "",
        on_routes_changed: Callable[[], None] = lambda: None,
        running_jobs: Callable[[str], list[str]] | None = None,
        health_interval: float = 5.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        stable_secs: float = 60.0,
        grace_secs: float = 10.0,
        stop_timeout: float = 3.0,
        unavailable_wait: float = 30.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        plugin_configs = configs.plugins if isinstance(configs, Config) else list(configs)
        self.registry = registry
        self.queue_endpoint = queue_endpoint  # settable: the server knows its port only once bound
        self.token_for = token_for
        self.on_routes_changed = on_routes_changed
        self.running_jobs = running_jobs
        self.health_interval = health_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stable_secs = stable_secs
        self.grace_secs = grace_secs
        self.stop_timeout = stop_timeout
        self.unavailable_wait = unavailable_wait
        self.max_in_flight = max_in_flight
        self._plugins = {cfg.name: _Plugin(cfg, self) for cfg in plugin_configs}

    def notify_routes_changed(self) -> None:
        try:
            self.on_routes_changed()
        except Exception:  # a listener's bug must not break the host
            log.exception("on_routes_changed failed")

    async def start(self) -> None:
        """Start every enabled plugin; return once each has been ready or failed once."""
        firsts = [p.start() for p in self._plugins.values() if p.enabled]
        await asyncio.gather(*firsts)

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop(STOPPED) for p in self._plugins.values() if p.enabled))

    # ------------------------------------------------------------ queries

    def list(self) -> list[PluginState]:
        return [p.snapshot() for p in self._plugins.values()]

    def get(self, name: str) -> PluginState:
        return self._plugin(name).snapshot()

    def list_plugins(self) -> list[PluginState]:  # services.py spelling
        return self.list()

    def get_plugin(self, name: str) -> PluginState | None:  # services.py spelling: None if unknown
        plugin = self._plugins.get(name)
        return plugin.snapshot() if plugin is not None else None

    def _plugin(self, name: str) -> _Plugin:
        plugin = self._plugins.get(name)
        if plugin is None:
            known = ", ".join(self._plugins) or "none"
            raise NotFound(f"no plugin named {name!r} (configured: {known})")
        return plugin

    async def wait_for(
        self, name: str, predicate: Callable[[PluginState], bool], timeout: float
    ) -> PluginState:
        """Wait until the plugin's snapshot satisfies `predicate` (for tests and the CLI)."""
        plugin = self._plugin(name)
        async with asyncio.timeout(timeout):
            while not predicate(state := plugin.snapshot()):
                await plugin.changed()
        return state

    # ------------------------------------------------------------ control

    async def reload(self, name: str) -> ReloadResult:
        """New instance up and initialized, handlers swapped, old instance drained and stopped."""
        plugin = self._plugin(name)
        if not plugin.enabled:
            raise Precondition(f"plugin {name} is disabled; enable it before reloading")
        async with plugin.lock:
            old = plugin.current if plugin._has_live_instance() else None
            in_flight_at_start = set(old.in_flight) if old is not None else set()
            before = set(self.registry.plugin_handlers(name))
            try:
                new = await plugin.launch()
            except PluginStartError as exc:
                plugin.last_error = f"reload failed: {exc}"
                still = "the old instance keeps running" if old else "the plugin stays down"
                raise Precondition(f"reload of plugin {name} failed: {exc}; {still}") from None
            diff = await plugin.adopt(new)
        drained = 0
        if old is not None:
            # jobs in flight when the reload began count as drained whether they finished while the
            # new instance started or after the swap: either way they finished on the old one
            drained = await old.drain(self.grace_secs, in_flight_at_start | old.in_flight)
            await old.close(self.stop_timeout)
        after = set(self.registry.plugin_handlers(name))
        return ReloadResult(
            plugin=plugin.snapshot(),
            added=tuple(sorted(after - before)),
            removed=tuple(sorted(before - after)),
            conflicts=diff.conflicts,
            warnings=diff.warnings,
            drained=drained,
        )

    async def set_enabled(self, name: str, enabled: bool) -> PluginState:
        plugin = self._plugin(name)
        if enabled == plugin.enabled:
            return plugin.snapshot()
        plugin.enabled = enabled
        if enabled:
            plugin.restarts, plugin.last_error = 0, ""
            await plugin.start()
        else:
            await plugin.stop(DISABLED)
        return plugin.snapshot()


__all__ = [
    "BACKOFF",
    "CRASHED",
    "DISABLED",
    "READY",
    "STARTING",
    "STOPPED",
    "UNHEALTHY",
    "ConfigField",
    "PluginHost",
    "PluginStartError",
    "PluginState",
    "ReloadResult",
]
