"""Test plugin built with the SDK. Name from $TEST_PLUGIN_NAME (default "testplug")."""

import asyncio
import os
import time
from pathlib import Path

from pulse_tui.sdk import Plugin

plugin = Plugin(os.environ.get("TEST_PLUGIN_NAME", "testplug"), version="2.5", description="test plugin")
plugin.config("greeting", description="word used by t.greet", default="hello")
plugin.config(
    "extra_handlers", description="comma-separated extra handler names", default="", element_type="string"
)
plugin.schedule("t.echo", "1h", enabled=False, description="hourly echo")


@plugin.on_initialize
def extra(config):
    names = [n for n in config.get("extra_handlers", "").split(",") if n]
    return {n: echo for n in names}


@plugin.handler("t.echo")
async def echo(ctx, payload):
    return {"payload": payload, "job_id": ctx.job_id, "handler": ctx.handler}


@plugin.handler("t.endpoints")
async def endpoints(ctx, payload):
    return ctx.endpoints


@plugin.handler("t.greet")
async def greet(ctx, payload):
    return f"{ctx.config['greeting']}, {payload.get('name', 'world')}"


@plugin.handler("t.progress")
async def progress(ctx, payload):
    n = int(payload.get("n", 10000))
    for i in range(n):
        ctx.progress(i + 1, n)
        if i % 1000 == 0:
            await asyncio.sleep(0)
    ctx.log("info", "done counting", stage="count", metadata={"n": n})
    await asyncio.sleep(float(payload.get("linger", 0.0)))
    return n


@plugin.handler("t.boom")
async def boom(ctx, payload):
    ctx.log("info", "about to fail")
    raise RuntimeError("kaboom")


@plugin.handler("t.badresult")
async def badresult(ctx, payload):
    return {"x": object()}


@plugin.handler("t.wait")
async def wait(ctx, payload):
    """Waits until cancelled; writes `cancelled=<flag>` to payload["marker"] when cancelled."""
    marker = Path(payload["marker"])
    marker.write_text("started")
    try:
        await asyncio.sleep(3600)
    finally:
        marker.write_text(f"cancelled={ctx.cancelled}")


@plugin.handler("t.sync")
def sync_handler(ctx, payload):
    time.sleep(0.01)
    return {"thread": True}


@plugin.handler("t.pid")
async def pid(ctx, payload):
    await asyncio.sleep(float(payload.get("seconds", 0)))
    return os.getpid()


if __name__ == "__main__":
    plugin.run()
