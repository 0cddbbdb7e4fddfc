"""pulse.toml: the server's and console's configuration, with every default in one place.

The dataclass field defaults below *are* the defaults; `default_config_text()` renders them
into an annotated example, and loading no file at all is the same as loading that text. Every
mistake becomes a ConfigError that names the file, the line and the key, e.g.

    examples/demo.toml:12: plugins[1].command: expected a list of strings, got "python x.py"

tomllib does not report positions, so `_Locator` scans the text for table headers and keys and
maps a key path (`plugins[1].command`) to the line where it is written; when a key is missing
entirely the error points at its table.

Paths: relative `cwd`, `db` and relative file arguments of `command` resolve against the config
file's folder. Placeholders: `{python}` (the running interpreter, so examples work in any venv),
`{data_dir}` and `{config_dir}` work in `command`, `cwd`, `env` and plugin `config` values.
Plugin names must be unique and may not be `pulse` (reserved: built-ins are `pulse/<name>`).

Lookup order (`find_config`): explicit path, $PULSE_CONFIG, the user config dir
(platformdirs user_config_dir("pulse-tui")/pulse.toml), else built-in defaults.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

APP = "pulse-tui"
RETENTION_STATUSES = ("completed", "failed", "cancelled")  # keys of a [retention.handlers."name"] table
RESERVED_PLUGIN_NAMES = frozenset({"pulse"})
PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # used with fullmatch


def default_data_dir() -> str:
    return platformdirs.user_data_dir(APP)


def user_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "pulse.toml"


class ConfigError(Exception):
    """A mistake in a config file. `str()` is the full `file:line: key: message` text."""

    def __init__(self, message: str, *, file: str = "", line: int = 0, key: str = "") -> None:
        self.file, self.line, self.key, self.message = file, line, key, message
        where = ":".join(part for part in (file, str(line) if line else "") if part)
        text = f"{key}: {message}" if key else message
        super().__init__(f"{where}: {text}" if where else text)


@dataclass(slots=True)
class ServerConfig:
    listen: str = "127.0.0.1:7878"
    data_dir: str = field(default_factory=default_data_dir)
    db: str = ""  # "" = SQLite file pulse.db in data_dir; "postgresql://..." selects PostgreSQL
    concurrency: int = 128  # jobs in flight; plugin round trips need many to keep a plugin busy
    prefetch: int = 0  # jobs claimed ahead of a free slot (their timeout starts with the slot); 0 = off
    default_timeout: float = 3600.0
    max_payload_bytes: int = 1024 * 1024
    retention_days: float = 7.0
    grace_secs: float = 10.0
    max_children: int = 10_000  # child jobs one job may have (plugins enqueue them while it runs)
    max_child_depth: int = 5  # levels of children below a top job
    node: str = ""  # this server's name in a shared (PostgreSQL) queue; "" = host:pid
    durability: str = "full"  # SQLite: "full" (survives power loss) or "normal" (survives a crash)
    lock_timeout_secs: float = 5.0  # SQLite: how long a write waits for another process's lock
    metrics_listen: str = ""  # Prometheus endpoint HOST:PORT ("" = off; e.g. 127.0.0.1:9464)
    metrics_auth: bool = False  # the endpoint wants the admin or read-only token (Bearer)

    @property
    def is_postgres(self) -> bool:
        return self.db.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        """The SQLite database file (meaningless when `is_postgres`)."""
        return Path(self.db) if self.db else Path(self.data_dir) / "pulse.db"


@dataclass(slots=True)
class PluginConfig:
    name: str
    command: list[str] = field(default_factory=list)  # argv; the host appends `--port N`
    endpoint: str = ""  # host:port of an already running plugin
    config: dict[str, str] = field(default_factory=dict)  # passed to Initialize
    enabled: bool = True
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    startup_timeout: float = 10.0
    # seconds to wait for `QNTX_PLUGIN_PORT=N` before probing the port the plugin was given with
    # Metadata (plugins that never print it); None: QNTX's 2 s, at most half of startup_timeout
    port_wait: float | None = None
    batch: bool = True  # use the plugin's BatchExecService when it offers one (false: ExecuteJob per job)

    @property
    def port_wait_secs(self) -> float:
        if self.port_wait is not None:
            return min(self.port_wait, self.startup_timeout)
        return min(2.0, self.startup_timeout / 2)


@dataclass(slots=True)
class ScheduleConfig:
    """A `[[schedules]]` entry: one recurring job, reconciled at server start (owner `config`)."""

    handler: str
    every: int = 0  # seconds ("5m" in the file); exactly one of every and cron
    cron: str = ""
    timezone: str = ""  # IANA zone for cron ("" = UTC)
    payload: str = "{}"  # JSON text (a TOML table is turned into JSON)
    overlap: str = "skip"  # skip | allow
    jitter_secs: int = 0
    enabled: bool = True


@dataclass(slots=True)
class Limits:
    """[budgets] daily / monthly, in the unit plugins report cost in (see pulse/budgets.py)."""

    daily: float = 0.0  # 0 = no limit
    monthly: float = 0.0

    def get(self, period: str) -> float:
        return self.daily if period == "daily" else self.monthly


@dataclass(slots=True)
class BudgetConfig:
    total: Limits = field(default_factory=Limits)  # every job
    handlers: dict[str, Limits] = field(default_factory=dict)  # bare handler name -> its limits

    @property
    def empty(self) -> bool:
        return not (self.total.daily or self.total.monthly) and not any(
            lim.daily or lim.monthly for lim in self.handlers.values()
        )


@dataclass(slots=True)
class TuiConfig:
    keys: dict[str, str] = field(default_factory=dict)  # binding id -> key
    theme: str = ""  # a Textual theme name ("" = textual-dark, or the last one picked)


@dataclass(slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    plugins: list[PluginConfig] = field(default_factory=list)
    handlers: dict[str, str] = field(default_factory=dict)  # handler name -> pinned owner plugin
    handler_limits: dict[str, int] = field(default_factory=dict)  # handler name -> max running
    schedules: list[ScheduleConfig] = field(default_factory=list)
    # handler name -> finished status -> seconds its jobs are kept (None = forever); overrides
    # [server] retention_days, which prunes completed jobs only
    retention: dict[str, dict[str, float | None]] = field(default_factory=dict)
    tui: TuiConfig = field(default_factory=TuiConfig)
    budgets: BudgetConfig = field(default_factory=BudgetConfig)  # [budgets]: spend limits
    path: Path | None = None  # file it came from (None = built-in defaults)

    def plugin(self, name: str) -> PluginConfig | None:
        return next((p for p in self.plugins if p.name == name), None)


# ---------------------------------------------------------------- default text

_BUNDLED_PLUGINS = """\
# Bundled plugins. `command` is an argv list; the host appends `--port N`.
# {python} is the interpreter running pulse-tui.
[[plugins]]
name = "demo"
command = ["{python}", "-m", "pulse_tui.plugins.demo"]

