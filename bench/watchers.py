"""watchers64_drain_ratio: how much 64 WatchJobs subscribers slow a drain.

A `pulse-tui serve` child runs N `demo.echo` jobs through the demo plugin (the production path:
work done by a plugin process) with 0 and then with 64 watchers connected (each configuration on
a fresh server, interleaved, best of `REPS`). The same with the built-in `pulse.noop` (no plugin,
~4x faster) is a secondary figure: there every watcher must still receive every job, and on two
shared cores the 64 readers in this process compete with the server for CPU. The watchers are streams of
this process (one channel), each registered (first heartbeat seen) before the jobs are enqueued and
each reading every event as the TUI does (batched, `WatchJobsRequest.batched`). One of them
decodes every event and is checked to have seen every job completed; the other 63 take the raw
bytes without decoding them, as remote TUIs would cost this machine nothing for decoding (on two
shared cores, 64 decoders in this process would measure the readers, not the server's fan-out). The jobs are enqueued in one EnqueueMany call with a 1 s delay, so
all become due together after the call returned; the drain is the span from that moment to the
last `completed_at`, read from the server's SQLite file. ratio = jobs/s with 64 / jobs/s with 0.
Beside it (steadier on a shared machine): CPU seconds of the server and its plugin from the
enqueue to the end of the drain, per 1,000 jobs, with 0 and with 64 watchers.
"""

from __future__ import annotations

import asyncio
import sqlite3

import grpc

from bench.common import Result, main, temp_dir
from bench.infra import CpuMeter
from bench.plugin_drain import wait_drained
from bench.serve import DEMO_PLUGIN, Server, wait_handler
from pulse_tui.protocol import operator_pb2 as op

WATCHERS = 64
DELAY_S = 1.0
REPS = 3


def watch_n(quick: bool) -> int:
    return 2_000 if quick else 5_000


WATCH_METHOD = "/pulse.operator.v1.OperatorService/WatchJobs"


async def one(srv: Server, n: int, watchers: int, handler: str, parse_all: bool = False) -> dict:
    """One drain with `watchers` streams. The first stream decodes every event and checks every job
    completed; the others take the raw bytes (`parse_all`: they decode and check too)."""
    md = srv.metadata()
    async with srv.channel() as ch:
        stub = srv.operator(ch)
        if handler != "pulse.noop":
            await wait_handler(srv, stub, handler, timeout=60)
        raw_watch = ch.unary_stream(
            WATCH_METHOD, request_serializer=op.WatchJobsRequest.SerializeToString, response_deserializer=None
        )
        calls = [
            (stub.WatchJobs if i == 0 or parse_all else raw_watch)(
                op.WatchJobsRequest(batched=True), metadata=md
            )
            for i in range(watchers)
        ]
        for call in calls:
            first = await call.read()
            if isinstance(first, bytes):
                first = op.JobEvent.FromString(first)
            assert first.kind == "heartbeat", first
        completed = [set() for _ in calls]
        messages = [0] * watchers
        received = [0] * watchers
        all_seen = asyncio.Event()

        async def follow(i: int) -> None:
            while True:
                event = await calls[i].read()
                if event is grpc.aio.EOF:
                    return
                messages[i] += 1
                if isinstance(event, bytes):
                    received[i] += len(event)
                    continue
                received[i] += event.ByteSize()
                if event.kind == "resync":
                    raise RuntimeError("a watcher was told to resync")
                for job in event.jobs:
                    if job.status == "completed":
                        completed[i].add(job.id)
                if all(len(c) >= n for j, c in enumerate(completed) if j == 0 or parse_all):
                    all_seen.set()

        readers = [asyncio.create_task(follow(i)) for i in range(watchers)]
        reqs = [op.EnqueueRequest(handler=handler, delay_secs=DELAY_S) for _ in range(n)]
        assert srv.child is not None
        server_cpu = CpuMeter(srv.child.pid, include_self=False).start()  # the server and its plugin
        await stub.EnqueueMany(op.EnqueueManyRequest(jobs=reqs), metadata=md, timeout=60)
        await asyncio.to_thread(wait_drained, srv.db_path, n, max(60.0, n / 20))
        server_cpu.stop()
        if watchers:
            await asyncio.wait_for(all_seen.wait(), 60)
        for call in calls:
            call.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    conn = sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True)
    try:
        start, end = conn.execute("SELECT MIN(run_at), MAX(completed_at) FROM jobs").fetchone()
    finally:
        conn.close()
    return {
        "secs": end - start,
        "server_cpu_s": server_cpu.seconds,
        "messages_per_watcher": round(sum(messages) / watchers) if watchers else 0,
        "kb_per_watcher": round(sum(received) / watchers / 1024) if watchers else 0,
    }


PATHS = {"plugin": ("demo.echo", DEMO_PLUGIN), "builtin": ("pulse.noop", "")}


def measure(n: int, watchers: int, path: str) -> dict:
    handler, plugins = PATHS[path]
    with temp_dir("watch") as d, Server(d, plugins=plugins) as srv:
        return asyncio.run(one(srv, n, watchers, handler))


def run(quick: bool) -> Result:
    n = watch_n(quick)
    reps = 2 if quick else REPS
    paths = ("plugin",) if quick else ("plugin", "builtin")
    runs: dict[tuple[str, int], list[dict]] = {(p, w): [] for p in paths for w in (0, WATCHERS)}
    for _ in range(reps):
        for p in paths:
            for w in (0, WATCHERS):
                runs[p, w].append(measure(n, w, p))
    best = {k: min(r["secs"] for r in rs) for k, rs in runs.items()}
    ratio = {p: best[p, 0] / best[p, WATCHERS] for p in paths}
    extra: dict = {}
    for p in paths:
        extra[f"watchers_{p}_0_drain_jobs_per_s"] = round(n / best[p, 0])
        extra[f"watchers_{p}_64_drain_jobs_per_s"] = round(n / best[p, WATCHERS])
        extra[f"watchers_{p}_runs_s"] = {
            str(w): [round(r["secs"], 3) for r in runs[p, w]] for w in (0, WATCHERS)
        }
        extra[f"watchers_{p}_64_messages_per_watcher"] = runs[p, WATCHERS][-1]["messages_per_watcher"]
        extra[f"watchers_{p}_64_kb_per_watcher"] = runs[p, WATCHERS][-1]["kb_per_watcher"]
        cpu = {w: min(r["server_cpu_s"] for r in runs[p, w]) for w in (0, WATCHERS)}
        extra[f"watchers_{p}_server_cpu_s_per_1k"] = {str(w): round(c / n * 1000, 4) for w, c in cpu.items()}
        extra[f"watchers_{p}_64_server_cpu_ratio"] = round(cpu[WATCHERS] / cpu[0], 3)
    if "builtin" in ratio:
        extra["watchers64_builtin_noop_drain_ratio"] = round(ratio["builtin"], 3)
    return Result(
        figures={"watchers64_drain_ratio": ratio["plugin"]},
        notes={
            "watchers64_drain_ratio": f"N={n:,} demo.echo jobs through `pulse-tui serve` and the demo plugin,"
            f" jobs/s with {WATCHERS} reading WatchJobs streams (batched, in the bench process, 1 decoding) / jobs/s with"
            f" none; fresh server each, best of {reps} interleaved"
        },
        params={"n": n, "watchers": WATCHERS, "reps": reps, "paths": list(paths)},
        extra=extra,
    )


if __name__ == "__main__":
    main(run)
