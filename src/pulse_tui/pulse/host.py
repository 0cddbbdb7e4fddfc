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

Handshake: pick a free port N, start `COMMAND --port N` and wait for `QNTX_PLUGIN_PORT=M` on
stdout (the plugin may listen elsewhere and say so). A plugin that prints no such line within
`port_wait` (QNTX assumes the requested port after 2 s) is probed on N with Metadata until
`startup_timeout`; a late port line still wins. Then Metadata (the name must equal the configured
one), Initialize(queue_endpoint, auth_token, config) -> handler names, ConfigSchema (optional),
RegisterGlyphs (optional) and BatchExecService.Describe (ours, optional): a plugin that answers
it gets its jobs in batches on one stream (pulse/batch.py) unless its config says `batch = false`;
others get one ExecuteJob per job. What Initialize declares that this server does not serve
(watchers, HTTP routes, providers) and any glyphs are kept as `unserved` sentences in the plugin's
state.
Every line the plugin prints is kept in a bounded ring per plugin (across restarts) for the TUI.

Start-up window: while a plugin is starting (first start, restart, reload), an enqueue naming a
handler nobody announced yet waits for it (`PluginHost.await_starting`) instead of being refused.

Crash: the plugin's handlers stay registered while it is restarted, so jobs keep routing; a call
bound to the dead instance waits (up to `unavailable_wait`) for its successor instead of failing
at once. A call in flight when its instance died ends as an *interruption* the job did not cause
on its own (`PluginInterrupted`, `crashed=True`): the engine re-runs it without charging an
attempt and counts the crash against the job (3 in a row and the job is the likely cause).

