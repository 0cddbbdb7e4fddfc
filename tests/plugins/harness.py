"""Helpers for plugin tests: start a real plugin process and read its port (no sleeps)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from pulse_tui.protocol import queue_pb2, queue_pb2_grpc

HERE = Path(__file__).resolve().parent


def script(name: str) -> list[str]:
    """argv running tests/plugins/<name> with this interpreter."""
    return [sys.executable, str(HERE / name)]


def module(name: str) -> list[str]:
    return [sys.executable, "-m", name]


@contextlib.asynccontextmanager
async def plugin_process(
    argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 20.0
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    proc = await asyncio.create_subprocess_exec(
        *argv, "--port", "0", stdout=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "plugin exited before printing its port"
                if line.startswith("QNTX_PLUGIN_PORT="):
                    port = int(line.split("=", 1)[1])
                    break
        yield proc, port
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@dataclass
class QueueRecorder(queue_pb2_grpc.QueueServiceServicer):
    """A stand-in for a QNTX-style queue server that records UpdateJob calls."""

    updates: list[queue_pb2.UpdateJobRequest] = field(default_factory=list)
    fail: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def UpdateJob(self, request, context):
        self.updates.append(request)
        self.changed.set()
        if self.fail:
            return queue_pb2.UpdateJobResponse(success=False, error="nope")
        return queue_pb2.UpdateJobResponse(success=True)


@contextlib.asynccontextmanager
async def queue_recorder() -> AsyncIterator[tuple[QueueRecorder, str]]:
    server = grpc.aio.server()
    recorder = QueueRecorder()
    queue_pb2_grpc.add_QueueServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield recorder, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def wait_until(predicate, timeout: float = 10.0, event: asyncio.Event | None = None) -> None:
    """Wait for `predicate()`; re-checked whenever `event` fires (or every 20 ms without one)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            if event is not None:
                event.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await event.wait()
            else:
                await asyncio.sleep(0.02)
