"""The Pulse server: store + engine + handler registry + plugin host + gRPC services.

    server = PulseServer(ServerSettings(listen="127.0.0.1:0", data_dir=path))
    await server.start()          # binds (server.port is the real port), recovers, serves
    ...
    await server.stop(grace=10)   # stop claiming, drain running jobs, re-queue the rest

`pulse-tui serve` (cli.py) wraps this with signal handling.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pulse_tui.config import BudgetConfig, Config, ServerConfig
from pulse_tui.protocol import operator_pb2, queue_pb2, queue_pb2_grpc, schedule_pb2, schedule_pb2_grpc
from pulse_tui.pulse.auth import PLUGIN, Authenticator
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.errors import PulseError, reason_trailer
from pulse_tui.pulse.host import PluginHost
from pulse_tui.pulse.metrics import HTTPSettings, MetricsHTTPServer, PluginGauge, Recorder
from pulse_tui.pulse.registry import Registry
from pulse_tui.pulse.schedule_service import ScheduleService
from pulse_tui.pulse.schedules import OWNER_CONFIG, Scheduler, plugin_owner
from pulse_tui.pulse.scripts import ScriptStore
from pulse_tui.pulse.services import OperatorService, QueueService, ServiceContext, add_operator_service
from pulse_tui.pulse.store import open_store
from pulse_tui.pulse.store.sql import redact
from pulse_tui.vocab import Reason

if TYPE_CHECKING:
    from pulse_tui.protocol import domain_pb2

    # what grpc.aio hands a servicer method (generic only in the type stubs)
    RpcContext = grpc.aio.ServicerContext[Any, Any]

log = logging.getLogger(__name__)

DEFAULT_LISTEN = ServerConfig().listen
DB_FILE = "pulse.db"
PLUGIN_PID_FILE = "plugins.pid"  # process groups of the plugins this server started (see host.PidFile)


class ServerError(PulseError):
    """The server cannot start (port in use, data dir not writable, insecure listen, …)."""

    code = "FAILED_PRECONDITION"


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("pulse-tui", appauthor=False))


@dataclass(slots=True)
class ServerSettings:
    """How to run the server. `db` is a store URL; "" means SQLite in the data dir."""

    listen: str = DEFAULT_LISTEN
    data_dir: Path = field(default_factory=default_data_dir)
    db: str = ""
    node: str = ""
    concurrency: int = 128  # jobs in flight; plugin round trips need many to keep a plugin busy
    prefetch: int = 0  # jobs claimed ahead of a free slot ([server] prefetch; 0 = off)
    handler_limits: dict[str, int] = field(default_factory=dict)
    default_timeout: float = 3600.0
    max_payload: int = 1024 * 1024
    max_children: int = 10_000  # child jobs per job
    max_child_depth: int = 5  # levels of children below a top job
    retention_secs: float | None = 7 * 86400
    # per handler: finished status -> seconds kept (None = forever), overriding retention_secs
    retention_handlers: dict[str, dict[str, float | None]] = field(default_factory=dict)
    grace: float = 10.0
    heartbeat_secs: float = 15.0  # WatchJobs heartbeat when idle
    insecure: bool = False  # allow a non-loopback listen address without TLS
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    durability: str = "full"  # SQLite: "full" (synchronous=FULL) or "normal"; see README
    lock_timeout: float = 5.0  # SQLite: how long a write waits for another process's lock
    metrics: bool = True  # keep per-handler counters (GetStats); False for benchmarks only
    metrics_listen: str = ""  # HOST:PORT of the Prometheus endpoint; "" = none
    metrics_auth: bool = False  # the endpoint wants the admin or read-only token (Bearer)
    metrics_persist_secs: float = 30.0
    metrics_sample_secs: float = 5.0
    budgets: BudgetConfig = field(default_factory=BudgetConfig)  # [budgets] (pulse/budgets.py)

    @classmethod
    def from_config(cls, config: Config) -> ServerSettings:
        s = config.server
        return cls(
            listen=s.listen,
            data_dir=Path(s.data_dir).expanduser(),
            db=s.db,
            concurrency=s.concurrency,
            prefetch=s.prefetch,
            handler_limits=dict(config.handler_limits),
            default_timeout=s.default_timeout,
            max_payload=s.max_payload_bytes,
            max_children=s.max_children,
            max_child_depth=s.max_child_depth,
            retention_secs=s.retention_days * 86400 if s.retention_days > 0 else None,
            retention_handlers={h: dict(r) for h, r in config.retention.items()},
            grace=s.grace_secs,
            node=s.node,
            durability=s.durability,
            lock_timeout=s.lock_timeout_secs,
            metrics_listen=s.metrics_listen,
            metrics_auth=s.metrics_auth,
            budgets=config.budgets,
        )

    @property
    def store_url(self) -> str:
        return self.db or f"sqlite:{self.data_dir / DB_FILE}"

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert or self.tls_key)


def split_host_port(listen: str, what: str = "listen address") -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ServerError(f"{what} {listen!r} must be HOST:PORT (port 0 picks a free one)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_data_dir(path: Path) -> None:
    """Create the data dir (0700) and prove it is writable, or raise ServerError."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = path / f".write-test-{secrets.token_hex(4)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ServerError(
            f"data dir {path} is not writable ({exc.strerror or exc}); "
            "pass --data-dir with a writable directory"
        ) from None


class DirFootprint:
    """The dirs a server start creates (the data dir and its missing parents), so that a failed
    start can take them away again — only while they are empty: a failed start never deletes a
    file (another server started on the same dir at the same moment may be using it)."""

    def __init__(self, path: Path) -> None:
        self.created: list[Path] = []  # missing dirs, innermost first
        try:
            p = path.absolute()
            while not p.exists() and p != p.parent:
                self.created.append(p)
                p = p.parent
        except OSError:  # unreadable: nothing is known, so nothing will be removed
            self.created = []

    def undo(self) -> None:
        for d in self.created:
            try:
                d.rmdir()  # only while empty
            except OSError:
                return  # not empty (a store file, someone else's entry): it stays, and so do its parents


class PulseServer:
    """Owns the store, engine, router, plugin host and gRPC server for one `serve` process."""

    def __init__(self, settings: ServerSettings, config: Config | None = None) -> None:
        self.settings = settings
        self.config = config or Config()  # [plugins] and [handlers]; server values come from settings
        self.port = 0
        self.plugin_port = 0
        self.address = ""
        self.auth: Authenticator | None = None
        self.engine: Engine | None = None
        self.host: PluginHost | None = None
        self.router: Registry | None = None
        self._grpc: grpc.aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._store: Any = None
        self.operator: OperatorService | None = None
        self.scripts: ScriptStore | None = None
        self.metrics: Recorder | None = None
        self.metrics_http: MetricsHTTPServer | None = None
        self.scheduler: Scheduler | None = None
        self._footprint: DirFootprint | None = None
        self._start_failed = False

    @property
    def token_path(self) -> Path:
        return self.settings.data_dir / "token"

    async def start(self) -> None:
        """Start every part. The ports are bound before any file is written, and the tokens once
        the store is open; a start that fails (and the stop that follows it) removes the dirs it
        created while they are empty."""
        self._footprint = DirFootprint(self.settings.data_dir)
        try:
            await self._start()
        except BaseException:
            self._start_failed = True
            raise

    async def _start(self) -> None:
        s = self.settings
        host, _ = split_host_port(s.listen)
        if not is_loopback(host) and not s.tls and not s.insecure:
            raise ServerError(
                f"refusing to listen on non-loopback address {s.listen} without TLS: "
                "pass --tls-cert and --tls-key, or --insecure if the network is trusted"
            )
        if s.tls and not (s.tls_cert and s.tls_key):
            raise ServerError("TLS needs both --tls-cert and --tls-key")
        if s.tls:
            _check_cert_and_key(s.tls_cert, s.tls_key, s.tls_client_ca)
        if s.metrics_listen:
            mhost, _ = split_host_port(s.metrics_listen, "metrics address")
            if not is_loopback(mhost) and not s.tls and not s.insecure:
                raise ServerError(
                    f"refusing to serve metrics on non-loopback address {s.metrics_listen} without TLS: "
                    "pass --tls-cert and --tls-key, or --insecure if the network is trusted"
                )
        check_data_dir(s.data_dir)

        self._grpc = grpc.aio.server(
            interceptors=[RejectUndecodable()],
            options=[
                ("grpc.so_reuseport", 0),  # a second server on the same port must fail, not share it
                ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            ],
        )
        self.port = self._bind(self._grpc)
        # Plugins call back (QueueService.UpdateJob) on this machine. The QNTX protocol gives them an
        # endpoint and a token, no TLS settings, so a TLS server also listens in plaintext on a
        # loopback port that only local processes can reach, and hands that one to its plugins.
        self.plugin_port = self._grpc.add_insecure_port("127.0.0.1:0") if s.tls else self.port
        bound_host = host or "0.0.0.0"
        self.address = f"[{bound_host}]:{self.port}" if ":" in bound_host else f"{bound_host}:{self.port}"

        if s.metrics:  # its port too before any file is written (the store is given it below)
            self.metrics = Recorder(
                None,
                node=s.node,
                sample_secs=s.metrics_sample_secs,
                persist_secs=s.metrics_persist_secs,
            )
            await self._listen_metrics(self.metrics)

        self._store = open_store(
            s.store_url, node=s.node, durability=s.durability, lock_timeout=s.lock_timeout
        )
        try:
            await self._store.open()
        except Exception as exc:
            raise ServerError(f"cannot open the job store {redact(s.store_url)}: {exc}") from None
        if self.metrics is not None:
            self.metrics.store = self._store
            self.metrics.node = s.node or self._store.node
        # the tokens once the ports and the store are ours: a start that fails writes none
        self.auth = Authenticator.from_data_dir(s.data_dir)
        self.router = self._make_router()
        self.engine = Engine(
            self._store,
            self.router,
            node=s.node,
            concurrency=s.concurrency,
            prefetch=s.prefetch,
            handler_limits=s.handler_limits,
            default_timeout=s.default_timeout,
            max_payload=s.max_payload,
            max_children=s.max_children,
            max_child_depth=s.max_child_depth,
            retention_secs=s.retention_secs,
            retention_handlers=s.retention_handlers,
            metrics=self.metrics,
            budgets=s.budgets,
        )
        monthly = s.budgets.total.monthly or any(b.monthly for b in s.budgets.handlers.values())
        if monthly and s.retention_secs and s.retention_secs < 31 * 86400:
            log.warning(
                "a monthly budget counts the jobs still in the store, and completed jobs are pruned "
                "after %g days: set [server] retention_days to 31 or more",
                s.retention_secs / 86400,
            )
        ctx = ServiceContext(
            engine=self.engine,
            auth=self.auth,
            registry=self.router,
            listen=self.address,
            store_url=redact(s.store_url),
            started_at=time.time(),
        )
        ctx.scripts = self.scripts = self._make_scripts()
        ctx.scheduler = self.scheduler = Scheduler(self._store, self.engine)
        self._add_services(self._grpc, ctx)
        try:
            await self.engine.start()  # recovery writes to the store
        except PulseError:
            raise
        except Exception as exc:
            raise ServerError(f"cannot recover jobs in the store {redact(s.store_url)}: {exc}") from None
        await self._grpc.start()
        self.host = await self._start_plugin_host(ctx)
        await self._start_metrics()
        await self._reconcile_config_schedules()
        await self.scheduler.start()  # after the plugins announced their handlers
        assert self._health is not None
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        for name in (_QUEUE_SERVICE, _OPERATOR_SERVICE, _SCHEDULE_SERVICE):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        check = getattr(self._store, "quick_check_secs", 0.0)
        log.info(
            "serving on %s (store %s%s)",
            self.address,
            redact(s.store_url),
            f", durability {s.durability}, quick_check {check:.2f}s"
            if hasattr(self._store, "quick_check")
            else "",
        )

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming, let running jobs finish within `grace` s, re-queue the rest, shut down."""
        grace = self.settings.grace if grace is None else grace
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.engine is not None:
            await self.engine.stop(grace)  # the gRPC server stays up so plugins can report progress
        if self.metrics_http is not None:
            await self.metrics_http.stop()
        if self.metrics is not None:
            await self.metrics.stop()  # writes the last buckets
        if self.host is not None:
            await self.host.stop()
        if self._grpc is not None:
            await self._grpc.stop(1.0)
        if self._store is not None:
            await self._store.close()
        if self._start_failed and self._footprint is not None:
            self._footprint.undo()
        log.info("stopped")

    async def wait_for_termination(self) -> None:
        if self._grpc is not None:
            await self._grpc.wait_for_termination()

    # ---- pieces
    def _bind(self, server: grpc.aio.Server) -> int:
        s = self.settings
        try:
            if s.tls:
                creds = grpc.ssl_server_credentials(
                    [(_read(s.tls_key), _read(s.tls_cert))],
                    root_certificates=_read(s.tls_client_ca) if s.tls_client_ca else None,
                    require_client_auth=bool(s.tls_client_ca),
                )
                port = server.add_secure_port(s.listen, creds)
            else:
                port = server.add_insecure_port(s.listen)
        except RuntimeError as exc:
            raise ServerError(
                f"cannot listen on {s.listen}: the port is in use or the address is not available ({exc}); "
                "pick another with --listen HOST:PORT"
            ) from None
        if port == 0:
            raise ServerError(
                f"cannot listen on {s.listen}: the port is in use or the address is not available"
            )
        return port

    def _make_scripts(self) -> ScriptStore:
        """Handler scripts live in the python plugin's `scripts_dir` (default `<data_dir>/scripts`,
        injected into that plugin's config so the editor and the plugin agree on one folder)."""
        pcfg = self.config.plugin(SCRIPTS_PLUGIN)
        directory = (pcfg.config.get("scripts_dir", "") if pcfg else "") or str(
            self.settings.data_dir / "scripts"
        )
        if pcfg is not None:
            pcfg.config["scripts_dir"] = directory
        router = self.router
        assert router is not None

        def owner_of(handler: str) -> str:
            h = router.resolve(handler)
            return h.plugin if h is not None else ""

        def is_live(handler: str) -> bool:
            return owner_of(handler) == SCRIPTS_PLUGIN

        async def reload() -> str:
            host = self.host
            if host is None or SCRIPTS_PLUGIN not in {p.name for p in host.list()}:
                return f"no {SCRIPTS_PLUGIN!r} plugin is configured: the script is saved but not announced"
            report = await host.reload(SCRIPTS_PLUGIN)
            added = ", ".join(report.added) or "none"
            removed = ", ".join(report.removed) or "none"
            return f"{SCRIPTS_PLUGIN} plugin reloaded (added: {added}; removed: {removed})"

        return ScriptStore(
            directory, reload=reload, is_live=is_live, owner_of=owner_of, plugin_name=SCRIPTS_PLUGIN
        )

    async def _listen_metrics(self, rec: Recorder) -> None:
        """Bind the /metrics address (before the tokens are written: a port in use fails the
        start with nothing left behind). Scrapes are answered from the start; the token check
        refuses every token until the server's own are loaded a moment later."""
        s = self.settings
        if not s.metrics_listen:
            return

        def read_token(token: str) -> bool:  # the admin or the read-only token, never a plugin's
            if self.auth is None:
                return False
            try:
                return self.auth.identify(token).role != PLUGIN
            except PulseError:
                return False

        self.metrics_http = MetricsHTTPServer(
            rec,
            HTTPSettings(
                s.metrics_listen,
                tls_cert=s.tls_cert,
                tls_key=s.tls_key,
                tokens=read_token if s.metrics_auth else None,
            ),
        )
        await self.metrics_http.start()
        log.info("serving Prometheus metrics on %s", s.metrics_listen)

    async def _start_metrics(self) -> None:
        rec = self.metrics
        if rec is None:
            return
        host = self.host
        if host is not None:
            rec.plugins = lambda: [
                PluginGauge(p.name, p.state == "ready" and bool(p.healthy), int(p.restarts))
                for p in host.list()
            ]
        await rec.start()

    def _make_router(self) -> Registry:
        return Registry([p.name for p in self.config.plugins], self.config.handlers)

    async def _start_plugin_host(self, ctx: ServiceContext) -> PluginHost | None:
        if not self.config.plugins:
            return None
        assert self.engine is not None and self.auth is not None and self.router is not None
        host, _, port = self.address.rpartition(":")
        if host in ("0.0.0.0", "[::]", "[]", "") or self.plugin_port != self.port:
            host = "127.0.0.1"  # plugins call back on this machine
        port = str(self.plugin_port)
        plugin_host = PluginHost(
            self.config,
            self.router,
            queue_endpoint=f"{host}:{port}",
            token_for=self.auth.issue_plugin_token,
            revoke_token=self.auth.revoke_plugin_token,
            on_routes_changed=self.engine.routes_changed,
            running_jobs=self.engine.running_jobs,
            grace_secs=self.settings.grace,
            pid_file=self.settings.data_dir / PLUGIN_PID_FILE,
            on_schedules=self._plugin_schedules,
        )
        self.host = plugin_host  # a stop during start-up must stop the plugins already started
        ctx.host = plugin_host  # enqueues arriving while the plugins start wait for them
        await plugin_host.start()
        return plugin_host

    async def _plugin_schedules(self, plugin: str, declared: list[domain_pb2.ScheduleInfo]) -> None:
        """A plugin (re)initialized: make its schedules match what it declared (QNTX semantics)."""
        assert self.scheduler is not None
        items = [
            {
                "handler": d.handler_name,
                "interval_secs": d.interval_seconds,
                "enabled": d.enabled_by_default,
                "description": d.description,
                "ats_code": d.ats_code,
            }
            for d in declared
            if d.handler_name
        ]
        report = await self.scheduler.reconcile(plugin_owner(plugin), items, namespace=plugin)
        for err in report["errors"]:
            log.warning("plugin %s declared a schedule that cannot be kept: %s", plugin, err)

    async def _reconcile_config_schedules(self) -> None:
        assert self.scheduler is not None
        items = [
            {
                "handler": c.handler,
                "interval_secs": c.every,
                "cron": c.cron,
                "timezone": c.timezone,
                "payload": c.payload.encode(),
                "overlap": c.overlap,
                "jitter_secs": c.jitter_secs,
                "enabled": c.enabled,
                "at_once": False,
            }
            for c in self.config.schedules
        ]
        report = await self.scheduler.reconcile(OWNER_CONFIG, items)
        for err in report["errors"]:
            log.warning("[[schedules]] in the config: %s", err)

    def _add_services(self, server: grpc.aio.Server, ctx: ServiceContext) -> None:
        queue_pb2_grpc.add_QueueServiceServicer_to_server(QueueService(ctx), server)
        assert ctx.scheduler is not None
        schedule_pb2_grpc.add_ScheduleServiceServicer_to_server(
            ScheduleService(ctx.scheduler, ctx.auth), server
        )
        self.operator = OperatorService(ctx, heartbeat_secs=self.settings.heartbeat_secs)
        add_operator_service(self.operator, server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            [
                _QUEUE_SERVICE,
                _OPERATOR_SERVICE,
                _SCHEDULE_SERVICE,
                health.SERVICE_NAME,
                reflection.SERVICE_NAME,
            ],
            server,
        )


SCRIPTS_PLUGIN = "python"  # the bundled plugin that announces python.<name> for each script
_QUEUE_SERVICE = queue_pb2.DESCRIPTOR.services_by_name["QueueService"].full_name
_OPERATOR_SERVICE = operator_pb2.DESCRIPTOR.services_by_name["OperatorService"].full_name
_SCHEDULE_SERVICE = schedule_pb2.DESCRIPTOR.services_by_name["ScheduleService"].full_name


class _Undecodable:
    """Stands in for a request whose bytes are not the message the method takes."""

    def __init__(self, error: str) -> None:
        self.error = error


class RejectUndecodable(grpc.aio.ServerInterceptor):
    """Answer INVALID_ARGUMENT to bytes that do not decode as the method's request message.

    Without it grpcio reports UNKNOWN and logs a traceback for every such call, so anyone who can
    reach the port could fill the log. Only unary-request methods exist on our services."""

    # the handlers are Any: grpc's stubs type RpcMethodHandler for the sync server's functions,
    # not the coroutines and async generators grpc.aio keeps in them
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None or handler.request_streaming:
            return handler
        decode = handler.request_deserializer
        method = handler_call_details.method

        def deserialize(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as exc:  # DecodeError and friends
                return _Undecodable(f"{type(exc).__name__}: {exc}")

        async def reject(request: _Undecodable, context: RpcContext) -> None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request to {method} is not a valid message ({request.error})",
                reason_trailer(Reason.INVALID_ARGUMENT),
            )

        if handler.response_streaming:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: RpcContext) -> Any:
                if isinstance(request, _Undecodable):
                    await reject(request, context)
                async for item in inner_stream(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                stream, request_deserializer=deserialize, response_serializer=handler.response_serializer
            )
        inner = handler.unary_unary

        async def unary(request: Any, context: RpcContext) -> Any:
            if isinstance(request, _Undecodable):
                await reject(request, context)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=deserialize, response_serializer=handler.response_serializer
        )


def _check_cert_and_key(cert: str, key: str, client_ca: str = "") -> None:
    """Refuse a certificate and key that TLS cannot use, naming them: gRPC only logs its own error
    and then fails to bind, which read as `the port is in use`. An encrypted key is refused too
    (the empty password callback keeps OpenSSL from asking on the terminal)."""
    import ssl

    _read(cert), _read(key)  # "cannot read …" first
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        raise ServerError(
            f"--tls-cert {cert} and --tls-key {key} are not a usable certificate and key "
            f"({exc.reason or exc}): give a PEM certificate and its unencrypted PEM private key"
        ) from None
    if client_ca:
        _read(client_ca)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=client_ca)
        except ssl.SSLError as exc:
            raise ServerError(
                f"--tls-client-ca {client_ca} is not a PEM CA certificate ({exc.reason or exc})"
            ) from None


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ServerError(f"cannot read {path}: {exc.strerror or exc}") from None
