"""SDK test plugin for batched execution (name "batchplug" or $BATCHPLUG_NAME); every SDK plugin serves BatchExecService."""

import asyncio
import os
from pathlib import Path

from pulse_tui.sdk import Plugin

plugin = Plugin(
    os.environ.get("BATCHPLUG_NAME", "batchplug"), version="3.1", description="batched execution test plugin"
)


@plugin.handler("b.echo")
async def echo(ctx, payload):
    ctx.log("info", f"echo {ctx.job_id}", stage="echo")
    return {"job_id": ctx.job_id, "payload": payload}


@plugin.handler("b.fail")
async def fail(ctx, payload):
    ctx.log("info", f"failing {ctx.job_id}")
    raise RuntimeError(f"fail {payload.get('n')}")


@plugin.handler("b.hang")
async def hang(ctx, payload):
    """Reports progress 1/4 and a log line, then waits until cancelled; the marker file then says
    `cancelled=<ctx.cancelled>`."""
    marker = Path(payload["marker"])
    ctx.progress(1, 4)
    ctx.log("info", f"hanging {ctx.job_id}", stage="hang")
    marker.write_text("started")
    try:
        await asyncio.sleep(3600)
    finally:
        marker.write_text(f"cancelled={ctx.cancelled}")


@plugin.handler("b.gate")
async def gate(ctx, payload):
    """First run: writes its marker (with this process's pid) and hangs. Later runs: return."""
    marker = Path(payload["marker"])
    if marker.exists():
        return {"second": True, "pid": os.getpid()}
    marker.write_text(str(os.getpid()))
    await asyncio.sleep(3600)


if __name__ == "__main__":
    plugin.run()