Hot reload: start and initialize a NEW instance while the old one keeps serving, swap the
plugin's handler set in the registry in one step (new jobs go to the new instance at once), and
let the old instance *drain*: it keeps every ExecuteJob call in flight until that call ends
(bounded only by the job's own timeout, which the engine enforces), takes no new calls, and is
shut down when idle. Snapshots show it as `draining (N jobs)`. Only a host stop (server shutdown,
disable) bounds the drain by `grace_secs`; a call cut off then is an interruption, not a failure.

Process hygiene: every plugin process starts in its own session (process group) with the
parent-death signal set to SIGKILL in the child before exec (so a SIGKILLed server takes its
plugins with it, SDK or not); an instance the host gives up on has its whole group killed; and
the pids of the groups we started are kept in a pid file so the next server on the same data
dir stops any that an earlier server left behind.

The auth token reaches a plugin only through Initialize: it is never put in its environment
(variables named PULSE_*TOKEN* are removed from the environment plugins inherit). Each instance
gets its own token; it is revoked when the instance is shut down (crash, drained reload, disable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from pulse_tui.config import Config, PluginConfig
from pulse_tui.protocol import domain_pb2, domain_pb2_grpc
from pulse_tui.pulse import jobs
from pulse_tui.pulse.batch import BatchCaller, describe
from pulse_tui.pulse.errors import NotFound, Precondition
from pulse_tui.pulse.handlers import HandlerError, Interrupted
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
EXIT_SETTLE = 2.0  # a call cut off by a dying process waits this long for the exit to be seen
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
# probing a plugin that did not print its port: retry the connection often, not grpc's 1 s+ backoff
PROBE_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]
GLYPHS_TIMEOUT = 2.0  # RegisterGlyphs is optional: a plugin that does not answer has none


class PluginStartError(Exception):
    """A plugin instance could not be brought up (the message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class ConfigField:
    name: str
    type: str
    description: str
    default_value: str
    required: bool
    min_value: str = ""
    max_value: str = ""
    pattern: str = ""
    element_type: str = ""


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
    unserved: tuple[str, ...] = ()  # declared at Initialize, not served here: "declares 2 watchers; …"
    draining_jobs: int = 0  # calls still running on old instances after a reload
    draining_instances: int = 0  # old instances still draining

    @property
    def state_text(self) -> str:
        """`ready`, or `ready; old instance draining (3 jobs)` while a reload drains."""
        if not self.draining_instances:
            return self.state
        n, k = self.draining_jobs, self.draining_instances
        old = "old instance" if k == 1 else f"{k} old instances"
        return f"{self.state}; {old} draining ({n} job{'s' if n != 1 else ''})"


@dataclass(frozen=True, slots=True)
class ReloadResult:
    plugin: PluginState
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    drained: int = 0  # calls in flight on the old instance that already finished there
    draining: int = 0  # calls still running on the old instance; it finishes them, then stops

    @property
    def drained_jobs(self) -> int:
        return self.drained


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for `--port N`; the plugin binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _count(n: int, one: str) -> str:
    return f"{n} {one}" if n == 1 else f"{n} {one}s"


def unserved_declarations(init: domain_pb2.InitializeResponse, glyphs: int = 0) -> tuple[str, ...]:
    """What a plugin declared at Initialize (and RegisterGlyphs) that this server does not serve,
    one sentence each, for its plugin state: QNTX core serves these, we run jobs and schedules."""
    out = []
    if init.watchers:
        out.append(
            f"declares {_count(len(init.watchers), 'watcher')}; this server does not run watchers "
            "(it has no attestation store)"
        )
    if init.http_routes:
        shown = ", ".join(f"{r.method or 'GET'} {r.path}" for r in init.http_routes[:3])
        more = ", …" if len(init.http_routes) > 3 else ""
        out.append(
            f"declares {_count(len(init.http_routes), 'HTTP route')} ({shown}{more}); "
            "this server does not serve plugin HTTP routes"
        )
    providers = [
        label
        for flag, label in (
            (init.llm_provider, "LLM"),
            (init.embedding_provider, "embedding"),
            (init.vector_search_provider, "vector search"),
            (init.search_provider, "search"),
            (init.python_provider, "Python"),
        )
        if flag
    ]
    if providers:
        what = " and ".join([", ".join(providers[:-1]), providers[-1]] if len(providers) > 1 else providers)
        out.append(
            f"declares itself {'an' if providers[0] in ('LLM', 'embedding') else 'a'} {what} provider; "
            "this server does not route provider calls"
        )
    if glyphs:
        out.append(f"declares {_count(glyphs, 'glyph')}; this server does not show glyphs")
    return tuple(out)


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


# ---------------------------------------------------------------- process hygiene

PR_SET_PDEATHSIG = 1
# Runs as the plugin's first program and execs the plugin in the same process: asks the kernel to
# SIGKILL it when its parent (the server) dies. The setting survives exec, so it holds for plugins
# not built with our SDK. (No preexec_fn: calling into libc between fork and exec in a server with
# gRPC threads is not safe.) It fires when the *thread* that forked exits: the host spawns from
# the event loop's thread, which lives as long as the server.
_PDEATHSIG_EXEC = """
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)  # the server died before the call: do not start an orphan
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    print(f"cannot start {sys.argv[2]}: {exc.strerror or exc}", file=sys.stderr, flush=True)
    os._exit(127)
