"""A real `pulse-tui serve` child process for the measures that go over gRPC, plus its stubs."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc

from bench.common import Child, python_child, rss_mb
from pulse_tui.protocol import operator_pb2, operator_pb2_grpc

DEMO_PLUGIN = """
[[plugins]]
name = "demo"
command = ["{python}", "-m", "pulse_tui.plugins.demo"]
"""


def write_config(
    d: Path,
    *,
    plugins: str = "",
    concurrency: int = 64,
    retention_days: float = 0,
    db: str = "",
    durability: str = "",
    prefetch: int | None = None,
) -> Path:
    """`db`: "" for the SQLite file in the data dir, or a store URL (postgresql://…).
    `durability`: "" for the server's default, or "full"/"normal" (SQLite).
    `prefetch`: None for the server's default (`[server] prefetch`)."""
    cfg = d / "pulse.toml"
    db_line = f"db = {json.dumps(db)}\n" if db else ""
    if prefetch is not None:
        db_line += f"prefetch = {prefetch}\n"
    if durability:
        db_line += f"durability = {json.dumps(durability)}\n"
    cfg.write_text(
        f"[server]\nconcurrency = {concurrency}\nretention_days = {retention_days}\n{db_line}{plugins}\n"
    )
    return cfg


class Server:
    """`python -m pulse_tui serve` on 127.0.0.1:0 with its own data dir."""

    def __init__(
        self,
        d: Path,
        *,
        plugins: str = "",
        concurrency: int = 64,
        db: str = "",
        durability: str = "",
        prefetch: int | None = None,
    ) -> None:
        self.dir = d
        self.data_dir = d / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.config = write_config(
            d, plugins=plugins, concurrency=concurrency, db=db, durability=durability, prefetch=prefetch
        )
        self.child: Child | None = None
        self.address = ""
        self.token = ""

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pulse.db"

    def start(self, timeout: float = 60.0) -> Server:
        self.child = python_child(
            [
                "-m",
                "pulse_tui",
                "serve",
                "--config",
                str(self.config),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(self.data_dir),
            ]
        )
        m = self.child.wait_line(r"pulse: listening on (\S+)", timeout=timeout)
        self.address = m.group(1).replace("0.0.0.0", "127.0.0.1")
        self.token = (self.data_dir / "token").read_text().strip()
        return self

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=20)

    def rss_mb(self) -> float:
        assert self.child is not None
        return rss_mb(self.child.pid)

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    def operator(self, channel: grpc.aio.Channel) -> operator_pb2_grpc.OperatorServiceStub:
        return operator_pb2_grpc.OperatorServiceStub(channel)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def wait_handler(
    srv: Server, stub: operator_pb2_grpc.OperatorServiceStub, name: str, timeout: float
) -> None:
    """Wait until `name` is routable (a plugin announced it)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = await stub.ListHandlers(operator_pb2.ListHandlersRequest(), metadata=srv.metadata())
        if any(h.name == name for h in resp.handlers):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"handler {name} not announced within {timeout}s")
        await asyncio.sleep(0.05)


async def count(srv: Server, stub: operator_pb2_grpc.OperatorServiceStub, cap: int) -> dict[str, int]:
    resp = await stub.CountJobs(operator_pb2.CountJobsRequest(cap=cap), metadata=srv.metadata())
    return dict(resp.by_status)


async def enqueue_concurrent(
    srv: Server,
    stub: operator_pb2_grpc.OperatorServiceStub,
    handler: str,
    n: int,
    in_flight: int = 64,
    payload: bytes = b"{}",
) -> float:
    """n OperatorService.Enqueue calls, `in_flight` at a time (bounded: FIELD-NOTES); seconds taken."""
    md = srv.metadata()
    req = operator_pb2.EnqueueRequest(handler=handler, payload=payload)
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            next_i += 1
            await stub.Enqueue(req, metadata=md, timeout=30)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(in_flight, n))))
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit("bench.serve is a helper; run `python -m bench` or one measure module")
