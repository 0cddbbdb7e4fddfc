"""Test plugin (SDK) whose jobs cost what their payload says: `cost.run` reports
`payload["cost"]` as cost_actual; `cost.other` likewise (a second handler for per-handler budgets)."""

from pulse_tui.sdk import Plugin

plugin = Plugin("costly", version="1.0", description="jobs with a cost")


@plugin.handler("cost.run")
async def run(ctx, payload):
    ctx.cost(float(payload.get("cost", 0.0)))
    return {"cost": payload.get("cost", 0.0)}


@plugin.handler("cost.other")
async def other(ctx, payload):
    ctx.cost(float(payload.get("cost", 0.0)))
    return {"cost": payload.get("cost", 0.0)}


if __name__ == "__main__":
    plugin.run()
