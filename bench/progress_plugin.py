"""A plugin for the live-progress measure, written with the SDK: `bench.progress` reports
progress 1..steps, one step every `interval` seconds, and appends `job_id step unix_time` for each
report to the file named in the payload (so the bench knows when each update left the plugin).

Run by the server as `python <this file> --port N`."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pulse_tui.sdk import Context, Plugin

plugin = Plugin("benchprog", version="1.0.0", description="progress timing for bench/live_progress")


@plugin.handler("bench.progress")
async def progress(ctx: Context, payload: Any) -> dict[str, Any]:
    steps = int(payload.get("steps", 10))
    interval = float(payload.get("interval", 0.1))
    stamps = []
    for i in range(1, steps + 1):
        await asyncio.sleep(interval)
        stamps.append(f"{ctx.job_id} {i} {time.time():.6f}\n")
        ctx.progress(i, steps)
    with open(payload["log"], "a") as f:
        f.writelines(stamps)
    return {"steps": steps}


if __name__ == "__main__":
    plugin.run()
