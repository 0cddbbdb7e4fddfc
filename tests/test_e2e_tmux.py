"""End to end: the installed `pulse-tui` binary in a real terminal (tmux), driven by keys only.

A real `pulse-tui serve` with the bundled demo plugin runs beside it. The test types into the
console with `tmux send-keys` and reads what a user would see with `tmux capture-pane`, waiting on
the screen (polled every 50 ms up to a deadline) — never sleeping blindly:

1. `e` opens the enqueue modal; a `demo.sleep` job ({"seconds": 2, "steps": 4}) is enqueued and its
   progress is watched running and then reaching 4/4, completed.
2. A `pulse.fail` job (max_attempts 1, enqueued with the CLI) shows up failed; its detail says
   "1 of 1" attempts; `r` on the table retries it and the detail then says "2 of 1".
3. `:plugins`, `r` reloads the demo plugin: the result and a new pid are read from the screen.
4. `q` goes back to the jobs screen and quits; the pane's process exits with status 0.

Skipped (with the reason) only when tmux is not installed and `CI` is not set; under CI a missing
tmux or binary is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import ServerHandle

from pulse_tui.widgets.fmt import short_id

WIDTH, HEIGHT = 120, 32
POLL = 0.05
DEMO = """
[[plugins]]
name = "demo"
command = ["{python}", "-m", "pulse_tui.plugins.demo"]
"""


def _binary() -> Path:
    return Path(sys.executable).parent / ("pulse-tui.exe" if os.name == "nt" else "pulse-tui")


def _require(ok: bool, reason: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this end-to-end test must run)")
    pytest.skip(reason)


class Terminal:
    """One tmux session on a private tmux server (its own socket, no user config)."""

    def __init__(self, tmux: str, home: Path) -> None:
        self.tmux = tmux
        self.socket = f"pulse-e2e-{uuid.uuid4().hex[:12]}"
        self.name = "pulse"
        self.home = home
        self.last = ""

    def _run(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(
            [self.tmux, "-L", self.socket, "-f", os.devnull, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {out.stderr.strip()}")
        return out.stdout

    def start(self, argv: list[str]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "data"),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "PULSE_TOKEN": "",
        }
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        # The terminal's size must come from the pane, not from COLUMNS/LINES inherited from the
        # test process (pytest plugins set them to 80x24). A shell around the program records its
        # exit status: tmux 3.3 does not always reap a pane's process (it can stay a zombie with no
        # pane_dead_status), the shell always does.
        script = f'env -u COLUMNS -u LINES "$@"; echo "$?" > {shlex.quote(str(self.status_file))}'
        command = shlex.join(["sh", "-c", script, "sh", *argv])
        self._run(
            "new-session", "-d", "-s", self.name, "-x", str(WIDTH), "-y", str(HEIGHT), *env_args, command
        )
        self._run("set-option", "-t", self.name, "remain-on-exit", "on")

    @property
    def status_file(self) -> Path:
        return self.home / "exit-status"

    def program_pid(self) -> int:
        """The pid of the program the pane's shell runs."""
        shell = self.pane("#{pane_pid}")

        def child() -> str:
            out = subprocess.run(["ps", "-o", "pid=", "--ppid", shell], capture_output=True, text=True)
            return out.stdout.strip()

        return int(str(self.wait(child, "the program under the pane's shell", 5)).split()[0])

    def exit_status(self) -> int | None:
        try:
            text = self.status_file.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None

    def keys(self, *keys: str) -> None:
        """tmux key names: Enter, Tab, Escape, Up, Home, C-s, or single characters."""
        self._run("send-keys", "-t", self.name, *keys)

    def type(self, text: str) -> None:
        self._run("send-keys", "-t", self.name, "-l", text)

    def screen(self, *, escapes: bool = False, history: bool = False) -> str:
        args = ["capture-pane", "-p", "-t", self.name]
        if escapes:
            args.insert(1, "-e")
        if history:  # with the lines scrolled off the top, wrapped lines joined
            args[1:1] = ["-J", "-S", "-200"]
        self.last = self._run(*args)
        return self.last

    def pane(self, fmt: str) -> str:
        return self._run("display-message", "-p", "-t", self.name, fmt).strip()

    def wait(self, cond: Callable[[], object], what: str, timeout: float) -> object:
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                size = self.pane("#{pane_width}x#{pane_height}")
                raise AssertionError(
                    f"timed out after {timeout:g}s waiting for {what}; screen ({size}):\n{self.last}"
                )
            time.sleep(POLL)

    def wait_for_screen(self, pattern: str, timeout: float = 10.0, *, history: bool = False) -> re.Match[str]:
        """Poll capture-pane until `pattern` (a regex, multiline) is on screen (or, with `history`,
        in the lines scrolled off it); returns the match."""
        rx = re.compile(pattern, re.MULTILINE)
        found = self.wait(lambda: rx.search(self.screen(history=history)), f"/{pattern}/ on screen", timeout)
        assert isinstance(found, re.Match)
        return found

    def wait_for_change(self, line_pattern: str, before: str, timeout: float = 5.0) -> None:
        """Wait until the (escape-coded) screen line matching `line_pattern` differs from `before`."""
        self.wait(lambda: self.styled_line(line_pattern) != before, f"a change of /{line_pattern}/", timeout)

    def styled_line(self, line_pattern: str) -> str:
        rx = re.compile(line_pattern)
        for line in self.screen(escapes=True).splitlines():
            if rx.search(line):
                return line
        return ""

    def close(self) -> None:
        self._run("kill-server", check=False)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    tmux = shutil.which("tmux")
    _require(tmux is not None, "tmux is not installed")
    assert tmux is not None
    term = Terminal(tmux, tmp_path / "home")
    try:
        yield term
    finally:
        term.close()