[[plugins]]
name = "python"
command = ["{python}", "-m", "pulse_tui.plugins.python"]
config = { scripts_dir = "{data_dir}/scripts" }
# Scripts run confined (own temp dir, scrubbed env, limits). More python config keys: user (the
# account scripts run as when the server is root, default "nobody"), memory_mb, max_file_mb,
# max_open_files.
"""


def default_config_text() -> str:
    """An annotated pulse.toml: every server default, the bundled plugins, every other table."""
    s = ServerConfig()
    p = PluginConfig(name="")
    return f"""\
# pulse.toml — configuration for `pulse-tui serve` and the embedded server.
# Lookup: --config PATH, then $PULSE_CONFIG, then {user_config_path()}.

[server]
listen = "{s.listen}"              # gRPC address (QueueService + OperatorService)
# data_dir = "..."                  # default: the user data dir ({s.data_dir})
db = "{s.db}"                           # "" = SQLite file pulse.db in data_dir; "postgresql://user@host/db"
concurrency = {s.concurrency}                  # jobs running at once on this server
prefetch = {s.prefetch}                     # jobs claimed ahead of a free slot (0 = claim only for free slots)
default_timeout = {s.default_timeout:g}           # seconds, for jobs enqueued without a timeout
max_payload_bytes = {s.max_payload_bytes}       # bigger payloads are refused at enqueue
retention_days = {s.retention_days:g}               # completed jobs older than this are pruned (0 = kept); failed and cancelled ones stay until deleted
grace_secs = {s.grace_secs:g}                  # on shutdown / reload, running jobs get this long
max_children = {s.max_children}                # child jobs one job may have (more are refused)
max_child_depth = {s.max_child_depth}                 # levels of children below a top job
# node = "a"                      # this server's name in a shared PostgreSQL queue (default host:pid)
durability = "{s.durability}"               # SQLite: "full" = an acknowledged job survives power loss; "normal" = faster, survives a crash only
lock_timeout_secs = {s.lock_timeout_secs:g}             # SQLite: a write waits this long for another process's lock, then fails (later writes fail at once while it is held)
# metrics_listen = "127.0.0.1:9464" # Prometheus /metrics (non-loopback needs TLS or --insecure)
# metrics_auth = false              # true: scrapes send the admin or read-only token as Bearer

