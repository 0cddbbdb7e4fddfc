"""A real PostgreSQL server for the test session. The fixtures are registered once, in
tests/conftest.py, so every module shares the session's server (a module importing them would
start a server of its own).

- `pg_server` (session): initdb into a temp dir, start `postgres` on 127.0.0.1 and a free port
  (socket dir inside the temp dir), wait until it accepts connections, stop it (`pg_ctl stop -m
  fast`) at the end. As root (CI), initdb and postgres refuse to run, so both run as the
  `postgres` user (`runuser -u postgres --`) on a directory that user owns.
- `pg_url` (function): a fresh, empty database on that server for one test.

If PostgreSQL cannot be started the tests that need it are skipped with the reason, or FAIL with
it when the environment variable CI is set (CI must run the PostgreSQL suite for real).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 30.0
SERVER_SETTINGS = (
    # a throwaway test cluster: durability off, enough connections for multi-node tests
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
)


class PgUnavailable(Exception):
    """PostgreSQL could not be started; the message says why."""


def find_bindir() -> Path:
    """The folder holding initdb/postgres/pg_ctl: PATH, then `pg_config --bindir`, then the
    Debian layout /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        d = Path(out.stdout.strip())
        if out.returncode == 0 and (d / "initdb").exists():
            return d
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    if candidates:
        return Path(candidates[-1]).parent
    raise PgUnavailable(
        "PostgreSQL server binaries not found (no initdb on PATH, no pg_config --bindir, nothing in "
        "/usr/lib/postgresql/*/bin); install them, e.g. `apt-get install postgresql`"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    bindir: Path
    base: Path
    port: int
    user: str | None  # run binaries as this user (root) or as ourselves (None)
    process: subprocess.Popen[bytes] | None = None
    _names: Iterator[int] = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        return self.base / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, name: str, *args: str) -> list[str]:
        argv = [str(self.bindir / name), *args]
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def _run(self, name: str, *args: str, timeout: float = 60.0) -> None:
        out = subprocess.run(
            self._cmd(name, *args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if out.returncode != 0:
            raise PgUnavailable(
                f"{name} failed (exit {out.returncode}): {out.stderr.strip() or out.stdout.strip()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = [arg for s in SERVER_SETTINGS for arg in ("-c", s)]
        log = self.logfile.open("wb")
        self.process = subprocess.Popen(
            self._cmd(
                "postgres",
                "-D",
                str(self.data),
                "-k",
                str(self.base),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                *settings,
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Poll with connection attempts until the server accepts them, the process exits, or the
        deadline passes."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._accepts_connections():
                return
            try:
                code = self.process.wait(timeout=0.05)  # the poll interval; also notices an exit
            except subprocess.TimeoutExpired:
                code = None
            if code is not None:
                raise PgUnavailable(f"postgres exited with status {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise PgUnavailable(
                    f"postgres did not accept connections within {START_TIMEOUT:g}s:\n{self.log_tail()}"
                )

    def _accepts_connections(self) -> bool:
        isready = self.bindir / "pg_isready"
        if isready.exists():
            out = subprocess.run(
                [str(isready), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-t", "1"],
                check=False,
            )
            return out.returncode == 0
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"pulse_test_{os.getpid()}_{next(self._names)}"
        self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-T", "template0", name
        )
        return self.url(name)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")
            except (PgUnavailable, subprocess.TimeoutExpired):
                self.process.kill()
            self.process.wait(timeout=30)
        self.process = None


def start_pg() -> PgServer:
    bindir = find_bindir()
    user: str | None = None
    base = Path(tempfile.mkdtemp(prefix="pulse-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise PgUnavailable(
                "running as root and `runuser` is missing: cannot run postgres as another user"
            )
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PgUnavailable(
                "running as root and there is no `postgres` user to run the server as"
            ) from None
        os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o700)
        user = "postgres"
    server = PgServer(bindir=bindir, base=base, port=free_port(), user=user)
    try:
        server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
        raise
    return server


def _unavailable(reason: str) -> None:
    msg = f"PostgreSQL is not available: {reason}"
    if os.environ.get("CI"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session", name="pg_server")
def pg_server_fixture() -> Iterator[PgServer | str]:
    """The session's PostgreSQL server, or the reason it could not be started."""
    try:
        server = start_pg()
    except (PgUnavailable, OSError, subprocess.SubprocessError) as exc:
        yield str(exc)
        return
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_server: PgServer | str) -> str:
    """A fresh database URL on the session's PostgreSQL server."""
    if isinstance(pg_server, str):
        _unavailable(pg_server)
    assert isinstance(pg_server, PgServer)
    try:
        return pg_server.create_database()
    except PgUnavailable as exc:
        _unavailable(str(exc))
        raise