""".replace("PR_SET_PDEATHSIG", str(PR_SET_PDEATHSIG)).replace("SIGKILL", str(int(signal.SIGKILL)))


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's protocol for `create_subprocess_exec`, plus an event set when the process itself
    exits. `Process.wait()` returns only once the pipes are closed too, and a child the plugin
    started may hold them open long after the plugin is gone."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


async def _start_process(
    *argv: str, limit: int, **kwargs: Any
) -> tuple[asyncio.subprocess.Process, asyncio.Event]:
    """`asyncio.create_subprocess_exec`, also returning an event set when the process exits."""
    loop = asyncio.get_running_loop()
    protocol = _ExitProtocol(limit, loop)
    transport, _ = await loop.subprocess_exec(lambda: protocol, *argv, **kwargs)
    return asyncio.subprocess.Process(transport, protocol, loop), protocol.exited


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    """`argv` wrapped so the process it becomes dies with this one (Linux; unchanged elsewhere)."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-I", "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), *argv]


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (to tell a process from a later one reusing its pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22 of stat, counting after the comm field


class PidFile:
    """The process groups this server's plugins run in, kept in `<data_dir>/plugins.pid`, so the
    next server on the same data dir can stop any that outlived an earlier one (a SIGKILLed
    server's plugins' own children, a plugin that ignored the parent-death signal)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.groups: dict[int, str] = {}  # pgid -> start time of its leader

    def reap_leftovers(self) -> int:
        """Kill the plugin process groups an earlier server recorded; return how many."""
        try:
            doc = json.loads(self.path.read_text())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable plugin pid file %s: %s", self.path, exc)
            return 0
        owner, owner_start = int(doc.get("server", 0)), doc.get("server_start")
        if owner and owner != os.getpid() and owner_start and _proc_start(owner) == owner_start:
            log.warning(
                "plugin pid file %s belongs to a server still running (pid %d); not touching its plugins",
                self.path,
                owner,
            )
            return 0
        killed = 0
        for pgid_text, start in dict(doc.get("groups", {})).items():
            pgid = int(pgid_text)
            leader = _proc_start(pgid)
            if leader is not None and leader != start:
                continue  # the pid now belongs to someone else
            # a group id is not reused while the group has members: what is left is ours
            try:
                os.killpg(pgid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        if killed:
            log.warning("stopped %d plugin process group(s) left running by an earlier server", killed)
        self._write()
        return killed

    def add(self, pid: int) -> None:
        self.groups[pid] = _proc_start(pid) or ""
        self._write()

    def remove(self, pid: int) -> None:
        if self.groups.pop(pid, None) is not None:
            self._write()

    def _write(self) -> None:
        doc = {
            "server": os.getpid(),
            "server_start": _proc_start(os.getpid()),
            "groups": {str(k): v for k, v in self.groups.items()},
        }
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot write plugin pid file %s: %s", self.path, exc)


# ---------------------------------------------------------------- one instance


class _Instance:
    """One running copy of a plugin (a process we started, or a remote endpoint)."""

    def __init__(
        self,
        cfg: PluginConfig,
        output: deque[str],
        on_exit: Callable[[], None],
        pid_file: PidFile | None = None,
    ) -> None:
        self.cfg = cfg
        self.pid_file = pid_file
        self.stop_timeout = 3.0
        self.output = output
        self._on_exit = on_exit
        self.proc: asyncio.subprocess.Process | None = None
        self.endpoint = cfg.endpoint
        self.channel: grpc.aio.Channel | None = None
        self.stub: domain_pb2_grpc.DomainPluginServiceStub | None = None
        self.metadata = domain_pb2.MetadataResponse()
        self.handler_names: tuple[str, ...] = ()
        self.schedules: tuple[domain_pb2.ScheduleInfo, ...] = ()  # declared at Initialize
        self.unserved: tuple[str, ...] = ()  # declared, not served here (see unserved_declarations)
        self.given_port = 0  # the N of `--port N`
        self.schema: tuple[ConfigField, ...] = ()
        self.batch: BatchCaller | None = None  # set when the plugin serves BatchExecService
        self.started_at = 0.0
        self.exited = asyncio.Event()  # the process ended (or an endpoint plugin was lost)
        self.closing = False
        self.crashed = False  # it exited (or was lost) without us asking
        self.retiring = False  # replaced by a reload: finishes its calls, takes no new ones
        self.token = ""
        self._closer: asyncio.Future[None] | None = None
        self.in_flight: set[str] = set()
        self.health_failures = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []
        self._proc_exited = asyncio.Event()  # the process itself ended (set by _ExitProtocol)

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
            await self.close_once(self.stop_timeout)
            raise
        except grpc.aio.AioRpcError as exc:
            reason = (
                f"{self.exit_text()} during the handshake"
                if self.exited.is_set()
                else f"{exc.code().name}: {exc.details()}"
            )
            await self.close_once(self.stop_timeout)
            raise PluginStartError(
                f"plugin at {self.endpoint}: handshake failed: {reason}{self._last_output()}"
            ) from None
        except BaseException:  # cancelled mid-launch: do not leave the process behind
            await self.close_once(self.stop_timeout)  # shielded: a second cancel cannot cut it short
            raise

    async def _spawn(self) -> None:
        self.given_port = free_port()
        argv = [*self.cfg.command, "--port", str(self.given_port)]
        relative = os.sep in argv[0] and not os.path.isabs(argv[0])  # resolved in `cwd` by the child
        if not relative and shutil.which(argv[0], path=self._search_path()) is None:
            # one stat, once per plugin start, to say which
            what = "not executable" if os.path.exists(argv[0]) else "not found"  # noqa: ASYNC240
            raise PluginStartError(
                f"cannot start {argv[0]}: {what}; check `command` in [[plugins]] {self.cfg.name}"
            )
        try:
            spawn = asyncio.ensure_future(
                _start_process(
                    *_with_parent_death_signal(argv),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                    cwd=self.cfg.cwd or None,
                    env=plugin_env(self.cfg.env),
                    start_new_session=True,  # own process group: stop() signals the plugin and its children
                    limit=1 << 20,
                )
            )
            try:
                proc, self._proc_exited = await asyncio.shield(spawn)
                self.proc = proc
            except asyncio.CancelledError:  # cancelled while the process was being created: kill it
                with contextlib.suppress(Exception):
                    proc, _ = await spawn
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    await proc.wait()
                raise
        except OSError as exc:
            raise PluginStartError(
                f"cannot start {argv[0]}: {exc.strerror or exc}; check `command` in [[plugins]] {self.cfg.name}"
            ) from None
        if self.pid_file is not None:
            self.pid_file.add(proc.pid)
        self.output.append(f"--- {self.cfg.name} started, pid {proc.pid} ---")
        assert proc.stdout is not None and proc.stderr is not None
        self._tasks = [
            asyncio.create_task(self._read(proc.stdout, watch_port=True), name=f"{self.cfg.name}-stdout"),
            asyncio.create_task(self._read(proc.stderr, watch_port=False), name=f"{self.cfg.name}-stderr"),
            asyncio.create_task(self._wait_exit(), name=f"{self.cfg.name}-wait"),
        ]

    def _search_path(self) -> str | None:
        """PATH as the plugin's command is looked up (its `env` table may set PATH)."""
        return self.cfg.env.get("PATH", os.environ.get("PATH"))

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
        """The process's own exit, not its pipes' EOF: a child it started may hold those open (the
        child dies with the rest of its process group when the instance is closed)."""
        assert self.proc is not None
        await self._proc_exited.wait()
        self.output.append(f"--- {self.cfg.name} (pid {self.proc.pid}) {self.exit_text()} ---")
        self.crashed = not self.closing
        self.exited.set()
        self._on_exit()

    async def _wait_port(self) -> int:
        """The port of the plugin's `QNTX_PLUGIN_PORT=N` line; without one within `port_wait`, the
        port it was given, once Metadata answers there (a late line still wins)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.startup_timeout
        exited: asyncio.Future[Any] = asyncio.ensure_future(self.exited.wait())
        probe: asyncio.Future[bool] | None = None
        try:
            await asyncio.wait(
                {self._port, exited}, timeout=self.cfg.port_wait_secs, return_when=asyncio.FIRST_COMPLETED
            )
            if not self._port.done() and not self.exited.is_set():
                probe = asyncio.ensure_future(self._probe(self.given_port, deadline - loop.time()))
                await asyncio.wait(
                    {self._port, exited, probe},
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            exited.cancel()
            if probe is not None and not probe.done():
                probe.cancel()
                await asyncio.gather(probe, return_exceptions=True)
        if self._port.done():
            return self._port.result()  # raises PluginStartError for a malformed line
        # (a probe that met something else on that port raises its PluginStartError here)
        if probe is not None and probe.done() and not probe.cancelled() and probe.result():
            self.output.append(
                f"--- {self.cfg.name}: no {PORT_PREFIX}N line; it answers on --port {self.given_port} ---"
            )
            return self.given_port
        if self.exited.is_set():
            raise PluginStartError(
                f"plugin {self.cfg.name} {self.exit_text()} before printing {PORT_PREFIX}N{self._last_output()}"
            )
        raise PluginStartError(
            f"plugin {self.cfg.name} did not print {PORT_PREFIX}N within {self.cfg.startup_timeout:g}s nor "
            f"answer Metadata on the port it was given (--port {self.given_port}){self._last_output()}; "
            "is `command` a Pulse/QNTX plugin? (raise startup_timeout if it is slow)"
        )

    async def _probe(self, port: int, timeout: float) -> bool:
        """True once Metadata answers on 127.0.0.1:`port` (False at the deadline). Something else
        answering there raises PluginStartError."""
        if timeout <= 0:
            return False
        address = f"127.0.0.1:{port}"
        channel = grpc.aio.insecure_channel(address, options=[*CHANNEL_OPTIONS, *PROBE_OPTIONS])
        try:
            await plugin_stub(channel).Metadata(domain_pb2.Empty(), timeout=timeout, wait_for_ready=True)
            return True
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return False
            raise PluginStartError(
                f"plugin {self.cfg.name} printed no {PORT_PREFIX}N line and {address} (the port it was "
                f"given) answered Metadata with {exc.code().name}: {exc.details()}{self._last_output()}"
            ) from None
        finally:
            await channel.close()

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
            queue_endpoint=queue_endpoint,
            auth_token=token,
            config=self.cfg.config,
            schedule_endpoint=queue_endpoint,  # ScheduleService is served beside QueueService
        )
        init = await self.stub.Initialize(request, timeout=timeout)
        self.handler_names = tuple(dict.fromkeys(init.handler_names))  # the registry refuses bad names
        self.schedules = tuple(init.schedules)
        try:
            schema = await self.stub.ConfigSchema(domain_pb2.Empty(), timeout=timeout)
            self.schema = tuple(
                ConfigField(
                    k,
                    f.type,
                    f.description,
                    f.default_value,
                    f.required,
                    f.min_value,
                    f.max_value,
                    f.pattern,
                    f.element_type,
                )
                for k, f in sorted(schema.fields.items())
            )
        except grpc.aio.AioRpcError:
            self.schema = ()  # optional RPC
        try:
            declared = await self.stub.RegisterGlyphs(
                domain_pb2.Empty(), timeout=min(timeout, GLYPHS_TIMEOUT)
            )
            glyphs = len(declared.glyphs)
        except grpc.aio.AioRpcError:
            glyphs = 0  # optional RPC (UNIMPLEMENTED for plugins without glyphs)
        self.unserved = unserved_declarations(init, glyphs)
        for sentence in self.unserved:
            log.warning("plugin %s %s", self.cfg.name, sentence)
        self.batch = None
        if self.cfg.batch:  # our optional BatchExecService; QNTX plugins answer UNIMPLEMENTED
            offer = await describe(self.channel, min(timeout, GLYPHS_TIMEOUT))
            if offer is not None:
                self.batch = BatchCaller(self.channel, self.cfg.name, offer.max_in_flight)
                self.stub.batch = self.batch  # type: ignore[attr-defined]  # the proxy's path
                log.info("plugin %s: jobs go in batches over BatchExecService.ExecuteBatch", self.cfg.name)

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
        reply: domain_pb2.HealthResponse = await self.stub.Health(domain_pb2.Empty(), timeout=HEALTH_TIMEOUT)
        return reply

    def mark_lost(self) -> None:
        """An endpoint plugin stopped answering: treat it like a process that exited."""
        if not self.exited.is_set():
            self.crashed = not self.closing
            self.exited.set()
            self._on_exit()

    async def close_once(self, stop_timeout: float = 3.0) -> None:
        """`close()`, run once however many owners ask (reload drain, supervisor, stop)."""
        if self._closer is None:
            self._closer = asyncio.ensure_future(self.close(stop_timeout))
        await asyncio.shield(self._closer)

    async def _wait_gone(self, timeout: float | None) -> bool:
        """True once the process has exited (within `timeout` s; None = no limit). Waits on the
        process itself as well as on `exited`: the exit watcher task may be gone, cancelled with
        every other task when an error ends the server's event loop, and nothing would set it."""
        assert self.proc is not None
        if self.exited.is_set() or self.proc.returncode is not None:
            return True
        waiters = {asyncio.ensure_future(self.exited.wait()), asyncio.ensure_future(self._proc_exited.wait())}
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return bool(done)

    async def close(self, stop_timeout: float = 3.0) -> None:
        """Shutdown RPC, then SIGTERM, then SIGKILL (only for processes we started)."""
        self.closing = True
        if self.batch is not None:
            # first: an open stream would hold the plugin's server stop for its whole grace period;
            # calls still on it end now as interrupted (we are shutting the instance down)
            await self.batch.close()
        proc = self.proc
        if proc is not None and proc.returncode is None:
            asked = False
            if self.stub is not None:
                try:
                    await self.stub.Shutdown(domain_pb2.Empty(), timeout=1.0)
                    asked = True
                except grpc.aio.AioRpcError:
                    pass
            if not (asked and await self._wait_gone(stop_timeout)):
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, sig)
                    if await self._wait_gone(stop_timeout):
                        break
            await self._wait_gone(None)
        if proc is not None:
            # the plugin is gone; whatever it started in its group goes with it (it may have exited
            # leaving children, or never printed its port line while a child held on)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            if self.pid_file is not None:
                self.pid_file.remove(proc.pid)
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
        {
            "state",
            "healthy",
            "last_error",
            "restarts",
            "current",
            "next_restart_at",
            "enabled",
            "draining",
            "launching",
        }
    )

    def __init__(self, cfg: PluginConfig, host: PluginHost) -> None:
        self._observers: list[asyncio.Future[None]] = []
        self.cfg = cfg
        self.host = host
        self.enabled = cfg.enabled
        self.state = STARTING if cfg.enabled else DISABLED
        self.current: _Instance | None = None
        self.draining: tuple[_Instance, ...] = ()  # old instances finishing their calls after a reload
        self._retirements: set[asyncio.Task[None]] = set()
        self.instances: set[_Instance] = set()  # every instance not yet closed (stop closes them all)
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
        self.launching = 0  # launches (start, restart, reload) under way until their handlers are routed

    @property
    def starting(self) -> bool:
        """Handlers this plugin announces may still appear: it has not started yet, or a launch
        (restart, reload) is under way."""
        return self.enabled and (self.state == STARTING or self.launching > 0)

    @contextlib.contextmanager
    def launch_window(self) -> Iterator[None]:
        """Marks a launch under way until its instance is adopted (handlers routed) or failed."""
        self.launching += 1
        try:
            yield
        finally:
            self.launching -= 1

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
                            with self.launch_window():
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
                await self.close_instance(self.current)

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
        await self.close_instance(inst)

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
        inst = _Instance(self.cfg, self.output, self.wake.set, self.host.pid_file)
        inst.stop_timeout = self.host.stop_timeout
        self.instances.add(inst)
        inst.token = self.host.token_for(self.cfg.name)
        try:
            await inst.launch(self.host.queue_endpoint, inst.token)
        except BaseException:
            self.host.revoke_token(self.cfg.name, inst.token)
            if inst._closer is not None and inst._closer.done():
                self.instances.discard(inst)
            raise
        return inst

    async def close_instance(self, inst: _Instance) -> None:
        """Shut an instance down and revoke its token (a process gone must not keep its keys)."""
        try:
            await inst.close_once(self.host.stop_timeout)
            self.instances.discard(inst)
        finally:
            self.host.revoke_token(self.cfg.name, inst.token)

    def retire(self, inst: _Instance) -> None:
        """A reload replaced `inst`: let it finish its calls in flight, then shut it down."""
        inst.retiring = True
        if not inst.in_flight or not inst.alive:
            task = asyncio.create_task(self.close_instance(inst), name=f"{self.cfg.name}-close-old")
        else:
            self.draining = (*self.draining, inst)
            task = asyncio.create_task(self._drain_then_close(inst), name=f"{self.cfg.name}-drain-old")
        self._retirements.add(task)
        task.add_done_callback(self._retirements.discard)

    async def _drain_then_close(self, inst: _Instance) -> None:
        """No deadline of our own: each call is bounded by its job's timeout (the engine cancels
        it). A crash of the old instance ends the wait too (its calls are interrupted)."""
        try:
            idle = asyncio.ensure_future(inst._idle.wait())
            exited = asyncio.ensure_future(inst.exited.wait())
            try:
                await asyncio.wait({idle, exited}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                idle.cancel()
                exited.cancel()
            log.info("plugin %s: old instance (pid %d) drained after reload", self.cfg.name, inst.pid)
        finally:
            await self.close_instance(inst)
            self.draining = tuple(i for i in self.draining if i is not inst)

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
        await self.host.notify_schedules(self.cfg.name, list(inst.schedules))
        return diff

    def _lease_for(
        self, inst: _Instance
    ) -> Callable[[str], AbstractAsyncContextManager[domain_pb2_grpc.DomainPluginServiceStub]]:
        @contextlib.asynccontextmanager
        async def lease(job_id: str) -> AsyncIterator[domain_pb2_grpc.DomainPluginServiceStub]:
            # a retiring (reloaded) instance takes no new calls: they go to its successor
            target = inst if inst.alive and not inst.retiring else await self._successor()
            assert target.stub is not None
            with target.track(job_id):
                try:
                    yield target.stub
                except HandlerError as exc:
                    if exc.outcome != jobs.OUTCOME_UNAVAILABLE or isinstance(exc, Interrupted):
                        raise
                    raise await self._interruption(target, exc) from None

        return lease

    async def _interruption(self, target: _Instance, exc: HandlerError) -> HandlerError:
        """A call on `target` was cut off (UNAVAILABLE, or its channel closed). If the instance died
        or we shut it down, that is an interruption the job did not cause on its own: re-run
        without charge (a crash is counted against the job). Otherwise the error stands."""
        if target.proc is not None and not target.closing:
            # the dropped connection can be noticed before the process exit: give it a moment
            await _wait_event(target.exited, EXIT_SETTLE)
        if target.crashed:
            what = target.exit_text() if target.proc is not None else "stopped answering"
            return Interrupted(
                f"plugin {self.cfg.name} {what} while the job ran",
                crashed=True,
                result=exc.result,
            )
        if target.closing or target.exited.is_set():
            return Interrupted(
                f"plugin {self.cfg.name} was shut down while the job ran",
                result=exc.result,
            )
        return exc

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
        """Stop routing to the plugin, let calls in flight (on the current and on draining old
        instances) finish within `grace_secs`, stop the processes, revoke every token."""
        self.host.registry.remove_plugin(self.cfg.name)
        self.host.notify_routes_changed()
        live = [i for i in (self.current, *self.draining) if i is not None and i.alive]
        if live:
            await asyncio.gather(*(i.drain(self.host.grace_secs) for i in live))
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        await asyncio.gather(*(self.close_instance(i) for i in self.draining))
        await asyncio.gather(*self._retirements, return_exceptions=True)
        # anything still closing (an instance given up on while we were cancelled) ends here
        await asyncio.gather(*(self.close_instance(i) for i in list(self.instances)))
        self.host.revoke_token(self.cfg.name, None)
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
            unserved=inst.unserved if inst else (),
            draining_jobs=sum(len(i.in_flight) for i in self.draining),
            draining_instances=len(self.draining),
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
        revoke_token: Callable[[str, str | None], None] = lambda name, token: None,
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
        pid_file: Path | None = None,
        on_schedules: Callable[[str, list[domain_pb2.ScheduleInfo]], Awaitable[None]] | None = None,
    ) -> None:
        self.on_schedules = on_schedules
        plugin_configs = configs.plugins if isinstance(configs, Config) else list(configs)
        self.registry = registry
        self.queue_endpoint = queue_endpoint  # settable: the server knows its port only once bound
        self.token_for = token_for
        self.revoke_token = revoke_token
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
        self.pid_file = PidFile(pid_file) if pid_file is not None else None
        self._plugins = {cfg.name: _Plugin(cfg, self) for cfg in plugin_configs}
        self._waiting = 0  # enqueue calls in await_starting

    def notify_routes_changed(self) -> None:
        try:
            self.on_routes_changed()
        except Exception:  # a listener's bug must not break the host
            log.exception("on_routes_changed failed")

    async def notify_schedules(self, plugin: str, declared: list[domain_pb2.ScheduleInfo]) -> None:
        """Hand the schedules a plugin declared at Initialize to the scheduler."""
        if self.on_schedules is None:
            return
        try:
            await self.on_schedules(plugin, declared)
        except Exception:  # the scheduler's trouble must not stop the plugin from serving
            log.exception("reconciling the schedules of plugin %s failed", plugin)

    async def start(self) -> None:
        """Start every enabled plugin; return once each has been ready or failed once."""
        if self.pid_file is not None:
            self.pid_file.reap_leftovers()
        firsts = [p.start() for p in self._plugins.values() if p.enabled]
        await asyncio.gather(*firsts)

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop(STOPPED) for p in self._plugins.values() if p.enabled))

    # ------------------------------------------------------------ queries

    def list(self) -> list[PluginState]:
        return [p.snapshot() for p in self._plugins.values()]

    def get(self, name: str) -> PluginState:
        return self._plugin(name).snapshot()

    def jobs_of_token(self, plugin: str, token: str) -> set[str] | None:
        """The jobs in flight on the instance of `plugin` that was given `token` at Initialize
        (None when no live instance holds it). The token was checked by the Authenticator: this
        only finds its instance."""
        p = self._plugins.get(plugin)
        for inst in p.instances if p is not None else ():
            if inst.token and inst.token == token:
                return set(inst.in_flight)
        return None

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

    @property
    def waiting_enqueues(self) -> int:
        """Enqueue calls waiting in `await_starting` now."""
        return self._waiting

    async def await_starting(self, known: Callable[[], bool]) -> None:
        """Wait while `known()` is false and a plugin is still starting (first start, restart,
        reload) — it may announce the handlers an enqueue names — for at most the largest
        `startup_timeout` among them. Returns at once when no plugin is starting."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        self._waiting += 1
        try:
            while not known():
                starting = [p for p in self._plugins.values() if p.starting]
                if not starting:
                    return
                if deadline is None:
                    deadline = loop.time() + max(p.cfg.startup_timeout for p in starting)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                changes = [asyncio.ensure_future(p.changed()) for p in starting]
                try:
                    await asyncio.wait(changes, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for change in changes:
                        change.cancel()
        finally:
            self._waiting -= 1

    # ------------------------------------------------------------ control

    async def reload(self, name: str) -> ReloadResult:
        """New instance up and initialized, handlers swapped (new calls go to it at once); the old
        instance keeps its calls in flight until they end, then stops (in the background)."""
        plugin = self._plugin(name)
        if not plugin.enabled:
            raise Precondition(f"plugin {name} is disabled; enable it before reloading")
        async with plugin.lock:
            old = plugin.current if plugin._has_live_instance() else None
            in_flight_at_start = set(old.in_flight) if old is not None else set()
            before = set(self.registry.plugin_handlers(name))
            with plugin.launch_window():
                try:
                    new = await plugin.launch()
                except PluginStartError as exc:
                    plugin.last_error = f"reload failed: {exc}"
                    still = "the old instance keeps running" if old else "the plugin stays down"
                    raise Precondition(f"reload of plugin {name} failed: {exc}; {still}") from None
                diff = await plugin.adopt(new)
            drained = draining = 0
            if old is not None:
                # new calls now go to `new`; `old` finishes what it runs (no grace cut-off)
                draining = len(old.in_flight)
                drained = len(in_flight_at_start - old.in_flight)
                plugin.retire(old)
        after = set(self.registry.plugin_handlers(name))
        return ReloadResult(
            plugin=plugin.snapshot(),
            added=tuple(sorted(after - before)),
            removed=tuple(sorted(before - after)),
            conflicts=diff.conflicts,
            warnings=diff.warnings,
            drained=drained,
            draining=draining,
        )

    async def set_enabled(self, name: str, enabled: bool) -> PluginState:
        plugin = self._plugin(name)
        if enabled == plugin.enabled:
            return plugin.snapshot()
        plugin.enabled = enabled
        if enabled:
            plugin.restarts, plugin.last_error = 0, ""
            plugin.state = STARTING  # enqueues naming its handlers wait from now (await_starting)
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