{_BUNDLED_PLUGINS}
# An external plugin (any program speaking the QNTX plugin protocol):
# [[plugins]]
# name = "mine"
# command = ["{{python}}", "plugins/mine.py"]   # relative paths: from this file's folder
# endpoint = "127.0.0.1:9000"                  # instead of command: a plugin already running
# config = {{ key = "value" }}                   # string map passed to Initialize
# enabled = {str(p.enabled).lower()}
# env = {{ LOG_LEVEL = "debug" }}
# cwd = "."
# startup_timeout = {p.startup_timeout:g}                         # seconds to start and answer Metadata
# port_wait = 2                                # seconds to wait for QNTX_PLUGIN_PORT=N, then probe --port N
# batch = {str(p.batch).lower()}                                 # batched execution if the plugin offers it

# Pin the owner of a handler name announced by several plugins (else: first in config order).
[handlers]
# "data.import" = "importer"

# At most N jobs of a handler run at once.
[handler_limits]
# "demo.sleep" = 2

# How long the finished jobs of a handler are kept, instead of retention_days (which prunes
# completed jobs only: failed and cancelled ones stay until deleted, unless a handler says here).
# Each key is optional: a duration ("90s", "12h", "30d", "2w") or "forever".
# [retention.handlers."demo.sleep"]
# completed = "1h"
# failed = "30d"
# cancelled = "1d"

# Spend budgets, in the unit plugins report cost in (the sum of cost_actual of the jobs finished
# this UTC day / month). When one is reached, the queued jobs it covers are held (paused,
# budget_exceeded) until the period rolls over or the limit is raised (restart the server).
[budgets]
# daily = 10.0
# monthly = 200.0                  # keep [server] retention_days >= 31 for a monthly budget
# [budgets.handlers."demo.sleep"]  # one handler's own budget (its bare name)
# daily = 2.0

# Recurring jobs, reconciled at start (one per handler; removing one here withdraws it).
# [[schedules]]
# handler = "demo.echo"
# every = "5m"                     # or: cron = "0 3 * * *" with timezone = "Europe/Paris"
# payload = {{ hello = "world" }}    # a table or a JSON string
# overlap = "skip"                 # skip a run while the previous one is unfinished; or "allow"
# jitter_secs = 0
# enabled = true

