"""Shared fixtures: real Pulse servers on 127.0.0.1 with port 0.

Fixtures
- `server`: a real `pulse-tui serve` subprocess with a fresh data dir and no plugins; stopped
  (SIGTERM, wait) at teardown.
- `shared_server`: the same, started once per test module (for tests that only add jobs).
- `server_factory`: start your own, e.g. with plugins:

      def test_x(server_factory):
          srv = server_factory('''
              [[plugins]]
              name = "demo"
              command = ["{python}", "-m", "pulse_tui.plugins.demo"]
          ''')

  The config text is written to `<tmp>/pulse.toml`; unless it has its own `[server]` table, a
  `[server]` table pointing `data_dir` at the temp data dir is prepended. `extra_args` are added
  to the `serve` command line. Servers are stopped at teardown.
- `pg_server` / `pg_url` (tests/pg.py): one real PostgreSQL for the whole session, a fresh
  database per test. Registered here only: a module importing them would start its own server.
- `inproc_server` (async): a `PulseServer` running in the test's event loop — fast, and gives
  direct access to `handle.server` (engine, registry, auth) for white-box tests.

Every fixture yields a `ServerHandle`: `address` ("127.0.0.1:PORT"), `token`, `readonly_token`,
`data_dir`, `metadata` / `readonly_metadata` (gRPC `authorization` metadata), and `stop()` /
`output()` for subprocess servers. The listen line is read from the server's stderr (no sleeps).
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pg import pg_server_fixture, pg_url_fixture  # noqa: F401  (one PostgreSQL for the session)
from textual import events
from textual.pilot import Pilot

from pulse_tui.cli import ServerProcess

START_TIMEOUT = 30.0


_press = Pilot.press


async def _press_and_settle(self: Pilot[Any], *keys: str) -> None:
    """`Pilot.press`, then every key's bindings and handlers have run when it returns.

    Textual's press hands each key to its driver, which posts it to the app from a task of its
    own (a loop iteration or two later), then waits for the process to look idle (CPU time
    against wall time) and for the messages queued at that moment. On a loaded machine the idle
    check passes at once, the key is not even queued yet, and a test asserting right after the
    press saw the state before the key (reproduced by making the idle check return at once: 6
    console tests failed). Here each key is followed through: a callback sent the same way as the
    key runs once the app has handled the key, then one round of `_wait_for_screen` per level of
    the focused widget's ancestry (a key not handled by the focused widget bubbles up one queue at
    a time), plus one spare. Keys go one at a time, so each goes where the one before left the
    focus, as a person's keys do (keys arriving in one burst have their own tests)."""
    app = self.app
    for key in keys:
        await _press(self, key)
        driver = app._driver
        if driver is None or not app.is_running:
            return
        handled = asyncio.get_running_loop().create_future()
        driver.send_message(events.Callback(callback=lambda f=handled: f.done() or f.set_result(None)))
        while not handled.done() and app.is_running and not (app._closing or app._closed):
            await asyncio.wait({handled}, timeout=0.05)  # the app may exit on this very key
        focused = app.focused
        for _ in range(len(focused.ancestors_with_self) if focused is not None else 1):
            await self._wait_for_screen()
        await self._wait_for_screen()


Pilot.press = _press_and_settle  # type: ignore[method-assign]


@dataclass
class ServerHandle:
    address: str
    data_dir: Path
    process: ServerProcess | None = None  # subprocess servers
    server: Any = None  # pulse.server.PulseServer for in-process servers
    config_path: Path | None = None
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    @property
    def token(self) -> str:
        return self._token("token")

    @property
    def readonly_token(self) -> str:
        return self._token("token.readonly")

    @property
    def token_file(self) -> Path:
        return self.data_dir / "token"

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    @property
    def readonly_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.readonly_token}"),)

    def _token(self, name: str) -> str:
        if name not in self._tokens:
            self._tokens[name] = (self.data_dir / name).read_text().strip()
        return self._tokens[name]

    def output(self) -> str:
        """Everything the subprocess printed on stderr so far."""
        return self.process.output() if self.process else ""

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM the subprocess and wait; returns its exit status."""
        return self.process.stop(timeout) if self.process else 0

    def restart(self) -> None:
        """Stop (if running) and start the subprocess again with the same config and data dir;
        `address` changes (port 0)."""
        assert self.process is not None, "only subprocess servers restart"
        self.stop()
        self.process = ServerProcess(self.process.argv[4:])
        self.address = self.process.start(timeout=START_TIMEOUT)


def start_server_process(
    base: Path, config_text: str = "", extra_args: tuple[str, ...] | list[str] = ()
) -> ServerHandle:
    """Start `pulse-tui serve` on 127.0.0.1:0 with data dir `base/data` and return its handle."""
    data_dir = base / "data"
    config_path = base / "pulse.toml"
    text = textwrap.dedent(config_text)
    if "[server]" not in text:
        text = f"[server]\ndata_dir = {json.dumps(str(data_dir))}\n\n{text}"
    config_path.write_text(text)
    proc = ServerProcess(
        ["--config", str(config_path), "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *extra_args]
    )
    address = proc.start(timeout=START_TIMEOUT)
    return ServerHandle(address=address, data_dir=data_dir, process=proc, config_path=config_path)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    started: list[ServerHandle] = []

    def start(config_text: str = "", extra_args: tuple[str, ...] | list[str] = ()) -> ServerHandle:
        base = tmp_path / f"server{len(started)}"
        base.mkdir()
        handle = start_server_process(base, config_text, extra_args)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def server(server_factory: Callable[..., ServerHandle]) -> ServerHandle:
    return server_factory()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = start_server_process(tmp_path_factory.mktemp("shared"))
    yield handle
    handle.stop()


@pytest.fixture
async def inproc_server(tmp_path: Path) -> AsyncIterator[ServerHandle]:
    from pulse_tui.config import Config
    from pulse_tui.pulse.server import PulseServer, ServerSettings

    settings = ServerSettings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", grace=2.0, retention_secs=None
    )
    srv = PulseServer(settings, Config())
    await srv.start()
    try:
        yield ServerHandle(address=srv.address, data_dir=settings.data_dir, server=srv)
    finally:
        await srv.stop(0)
