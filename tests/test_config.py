"""pulse.toml loading: defaults, errors with file:line: key, paths and placeholders."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pulse_tui import config as cfgmod
from pulse_tui.config import ConfigError, ServerConfig, find_config, load_config, load_file, parse_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def parse(text: str, **kw):
    return parse_config(textwrap.dedent(text), file="p.toml", **kw)


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def test_defaults_and_default_text_agree():
    c = parse_config(cfgmod.default_config_text(), file="<defaults>")
    assert c.server == ServerConfig()
    assert [p.name for p in c.plugins] == ["demo", "python"]
    assert c.plugins[0].command == [sys.executable, "-m", "pulse_tui.plugins.demo"]
    assert c.plugins[1].config["scripts_dir"] == f"{ServerConfig().data_dir}/scripts"
    s = ServerConfig()
    assert (s.listen, s.concurrency, s.default_timeout, s.max_payload_bytes) == (
        "127.0.0.1:7878",
        128,
        3600,
        1 << 20,
    )
    assert (s.retention_days, s.grace_secs, s.db, s.is_postgres) == (7, 10, "", False)
    assert s.sqlite_path == Path(s.data_dir) / "pulse.db"


def test_demo_example_loads(tmp_path):
    c = load_file(EXAMPLES / "demo.toml", data_dir=str(tmp_path))
    assert [p.name for p in c.plugins] == ["demo", "python", "importer"]
    # saved scripts belong in the data dir, not in the clone's examples/ (issue 20.10)
    assert c.plugins[1].config["scripts_dir"] == f"{tmp_path}/scripts"
    assert c.plugins[1].config["example_script"] == "true"
    assert c.handler_limits == {"demo.sleep": 4}


def test_full_config(tmp_path):
    c = parse(
        """
        [server]
        listen = "0.0.0.0:9000"
        db = "postgresql://u@h/db"
        concurrency = 8
        default_timeout = 30
        [[plugins]]
        name = "a"
        command = ["{python}", "plug/a.py", "--flag", "x/y"]
        env = { A = "1" }
        cwd = "work"
        startup_timeout = 2.5
        config = { n = 3, b = true, s = "{config_dir}/z" }
        [[plugins]]
        name = "b"
        endpoint = "127.0.0.1:5000"
        enabled = false
        [handlers]
        "data.import" = "b"
        [handler_limits]
        "demo.sleep" = 2
        [retention.handlers."demo.sleep"]
        completed = "1h"
        failed = "forever"
        [retention.handlers."demo.echo"]
        cancelled = 90
        [tui.keys]
        quit = "ctrl+q"
        """,
        base_dir=tmp_path,
    )
    assert c.server.listen == "0.0.0.0:9000" and c.server.is_postgres and c.server.concurrency == 8
    a, b = c.plugins
    assert a.command == [sys.executable, str(tmp_path / "plug/a.py"), "--flag", "x/y"]
    assert a.cwd == str(tmp_path / "work") and a.startup_timeout == 2.5 and a.env == {"A": "1"}
    assert a.config == {"n": "3", "b": "true", "s": f"{tmp_path}/z"}
    assert b.endpoint == "127.0.0.1:5000" and not b.enabled
    assert c.handlers == {"data.import": "b"} and c.handler_limits == {"demo.sleep": 2}
    assert c.tui.keys == {"quit": "ctrl+q"}
    assert c.retention == {"demo.sleep": {"completed": 3600, "failed": None}, "demo.echo": {"cancelled": 90}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[plugins]]\nname = "a"\ncommand = ["x"]\n\n[[plugins]]\nname = "b"\ncommand = "python x.py"\n',
            'p.toml:7: plugins[1].command: expected a non-empty list of strings, got "python x.py"',
        ),
        ("[server]\nlisten = 5\n", "p.toml:2: server.listen: expected a string, got 5"),
        ("[server]\n\nlistn = 'a:1'\n", "p.toml:3: server.listn: unknown key (did you mean 'listen'?)"),
        ("[servr]\n", "p.toml:1: servr: unknown key (did you mean 'server'?)"),
        ("[server]\nconcurrency = 0\n", "p.toml:2: server.concurrency: must be at least 1, got 0"),
        ("[server]\nlisten = 'nope'\n", "p.toml:2: server.listen: expected \"host:port\", got 'nope'"),
        (
            '[[plugins]]\nname = "a"\ncommand = ["x"]\n[[plugins]]\nname = "a"\nendpoint = "h:1"\n',
            "p.toml:5: plugins[1].name: duplicate plugin name 'a' (also plugins[0])",
        ),
        (
            '[[plugins]]\nname = "a"\ncommand = ["x"]\nendpoint = "h:1"\n',
            "p.toml:1: plugins[0]: plugin 'a' needs exactly one of 'command' or 'endpoint'",
        ),
        (
            '[[plugins]]\nname = "a"\n',
            "p.toml:1: plugins[0]: plugin 'a' needs exactly one of 'command' or 'endpoint'",
        ),
        ('[[plugins]]\nname = "pulse"\ncommand = ["x"]\n', "p.toml:2: plugins[0].name: 'pulse' is reserved"),
        (
            '[[plugins]]\nname = "demo"\ncommand = ["x"]\n[handlers]\n"data.import" = "dem"\n',
            "p.toml:5: handlers.\"data.import\": pinned to plugin 'dem', which is not configured (did you mean 'demo'?)",
        ),
        (
            '[[plugins]]\nname = "a"\ncommand = ["x"]\ncomand = 1\n',
            "p.toml:4: plugins[0].comand: unknown key (did you mean 'command'?)",
        ),
        (
            '[[plugins]]\nname = "a"\ncommand = ["x"]\n[plugins.config]\nk = [1]\n',
            "p.toml:5: plugins[0].config.k: expected a string, got [1]",
        ),
        ("[handler_limits]\n'x' = 'two'\n", 'p.toml:2: handler_limits.x: expected an integer, got "two"'),
        (
            '[retention.handlers."demo.sleep"]\ncompleted = "soon"\n',
            "p.toml:2: retention.handlers.\"demo.sleep\".completed: 'soon' is not a duration like 30s",
        ),
        ("[retention.handlers.x]\nqueued = '1h'\n", "p.toml:2: retention.handlers.x.queued: unknown key"),
        ("[retention.handlers.x]\nfailed = 0\n", "p.toml:2: retention.handlers.x.failed: must be a positive"),
        ("[tui]\nkey = {}\n", "p.toml:2: tui.key: unknown key (did you mean 'keys'?)"),
        ("[server\n", "p.toml:1: invalid TOML"),
    ],
)
def test_errors_name_file_line_and_key(text, expected):
    assert error(text).startswith(expected)


def test_find_config_order(tmp_path, monkeypatch):
    explicit = tmp_path / "e.toml"
    explicit.write_text("")
    env = tmp_path / "env.toml"
    env.write_text("[server]\nconcurrency = 3\n")
    user = tmp_path / "user" / "pulse.toml"
    monkeypatch.setattr(cfgmod, "user_config_path", lambda: user)
    monkeypatch.setenv("PULSE_CONFIG", str(env))
    assert find_config(explicit) == explicit
    assert find_config(None) == env
    assert load_config(None).server.concurrency == 3
    monkeypatch.delenv("PULSE_CONFIG")
    assert find_config(None) is None
    assert [p.name for p in load_config(None).plugins] == ["demo", "python"]
    user.parent.mkdir()
    user.write_text("")
    assert find_config(None) == user
    with pytest.raises(ConfigError, match="does not exist"):
        find_config(tmp_path / "missing.toml")


def test_server_node_name():
    from pulse_tui.pulse.server import ServerSettings

    cfg = parse_config('[server]\nnode = "east-1"\n')
    assert cfg.server.node == "east-1"
    assert ServerSettings.from_config(cfg).node == "east-1"
    with pytest.raises(ConfigError, match=r"<string>:2: server.node: 'a b' is not a valid node name"):
        parse_config('[server]\nnode = "a b"\n')