# Console colours: a Textual theme (textual-light, nord, gruvbox, tokyo-night, catppuccin-latte,
# solarized-light, …); ctrl+p "Change theme" picks one and remembers it in the data dir.
[tui]
# theme = "textual-dark"

# Console key bindings: binding id = key (the ids are in the help, `?`, on each screen;
# an unknown id is reported at start with the list of valid ones).
[tui.keys]
# "app.back" = "q"
# "jobs.filter" = "slash"
# "jobs.retry_all" = "R"
# "table.down" = "down,j"
"""


# ---------------------------------------------------------------- loading


def _not_a_file(path: Path) -> str:
    """Why `path` cannot be read as a config file (a directory used to be said not to exist)."""
    if path.is_dir():
        return "is a directory; give the pulse.toml file inside it"
    if path.exists():
        return "is not a regular file"
    return "does not exist"


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use, or None for built-in defaults. An explicit path must exist."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} {_not_a_file(path)}")
        return path
    env = os.environ.get("PULSE_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} (from $PULSE_CONFIG) {_not_a_file(path)}")
        return path
    path = user_config_path()
    return path if path.is_file() else None


def load_config(explicit: str | os.PathLike[str] | None = None, *, data_dir: str | None = None) -> Config:
    """`find_config` then parse; no file means the built-in defaults. `data_dir` (e.g. from
    `serve --data-dir`) overrides `[server] data_dir` before `{data_dir}` placeholders expand."""
    path = find_config(explicit)
    if path is None:
        return parse_config(default_config_text(), file="<defaults>", base_dir=Path.cwd(), data_dir=data_dir)
    return load_file(path, data_dir=data_dir)


def load_file(path: str | os.PathLike[str], *, data_dir: str | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=str(path)) from None
    config = parse_config(text, file=str(path), base_dir=path.resolve().parent, data_dir=data_dir)
    config.path = path
    return config


def parse_config(
    text: str, *, file: str = "<string>", base_dir: Path | None = None, data_dir: str | None = None
) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"invalid TOML: {msg}", file=file, line=int(m.group(1)) if m else 0) from None
    return _Parser(text, file, base_dir or Path.cwd(), data_dir).parse(data)


class _Parser:
    def __init__(self, text: str, file: str, base_dir: Path, data_dir: str | None = None) -> None:
        self.data_dir_override = data_dir
        self.file = file
        self.base_dir = base_dir
        self.locate = _Locator(text)

    def error(self, path: tuple[str | int, ...], message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.locate(path), key=_key_text(path))

    def parse(self, data: dict[str, Any]) -> Config:
        self._known(
            data,
            (),
            ("server", "plugins", "handlers", "handler_limits", "retention", "schedules", "tui", "budgets"),
        )
        server = self._server(self._table(data, ("server",)))
        if self.data_dir_override:
            server.data_dir = str(Path(self.data_dir_override).expanduser())
        plugins = self._plugins(data.get("plugins", []), server)
        names = [p.name for p in plugins]
        pins = self._string_map(self._table(data, ("handlers",)), ("handlers",))
        for handler, owner in pins.items():
            if owner not in names:
                raise self.error(
                    ("handlers", handler),
                    f"pinned to plugin {owner!r}, which is not configured" + _did_you_mean(owner, names),
                )
        limits: dict[str, int] = {}
        for handler, value in self._table(data, ("handler_limits",)).items():
            limits[handler] = self._int(value, ("handler_limits", handler), minimum=1)
        tui = self._table(data, ("tui",))
        self._known(tui, ("tui",), ("keys", "theme"))
        theme = self._str(tui["theme"], ("tui", "theme")) if "theme" in tui else ""
        keys = self._string_map(self._table(tui, ("tui", "keys")), ("tui", "keys"))
        schedules = self._schedules(data.get("schedules", []))
        retention = self._retention(self._table(data, ("retention",)))
        budgets = self._budgets(self._table(data, ("budgets",)))
        return Config(
            budgets=budgets,
            server=server,
            plugins=plugins,
            handlers=pins,
            handler_limits=limits,
            schedules=schedules,
            retention=retention,
            tui=TuiConfig(keys, theme),
        )

    # ------------------------------------------------------------ sections

    def _budgets(self, raw: dict[str, Any]) -> BudgetConfig:
        self._known(raw, ("budgets",), ("daily", "monthly", "handlers"))

        def limits(table: dict[str, Any], path: tuple[str | int, ...]) -> Limits:
            return Limits(
                daily=self._number(table["daily"], (*path, "daily")) if "daily" in table else 0.0,
                monthly=self._number(table["monthly"], (*path, "monthly")) if "monthly" in table else 0.0,
            )

        handlers: dict[str, Limits] = {}
        for name, table in self._table(raw, ("budgets", "handlers")).items():
            path = ("budgets", "handlers", name)
            if not isinstance(table, dict):
                raise self.error(path, f"expected a table with daily and/or monthly, got {_show(table)}")
            if "/" in name:
                raise self.error(path, "use the handler's bare name (it covers plugin/NAME too)")
            self._known(table, path, ("daily", "monthly"))
            handlers[name] = limits(table, path)
        return BudgetConfig(total=limits(raw, ("budgets",)), handlers=handlers)

    def _server(self, raw: dict[str, Any]) -> ServerConfig:
        path = ("server",)
        self._known(raw, path, [f.name for f in fields(ServerConfig)])
        s = ServerConfig()
        if "listen" in raw:
            s.listen = self._address(raw["listen"], (*path, "listen"))
        if "data_dir" in raw:
            s.data_dir = str(self._resolve(self._str(raw["data_dir"], (*path, "data_dir"))))
        if "db" in raw:
            db = self._str(raw["db"], (*path, "db"))
            if db and "://" not in db:
                db = str(self._resolve(db))
            elif db and not db.startswith(("postgresql://", "postgres://")):
                raise self.error(
                    (*path, "db"), f'expected "" (SQLite), a file path or postgresql://..., got {db!r}'
                )
            s.db = db
        if "concurrency" in raw:
            s.concurrency = self._int(raw["concurrency"], (*path, "concurrency"), minimum=1)
        if "prefetch" in raw:
            s.prefetch = self._int(raw["prefetch"], (*path, "prefetch"), minimum=0)
        for key in ("default_timeout", "retention_days", "grace_secs", "lock_timeout_secs"):
            if key in raw:
                setattr(s, key, self._number(raw[key], (*path, key)))
        if "max_payload_bytes" in raw:
            s.max_payload_bytes = self._int(raw["max_payload_bytes"], (*path, "max_payload_bytes"), minimum=1)
        for key in ("max_children", "max_child_depth"):
            if key in raw:
                setattr(s, key, self._int(raw[key], (*path, key), minimum=0))
        if "durability" in raw:
            s.durability = self._str(raw["durability"], (*path, "durability"))
            if s.durability not in ("full", "normal"):
                raise self.error((*path, "durability"), f'expected "full" or "normal", got {s.durability!r}')
        if "node" in raw:
            s.node = self._str(raw["node"], (*path, "node"))
            if s.node and not PLUGIN_NAME.fullmatch(s.node):
                raise self.error(
                    (*path, "node"), f"{s.node!r} is not a valid node name (letters, digits, . _ -)"
                )
        if "metrics_listen" in raw:
            text = self._str(raw["metrics_listen"], (*path, "metrics_listen"))
            s.metrics_listen = self._address(text, (*path, "metrics_listen")) if text else ""
        if "metrics_auth" in raw:
            if not isinstance(raw["metrics_auth"], bool):
                raise self.error(
                    (*path, "metrics_auth"), f"expected true or false, got {_show(raw['metrics_auth'])}"
                )
            s.metrics_auth = raw["metrics_auth"]
        return s

    def _plugins(self, raw: Any, server: ServerConfig) -> list[PluginConfig]:
        if not isinstance(raw, list):
            raise self.error(("plugins",), f"expected [[plugins]] tables, got {_show(raw)}")
        out: list[PluginConfig] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            path: tuple[str | int, ...] = ("plugins", i)
            if not isinstance(item, dict):
                raise self.error(path, f"expected a table, got {_show(item)}")
            self._known(item, path, [f.name for f in fields(PluginConfig)])
            if "name" not in item:
                raise self.error(path, "missing key 'name'")
            name = self._str(item["name"], (*path, "name"))
            if not PLUGIN_NAME.fullmatch(name):
                raise self.error(
                    (*path, "name"), f"{name!r} is not a valid plugin name (letters, digits, . _ -)"
                )
            if name in RESERVED_PLUGIN_NAMES:
                raise self.error(
                    (*path, "name"), f"{name!r} is reserved (built-in handlers are {name}/<name>)"
                )
            if name in seen:
                raise self.error(
                    (*path, "name"), f"duplicate plugin name {name!r} (also plugins[{seen[name]}])"
                )
            seen[name] = i
            p = PluginConfig(name=name)
            subst = {
                "{data_dir}": server.data_dir,
                "{config_dir}": str(self.base_dir),
                "{python}": sys.executable,
            }
            has_cmd, has_ep = "command" in item, "endpoint" in item
            if has_cmd == has_ep:
                raise self.error(path, f"plugin {name!r} needs exactly one of 'command' or 'endpoint'")
            if has_cmd:
                cmd = item["command"]
                if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
                    raise self.error(
                        (*path, "command"), f"expected a non-empty list of strings, got {_show(cmd)}"
                    )
                p.command = self._command([_subst(a, subst) for a in cmd])
            else:
                p.endpoint = self._address(item["endpoint"], (*path, "endpoint"))
            if "config" in item:
                p.config = {
                    k: _subst(v, subst)
                    for k, v in self._string_map(item["config"], (*path, "config")).items()
                }
            if "env" in item:
                p.env = {
                    k: _subst(v, subst) for k, v in self._string_map(item["env"], (*path, "env")).items()
                }
            if "enabled" in item:
                if not isinstance(item["enabled"], bool):
                    raise self.error(
                        (*path, "enabled"), f"expected true or false, got {_show(item['enabled'])}"
                    )
                p.enabled = item["enabled"]
            if "cwd" in item:
                p.cwd = str(self._resolve(_subst(self._str(item["cwd"], (*path, "cwd")), subst)))
            if "startup_timeout" in item:
                p.startup_timeout = self._number(item["startup_timeout"], (*path, "startup_timeout"))
            if "port_wait" in item:
                p.port_wait = self._number(item["port_wait"], (*path, "port_wait"))
            if "batch" in item:
                if not isinstance(item["batch"], bool):
                    raise self.error((*path, "batch"), f"expected true or false, got {_show(item['batch'])}")
                p.batch = item["batch"]
            out.append(p)
        return out

    def _schedules(self, raw: Any) -> list[ScheduleConfig]:
        from pulse_tui.pulse import schedules as sched
        from pulse_tui.pulse.errors import ValidationError

        if not isinstance(raw, list):
            raise self.error(("schedules",), f"expected [[schedules]] tables, got {_show(raw)}")
        out: list[ScheduleConfig] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(raw):
            path: tuple[str | int, ...] = ("schedules", i)
            if not isinstance(item, dict):
                raise self.error(path, f"expected a table, got {_show(item)}")
            self._known(item, path, [f.name for f in fields(ScheduleConfig)])
            if "handler" not in item:
                raise self.error(path, "missing key 'handler'")
            c = ScheduleConfig(handler=self._str(item["handler"], (*path, "handler")).strip())
            if not c.handler:
                raise self.error((*path, "handler"), "handler name is empty")
            if c.handler in seen:
                raise self.error(
                    (*path, "handler"),
                    f"a schedule for {c.handler!r} is already declared (schedules[{seen[c.handler]}])",
                )
            seen[c.handler] = i
            if ("every" in item) == ("cron" in item):
                raise self.error(path, "give exactly one of 'every' (e.g. \"5m\") and 'cron'")
            try:
                if "every" in item:
                    every = item["every"]
                    if isinstance(every, bool) or not isinstance(every, int | str):
                        raise self.error(
                            (*path, "every"), f'expected a duration like "5m" or seconds, got {_show(every)}'
                        )
                    c.every = sched.parse_every(str(every))
                else:
                    c.cron = self._str(item["cron"], (*path, "cron"))
                    if "timezone" in item:
                        c.timezone = self._str(item["timezone"], (*path, "timezone"))
                    sched.check_cron(c.cron, c.timezone)
            except ValidationError as exc:
                raise self.error((*path, "every" if "every" in item else "cron"), exc.message) from None
            if "timezone" in item and "every" in item:
                raise self.error((*path, "timezone"), "a time zone only applies to a cron schedule")
            if "payload" in item:
                payload = item["payload"]
                if isinstance(payload, dict):
                    c.payload = json.dumps(payload)
                else:
                    c.payload = self._str(payload, (*path, "payload"))
                    try:
                        json.loads(c.payload)
                    except ValueError as exc:
                        raise self.error((*path, "payload"), f"not JSON: {exc}") from None
            if "overlap" in item:
                c.overlap = self._str(item["overlap"], (*path, "overlap"))
                if c.overlap not in sched.OVERLAPS:
                    raise self.error(
                        (*path, "overlap"), f"expected one of {', '.join(sched.OVERLAPS)}, got {c.overlap!r}"
                    )
            if "jitter_secs" in item:
                c.jitter_secs = self._int(item["jitter_secs"], (*path, "jitter_secs"))
            if "enabled" in item:
                if not isinstance(item["enabled"], bool):
                    raise self.error(
                        (*path, "enabled"), f"expected true or false, got {_show(item['enabled'])}"
                    )
                c.enabled = item["enabled"]
            out.append(c)
        return out

    def _retention(self, raw: dict[str, Any]) -> dict[str, dict[str, float | None]]:
        self._known(raw, ("retention",), ("handlers",))
        out: dict[str, dict[str, float | None]] = {}
        for handler, rules in self._table(raw, ("retention", "handlers")).items():
            path: tuple[str | int, ...] = ("retention", "handlers", handler)
            if not isinstance(rules, dict):
                raise self.error(path, f'expected a table like {{ completed = "1h" }}, got {_show(rules)}')
            self._known(rules, path, RETENTION_STATUSES)
            out[handler] = {status: self._keep_for(value, (*path, status)) for status, value in rules.items()}
        return out

    def _keep_for(self, value: Any, path: tuple[str | int, ...]) -> float | None:
        """A retention: seconds (a duration like "30d", or a number of seconds), None = "forever"."""
        from pulse_tui.cadence import CadenceError, parse_duration

        if value == "forever":
            return None
        if isinstance(value, str):
            try:
                secs = float(parse_duration(value))
            except CadenceError as exc:
                raise self.error(path, f'{exc.message}, or "forever"') from None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            secs = float(value)
        else:
            raise self.error(path, f'expected a duration like "30d" or "forever", got {_show(value)}')
        if secs <= 0:
            raise self.error(path, f'must be a positive duration ("forever" keeps them), got {_show(value)}')
        return secs

    def _command(self, argv: list[str]) -> list[str]:
        """Resolve relative file arguments: argv[0] with a "/", any `*.py`, any other existing path."""
        out = []
        for i, arg in enumerate(argv):
            looks_like_path = ("/" in arg or arg.endswith(".py")) and not arg.startswith("-")
            if looks_like_path and not os.path.isabs(arg) and "://" not in arg:
                candidate = self.base_dir / arg
                if i == 0 or arg.endswith(".py") or candidate.exists():
                    arg = str(candidate)
            out.append(arg)
        return out

    # ------------------------------------------------------------ value checks

    def _known(self, raw: dict[str, Any], path: tuple[str | int, ...], allowed: Any) -> None:
        allowed = list(allowed)
        for key in raw:
            if key not in allowed:
                raise self.error((*path, key), "unknown key" + _did_you_mean(key, allowed))

    def _table(self, raw: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
        value = raw.get(str(path[-1]), {})
        if not isinstance(value, dict):
            raise self.error(path, f"expected a table, got {_show(value)}")
        return value

    def _string_map(self, raw: Any, path: tuple[str | int, ...]) -> dict[str, str]:
        if not isinstance(raw, dict):
            raise self.error(path, f"expected a table of strings, got {_show(raw)}")
        out = {}
        for k, v in raw.items():
            if isinstance(v, bool):
                v = str(v).lower()
            elif isinstance(v, int | float):
                v = str(v)
            if not isinstance(v, str):
                raise self.error((*path, k), f"expected a string, got {_show(v)}")
            out[k] = v
        return out

    def _str(self, value: Any, path: tuple[str | int, ...]) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a string, got {_show(value)}")
        return value

    def _int(self, value: Any, path: tuple[str | int, ...], minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"expected an integer, got {_show(value)}")
        if value < minimum:
            raise self.error(path, f"must be at least {minimum}, got {value}")
        return value

    def _number(self, value: Any, path: tuple[str | int, ...]) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(path, f"expected a number, got {_show(value)}")
        if value < 0:
            raise self.error(path, f"must not be negative, got {value}")
        return float(value)

    def _address(self, value: Any, path: tuple[str | int, ...]) -> str:
        text = self._str(value, path)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise self.error(path, f'expected "host:port", got {text!r}')
        return text

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def _subst(value: str, subst: dict[str, str]) -> str:
    for token, replacement in subst.items():
        value = value.replace(token, replacement)
    return value


def _did_you_mean(word: str, options: Any) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _show(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _key_text(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += f".{text}" if out else text
    return out


class _Locator:
    """Maps key paths to line numbers by scanning the TOML text (headers, keys, array tables)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(
        r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
    )

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str | int, ...], int] = {}
        counters: dict[tuple[str | int, ...], int] = {}
        table: tuple[str | int, ...] = ()
        for lineno, line in enumerate(text.splitlines(), 1):
            if m := self._HEADER.match(line):
                parts = self._split(m.group(2))
                if m.group(1) == "[[":
                    resolved = (*self._resolve(parts[:-1], counters), parts[-1])
                    index = counters.get(resolved, -1) + 1
                    counters[resolved] = index
                    self.lines.setdefault(resolved, lineno)
                    resolved = (*resolved, index)
                else:
                    resolved = self._resolve(parts, counters)
                table = resolved
                self.lines.setdefault(table, lineno)
            elif m := self._KEY.match(line):
                self.lines.setdefault((*table, *self._split(m.group(1))), lineno)

    @staticmethod
    def _split(dotted: str) -> list[str]:
        return [p.strip().strip("\"'") for p in re.findall(r"""(?:"[^"]*"|'[^']*'|[^.]+)""", dotted)]

    @staticmethod
    def _resolve(parts: list[str], counters: dict[tuple[str | int, ...], int]) -> tuple[str | int, ...]:
        """`[plugins.config]` after the 2nd `[[plugins]]` means ("plugins", 1, "config")."""
        out: tuple[str | int, ...] = ()
        for part in parts:
            out = (*out, part)
            if out in counters:
                out = (*out, counters[out])
        return out

    def __call__(self, path: tuple[str | int, ...]) -> int:
        for end in range(len(path), 0, -1):
            if (line := self.lines.get(path[:end])) is not None:
                return line
        return 0
