"""live_progress_lag_p95_ms: a plugin's progress update to the TUI repaint showing it.

A real `pulse-tui serve` runs a small SDK plugin (bench/progress_plugin.py) whose handler reports
progress 1..K, one step every INTERVAL s, and logs when each ctx.progress() call was made. This
process runs PulseApp headless (App.run_test) on the Jobs screen; JobTable.render_line is wrapped
to note when it draws the job's row and with what progress. The lag of update i is the first frame
drawing progress ≥ i minus the time the plugin reported i (both time.time() on this machine).

Path measured: plugin ctx.progress → SDK progress sink → QueueService.UpdateJob → engine → event
bus → OperatorService.WatchJobs → TUI client → app flush (≤ 10/s) → JobTable repaint.
Secondary: the same lag to the WatchJobs event arriving at a bare gRPC client in this process.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from bench.common import Result, main, percentile, temp_dir
from bench.serve import Server, wait_handler
from bench.sizes import progress_samples
from bench.tui import SIZE, PaintLog, until
from pulse_tui.protocol import operator_pb2

INTERVAL = 0.1  # s between progress reports (the SDK coalesces to ≤ 4 UpdateJob calls per second)
STEPS = 10  # progress steps per job


def plugin_config() -> str:
    script = Path(__file__).with_name("progress_plugin.py")
    return f'\n[[plugins]]\nname = "benchprog"\ncommand = ["{{python}}", {json.dumps(str(script))}]\n'


async def drive(srv: Server, jobs: int, log: Path) -> tuple[list[float], list[float]]:
    from pulse_tui.app import PulseApp
    from pulse_tui.widgets.job_table import JobTable

    paints = PaintLog()
    app = PulseApp(srv.address, srv.token)
    watch_seen: dict[tuple[str, int], float] = {}
    job_ids: list[str] = []
    try:
        async with srv.channel() as ch, app.run_test(size=SIZE) as pilot:
            stub = srv.operator(ch)
            await wait_handler(srv, stub, "bench.progress", 30)
            await app.wait_connected()
            await until(pilot, lambda: app.focused is app.screen.query_one(JobTable), "the jobs screen")

            async def watch() -> None:
                call = stub.WatchJobs(operator_pb2.WatchJobsRequest(), metadata=srv.metadata())
                async for ev in call:
                    if ev.kind == "upsert":
                        key = (ev.job.id, ev.job.progress_current)
                        watch_seen.setdefault(key, time.time())

            watcher = asyncio.create_task(watch())
            payload = json.dumps({"steps": STEPS, "interval": INTERVAL, "log": str(log)}).encode()
            for _ in range(jobs):
                resp = await stub.Enqueue(
                    operator_pb2.EnqueueRequest(handler="bench.progress", payload=payload),
                    metadata=srv.metadata(),
                )
                jid = resp.job.id
                job_ids.append(jid)
                await until(
                    pilot,
                    lambda jid=jid: paints.first_after(
                        0, lambda p: p.job_id == jid and p.progress >= STEPS and p.status == "completed"
                    ),
                    "the completed job's row",
                    timeout=30,
                )
            watcher.cancel()
    finally:
        paints.close()

    reports = [line.split() for line in log.read_text().splitlines()]
    tui_lags: list[float] = []
    watch_lags: list[float] = []
    for jid, step_s, t_s in reports:
        step, t = int(step_s), float(t_s)
        shown = [p.wall for p in paints.paints if p.job_id == jid and p.progress >= step and p.wall >= t]
        if shown:
            tui_lags.append((min(shown) - t) * 1000)
        seen = [w for (j, prog), w in watch_seen.items() if j == jid and prog >= step and w >= t]
        if seen:
            watch_lags.append((min(seen) - t) * 1000)
    if len(tui_lags) < len(reports):
        raise RuntimeError(f"only {len(tui_lags)} of {len(reports)} progress updates were ever drawn")
    return tui_lags, watch_lags


def run(quick: bool) -> Result:
    samples = progress_samples(quick)
    jobs = max(1, samples // STEPS)
    with temp_dir("progress") as d:
        log = d / "progress.log"
        with Server(d, plugins=plugin_config()) as srv:
            tui_lags, watch_lags = asyncio.run(drive(srv, jobs, log))
    how = (
        f"{len(tui_lags)} progress updates ({jobs} jobs × {STEPS} steps, one every {INTERVAL:g}s) from an SDK"
        " plugin under `pulse-tui serve`, to the PulseApp (headless) frame drawing them"
    )
    return Result(
        figures={"live_progress_lag_p95_ms": percentile(tui_lags, 95)},
        notes={"live_progress_lag_p95_ms": how},
        params={"jobs": jobs, "steps": STEPS, "interval_s": INTERVAL},
        extra={
            "live_progress_lag_p50_ms": round(percentile(tui_lags, 50), 1),
            "live_progress_lag_max_ms": round(max(tui_lags), 1),
            "live_progress_lag_watch_p50_ms": round(percentile(watch_lags, 50), 1) if watch_lags else None,
            "live_progress_lag_watch_p95_ms": round(percentile(watch_lags, 95), 1) if watch_lags else None,
        },
    )


if __name__ == "__main__":
    main(run)
