"""The `pulse-tui` command line.

    pulse-tui                      the TUI (starts an embedded server when none answers)
    pulse-tui serve                the Pulse server
    pulse-tui server status|stop   the server the console started and kept running
    pulse-tui jobs …               enqueue / show / list / cancel / retry / pause / resume / delete
    pulse-tui plugins …            list / reload
    pulse-tui handlers …           list (names and naming conflicts) / pause / resume
    pulse-tui schedules …          list / show / create / update / pause / resume / run / delete
    pulse-tui ix COMMAND           run the handler script python.COMMAND
    pulse-tui config --print-default

Client commands talk to a server through `pulse_tui.client.PulseClient`; they never import the
server. Failures print one `error: …` line on stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pulse_tui import __version__
from pulse_tui.config import Config, ServerConfig
from pulse_tui.vocab import FINISHED, Capability, EndpointMode, JobStatus, Reason
from pulse_tui.widgets import fmt

if TYPE_CHECKING:
    import grpc

    from pulse_tui.client import PulseClient
    from pulse_tui.protocol import operator_pb2 as op
    from pulse_tui.pulse.server import ServerSettings

DEFAULT_LISTEN = ServerConfig().listen
LISTEN_PREFIX = "pulse: listening on "
METRICS_PREFIX = "pulse: metrics on "
TOKEN_PREFIX = "pulse: token file "


class CliError(Exception):
    """A failure to report as `error: <message>` with exit code `code`; `reason` is the server's
    machine-readable one (vocab.Reason) when the failure was a call's."""

    def __init__(self, message: str, code: int = 1, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


class NoToken(CliError):
    """No token was given and the local server's token file does not exist."""


# ---------------------------------------------------------------- config


def load_config(path: str | None, data_dir: str | None = None) -> Config:
    """pulse.toml from `path`, $PULSE_CONFIG or the user config dir; built-in defaults otherwise."""
    from pulse_tui.config import ConfigError
    from pulse_tui.config import load_config as load

    try:
        return load(path, data_dir=data_dir)
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None


def connect_address(listen: str) -> str:
    """Where a client reaches a server listening on `listen` (wildcards mean this machine)."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


# ---------------------------------------------------------------- arguments


def _text(value: str) -> str:
    """A text argument (a name, an id, JSON, a duration…): it goes on the wire as UTF-8, so bytes
    that are not UTF-8 (a shell's `$'\\xff'`, which Python keeps as lone surrogates) are a usage
    error naming the argument, not a traceback while the request is built. File and directory
    arguments are left alone: the OS takes any bytes there."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        shown = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise argparse.ArgumentTypeError(f"not valid UTF-8 text: {shown}") from None
    return value


# path arguments, left as the OS gave them (see _text)
_PATH_DESTS = frozenset({"config", "token_file", "tls_ca", "data_dir", "db", "tls_cert", "tls_key"})
_PATH_DESTS |= {"tls_client_ca", "from_file"}


def _check_text_arguments(parser: argparse.ArgumentParser) -> None:
    """Give every string argument without a type of its own (and not a path) the `_text` check,
    in this parser and its subcommands'."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _check_text_arguments(sub)
        elif action.type is None and action.nargs != 0 and action.dest not in _PATH_DESTS:
            action.type = _text


def _host_port(value: str) -> str:
    """--connect's value: HOST:PORT (a bracketed IPv6 host too), else a usage error naming it
    (it used to be tried as an address and reported as a server that is not running)."""
    _text(value)
    host, sep, port = value.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (e.g. 127.0.0.1:7878), got {value!r}")
    return value


def _seconds(value: str) -> float:
    """A wait in seconds: 0 or more and finite (NaN made `server stop` wait forever)."""
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {value!r}") from None
    if not 0 <= n < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {value}")
    return n


INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def _int32(value: str) -> int:
    """An integer flag the protocol carries as int32 (out of range it was a traceback)."""
    return _ranged(value, INT32)


def _int64(value: str) -> int:
    return _ranged(value, INT64)


def _ranged(value: str, bounds: tuple[int, int]) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}") from None
    if not bounds[0] <= n <= bounds[1]:
        raise argparse.ArgumentTypeError(f"{n} is out of range ({bounds[0]} to {bounds[1]})")
    return n


def _connection_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument(
        "--connect",
        metavar="HOST:PORT",
        type=_host_port,
        default=argparse.SUPPRESS,
        help="server address (default: the configured listen address)",
    )
    g.add_argument(
        "--token-file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="file holding the token (default: $PULSE_TOKEN, else the local data dir's token)",
    )
    g.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="pulse.toml to use")
    g.add_argument(
        "--tls-ca",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="connect with TLS, trusting this CA certificate",
    )
    return p


def _json_option() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    return p


def build_parser() -> argparse.ArgumentParser:
    conn, js = _connection_options(), _json_option()
    parser = argparse.ArgumentParser(
        prog="pulse-tui",
        description="Operator console and server for Pulse. With no command, starts the TUI.",
        parents=[conn],
    )
    parser.add_argument("--version", action="version", version=f"pulse-tui {__version__}")
    parser.add_argument("--read-only", action="store_true", help="TUI: use the read-only token")
    parser.add_argument(
        "--no-demo",
        action="store_true",
        help="TUI: do not enqueue the demo jobs on an embedded server's first start",
    )
    parser.add_argument(
        "--keep-server", action="store_true", help="TUI: leave the embedded server running on exit"
    )
    parser.add_argument(
        "--theme",
        default="",
        help="TUI: a Textual theme (textual-light, nord, gruvbox, …); default [tui] theme",
    )
    parser.set_defaults(func=run_tui)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the Pulse server")
    serve.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="pulse.toml to use")
    serve.add_argument(
        "--listen", metavar="HOST:PORT", help=f"address to listen on (default {DEFAULT_LISTEN})"
    )
    serve.add_argument("--data-dir", metavar="DIR", help="where the token and the SQLite database live")
    serve.add_argument("--db", metavar="URL", help="store URL: a SQLite path, sqlite:PATH or postgresql://…")
    serve.add_argument("--grace", type=float, metavar="S", help="seconds running jobs get at shutdown (10)")
    serve.add_argument(
        "--node", metavar="NAME", help="this server's name in a shared PostgreSQL queue (host:pid)"
    )
    serve.add_argument("--insecure", action="store_true", help="allow a non-loopback address without TLS")
    serve.add_argument("--tls-cert", metavar="FILE", help="server certificate (PEM)")
    serve.add_argument("--tls-key", metavar="FILE", help="server private key (PEM)")
    serve.add_argument("--tls-client-ca", metavar="FILE", help="require client certificates from this CA")
    serve.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        nargs="?",
        const="127.0.0.1:9464",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (default 127.0.0.1:9464)",
    )
    serve.add_argument(
        "--metrics-auth", action="store_true", help="metrics scrapes must send the admin or read-only token"
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    serve.set_defaults(func=cmd_serve)

    server = sub.add_parser("server", help="the server the console started (status, stop)")
    srv = server.add_subparsers(dest="server_command", metavar="ACTION", required=True)
    for action, what in (
        ("status", "whether the server the console started is still running (pid, address, log)"),
        ("stop", "stop the server the console started and kept running (SIGTERM, waits for it)"),
    ):
        p = srv.add_parser(action, parents=[js], help=what)
        p.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="pulse.toml to use")
        if action == "stop":
            p.add_argument(
                "--timeout", type=_seconds, default=30.0, metavar="S", help="how long to wait for it (30)"
            )
        p.set_defaults(func=cmd_server_status if action == "status" else cmd_server_stop)

    jobs = sub.add_parser("jobs", help="enqueue, inspect, cancel, retry, pause and resume jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = jsub.add_parser("enqueue", parents=[conn, js], help="enqueue a job, or many from a JSON-lines file")
    p.add_argument("handler", nargs="?", help="handler name (not with --from)")
    p.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE.jsonl",
        help="enqueue every job of this file in one call, all or none: one JSON object per line with"
        ' "handler" and optionally "payload", "max_attempts", "timeout_secs", "priority", "delay_secs",'
        ' "source", "parent_job_id", "id", "cost_estimate" ("-" reads standard input)',
    )
    p.add_argument("--payload", default="{}", metavar="JSON", help="JSON payload (default {})")
    p.add_argument(
        "--timeout", type=_int64, default=0, metavar="S", help="seconds per attempt (0 = server default)"
    )
    p.add_argument(
        "--max-attempts", type=_int32, default=0, metavar="N", help="attempts before failing (default 3)"
    )
    p.add_argument("--priority", type=_int32, default=0, metavar="P", help="higher runs first")
    p.add_argument(
        "--id",
        dest="job_id",
        default="",
        metavar="ID",
        help="the job's id (1-64 of A-Z a-z 0-9 . _ : -); repeating the same enqueue returns that job",
    )
    p.add_argument("--parent", default="", metavar="ID", help="make it a child of this job")
    p.add_argument("--cost-estimate", type=float, default=0.0, metavar="X", help="expected cost, kept")
    p.add_argument("--wait", action="store_true", help="wait until the job finishes, showing progress")
    p.set_defaults(func=cmd_jobs_enqueue)
    p = jsub.add_parser("show", parents=[conn, js], help="show a job with its attempts and logs")
    p.add_argument("id", help="job id")
    p.set_defaults(func=cmd_jobs_show)
    p = jsub.add_parser("list", parents=[conn, js], help="list jobs, newest first")
    p.add_argument("--status", action="append", default=[], help="only this status (repeatable)")
    p.add_argument("--handler", default="", help="only this handler (its exact name)")
    p.add_argument("--parent", default="", metavar="ID", help="only the children of this job")
    p.add_argument("--limit", type=int, default=50, help="at most this many (1-1000, default 50)")
    p.set_defaults(func=cmd_jobs_list)
    for action, what in (
        ("cancel", "cancel jobs by id"),
        ("retry", "retry failed or cancelled jobs by id"),
    ):
        p = jsub.add_parser(action, parents=[conn, js], help=what)
        p.add_argument("ids", nargs="+", metavar="ID", help="job ids")
        p.set_defaults(func=cmd_jobs_bulk, action=action)
    for action, status, what in (
        ("pause", "queued", "pause queued or delayed jobs (held until resumed; not running ones)"),
        ("resume", "paused", "resume paused jobs (back to their place in the queue)"),
    ):
        p = jsub.add_parser(
            action,
            parents=[conn, js],
            help=f"{what}: by id, or every {status} job matching --handler/--parent",
        )
        p.add_argument("ids", nargs="*", metavar="ID", help="job ids (or a filter: --handler/--parent)")
        p.add_argument("--handler", default="", help="only this handler (a prefix; * and ? glob)")
        p.add_argument("--parent", default="", metavar="ID", help="only the children of this job")
        p.add_argument(
            "--status",
            action="append",
            default=[],
            choices=[status],
            help=f"the jobs a filter selects ({status}, the only status that can be {action}d)",
        )
        p.add_argument("--limit", type=int, default=1000, help="at most this many (default 1000)")
        p.add_argument(
            "--dry-run", action="store_true", help=f"say how many would be {action}d; change nothing"
        )
        p.set_defaults(func=cmd_jobs_pause_resume, action=action, target_status=status)
    p = jsub.add_parser(
        "delete",
        parents=[conn, js],
        help="delete finished jobs by id, or all finished jobs matching --status/--handler (needs --yes)",
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="job ids (or a filter: --status/--handler)")
    p.add_argument(
        "--status", action="append", default=[], help="completed, failed or cancelled (repeatable)"
    )
    p.add_argument("--handler", default="", help="only this handler (a prefix; * and ? glob)")
    p.add_argument("--limit", type=int, default=10_000, help="at most this many (default 10000)")
    p.add_argument("--dry-run", action="store_true", help="say how many would go; delete nothing")
    p.add_argument("--yes", action="store_true", help="delete what the filter matches without asking")
    p.set_defaults(func=cmd_jobs_delete)

    plugins = sub.add_parser("plugins", help="plugins the server runs")
    psub = plugins.add_subparsers(dest="plugins_command", metavar="ACTION", required=True)
    p = psub.add_parser("list", parents=[conn, js], help="list plugins")
    p.set_defaults(func=cmd_plugins_list)
    p = psub.add_parser("show", parents=[conn, js], help="one plugin: state, handlers, what it declares")
    p.add_argument("name", help="plugin name, as configured")
    p.add_argument("--tail", type=_int32, default=20, help="lines of its output to show (default 20)")
    p.set_defaults(func=cmd_plugins_show)
    p = psub.add_parser("reload", parents=[conn, js], help="restart a plugin and re-read its handlers")
    p.add_argument("name", help="plugin name, as configured")
    p.set_defaults(func=cmd_plugins_reload)

    handlers = sub.add_parser("handlers", help="handler names and naming conflicts")
    hsub = handlers.add_subparsers(dest="handlers_command", metavar="ACTION", required=True)
    p = hsub.add_parser("list", parents=[conn, js], help="list handlers")
    p.add_argument("--conflicts", action="store_true", help="only names with conflicts")
    p.set_defaults(func=cmd_handlers_list)
    for action, what in (
        ("pause", "hold every job of a handler, queued and new (running ones finish); survives restarts"),
        ("resume", "release a paused handler's jobs, in their FIFO order"),
    ):
        p = hsub.add_parser(action, parents=[conn, js], help=what)
        p.add_argument("name", help="handler name (bare: it holds the qualified plugin/NAME forms too)")
        p.set_defaults(func=cmd_handlers_pause, action=action)

    schedules = sub.add_parser("schedules", help="recurring jobs: interval or cron schedules")
    ssub = schedules.add_subparsers(dest="schedules_command", metavar="ACTION", required=True)
    p = ssub.add_parser("list", parents=[conn, js], help="list schedules (deleted ones only with --state)")
    p.add_argument("--state", action="append", default=[], help="only this state (repeatable)")
    p.add_argument("--owner", default="", help="operator, config or plugin:NAME")
    p.add_argument("--handler", default="", help="only this handler (its exact name)")
    p.set_defaults(func=cmd_schedules_list)
    p = ssub.add_parser("show", parents=[conn, js], help="show a schedule with its recent runs")
    p.add_argument("id", help="schedule id")
    p.add_argument("--runs", type=_int32, default=20, metavar="N", help="recent runs to show (default 20)")
    p.set_defaults(func=cmd_schedules_show)
    p = ssub.add_parser("create", parents=[conn, js], help="create a schedule")
    p.add_argument("handler", help="the handler each run enqueues a job of")
    cadence = p.add_mutually_exclusive_group(required=True)
    cadence.add_argument("--every", metavar="DURATION", help="interval such as 30s, 5m, 1h30m, 2d")
    cadence.add_argument("--cron", metavar="EXPR", help='5-field cron expression, e.g. "0 3 * * *"')
    p.add_argument("--tz", default="", metavar="ZONE", help="IANA time zone for --cron (default UTC)")
    p.add_argument("--payload", default="{}", metavar="JSON", help="JSON payload of every run (default {})")
    p.add_argument("--overlap", choices=("skip", "allow"), default="skip", help="while a run is unfinished")
    p.add_argument("--jitter", type=_int32, default=0, metavar="SECS", help="delay each run by 0..SECS")
    p.add_argument("--paused", action="store_true", help="create it paused")
    p.add_argument("--now", action="store_true", help="first run at once (else at the next cadence point)")
    p.set_defaults(func=cmd_schedules_create)
    p = ssub.add_parser("update", parents=[conn, js], help="change a schedule's cadence, payload or policies")
    p.add_argument("id", help="schedule id")
    cadence = p.add_mutually_exclusive_group()
    cadence.add_argument("--every", metavar="DURATION", help="new interval (replaces a cron expression)")
    cadence.add_argument("--cron", metavar="EXPR", help="new cron expression (replaces an interval)")
    p.add_argument("--tz", default=None, metavar="ZONE", help="IANA time zone for the cron expression")
    p.add_argument("--payload", default=None, metavar="JSON", help="new JSON payload of every run")
    p.add_argument("--overlap", choices=("skip", "allow"), default=None, help="while a run is unfinished")
    p.add_argument("--jitter", type=_int32, default=None, metavar="SECS", help="delay each run by 0..SECS")
    p.set_defaults(func=cmd_schedules_update)
    for action, text in (
        ("pause", "pause schedules"),
        ("resume", "resume schedules"),
        ("run", "run schedules once now (cadence unchanged)"),
        ("delete", "delete schedules"),
    ):
        p = ssub.add_parser(action, parents=[conn, js], help=text)
        p.add_argument("ids", nargs="+", metavar="ID", help="schedule ids")
        p.set_defaults(func=cmd_schedules_action, action=action)

    p = sub.add_parser("ix", parents=[conn, js], help="run a handler script: enqueue python.<command>")
    p.add_argument("ix_command", metavar="command", help="script name; the handler is python.<command>")
    p.add_argument("--payload", default="{}", metavar="JSON", help="JSON payload (default {})")
    p.add_argument("--wait", action="store_true", help="wait until the job finishes, showing progress")
    p.set_defaults(func=cmd_ix)

    cfg = sub.add_parser("config", help="configuration")
    cfg.add_argument("--print-default", action="store_true", help="print a commented default pulse.toml")
    cfg.set_defaults(func=cmd_config)
    _check_text_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. With ``--json`` an error is one JSON document on stderr,
    ``{"error": "…"}`` (with ``"reason"`` when a call failed), and the exit status is non-zero, as
    without it."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        if getattr(args, "json", False):
            doc = {"error": exc.message, "reason": exc.reason} if exc.reason else {"error": exc.message}
            print(json.dumps(doc), file=sys.stderr)
        else:
            print(f"error: {shown(exc.message)}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`pulse-tui jobs list --json | head`): not an error of ours; keep
        # the interpreter from complaining again when it flushes stdout at exit
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return 0


# ---------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from pulse_tui.pulse.server import ServerSettings
    from pulse_tui.pulse.store import store_url_problem

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[_StderrLogHandler()],
    )
    config = load_config(getattr(args, "config", None), data_dir=args.data_dir or None)
    settings = ServerSettings.from_config(config)
    if args.listen:
        settings.listen = args.listen
    if args.data_dir:
        settings.data_dir = Path(args.data_dir).expanduser()
    if args.db:
        settings.db = args.db
    if settings.db and (problem := store_url_problem(settings.db)):
        raise CliError(f"{'--db' if args.db else '[server] db'} {problem}", 2)
    if args.grace is not None:
        if not 0 <= args.grace < float("inf"):
            raise CliError(f"--grace must be 0 or more seconds, got {args.grace:g}", 2)
        settings.grace = args.grace
    if args.node:
        settings.node = args.node
    settings.insecure = args.insecure
    if args.metrics:
        settings.metrics_listen = args.metrics
    settings.metrics_auth = settings.metrics_auth or args.metrics_auth
    settings.tls_cert, settings.tls_key = args.tls_cert or "", args.tls_key or ""
    settings.tls_client_ca = args.tls_client_ca or ""
    return asyncio.run(_serve(settings, config))


async def _serve(settings: ServerSettings, config: Config) -> int:
    from pulse_tui.pulse.errors import PulseError
    from pulse_tui.pulse.server import PulseServer

    _raise_open_files_limit()
    server = PulseServer(settings, config)
    try:
        await server.start()
    except PulseError as exc:
        await server.stop(0)
        raise CliError(exc.message, 2) from None
    _tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if server.metrics_http is not None:  # before the listen line: clients wait for that one
            mhost = settings.metrics_listen.rpartition(":")[0] or "0.0.0.0"
            scheme = "https" if settings.tls else "http"
            _say(f"{METRICS_PREFIX}{scheme}://{mhost}:{server.metrics_http.port}/metrics")
        _say(f"{LISTEN_PREFIX}{server.address}")
        _say(f"{TOKEN_PREFIX}{server.token_path} (read-only: {server.token_path}.readonly)")
        await stop.wait()
        _say(f"pulse: stopping; running jobs get {settings.grace:g}s to finish")
    finally:
        # whatever ended the wait, the server stops in order; a second signal now ends the process
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.stop(settings.grace)
    _say("pulse: stopped")
    return 0


# The server process's garbage collector: what exists once the server started (modules, plugins'
# stubs, the gRPC server) is frozen out of collections, and the youngest generation is collected
# every GC_THRESHOLD allocations instead of CPython's 700. Each job allocates a few hundred objects
# that die with it (no cycles), so the default ran a young collection every few jobs: about a tenth
# of the CPU of an in-process drain (0.079-0.087 -> 0.072 s per 1,000 jobs). Cycles are still
# collected, just less often.
GC_THRESHOLD = (10_000, 10, 10)


def _raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one, as Go servers (QNTX among them) do at
    start. Every client connection, plugin pipe and store file takes a descriptor, and anyone
    who reaches the port can hold connections open before sending a token: at the soft limit a
    service is usually given (1024), a few hundred idle connections left the server unable to
    accept anyone. Plugins inherit the raised limit; script jobs get their own (max_open_files)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return
        # an unlimited hard limit (macOS, BSD) still has a per-process cap below it: ask for a
        # large number, then for the one macOS takes (OPEN_MAX)
        for want in (hard,) if hard != resource.RLIM_INFINITY else (1 << 20, 10240):
            if soft >= want:
                return
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                return
            except (ValueError, OSError) as exc:
                last = exc
        logging.getLogger(__name__).info("open files limit left at %d: %s", soft, last)
    except ImportError:  # not POSIX
        pass


def _tune_gc() -> None:
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def _say(line: str) -> None:
    """One line on stderr for whoever started the server. Writing must never stop it: when the
    reader is gone (EPIPE) fd 2 is pointed at /dev/null, so this and every later log line go
    nowhere instead of failing (a failed write used to skip the orderly stop)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        _stderr_to_devnull()


def _stderr_to_devnull() -> None:
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stderr.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


class _StderrLogHandler(logging.StreamHandler[TextIO]):
    """The server's log on stderr; a reader that went away silences it (see `_say`) instead of
    printing a "Logging error" traceback for every record to that same dead stream."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            _stderr_to_devnull()
            return
        super().handleError(record)


class ServerProcess:
    """A `pulse-tui serve` child process. `start()` returns its address once it printed its listen
    line; stderr keeps being drained (into `lines`, and `log_path` if given) so it never blocks."""

    def __init__(
        self,
        serve_args: list[str],
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        new_session: bool = False,
    ) -> None:
        # new_session: the child leads its own session, so closing the terminal (SIGHUP to its
        # foreground group) does not stop it — the console stops it itself, or keeps it on request
        self.new_session = new_session
        self.argv = [sys.executable, "-m", "pulse_tui", "serve", *serve_args]
        self.env = env
        self.log_path = log_path
        self.lines: collections.deque[str] = collections.deque(maxlen=2000)
        self.address = ""
        self.token_file = ""
        self.proc: subprocess.Popen[str] | None = None
        self._ready: queue.Queue[str | None] = queue.Queue()

    def start(self, timeout: float = 30.0) -> str:
        # a server in its own session with a log writes that log itself: it outlives the console
        # (kept running), and a pipe would lose every line after the console left
        detached = self.new_session and self.log_path is not None
        log = self.log_path.open("a", encoding="utf-8") if detached and self.log_path else None
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log if log is not None else subprocess.PIPE,
                text=True,
                env=self.env,
                start_new_session=self.new_session,
            )
        finally:
            offset = log.tell() if log is not None else 0
            if log is not None:
                log.close()
        if detached:
            threading.Thread(target=self._tail, args=(offset,), name="pulse-serve-log", daemon=True).start()
        else:
            threading.Thread(target=self._drain, name="pulse-serve-stderr", daemon=True).start()
        while True:
            try:
                line = self._ready.get(timeout=timeout)
            except queue.Empty:
                self.stop()
                raise CliError(f"the server did not start within {timeout:g}s:\n{self.output()}") from None
            if line is None:
                code = self.proc.wait()
                raise CliError(f"the server exited with status {code}:\n{self.output()}", 2)
            if line.startswith(LISTEN_PREFIX):
                self.address = line.removeprefix(LISTEN_PREFIX).strip()
                return self.address

    def _heard(self, line: str) -> None:
        self.lines.append(line.rstrip("\n"))
        if line.startswith(TOKEN_PREFIX):
            self.token_file = line.removeprefix(TOKEN_PREFIX).split(" (", 1)[0].strip()
        if not self.address:
            self._ready.put(line)

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        log = self.log_path.open("a", encoding="utf-8") if self.log_path else None
        try:
            for line in self.proc.stderr:
                if log is not None:
                    log.write(line)
                    log.flush()
                self._heard(line)
        finally:
            self._ready.put(None)
            if log is not None:
                log.close()

    def _tail(self, offset: int) -> None:
        """Read the server's own log from `offset` until it has said where it listens and where
        its token is (or exited)."""
        assert self.proc is not None and self.log_path is not None
        with self.log_path.open("rb") as f:
            f.seek(offset)
            while not (self.address and self.token_file):
                line = f.readline()
                if line.endswith(b"\n"):
                    self._heard(line.decode("utf-8", "replace"))
                    continue
                f.seek(-len(line), os.SEEK_CUR)  # a line being written: read it whole later
                if self.proc.poll() is not None:
                    for rest in f:
                        self._heard(rest.decode("utf-8", "replace"))
                    self._ready.put(None)
                    return
                time.sleep(0.02)  # a file has no wake-up; only while the server starts

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait (SIGKILL after `timeout`). Returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


# ---------------------------------------------------------------- client plumbing


def resolve_token(args: argparse.Namespace, config: Config, *, read_only: bool = False) -> str:
    from pulse_tui.pulse.auth import read_token_file

    token_file = getattr(args, "token_file", None)
    if token_file:
        path = Path(token_file).expanduser()
        return _token_text(_read_token(path, read_token_file), f"token file {path}")
    if os.environ.get("PULSE_TOKEN", "").strip():
        return _token_text(os.environ["PULSE_TOKEN"].strip(), "PULSE_TOKEN")
    path = Path(config.server.data_dir).expanduser() / ("token.readonly" if read_only else "token")
    if not path.exists():
        raise NoToken(
            f"no token: pass --token-file FILE or set PULSE_TOKEN (a local server writes its token to {path})"
        )
    return _token_text(_read_token(path, read_token_file), f"token file {path}")


def _token_text(token: str, source: str) -> str:
    """A token goes out as gRPC metadata (`authorization: Bearer …`), which takes printable ASCII
    only: a token with a line break (two lines in the file), a space or a control character made
    every call fail with a gRPC traceback. Says where the first bad character is, never the token."""
    for i, ch in enumerate(token):
        if not "!" <= ch <= "~":
            raise CliError(
                f"{source} holds a character a token cannot have ({ch!r} at position {i + 1}); "
                "a token is one line of printable ASCII without spaces, e.g. the server's token file"
            )
    return token


def _read_token(path: Path, reader: Callable[[Path], str]) -> str:
    from pulse_tui.pulse.errors import PulseError

    try:
        return reader(path)
    except PulseError as exc:
        raise CliError(exc.message) from None


def _tls(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    ca = getattr(args, "tls_ca", None)
    if not ca:
        return None
    import grpc

    try:
        pem = Path(ca).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {ca}: {exc.strerror or exc}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        # gRPC would log its own errors and then report the server as not reachable
        raise CliError(f"--tls-ca {ca} is not a PEM certificate (no BEGIN CERTIFICATE line)")
    return grpc.ssl_channel_credentials(root_certificates=pem)


def with_client(args: argparse.Namespace, fn: Callable[[PulseClient], Awaitable[int]]) -> int:
    """Connect (address, token from args/env/config), run `fn(client)`, map client errors."""
    from pulse_tui.client import ClientError, PulseClient

    config = load_config(getattr(args, "config", None))
    address = getattr(args, "connect", None) or connect_address(config.server.listen)
    try:
        token = resolve_token(args, config)
        missing: CliError | None = None
    except CliError as exc:  # a bare plugin endpoint needs none; a server says so below
        token, missing = "", exc

    async def run() -> int:
        async with PulseClient(address, token, tls=_tls(args)) as client:
            try:
                await client.probe()
            except ClientError as exc:
                if missing is not None and exc.code == "UNAUTHENTICATED":
                    raise missing from None  # the server wants the token we could not find
                raise
            if missing is not None and client.mode != EndpointMode.PLUGIN:
                raise missing
            return await fn(client)

    try:
        return asyncio.run(run())
    except ClientError as exc:
        message = exc.message
        if exc.detail and exc.detail not in message and exc.code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            message += f" (server: {exc.detail})"
        raise CliError(message, reason=str(exc.reason)) from None


# What a terminal would act on rather than show: C0 controls but tab and newline (ESC starts
# colour, cursor, title and clipboard (OSC 52) sequences; CR overwrites the line), DEL, C1
# controls, and the bidi marks, embeddings, overrides and isolates that reorder a line.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(text: str) -> str:
    """`text` made safe for a terminal: job errors, logs, results and names come from plugins and
    from whoever enqueued (`pulse.fail` takes its error from the payload), and were printed as
    they were, so a job could send escape sequences to the terminal of whoever ran `jobs show`.
    Each such character is written as its escape (`\\x1b`, `\\u202e`); --json was always safe."""
    return _UNSHOWABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def emit(args: argparse.Namespace, doc: Any, text: str) -> None:
    print(json.dumps(doc, indent=2, sort_keys=False) if args.json else shown(text))


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _ts(value: float) -> str:
    return datetime.fromtimestamp(value).astimezone().isoformat(timespec="seconds") if value else "-"


def attempts_label(j: op.Job) -> str:
    """`1/3`, or `1/3 +2↺` with two uncharged interruptions (as the console's ATT column)."""
    used = j.run_attempts if (j.run_attempts or j.retry_count or j.interrupted_attempts) else j.attempts
    label = f"{used}/{j.max_attempts}" if j.max_attempts else str(used)
    return f"{label} +{j.interrupted_attempts}↺" if j.interrupted_attempts else label


def job_summary(j: op.Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "handler": j.handler,
        "status": j.status,
        "pause_reason": j.pause_reason or None,  # user_requested | handler_paused | budget_exceeded
        "progress": {"current": j.progress_current, "total": j.progress_total},
        "attempt_count": j.attempts,
        "charged_attempts": j.run_attempts,
        "interrupted_attempts": j.interrupted_attempts,
        "max_attempts": j.max_attempts or None,  # None: unknown (a QueueService-only server)
        "retry_count": j.retry_count,
        "priority": j.priority,
        "error": j.error,
        "plugin": j.plugin,
        "source": j.source,
        "parent_job_id": j.parent_job_id or None,
        "cost_estimate": j.cost_estimate,
        "cost_actual": j.cost_actual,
        "created_at": j.created_at or None,
        "started_at": j.started_at or None,
        "completed_at": j.completed_at or None,
        # the earliest start: a delayed enqueue, a retry's backoff (seconds and RFC 3339, UTC)
        "run_at": j.run_at or None,
        "run_at_iso": _iso_utc(j.run_at),
        "waiting": fmt.waiting(j, time.time()) or None,  # "retry" | "delay" while not yet due
    }


def _iso_utc(value: float) -> str | None:
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds") if value else None


def job_doc(d: op.JobDetail) -> dict[str, Any]:
    doc = job_summary(d.job)
    doc["payload"] = _json_or_text(d.payload)
    doc["result"] = _json_or_text(d.result)
    doc["attempts"] = [
        {
            "number": a.number,
            "outcome": a.outcome,
            "started_at": a.started_at or None,
            "ended_at": a.ended_at or None,
            "error": a.error,
            "plugin": a.plugin,
            "plugin_version": a.plugin_version,
        }
        for a in d.attempts
    ]
    doc["logs"] = [
        {
            "timestamp": e.timestamp,
            "level": e.level,
            "message": e.message,
            "stage": e.stage,
            "attempt": e.attempt,
        }
        for e in d.logs
    ]
    return doc


def _progress(j: op.Job) -> str:
    return f"{j.progress_current}/{j.progress_total}" if j.progress_total else "-"


def job_text(d: op.JobDetail, children: op.CountJobsResponse | None = None) -> str:
    """`children`: the CountJobsResponse of the job's children (None: not asked)."""
    j = d.job
    lines = [
        f"job       {j.id}",
        f"handler   {j.handler}" + (f" (plugin {j.plugin})" if j.plugin else ""),
        f"status    {j.status}" + (f" ({j.pause_reason.replace('_', ' ')})" if j.pause_reason else ""),
        f"progress  {_progress(j)}",
        f"attempts  {j.attempts} (charged this run {j.run_attempts} of max {j.max_attempts or 'unknown'}, "
        f"interrupted uncharged {j.interrupted_attempts}, operator retries {j.retry_count})",
        f"created   {_ts(j.created_at)}",
    ]
    wait = fmt.waiting(j, time.time())
    if wait:
        lines.append(f"{'retry at' if wait == 'retry' else 'runs at':<10}{_ts(j.run_at)}")
    if j.source:
        lines.append(f"source    {j.source}")
    if j.parent_job_id:
        lines.append(f"parent    {j.parent_job_id}")
    if children:
        counts = ", ".join(f"{n} {s}" for s, n in children.by_status.items() if n)
        lines.append(f"children  {children.total}{'+' if children.capped else ''} ({counts})")
    if j.cost_estimate or j.cost_actual:
        lines.append(f"cost      {j.cost_actual:g} (estimate {j.cost_estimate:g})")
    if j.error:
        lines.append(f"error     {j.error}")
    for a in d.attempts:
        took = f"{a.ended_at - a.started_at:.2f}s" if a.ended_at else "running"
        extra = f"  {a.error}" if a.error else ""
        lines.append(f"  attempt {a.number}: {a.outcome} ({took}){extra}")
    if d.logs:
        lines.append("logs")
        lines.extend(f"  {e.timestamp} {e.level:<5} {e.message}" for e in d.logs)
    if d.result:
        lines.append(f"result    {d.result.decode('utf-8', 'replace')}")
    return "\n".join(lines)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


# ---------------------------------------------------------------- jobs


ENQUEUE_LINE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "handler": str,
    "payload": (dict, list, str, int, float, bool, type(None)),
    "max_attempts": int,
    "timeout_secs": int,
    "priority": int,
    "delay_secs": (int, float),
    "source": str,
    "parent_job_id": str,
    "id": str,
    "cost_estimate": (int, float),
}
ENQUEUE_MANY_MAX = 100_000  # the server's limit per call
ENQUEUE_MANY_BYTES = 4 * 1024 * 1024 - 64 * 1024  # under the server's 4 MB message limit


def read_job_lines(path: str, linenos: list[int] | None = None) -> list[op.EnqueueRequest]:
    """Parse a JSON-lines file of jobs into EnqueueRequests; any bad line is a CliError naming it,
    and then nothing is sent. `linenos`, if given, gets each request's line number."""
    from pulse_tui.protocol import operator_pb2

    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None
    reqs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise CliError(f"{where}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise CliError(f"{where}: expected a JSON object, got {type(doc).__name__}")
        unknown = sorted(set(doc) - set(ENQUEUE_LINE_FIELDS))
        if unknown:
            raise CliError(
                f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(ENQUEUE_LINE_FIELDS)}"
            )
        for key, kinds in ENQUEUE_LINE_FIELDS.items():
            if key in doc and key != "payload":
                value = doc[key]
                if isinstance(value, bool) or not isinstance(value, kinds):
                    raise CliError(f"{where}: {key} must be {_kind_name(kinds)}, got {json.dumps(value)}")
                low, high = INT64 if key == "timeout_secs" else INT32
                if isinstance(value, int) and kinds is int and not low <= value <= high:
                    raise CliError(f"{where}: {key} {value} is out of range ({low} to {high})")
        if not doc.get("handler"):
            raise CliError(f"{where}: no handler")
        payload = doc.get("payload", {})
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        if linenos is not None:
            linenos.append(lineno)
        reqs.append(
            operator_pb2.EnqueueRequest(
                handler=doc["handler"],
                payload=raw,
                max_attempts=doc.get("max_attempts", 0),
                timeout_secs=doc.get("timeout_secs", 0),
                priority=doc.get("priority", 0),
                delay_secs=float(doc.get("delay_secs", 0.0)),
                source=doc.get("source", "pulse-tui cli"),
                parent_job_id=doc.get("parent_job_id", ""),
                id=doc.get("id", ""),
                cost_estimate=float(doc.get("cost_estimate", 0.0)),
            )
        )
    if not reqs:
        raise CliError(f"{path}: no jobs (one JSON object per line)")
    if len(reqs) > ENQUEUE_MANY_MAX:
        raise CliError(
            f"{path}: {len(reqs):,} jobs; one call takes at most {ENQUEUE_MANY_MAX:,}: split the file"
        )
    size = operator_pb2.EnqueueManyRequest(jobs=reqs).ByteSize()
    if size > ENQUEUE_MANY_BYTES:
        raise CliError(
            f"{path}: {len(reqs):,} jobs make a {size / 1048576:.1f} MB request; one call carries at most"
            f" {ENQUEUE_MANY_BYTES / 1048576:.1f} MB: split the file"
        )
    return reqs


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(
        {"str": "a string", "int": "an integer", "float": "a number"}[k.__name__] for k in kinds
    )


def cmd_jobs_enqueue_many(args: argparse.Namespace) -> int:
    if (
        args.handler
        or args.wait
        or args.payload != "{}"
        or args.timeout
        or args.max_attempts
        or args.priority
        or args.job_id
        or args.parent
        or args.cost_estimate
    ):
        raise CliError(
            "--from takes every job's fields from the file: give no handler, --payload, --wait, ...", 2
        )
    linenos: list[int] = []
    reqs = read_job_lines(args.from_file, linenos)

    async def run(client: PulseClient) -> int:
        ids = await client.enqueue_many(reqs)
        emit(args, {"enqueued": len(ids), "ids": ids}, "\n".join(ids))
        return 0

    try:
        return with_client(args, run)
    except CliError as exc:
        # the server names a refused job by its index in the call ("job 0 of 2: ..."): name its
        # line in the file instead, as the file's own errors do
        which = re.match(r"job (\d+) of (\d+): (.*)", exc.message, re.S)
        if which and int(which[2]) == len(reqs) and int(which[1]) < len(reqs):
            exc.message = f"{args.from_file}:{linenos[int(which[1])]}: {which[3]}"
            exc.args = (exc.message,)
        raise


def cmd_jobs_enqueue(args: argparse.Namespace) -> int:
    if getattr(args, "from_file", None) is not None:
        return cmd_jobs_enqueue_many(args)
    if not args.handler:
        raise CliError("give a handler name, or --from FILE.jsonl")
    try:
        json.loads(args.payload)
    except ValueError as exc:
        raise CliError(f"--payload is not JSON: {exc}") from None

    async def run(client: PulseClient) -> int:
        job = await client.enqueue(
            args.handler,
            args.payload.encode(),
            max_attempts=args.max_attempts,
            timeout_secs=args.timeout,
            priority=args.priority,
            source="pulse-tui cli",
            parent_job_id=args.parent,
            cost_estimate=args.cost_estimate,
            job_id=args.job_id,
        )
        if not args.wait:
            emit(args, job_summary(job), job.id)
            return 0
        detail = await wait_for_job(client, job.id, job.handler, quiet=args.json)
        emit(args, job_doc(detail), job_text(detail))
        if detail.job.status != JobStatus.COMPLETED:
            print(
                shown(f"error: job {job.id} {detail.job.status}: {detail.job.error or 'no error message'}"),
                file=sys.stderr,
            )
            return 1
        return 0

    return with_client(args, run)


async def wait_for_job(
    client: PulseClient, job_id: str, handler: str, *, quiet: bool = False
) -> op.JobDetail:
    """Follow a job until it finishes, printing progress changes on stderr unless `quiet`."""
    from pulse_tui.client import job_filter

    last = ""

    def show(j: op.Job) -> None:
        nonlocal last
        line = f"{j.id}: {j.status} {_progress(j)}"
        if not quiet and line != last:
            print(shown(line), file=sys.stderr, flush=True)
            last = line

    if not client.can(Capability.WATCH):  # QueueService-only server: poll
        while True:
            d = await client.get_job(job_id)
            show(d.job)
            if d.job.status in FINISHED:
                return d
            await asyncio.sleep(0.5)

    events = client.watch_jobs(job_filter(handler=handler))
    try:
        await anext(events)  # the server's first heartbeat: the watch is registered
        job = (await client.get_job(job_id)).job
        while job.status not in FINISHED:
            show(job)
            event = await anext(events)
            if event.kind == "upsert" and event.job.id == job_id:
                job = event.job
            elif event.kind == "resync":
                job = (await client.get_job(job_id)).job
        show(job)
    finally:
        await events.aclose()
    return await client.get_job(job_id)


def cmd_ix(args: argparse.Namespace) -> int:
    """`ix <command>` routes to the handler script `python.<command>` (design phase 5)."""
    command = args.ix_command
    from pulse_tui.script_template import NAME_RE

    if not NAME_RE.fullmatch(command):  # said as "handler python. not found" before
        raise CliError(
            f"ix {command!r}: a handler script's name is a lowercase letter, then letters, digits, - or _"
            " (at most 64)",
            2,
        )
    handler = f"python.{command}"
    args.handler, args.timeout, args.max_attempts, args.priority = handler, 0, 0, 0
    args.parent = args.cost_estimate = args.job_id = None  # `jobs enqueue` options `ix` has not
    try:
        return cmd_jobs_enqueue(args)
    except CliError as exc:
        if exc.reason == Reason.UNKNOWN_HANDLER:
            raise CliError(
                f"handler {handler} not found; create it with the handler editor (:ix {command} in the "
                "console) or save a script"
            ) from None
        raise


def cmd_jobs_show(args: argparse.Namespace) -> int:
    async def run(client: PulseClient) -> int:
        from pulse_tui.client import job_filter

        detail = await client.get_job(args.id)
        children = None
        if client.can(Capability.COUNTS):
            children = await client.count_jobs(job_filter(parent_job_id=detail.job.id))
        doc = job_doc(detail)
        if children is not None:
            doc["children"] = {s: n for s, n in children.by_status.items() if n}
        emit(args, doc, job_text(detail, children if children is not None and children.total else None))
        return 0

    return with_client(args, run)


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from pulse_tui.client import job_filter

    if args.limit < 1 or args.limit > 1000:
        raise CliError(f"--limit must be between 1 and 1000, got {args.limit}")

    async def run(client: PulseClient) -> int:
        flt = job_filter(args.status, args.handler, parent_job_id=args.parent)
        resp = await client.list_jobs(flt, limit=args.limit)
        now = time.time()
        rows = [
            [
                j.id,
                j.handler,
                fmt.waiting_label(j, now).removeprefix("◷ ") or j.status,
                _progress(j),
                attempts_label(j),
                _ts(j.created_at),
                j.source or "-",
                j.parent_job_id or "-",
                j.error[:60],
            ]
            for j in resp.jobs
        ]
        header = ["ID", "HANDLER", "STATUS", "PROGRESS", "ATT", "CREATED", "SOURCE", "PARENT", "ERROR"]
        text = _table(rows, header)
        if resp.has_more:
            text += f"\n(more jobs; raise --limit, now {args.limit})"
        emit(args, {"jobs": [job_summary(j) for j in resp.jobs], "has_more": resp.has_more}, text)
        return 0

    return with_client(args, run)


def cmd_jobs_delete(args: argparse.Namespace) -> int:
    from pulse_tui.client import job_filter

    if args.ids and (args.status or args.handler):
        raise CliError("give job ids or --status/--handler, not both", 2)
    if not args.ids and not (args.status or args.handler):
        raise CliError("nothing selected: give job ids, or --status/--handler for every match", 2)
    bad = [s for s in args.status if s not in FINISHED]
    if bad:
        raise CliError(
            f"only finished jobs can be deleted; --status {bad[0]} is not one of {', '.join(sorted(FINISHED))}",
            2,
        )
    if not 1 <= args.limit <= 100_000:
        raise CliError(f"--limit must be between 1 and 100000, got {args.limit}", 2)
    handler = args.handler
    glob = handler if any(c in handler for c in "*?") else (handler + "*" if handler else "")
    flt = job_filter(args.status or sorted(FINISHED), handler_glob=glob)

    async def run(client: PulseClient) -> int:
        if args.ids:
            resp = await client.delete_jobs(list(args.ids), dry_run=args.dry_run)
        else:
            resp = await client.delete_jobs(flt=flt, limit=args.limit, dry_run=True)
            n = len(resp.affected_ids)
            more = "+" if resp.truncated else ""
            if not args.yes or args.dry_run:
                emit(
                    args,
                    {"would_delete": n, "truncated": resp.truncated, "deleted": 0},
                    f"would delete {n:,}{more} finished job(s)"
                    + ("" if args.dry_run else "; add --yes to delete them"),
                )
                return 0
            resp = await client.delete_jobs(flt=flt, limit=args.limit)
        verb = "would delete" if args.dry_run else "deleted"
        doc = {
            "deleted" if not args.dry_run else "would_delete": list(resp.affected_ids),
            "failures": [{"id": f.id, "error": f.error} for f in resp.failures],
        }
        if args.json or resp.affected_ids or not resp.failures:  # ids none of which exist: the errors only
            emit(args, doc, f"{verb} {len(resp.affected_ids):,} job(s)")
        if not args.json:
            for f in resp.failures:
                print(f"error: {shown(f.error)}", file=sys.stderr)
        return 1 if resp.failures else 0

    return with_client(args, run)


def cmd_jobs_pause_resume(args: argparse.Namespace) -> int:
    """jobs pause|resume: by ids (as cancel and retry), or every queued (pause) / paused (resume)
    job matching --handler / --parent, up to --limit, as the console's alt+p / alt+u."""
    from pulse_tui.client import job_filter

    filtered = bool(args.handler or args.parent or args.status)
    if args.ids and filtered:
        raise CliError("give job ids or --handler/--parent/--status, not both", 2)
    if not args.ids and not filtered:
        raise CliError("nothing selected: give job ids, or --handler/--parent/--status for every match", 2)
    if not args.ids and not 1 <= args.limit <= 100_000:
        raise CliError(f"--limit must be between 1 and 100000, got {args.limit}", 2)
    handler = args.handler
    glob = handler if any(c in handler for c in "*?") else (handler + "*" if handler else "")
    flt = job_filter([args.target_status], handler_glob=glob, parent_job_id=args.parent)
    method, done = BULK_ACTIONS[args.action]

    async def run(client: Any) -> int:
        call = getattr(client, method)
        if args.ids:
            resp = await call(list(args.ids), dry_run=args.dry_run)
        else:
            resp = await call(flt=flt, limit=args.limit, dry_run=args.dry_run)
        verb = f"would be {done}" if args.dry_run else done
        extra = {"dry_run": args.dry_run, "truncated": resp.truncated} if not args.ids or args.dry_run else {}
        more = "+" if resp.truncated else ""
        if args.ids and not args.dry_run:
            text = "\n".join(f"{i}: {done}" for i in resp.affected_ids)
        elif args.ids and not resp.affected_ids and resp.failures:
            text = ""  # ids none of which would change: the errors say why
        else:
            what = f"{args.target_status} job(s)" if not args.ids else "job(s)"
            text = f"{len(resp.affected_ids):,}{more} {what} {verb}"
        return _bulk_report(args, resp, text, **extra)  # affected: with --dry-run, what would be

    return with_client(args, run)


BULK_ACTIONS = {  # jobs ACTION: (client method, what the text output says of each job)
    "cancel": ("cancel_jobs", "cancelled"),
    "retry": ("retry_jobs", "re-queued"),
    "pause": ("pause_jobs", "paused"),
    "resume": ("resume_jobs", "resumed"),
}


def cmd_jobs_bulk(args: argparse.Namespace) -> int:
    async def run(client: PulseClient) -> int:
        method, done = BULK_ACTIONS[args.action]
        resp = await getattr(client, method)(list(args.ids))
        return _bulk_report(args, resp, "\n".join(f"{i}: {done}" for i in resp.affected_ids))

    return with_client(args, run)


def _bulk_report(args: argparse.Namespace, resp: Any, text: str, **extra: Any) -> int:
    """Print what a bulk action did (the ids it affected, its failures on stderr); 1 if any failed."""
    doc: dict[str, Any] = {
        "affected": list(resp.affected_ids),
        "failures": [{"id": f.id, "error": f.error} for f in resp.failures],
        **extra,
    }
    if args.json or text:
        emit(args, doc, text)
    for f in resp.failures:
        print(f"error: {shown(f.error)}", file=sys.stderr)
    return 1 if resp.failures else 0


# ---------------------------------------------------------------- schedules


def schedule_doc(s: op.Schedule) -> dict[str, Any]:
    return {
        "id": s.id,
        "handler": s.handler,
        "cadence": s.cadence,
        "interval_secs": s.interval_secs or None,
        "cron": s.cron or None,
        "timezone": s.timezone or None,
        "state": s.state,
        "overlap": s.overlap,
        "jitter_secs": s.jitter_secs,
        "payload": _json_or_text(s.payload),
        "next_run_at": s.next_run_at or None,
        "last_run_at": s.last_run_at or None,
        "last_status": s.last_status or None,
        "last_job_id": s.last_job_id or None,
        "run_count": s.run_count,
        "owner": s.owner,
        "metadata": _json_or_text(s.metadata.encode()),
        "description": s.description,
        "created_at": s.created_at or None,
        "updated_at": s.updated_at or None,
    }


def execution_doc(e: op.Execution) -> dict[str, Any]:
    return {
        "id": e.id,
        "job_id": e.job_id or None,
        "status": e.status,
        "started_at": e.started_at or None,
        "completed_at": e.completed_at or None,
        "duration_ms": e.duration_ms if e.completed_at else None,
        "error": e.error,
        "note": e.note,
    }


def _next_text(s: op.Schedule) -> str:
    return _ts(s.next_run_at) if s.state == "active" else f"({s.state})"


def cmd_schedules_list(args: argparse.Namespace) -> int:
    async def run(client: PulseClient) -> int:
        found = await client.list_schedules(args.state, args.owner, args.handler)
        rows = [
            [
                s.id,
                s.handler,
                s.cadence,
                s.state,
                _next_text(s),
                s.last_status or "-",
                str(s.run_count),
                s.owner,
            ]
            for s in found
        ]
        text = _table(rows, ["ID", "HANDLER", "CADENCE", "STATE", "NEXT RUN", "LAST", "RUNS", "OWNER"])
        emit(args, {"schedules": [schedule_doc(s) for s in found]}, text if found else "no schedules")
        return 0

    return with_client(args, run)


def cmd_schedules_show(args: argparse.Namespace) -> int:
    if not 1 <= args.runs <= 1000:
        raise CliError(f"--runs must be between 1 and 1000, got {args.runs}")

    async def run(client: PulseClient) -> int:
        d = await client.get_schedule(args.id, executions=args.runs)
        s = d.schedule
        doc = {
            **schedule_doc(s),
            "next_runs": list(d.next_runs),
            "executions": [execution_doc(e) for e in d.executions],
        }
        lines = [
            f"schedule {s.id}  {s.handler}  {s.cadence}  [{s.state}]  owner {s.owner}",
            f"overlap {s.overlap}  jitter {s.jitter_secs}s  runs {s.run_count}  payload {s.payload.decode()}",
            "next runs: " + (", ".join(_ts(t) for t in d.next_runs) or "-"),
            "",
        ]
        rows = [
            [
                e.id,
                e.status,
                _ts(e.started_at),
                f"{e.duration_ms} ms" if e.completed_at else "-",
                e.job_id or "-",
                (e.note + " " + e.error).strip()[:70],
            ]  # fmt: skip
            for e in d.executions
        ]
        lines.append(
            _table(rows, ["RUN", "STATUS", "STARTED", "DURATION", "JOB", "NOTE"]) if rows else "no runs yet"
        )
        emit(args, doc, "\n".join(lines))
        return 0

    return with_client(args, run)


def cmd_schedules_create(args: argparse.Namespace) -> int:
    from pulse_tui.cadence import CadenceError, check_cron, parse_every

    try:
        json.loads(args.payload)
    except ValueError as exc:
        raise CliError(f"--payload is not JSON: {exc}") from None
    fields: dict[str, Any] = {
        "overlap": args.overlap,
        "jitter_secs": args.jitter,
        "paused": args.paused,
        "run_at_once": args.now,
    }
    try:
        if args.every:
            if args.tz:
                raise CliError("--tz only applies to --cron")
            fields["interval_secs"] = parse_every(args.every)
        else:
            check_cron(args.cron, args.tz)
            fields["cron"], fields["timezone"] = args.cron, args.tz
    except CadenceError as exc:
        raise CliError(exc.message) from None

    async def run(client: PulseClient) -> int:
        s = await client.create_schedule(args.handler, args.payload.encode(), **fields)
        emit(
            args,
            schedule_doc(s),
            f"created schedule {s.id}: {s.handler} {s.cadence}, next run {_next_text(s)}",
        )
        return 0

    return with_client(args, run)


def cmd_schedules_update(args: argparse.Namespace) -> int:
    from pulse_tui.cadence import CadenceError, check_cron, parse_every

    fields: dict[str, Any] = {}
    try:
        if args.every:
            if args.tz:
                raise CliError("--tz only applies to --cron")
            fields["interval_secs"] = parse_every(args.every)
        elif args.cron:
            check_cron(args.cron, args.tz or "")
            fields["cron"], fields["timezone"] = args.cron, args.tz or ""
        elif args.tz is not None:
            fields["timezone"] = args.tz
    except CadenceError as exc:
        raise CliError(exc.message) from None
    if args.payload is not None:
        try:
            json.loads(args.payload)
        except ValueError as exc:
            raise CliError(f"--payload is not JSON: {exc}") from None
        fields["payload"] = args.payload.encode()
    if args.overlap is not None:
        fields["overlap"] = args.overlap
    if args.jitter is not None:
        fields["jitter_secs"] = args.jitter
    if not fields:
        raise CliError("nothing to change: give --every, --cron, --tz, --payload, --overlap or --jitter")

    async def run(client: PulseClient) -> int:
        s = await client.update_schedule(args.id, **fields)
        emit(
            args,
            schedule_doc(s),
            f"updated schedule {s.id}: {s.handler} {s.cadence}, next run {_next_text(s)}",
        )
        return 0

    return with_client(args, run)


def cmd_schedules_action(args: argparse.Namespace) -> int:
    from pulse_tui.client import ClientError

    async def run(client: PulseClient) -> int:
        docs, failed = [], 0
        for sid in dict.fromkeys(args.ids):
            try:
                r = await client.schedule_action(args.action, sid)
            except ClientError as exc:
                failed += 1
                print(shown(f"error: {sid}: {exc.message}"), file=sys.stderr)
                continue
            if args.action == "run":
                docs.append({"schedule": schedule_doc(r.schedule), "run": execution_doc(r.execution)})
                if not args.json:
                    what = f"job {r.execution.job_id}" if r.execution.job_id else r.execution.error
                    print(shown(f"{sid}: run {r.execution.id} started ({what})"))
            else:
                docs.append({"schedule": schedule_doc(r)})
                if not args.json:
                    print(f"{sid}: {r.state}")
        if args.json:
            print(json.dumps({"results": docs}, indent=2))
        return 1 if failed else 0

    return with_client(args, run)


# ---------------------------------------------------------------- plugins / handlers / config


def plugin_state_text(p: op.Plugin) -> str:
    """`ready`, or `ready; old instance draining (3 jobs)` while a reload drains."""
    if not p.draining_instances:
        return p.state
    n, k = p.draining_jobs, p.draining_instances
    old = "old instance" if k == 1 else f"{k} old instances"
    return f"{p.state}; {old} draining ({n} job{'s' if n != 1 else ''})"


def _plugin_doc(p: op.Plugin) -> dict[str, Any]:
    return {
        "name": p.name,
        "state": p.state,
        "healthy": p.healthy,
        "health_message": p.health_message,
        "version": p.version,
        "pid": p.pid,
        "endpoint": p.endpoint,
        "restarts": p.restarts,
        "handlers": list(p.handlers),
        "last_error": p.last_error,
        "enabled": p.enabled,
        "running_jobs": p.running_jobs,
        "refused_handlers": list(p.refused_handlers),
        "unserved": list(p.unserved),
        "draining_jobs": p.draining_jobs,
        "draining_instances": p.draining_instances,
    }


def cmd_plugins_list(args: argparse.Namespace) -> int:
    async def run(client: PulseClient) -> int:
        if client.mode == EndpointMode.PLUGIN:  # a bare plugin endpoint: its own metadata and health
            info = await client.plugin_endpoint()
            doc = {
                "endpoint": client.address,
                "name": info.name,
                "version": info.version,
                "description": info.description,
                "author": info.author,
                "license": info.license,
                "healthy": info.healthy,
                "health_message": info.health_message,
                "health_details": dict(info.health_details),
                "handlers": None,  # announced to a host at Initialize, not to a client
            }
            health = "healthy" if info.healthy else f"unhealthy: {info.health_message}"
            lines = [
                f"bare plugin endpoint {client.address}",
                f"plugin    {info.name} {info.version}",
                f"health    {health}",
            ]
            lines += [f"          {k}: {v}" for k, v in sorted(info.health_details.items())]
            if info.author or info.license:
                lines.append(f"author    {info.author or '—'}   license {info.license or '—'}")
            lines.append("handlers  unknown (a plugin announces its handlers to the host at Initialize)")
            emit(args, doc, "\n".join(lines))
            return 0
        plugins = await client.list_plugins()
        rows = [
            [
                p.name,
                plugin_state_text(p),
                p.version,
                str(p.restarts),
                ", ".join(p.handlers),
                p.last_error[:50],
            ]
            for p in plugins
        ]
        text = _table(rows, ["PLUGIN", "STATE", "VERSION", "RESTARTS", "HANDLERS", "LAST ERROR"])
        for p in plugins:
            if p.refused_handlers:
                text += f"\n{p.name}: refused handler names: " + "; ".join(p.refused_handlers)
            for sentence in p.unserved:
                text += f"\n{p.name} {sentence}"
        emit(args, {"plugins": [_plugin_doc(p) for p in plugins]}, text if plugins else "no plugins")
        return 0

    return with_client(args, run)


def cmd_plugins_show(args: argparse.Namespace) -> int:
    from pulse_tui.client import config_constraints

    async def run(client: PulseClient) -> int:
        p = await client.get_plugin(args.name, tail_lines=max(args.tail, 0))
        doc = {
            **_plugin_doc(p),
            "description": p.description,
            "config_schema": [
                {
                    "name": f.name,
                    "type": f.type,
                    "description": f.description,
                    "default": f.default_value,
                    "required": f.required,
                    "min_value": f.min_value,
                    "max_value": f.max_value,
                    "pattern": f.pattern,
                    "element_type": f.element_type,
                }
                for f in p.config_schema
            ],
            "output_tail": list(p.output_tail),
        }
        lines = [
            f"plugin    {p.name} {p.version}".rstrip() + (f" — {p.description}" if p.description else ""),
            f"state     {plugin_state_text(p)}"
            + (f" ({'healthy' if p.healthy else p.health_message or 'not healthy'})" if p.enabled else ""),
            f"process   pid {p.pid or '—'} · endpoint {p.endpoint or '—'} · restarts {p.restarts}"
            f" · running jobs {p.running_jobs}",
            f"handlers  {', '.join(p.handlers) or '—'}",
        ]
        lines += [f"refused   {why}" for why in p.refused_handlers]
        lines += [f"not served: {p.name} {sentence}" for sentence in p.unserved]
        if p.last_error:
            lines.append(f"last error  {p.last_error}")
        for f in p.config_schema:
            limits = config_constraints(f)
            lines.append(
                f"config    {f.name} ({f.type}{', required' if f.required else ''}{', ' + limits if limits else ''})"
                f" {f.description}"
            )
        if args.tail > 0 and p.output_tail:
            lines += ["output:", *(f"  {line}" for line in p.output_tail)]
        emit(args, doc, "\n".join(lines))
        return 0

    return with_client(args, run)


def cmd_plugins_reload(args: argparse.Namespace) -> int:
    async def run(client: PulseClient) -> int:
        r = await client.reload_plugin(args.name)
        doc = {
            "plugin": _plugin_doc(r.plugin),
            "added": list(r.added),
            "removed": list(r.removed),
            "conflicts": list(r.conflicts),
            "drained_jobs": r.drained_jobs,
            "draining_jobs": r.draining_jobs,
        }
        text = (
            f"reloaded {r.plugin.name} ({r.plugin.state}); added: {', '.join(r.added) or '-'}; "
            f"removed: {', '.join(r.removed) or '-'}; conflicts: {', '.join(r.conflicts) or '-'}"
        )
        if r.draining_jobs:
            text += (
                f"; {r.draining_jobs} in-flight job(s) keep running on the old instance until they end "
                "(new jobs go to the new one)"
            )
        emit(args, doc, text)
        return 0

    return with_client(args, run)


def handler_doc(h: Any) -> dict[str, Any]:
    return {
        "name": h.name,
        "owner": h.owner,
        "claimants": list(h.claimants),
        "conflict": h.conflict,
        "explanation": h.explanation,
        "builtin": h.builtin,
        "pinned": h.pinned,
        "qualified": list(h.qualified),
        "queued": h.queued,
        "running": h.running,
        "failed": h.failed,
        "paused": h.paused,
        "pause_reason": h.pause_reason or None,
        "paused_at": h.paused_at or None,
        "paused_jobs": h.paused_jobs,
        "changed_jobs": h.changed_jobs,  # pause / resume: the jobs just held / released
    }


def cmd_handlers_pause(args: argparse.Namespace) -> int:
    async def run(client: PulseClient) -> int:
        if args.action == "pause":
            h = await client.pause_handler(args.name)
            text = f"{h.name}: paused; {h.changed_jobs:,} job(s) held (running ones finish)"
        else:
            h = await client.resume_handler(args.name)
            text = f"{h.name}: resumed; {h.changed_jobs:,} held job(s) released"
        emit(args, handler_doc(h), text)
        return 0

    return with_client(args, run)


def cmd_handlers_list(args: argparse.Namespace) -> int:
    async def run(client: PulseClient) -> int:
        handlers = await client.list_handlers(conflicts_only=args.conflicts)
        docs = [handler_doc(h) for h in handlers]
        rows = [
            [
                h.name,
                h.owner or ("built-in" if h.builtin else "-"),
                h.conflict or "-",
                str(h.queued),
                str(h.running),
                f"paused ({h.paused_jobs:,} held)" if h.paused else "-",
                h.explanation,
            ]
            for h in handlers
        ]
        text = _table(rows, ["HANDLER", "OWNER", "CONFLICT", "QUEUED", "RUNNING", "PAUSED", "NOTE"])
        emit(args, {"handlers": docs}, text if handlers else "no handlers")
        return 0

    return with_client(args, run)


def cmd_config(args: argparse.Namespace) -> int:
    if not args.print_default:
        raise CliError("nothing to do; try `pulse-tui config --print-default`", 2)
    try:
        from pulse_tui.config import default_config_text
    except ImportError:
        raise CliError("this build has no default configuration to print") from None
    sys.stdout.write(default_config_text())
    return 0


# ---------------------------------------------------------------- TUI


EMBEDDED_GRACE_SECS = 2.0


def run_tui(args: argparse.Namespace) -> int:
    """Start the TUI. Without --connect and with nothing answering at the configured address,
    start an embedded `pulse-tui serve` child first and stop it on exit (unless --keep-server)."""
    try:
        from pulse_tui.app import PulseApp
    except ImportError as exc:
        raise CliError(f"the TUI is not available in this build ({exc})") from None
    config = load_config(getattr(args, "config", None))
    theme = args.theme or config.tui.theme
    if theme:  # before a server is started for a console that would not start
        from textual.theme import BUILTIN_THEMES

        if theme not in BUILTIN_THEMES:
            where = "--theme" if args.theme else "[tui] theme"
            raise CliError(f"{where}: unknown theme {theme!r}; one of {', '.join(sorted(BUILTIN_THEMES))}", 2)
    address = getattr(args, "connect", None)
    child: ServerProcess | None = None
    app: PulseApp | None = None
    kept: dict[str, Any] | None = None
    if address is None:
        address = connect_address(config.server.listen)
        if not _answers(address):
            child = _start_embedded(args, config)
            address = connect_address(child.address)
        else:
            kept = kept_server(config)
            if kept is not None and kept.get("address") != address:
                kept = None
    try:
        try:
            token = resolve_token(args, config, read_only=args.read_only)
        except NoToken:  # a token given that cannot be used is said at once (CliError)
            token = ""  # a bare plugin endpoint needs none; a server will say the token is missing
        if child is not None and not args.no_demo:
            from pulse_tui.demo import seed_demo

            admin = resolve_token(args, config)
            try:
                seed_demo(address, admin, Path(config.server.data_dir).expanduser())
            except Exception as exc:
                print(f"pulse-tui: could not enqueue the demo jobs: {exc}", file=sys.stderr)
        app = PulseApp(
            address=address,
            token=token,
            read_only=args.read_only,
            keymap=config.tui.keys,
            tls=_tls(args),
            embedded=child is not None,
            theme=theme,
            theme_file=Path(config.server.data_dir).expanduser() / "tui-theme",
            notice=(
                f"attached to the server an earlier console kept running (pid {kept['pid']});"
                " `pulse-tui server stop` stops it"
                if kept
                else ""
            ),
        )
        app.run()
        if child is not None and app.keep_server and not args.keep_server:
            pid = child.proc.pid if child.proc is not None else "?"
            print(
                f"pulse-tui: the server at {address} keeps running (pid {pid}); `pulse-tui` attaches"
                " to it, `pulse-tui server stop` stops it"
            )
        return app.return_code or 0
    finally:
        if child is not None and not args.keep_server and not (app is not None and app.keep_server):
            child.stop()
            _forget_kept(config, child)


def _answers(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at `address`."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _start_embedded(args: argparse.Namespace, config: Config) -> ServerProcess:
    data_dir = Path(config.server.data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # the console is waiting on quit: running jobs get 2 s, then are re-queued (kept, not lost)
    serve_args: list[str] = ["--grace", str(EMBEDDED_GRACE_SECS)]
    if getattr(args, "config", None):
        serve_args += ["--config", args.config]
    child = ServerProcess(serve_args, log_path=data_dir / "server.log", new_session=True)
    child.start()
    # recorded while it runs, so that a server the console leaves behind (kept on quit, or the
    # console killed: the server leads its own session) can be found and stopped later
    assert child.proc is not None
    record = {
        "pid": child.proc.pid,
        "address": connect_address(child.address),
        "log": str(data_dir / "server.log"),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = data_dir / f"{KEPT_SERVER_FILE}.tmp"
    tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
    tmp.replace(data_dir / KEPT_SERVER_FILE)
    return child


KEPT_SERVER_FILE = "server.json"


def _kept_path(config: Config) -> Path:
    return Path(config.server.data_dir).expanduser() / KEPT_SERVER_FILE


def _forget_kept(config: Config, child: ServerProcess) -> None:
    path = _kept_path(config)
    try:
        if (
            child.proc is not None
            and json.loads(path.read_text(encoding="utf-8")).get("pid") == child.proc.pid
        ):
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _serve_alive(pid: int) -> bool:
    """Whether `pid` is a live `pulse-tui serve` process (a pid reused by another program, or a
    process that exited and was not reaped yet, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not the one this data dir recorded
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True  # no /proc (macOS): the pid answering is all we can check
    try:
        if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
        argv = proc.joinpath("cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return b"serve" in argv and any(b"pulse_tui" in a or b"pulse-tui" in a for a in argv)


def kept_server(config: Config) -> dict[str, Any] | None:
    """The server a console of this data dir started and left running, if it still runs (a stale
    record is removed)."""
    path = _kept_path(config)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        pid = int(record["pid"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if not _serve_alive(pid):
        path.unlink(missing_ok=True)
        return None
    return dict(record)


def _no_kept_server(config: Config) -> CliError:
    address = connect_address(config.server.listen)
    hint = (
        f"; something answers at {address}, but not a server a console started (stop it where it was started)"
        if _answers(address)
        else ""
    )
    return CliError(f"no server started by the console is running (data dir {config.server.data_dir}){hint}")


def cmd_server_status(args: argparse.Namespace) -> int:
    config = load_config(getattr(args, "config", None))
    kept = kept_server(config)
    if kept is None:
        raise _no_kept_server(config)
    if args.json:
        print(json.dumps(kept))
    else:
        print(
            f"running: pid {kept['pid']} at {kept['address']} since {kept.get('started_at', '?')}"
            f" (log {kept.get('log', '?')})"
        )
    return 0


def cmd_server_stop(args: argparse.Namespace) -> int:
    """SIGTERM the server the console started, then wait for it to exit: running jobs get the
    server's grace and are re-queued, as at any stop."""
    config = load_config(getattr(args, "config", None))
    kept = kept_server(config)
    if kept is None:
        raise _no_kept_server(config)
    pid = int(kept["pid"])
    started = time.monotonic()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = started + args.timeout
    while _serve_alive(pid):
        if time.monotonic() > deadline:
            raise CliError(
                f"the server (pid {pid}) is still running after {args.timeout:g}s; `kill -9 {pid}` forces it"
            )
        time.sleep(0.05)
    took = time.monotonic() - started
    _kept_path(config).unlink(missing_ok=True)
    if args.json:
        print(json.dumps({"stopped": pid, "address": kept["address"], "seconds": round(took, 2)}))
    else:
        print(f"stopped the server at {kept['address']} (pid {pid}) in {took:.1f}s")
    return 0
