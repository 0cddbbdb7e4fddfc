"""watchers64_drain_ratio: how much 64 consoles watching slow a drain.

A `pulse-tui serve` child runs N `demo.echo` jobs through the demo plugin (the production path:
work done by a plugin process) with 0 and then with 64 watchers connected (each configuration on
a fresh server, interleaved, best of `REPS`). The same with the built-in `pulse.noop` (no plugin,
~4x faster) is a secondary figure. The watchers are streams of this process (one channel), each
registered (first heartbeat seen) before the jobs are enqueued.

`watchers64_drain_ratio`: the 64 watchers behave like 64 consoles (what `pulse-tui` opens): a view
stream (`WatchJobsRequest.view`) that carries in full only the jobs on the console's page and
counts the other changes, with every job's count by status taken after them (what the status
bar and an unfiltered list show); on such changes each refetches as the console does (at most 5
times a second): its page (ListJobs, 100 rows, between two SetWatchView: widened while it is on its
way, then the rows got and their lowest seq) only when some were at or above the page's lowest
seq (new jobs on top); two CountJobs only if no counts came. One of them is checked to end with every job
counted completed. `watchers64_all_events_drain_ratio` keeps the earlier figure comparable: 64
streams that receive every change (`batched`, what `jobs watch` and compatible clients open); one
decodes every event and is checked to have seen every job completed; the other 63 take the raw
bytes without decoding them, as remote clients would cost this machine nothing for decoding.

The jobs are enqueued in one EnqueueMany call with a 1 s delay, so all become due together after
the call returned; the drain is the span from that moment to the last `completed_at`, read from the
server's SQLite file. ratio = jobs/s with 64 / jobs/s with 0. Beside it (steadier on a shared
machine): CPU seconds of the server and its plugin from the enqueue to the end of the drain, per
1,000 jobs, with 0 and with 64 watchers.
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
PAGE_ROWS = 100  # the console's page (JobTable.PAGE)
REFETCH_S = 1.0  # the console refetches for changes it does not show at most this often
NEAR_S = 0.2  # the same for changes that may enter its page (app.NEAR_INTERVAL)


async def consoles(srv: Server, ch: grpc.aio.Channel, n: int, watchers: int, ready: asyncio.Event) -> dict:
    """`watchers` console-like view streams until the first one counts every job completed."""
    md = srv.metadata()
    stub = srv.operator(ch)
    calls = [
        stub.WatchJobs(op.WatchJobsRequest(batched=True, view=True), metadata=md) for _ in range(watchers)
    ]
    tokens = []
    for call in calls:
        first = await call.read()
        assert first.kind == "heartbeat" and first.view_token, first
        tokens.append(first.view_token)
    ready.set()
    messages = [0] * watchers
    received = [0] * watchers
    refetches = [0] * watchers
    pages = [0] * watchers
    done = asyncio.Event()

    async def follow(i: int) -> None:
        dirty = asyncio.Event()
        near = True  # some changes were at or above the page's lowest seq: refetch the page
        counts_owed = False
        near_seen = asyncio.Event()
        shown: dict[str, op.Job] = {}

        async def refetch() -> None:
            nonlocal near, counts_owed
            while True:
                await dirty.wait()
                dirty.clear()
                refetches[i] += 1
                if near:
                    near = False
                    pages[i] += 1
                    ids = list(shown)
                    await stub.SetWatchView(  # widened while the page is on its way
                        op.SetWatchViewRequest(view_token=tokens[i], ids=ids), metadata=md
                    )
                    page = await stub.ListJobs(op.ListJobsRequest(limit=PAGE_ROWS), metadata=md)
                    shown.clear()
                    shown.update((j.id, j) for j in page.jobs)
                    low = min((j.seq for j in page.jobs), default=0)
                    await stub.SetWatchView(
                        op.SetWatchViewRequest(view_token=tokens[i], ids=list(shown), from_seq=low),
                        metadata=md,
                    )
                if counts_owed:  # no counts followed the changes (the server could not count)
                    await stub.CountJobs(op.CountJobsRequest(cap=10_000), metadata=md)
                    await stub.CountJobs(op.CountJobsRequest(), metadata=md)  # the status bar's
                # the console's pace (not a synchronisation): NEAR_S after a refetch when new jobs
                # may enter the page, REFETCH_S otherwise
                await asyncio.sleep(NEAR_S)
                if not near:
                    try:
                        await asyncio.wait_for(near_seen.wait(), REFETCH_S - NEAR_S)
                    except TimeoutError:
                        pass
                near_seen.clear()

        task = asyncio.create_task(refetch())
        try:
            while True:
                event = await calls[i].read()
                if event is grpc.aio.EOF:
                    return
                messages[i] += 1
                received[i] += event.ByteSize()
                if event.kind == "resync" or event.others:
                    dirty.set()
                    near = near or event.kind == "resync" or event.others_from_seq > 0
                    if near:
                        near_seen.set()
                if event.kind == "batch":
                    counts_owed = not event.HasField("counts")
                    if i == 0 and event.counts.by_status.get("completed", 0) >= n:
                        done.set()
                for job in event.jobs:
                    shown[job.id] = job
        finally:
            task.cancel()

    readers = [asyncio.create_task(follow(i)) for i in range(watchers)]
    try:
        await asyncio.wait_for(done.wait(), max(60.0, n / 20))
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return {
        "messages_per_watcher": round(sum(messages) / watchers),
        "kb_per_watcher": round(sum(received) / watchers / 1024),
        "refetches_per_watcher": round(sum(refetches) / watchers, 1),
        "pages_per_watcher": round(sum(pages) / watchers, 1),
    }


async def one(
    srv: Server, n: int, watchers: int, handler: str, parse_all: bool = False, kind: str = "all"
) -> dict:
    """One drain with `watchers` streams. kind "console": console-like view streams (`consoles`).
    kind "all": the first stream decodes every event and checks every job completed; the others
    take the raw bytes (`parse_all`: they decode and check too)."""
    md = srv.metadata()
    async with srv.channel() as ch:
        stub = srv.operator(ch)
        if handler != "pulse.noop":
            await wait_handler(srv, stub, handler, timeout=60)
        if kind == "console" and watchers:
            return await one_console(srv, ch, stub, n, watchers, handler)
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
        server_cpu = await enqueue_and_drain(srv, stub, md, n, handler)
        if watchers:
            await asyncio.wait_for(all_seen.wait(), 60)
        for call in calls:
            call.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    return {
        "secs": drain_secs(srv),
        "server_cpu_s": server_cpu.seconds,
        "messages_per_watcher": round(sum(messages) / watchers) if watchers else 0,
        "kb_per_watcher": round(sum(received) / watchers / 1024) if watchers else 0,
    }


async def enqueue_and_drain(srv: Server, stub, md, n: int, handler: str) -> CpuMeter:
    """N jobs of `handler` enqueued in one call (delayed DELAY_S), then waited for until drained;
    the CPU the server and its plugin spent meanwhile."""
    reqs = [op.EnqueueRequest(handler=handler, delay_secs=DELAY_S) for _ in range(n)]
    assert srv.child is not None
    server_cpu = CpuMeter(srv.child.pid, include_self=False).start()  # the server and its plugin
    await stub.EnqueueMany(op.EnqueueManyRequest(jobs=reqs), metadata=md, timeout=60)
    await asyncio.to_thread(wait_drained, srv.db_path, n, max(60.0, n / 20))
    server_cpu.stop()
    return server_cpu


async def one_console(srv: Server, ch: grpc.aio.Channel, stub, n: int, watchers: int, handler: str) -> dict:
    md = srv.metadata()
    ready = asyncio.Event()
    watching = asyncio.create_task(consoles(srv, ch, n, watchers, ready))
    await asyncio.wait_for(ready.wait(), 60)
    server_cpu = await enqueue_and_drain(srv, stub, md, n, handler)
    seen = await watching
    return {"secs": drain_secs(srv), "server_cpu_s": server_cpu.seconds, **seen}


def drain_secs(srv: Server) -> float:
    conn = sqlite3.connect(f"file:{srv.db_path}?mode=ro", uri=True)
    try:
        start, end = conn.execute("SELECT MIN(run_at), MAX(completed_at) FROM jobs").fetchone()
    finally:
        conn.close()
    return end - start


PATHS = {"plugin": ("demo.echo", DEMO_PLUGIN), "builtin": ("pulse.noop", "")}


def measure(n: int, watchers: int, path: str, kind: str = "all") -> dict:
    handler, plugins = PATHS[path]
    with temp_dir("watch") as d, Server(d, plugins=plugins) as srv:
        return asyncio.run(one(srv, n, watchers, handler, kind=kind))


# (watchers, kind): none, 64 consoles (the target's figure), 64 all-events streams (the old figure)
CONFIGS = ((0, "none"), (WATCHERS, "console"), (WATCHERS, "all"))


def run(quick: bool) -> Result:
    n = watch_n(quick)
    reps = 2 if quick else REPS
    paths = ("plugin",) if quick else ("plugin", "builtin")
    runs: dict[tuple[str, str], list[dict]] = {(p, k): [] for p in paths for _, k in CONFIGS}
    for _ in range(reps):
        for p in paths:
            for w, k in CONFIGS:
                runs[p, k].append(measure(n, w, p, k))
    best = {key: min(r["secs"] for r in rs) for key, rs in runs.items()}
    cpu = {key: min(r["server_cpu_s"] for r in rs) for key, rs in runs.items()}
    ratio = {(p, k): best[p, "none"] / best[p, k] for p in paths for k in ("console", "all")}
    extra: dict = {}
    for p in paths:
        extra[f"watchers_{p}_0_drain_jobs_per_s"] = round(n / best[p, "none"])
        extra[f"watchers_{p}_runs_s"] = {k: [round(r["secs"], 3) for r in runs[p, k]] for _, k in CONFIGS}
        extra[f"watchers_{p}_server_cpu_s_per_1k"] = {
            "0": round(cpu[p, "none"] / n * 1000, 4),
            "64": round(cpu[p, "console"] / n * 1000, 4),
            "64_all_events": round(cpu[p, "all"] / n * 1000, 4),
        }
        for k, tag in (("console", "64"), ("all", "64_all_events")):
            extra[f"watchers_{p}_{tag}_drain_jobs_per_s"] = round(n / best[p, k])
            extra[f"watchers_{p}_{tag}_messages_per_watcher"] = runs[p, k][-1]["messages_per_watcher"]
            extra[f"watchers_{p}_{tag}_kb_per_watcher"] = runs[p, k][-1]["kb_per_watcher"]
            extra[f"watchers_{p}_{tag}_server_cpu_ratio"] = round(cpu[p, k] / cpu[p, "none"], 3)
        extra[f"watchers_{p}_64_refetches_per_watcher"] = runs[p, "console"][-1]["refetches_per_watcher"]
        extra[f"watchers_{p}_64_page_refetches_per_watcher"] = runs[p, "console"][-1]["pages_per_watcher"]
    if "builtin" in paths:
        extra["watchers64_builtin_noop_drain_ratio"] = round(ratio["builtin", "console"], 3)
        extra["watchers64_all_events_builtin_noop_drain_ratio"] = round(ratio["builtin", "all"], 3)
    how = (
        f"N={n:,} demo.echo jobs through `pulse-tui serve` and the demo plugin, jobs/s with {WATCHERS}"
        " watchers in the bench process / jobs/s with none; fresh server each, best of"
        f" {reps} interleaved"
    )
    return Result(
        figures={
            "watchers64_drain_ratio": ratio["plugin", "console"],
            "watchers64_all_events_drain_ratio": ratio["plugin", "all"],
        },
        notes={
            "watchers64_drain_ratio": how
            + "; the watchers behave like consoles: view streams (the jobs on a 100-row page in full,"
            " the rest counted, counts by status from the stream) refetching the page (at most 5/s) only"
            " when new jobs may enter it",
            "watchers64_all_events_drain_ratio": how
            + "; every watcher receives every change (batched, 1 decoding), as before the console's"
            " view streams",
        },
        params={"n": n, "watchers": WATCHERS, "reps": reps, "paths": list(paths)},
        extra=extra,
    )


if __name__ == "__main__":
    main(run)
