"""The demo plugin: handlers for trying Pulse out and for testing failure handling.

demo.echo          returns the payload
demo.sleep         {"seconds": 1, "steps": 10}: sleeps, reporting progress per step
demo.flaky         {"fail_rate": 0.5}: fails that fraction of runs (retries show up)
demo.crash         {"after": 0.2}: kills this whole process mid-job (os._exit)
data.import        claimed by `importer` too: an exact naming conflict
data.batch-import  `importer` has data.batch_import: a near conflict
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from pulse_tui.sdk import Context, JobError, Plugin

plugin = Plugin("demo", version="1.0.0", description="demo handlers: echo, sleep, flaky, crash")


def _number(payload: Any, key: str, default: float) -> float:
    value = payload.get(key, default) if isinstance(payload, dict) else default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JobError(f"{key} must be a number, got {value!r}")
    return float(value)


@plugin.handler("demo.echo")
async def echo(ctx: Context, payload: Any) -> Any:
    return payload  # no progress report: a no-op round trip (benchmarks use it)


@plugin.handler("demo.sleep")
async def sleep(ctx: Context, payload: Any) -> dict[str, Any]:
    seconds = _number(payload, "seconds", 1.0)
    steps = max(1, int(_number(payload, "steps", 10)))
    ctx.progress(0, steps)
    for i in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        ctx.progress(i, steps)
    ctx.log("info", f"slept {seconds:g}s in {steps} steps", stage="sleep")
    return {"slept": seconds, "steps": steps, "pid": os.getpid()}


@plugin.handler("demo.flaky")
async def flaky(ctx: Context, payload: Any) -> dict[str, Any]:
    rate = _number(payload, "fail_rate", 0.5)
    if not 0.0 <= rate <= 1.0:
        raise JobError(f"fail_rate must be between 0 and 1, got {rate:g}")
    if random.random() < rate:
        raise JobError(f"demo.flaky failed on purpose (fail_rate={rate:g})")
    return {"ok": True}


@plugin.handler("demo.crash")
async def crash(ctx: Context, payload: Any) -> dict[str, Any]:
    after = _number(payload, "after", 0.2)
    ctx.progress(0, 1)
    ctx.log("warn", f"this process will die in {after:g}s", stage="crash")
    await asyncio.sleep(after)
    os._exit(17)


@plugin.handler("data.import")
async def data_import(ctx: Context, payload: Any) -> dict[str, Any]:
    return {"imported_by": "demo", "payload": payload}


@plugin.handler("data.batch-import")
async def batch_import(ctx: Context, payload: Any) -> dict[str, Any]:
    return {"imported_by": "demo", "batch": True}


if __name__ == "__main__":
    plugin.run()