def _cli(srv: ServerHandle, *args: str) -> str:
    out = subprocess.run(
        [str(_binary()), "jobs", *args, "--connect", srv.address, "--token-file", str(srv.token_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 0, f"pulse-tui jobs {' '.join(args)} failed: {out.stderr}"
    return out.stdout.strip()


def test_console_by_keys_in_tmux(terminal: Terminal, server_factory: Callable[..., ServerHandle]) -> None:
    binary = _binary()
    _require(
        binary.exists(), f"the installed console script {binary.name} is missing next to {sys.executable}"
    )
    srv = server_factory(DEMO)
    term = terminal
    term.start(
        [
            str(binary),
            "--connect",
            srv.address,
            "--token-file",
            str(srv.token_file),
            "--config",
            str(srv.config_path),
        ]
    )
    pid = term.program_pid()
    term.wait_for_screen(r"● connected\s+" + re.escape(srv.address))
    term.wait_for_screen(r"No jobs yet")

    # 1. enqueue demo.sleep through the modal and watch its progress
    term.keys("e")
    term.wait_for_screen(r"Enqueue a job")
    term.wait_for_screen(r"→ .*demo\.echo")  # the announced handlers were loaded
    term.type("demo.sleep")
    term.wait_for_screen(r"✔ known handler")
    # Tab moves focus to the payload editor; keys typed before the move lands would go to the
    # handler field, so wait until the editor's border shows focus (its colour changes)
    border = term.styled_line("▔▔▔▔")
    term.keys("Tab")
    term.wait_for_change("▔▔▔▔", border)
    term.keys("End", "BSpace", "BSpace")
    term.wait_for_screen(r"✔ empty payload")
    term.type('{"seconds": 2, "steps": 4}')
    term.wait_for_screen(r"✔ valid JSON \(26 bytes\)")
    term.keys("C-s")
    enqueued = term.wait_for_screen(r"enqueued ([0-9a-f]{32}) \(demo\.sleep\)")
    sleep_id = enqueued.group(1)
    row = re.escape(short_id(sleep_id, 16)) + r" demo\.sleep\s+"  # the table shows ids short
    term.wait_for_screen(row + r"\S+ running\s+.*\b[0-3]/4\b", timeout=10)
    term.wait_for_screen(row + r"\S+ completed\s+.*\b4/4\b", timeout=15)

    # 2. a failed job: retry it with r and see its attempts go from 1 to 2
    fail_id = _cli(srv, "enqueue", "pulse.fail", "--max-attempts", "1", "--payload", '{"error": "e2e boom"}')
    assert re.fullmatch(r"[0-9a-f]{32}", fail_id), fail_id
    fail_row = re.escape(short_id(fail_id, 16)) + r" pulse\.fail\s+\S+ failed\s+.*e2e boom"
    term.wait_for_screen(fail_row)
    term.keys("Home")  # the newest job is on top
    term.keys("Enter")
    term.wait_for_screen(r"Job " + re.escape(fail_id))
    term.wait_for_screen(r"attempts\s+1 of 1\b")
    term.keys("q")
    term.wait_for_screen(r"All 2\b")
    term.keys("r")
    term.wait_for_screen(r"re-queued " + re.escape(fail_id))
    term.keys("Enter")
    term.wait_for_screen(r"Job " + re.escape(fail_id))
    term.wait_for_screen(r"attempts\s+1 of 1 this run; 2 in all, 1 retry")
    term.keys("Right")  # the attempts tab: one line per attempt
    term.wait_for_screen(r"^\s+1\s+failed\b.*\n\s+2\s+failed\b")
    term.keys("q")
    term.wait_for_screen(r"All 2\b")

    # 3. :plugins, reload demo by key, read the result
    term.keys(":")
    term.wait_for_screen(r":command\s+\(jobs, plugins")  # the command line opened
    term.type("plugins")
    term.keys("Enter")
    before = term.wait_for_screen(r"^ demo\s+ready\s+\S+ ok\s+1\.0\.0\s+(\d+)")
    old_pid = before.group(1)
    term.keys("r")
    term.wait_for_screen(r"Last reload: \+0 added\s+-0 removed\s+0 conflicting", timeout=15)
    term.wait_for_screen(r"reloaded demo: \+0 -0")
    after = term.wait_for_screen(r"^ demo\s+ready\s+\S+ ok\s+1\.0\.0\s+(\d+)")
    assert after.group(1) != old_pid, "a reload starts a new plugin process"

    # 4. q back to jobs, q quits; the pane's process is gone
    term.keys("q")
    term.wait_for_screen(r"All 2\b")
    term.keys("q")
    term.wait(lambda: term.exit_status() is not None, "pulse-tui to exit", 10)
    assert term.exit_status() == 0, f"pulse-tui exited with status {term.exit_status()}"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped: the process is gone
    term.wait(lambda: term.pane("#{pane_dead}") == "1", "the pane to close", 5)


def test_triage_by_keys_in_tmux(terminal: Terminal, server_factory: Callable[..., ServerHandle]) -> None:
    """Filter as you type, retry all failed under the filter (the list stays right), sort, delete
    with confirm."""
    binary = _binary()
    _require(binary.exists(), f"the installed console script {binary.name} is missing")
    srv = server_factory(DEMO)
    fails = [_cli(srv, "enqueue", "pulse.fail", "--max-attempts", "1") for _ in range(3)]
    for _ in range(2):
        _cli(srv, "enqueue", "pulse.noop", "--wait")
    term = terminal
    term.start([str(binary), "--connect", srv.address, "--token-file", str(srv.token_file)])
    term.wait_for_screen(r"Failed 3\b")
    # 1. the filter applies while typing (no Enter) and says how many match
    term.keys("/")
    term.wait_for_screen(r"applies as you type")  # the filter line is open and has the keys
    term.type("handler:pulse.f")
    term.wait_for_screen(r"filter: handler=pulse\.f\* — 3 job\(s\)")
    term.keys("Enter")
    # keys typed before the filter line has closed would land in it ("handler=pulse.fR*"); the
    # line shows what was typed (`handler:pulse.f`) until Enter closes it (its placeholder, which
    # says "applies as you type", is hidden as soon as something is typed)
    term.wait(lambda: "handler:pulse.f" not in term.screen(), "the filter line closed", 10)
    # 2. R under the filter: the three re-run and fail again; the list shows exactly them
    term.keys("R")
    term.wait_for_screen(r"Retry 3 failed job\(s\) matching handler=pulse\.f\*")
    term.keys("y")
    term.wait_for_screen(r"re-queued 3 failed job\(s\)")
    term.wait(
        # the ID column shows the tail of an id (…1eae20a) when the full one does not fit
        lambda: all(
            re.search(re.escape(f[-12:]) + r" pulse\.fail\s+\S+ failed", term.screen()) for f in fails
        ),
        "the three failed again, in the list",
        15,
    )
    assert "pulse.noop" not in term.screen()
    # 3. sort by status, shown in the header
    term.keys("Escape")
    term.wait_for_screen(r"All 5\b")
    term.keys("S")
    term.wait_for_screen(r"^\s*sort\s*$")  # the command line opened with `sort `
    term.type("status")
    term.keys("Enter")
    term.wait_for_screen(r"STATUS ▼")
    # 4. delete a completed job with confirm
    term.keys("G")  # the last row: sorted by status descending, a completed one
    term.keys("D")
    term.wait_for_screen(r"Delete jobs")  # the confirmation (a 32-digit id wraps its message)
    term.wait_for_screen(r"Delete \(y\)")
    term.keys("y")
    term.wait_for_screen(r"deleted 1 job\(s\)")
    term.wait_for_screen(r"All 4\b")
    # 5. :handlers, pause the last one (pulse.sleep) by key: a new job of it is held; resume
    term.keys(":")
    term.wait_for_screen(r":command\s+\(jobs, plugins")
    term.type("handlers")
    term.keys("Enter")
    term.wait_for_screen(r"HANDLER\s+OWNER")
    term.keys("G", "P")
    term.wait_for_screen(r"paused pulse\.sleep: 0 job\(s\) held")
    term.wait_for_screen(r"⏸ pulse\.sleep")
    held = _cli(srv, "enqueue", "pulse.sleep", "--payload", '{"seconds": 0}')
    doc = json.loads(_cli(srv, "show", held, "--json"))
    assert (doc["status"], doc["pause_reason"]) == ("paused", "handler_paused")
    term.keys("U")
    term.wait_for_screen(r"resumed pulse\.sleep: 1 held job\(s\) released")
    term.wait(lambda: json.loads(_cli(srv, "show", held, "--json"))["status"] == "completed", "it runs", 10)


def test_q_at_root_asks_before_stopping_the_embedded_server(terminal: Terminal, tmp_path: Path) -> None:
    import socket

    binary = _binary()
    _require(binary.exists(), f"the installed console script {binary.name} is missing")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "data"
    config = tmp_path / "pulse.toml"
    config.write_text(f'[server]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{data}"\n')
    term = terminal
    term.start([str(binary), "--config", str(config), "--no-demo"])
    term.wait_for_screen(r"● connected")
    srv = ServerHandle(address=f"127.0.0.1:{port}", data_dir=data)
    job = _cli(srv, "enqueue", "pulse.sleep", "--payload", '{"seconds": 120}')
    term.wait_for_screen(re.escape(job[-12:]) + r" pulse\.sleep\s+\S+ running")
    term.keys("q")
    term.wait_for_screen(r"Quit pulse-tui")
    term.wait_for_screen(r"1 job\(s\) are")
    term.wait_for_screen(r"Stay \(n\)")  # all three choices fit
    term.keys("k")  # keep the server: the console exits, the job keeps running
    # the console's last line is printed after it left the alternate screen; wrapped at the pane's
    # width it may scroll its start off the top (seen once under load): search the history too
    found = term.wait_for_screen(r"keeps running \(pid (\d+)\)", history=True)
    pid = int(found.group(1))
    try:
        term.wait(lambda: term.exit_status() is not None, "pulse-tui to exit", 10)
        assert term.exit_status() == 0
        assert json.loads(_cli(srv, "show", job, "--json"))["status"] == "running"
        # later, from the CLI: the kept server is found from the data dir and stopped
        stop = subprocess.run(
            [str(binary), "server", "stop", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stop.returncode == 0 and f"(pid {pid})" in stop.stdout, (stop.stdout, stop.stderr)
    finally:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass


def test_schedule_created_by_keys_runs_twice_in_tmux(
    terminal: Terminal, server_factory: Callable[..., ServerHandle]
) -> None:
    """`:schedules`, `n` creates a demo.echo schedule every 1 s; two runs appear on screen."""
    binary = _binary()
    _require(
        binary.exists(), f"the installed console script {binary.name} is missing next to {sys.executable}"
    )
    srv = server_factory(DEMO)
    term = terminal
    term.start(
        [
            str(binary),
            "--connect",
            srv.address,
            "--token-file",
            str(srv.token_file),
            "--config",
            str(srv.config_path),
        ]
    )
    term.wait_for_screen(r"● connected\s+" + re.escape(srv.address))
    term.keys(":")
    term.wait_for_screen(r":command\s+\(jobs, plugins")
    term.type("schedules")
    term.keys("Enter")
    term.wait_for_screen(r"0 schedule\(s\), 0 active")
    term.keys("n")
    term.wait_for_screen(r"New schedule")
    term.type("demo.echo")
    term.wait_for_screen(r"^\W*demo\.echo\s*\W*$")
    # keys typed before the focus move lands would go to the handler field: wait for the
    # cadence field to show focus (its colour changes), then replace its "5m"
    cadence_field = r"\dm5m[\x1b ]"  # the field's "5m" right after a colour code (not the label's)
    field = term.styled_line(cadence_field)
    term.keys("Tab")
    term.wait_for_change(cadence_field, field)
    term.keys("End", "BSpace", "BSpace")
    term.wait_for_screen(r"✘ interval '' is not a duration")
    term.type("1s")
    term.wait_for_screen(r"✔ every 1s\b")
    term.keys("C-s")
    created = term.wait_for_screen(r"created schedule (s[0-9a-f]{16}) \(demo\.echo, every 1s\)")
    row = re.escape(created.group(1)) + r"\s+demo\.echo\s+every 1s\s+active\b.*completed.*\s(\d+)\s+operator"
    term.wait(lambda: (m := re.search(row, term.screen())) and int(m.group(1)) >= 2, "two runs on screen", 15)
    term.keys("q")
    term.keys("q")
    term.wait(lambda: term.exit_status() is not None, "pulse-tui to exit", 10)
