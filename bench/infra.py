"""The servers the peers need, started by the bench itself, and CPU accounting.

- Redis (dramatiq, Celery): the Debian package `redis-server`; installed with apt-get when missing
  (as root), started on a free 127.0.0.1 port with persistence off (`--save "" --appendonly no`)
  so it is compared as the in-memory broker it is usually run as. Said on stderr.
- PostgreSQL (our PostgresStore, pgqueuer, procrastinate): tests/pg.py's throwaway cluster
  (initdb in a temp dir, its SERVER_SETTINGS), one server for all of them in a run.

`python -m bench` starts each once and hands them to the measures through PULSE_BENCH_REDIS and
PULSE_BENCH_PG (JSON); a measure run alone starts its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from bench.common import Child

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg import PgServer, start_pg

REDIS_ENV = "PULSE_BENCH_REDIS"
PG_ENV = "PULSE_BENCH_PG"


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- Redis


@dataclass
class RedisInfo:
    url: str
    pid: int


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError("redis-server not found; install the Debian package redis-server")
    say("redis-server not found: installing the Debian package redis-server with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"]
    if subprocess.run(cmd, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=True)
        subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=True)
    # the package starts a system service on 6379; the bench uses its own server only
    subprocess.run(["service", "redis-server", "stop"], capture_output=True, timeout=60, check=False)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("apt-get installed redis-server but it is not on PATH")
    return found


@contextlib.contextmanager
def redis_server() -> Iterator[RedisInfo]:
    if os.environ.get(REDIS_ENV):
        yield RedisInfo(**json.loads(os.environ[REDIS_ENV]))
        return
    binary = redis_binary()
    port = free_port()
    child = Child(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + [
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--dir",
            tempfile.gettempdir(),
            "--loglevel",
            "warning",
        ]
    )
    try:
        _wait_redis(port, child)
        say(f"started redis-server on 127.0.0.1:{port} (persistence off: --save '' --appendonly no)")
        yield RedisInfo(url=f"redis://127.0.0.1:{port}/0", pid=child.pid)
    finally:
        child.stop()


def _wait_redis(port: int, child: Child, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
        if child.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {child.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"redis-server not answering on {port}")
        time.sleep(0.05)


# ---------------------------------------------------------------- PostgreSQL


@dataclass
class PgInfo:
    url: str  # the `postgres` database; measures create their own
    pid: int  # postmaster


@contextlib.contextmanager
def pg_server() -> Iterator[PgInfo]:
    if os.environ.get(PG_ENV):
        yield PgInfo(**json.loads(os.environ[PG_ENV]))
        return
    srv: PgServer = start_pg()
    try:
        pid = int((srv.data / "postmaster.pid").read_text().split()[0])
        yield PgInfo(url=srv.url(), pid=pid)
    finally:
        srv.stop()


async def create_database(info: PgInfo, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(info.url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return info.url.rsplit("/", 1)[0] + f"/{name}"


def infra_env(redis: RedisInfo | None, pg: PgInfo | None) -> dict[str, str]:
    env = {}
    if redis is not None:
        env[REDIS_ENV] = json.dumps(asdict(redis))
    if pg is not None:
        env[PG_ENV] = json.dumps(asdict(pg))
    return env


# ---------------------------------------------------------------- CPU


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and all its live descendants."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (not its children); 0 once it has gone."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return t.user + t.system


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class CpuMeter:
    """CPU seconds spent between start() and stop() by this process and the given process trees
    (a tree's processes that exit before stop() are not counted: take stop() before they end)."""

    def __init__(self, *pids: int, include_self: bool = True) -> None:
        self.pids = list(pids)
        self.include_self = include_self
        self._t0 = 0.0
        self.seconds = 0.0

    def _now(self) -> float:
        return (self_cpu() if self.include_self else 0.0) + sum(tree_cpu(p) for p in self.pids)

    def start(self) -> CpuMeter:
        self._t0 = self._now()
        return self

    def stop(self) -> float:
        self.seconds = self._now() - self._t0
        return self.seconds


def per_1k(cpu_s: float, n: int) -> float:
    return round(cpu_s / n * 1000, 4)
