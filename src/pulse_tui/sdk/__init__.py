"""Write a Pulse plugin in a few lines.

    from pulse_tui.sdk import Plugin

    plugin = Plugin("greeter", version="1.0", description="says hello")

    @plugin.handler("greeter.hello")
    async def hello(ctx, payload):
        ctx.progress(1, 1)
        ctx.log("info", "greeting", stage="main")
        return {"hello": payload.get("name", "world")}

    if __name__ == "__main__":
        plugin.run()

The module speaks the QNTX plugin protocol (DomainPluginService) and nothing else, so a plugin
built with it runs under any host that speaks that protocol, not only under Pulse.
"""

from pulse_tui.sdk.context import Context, JobError, JobTimeout
from pulse_tui.sdk.plugin import ConfigField, HandlerFn, Plugin, PluginServer

__all__ = ["ConfigField", "Context", "HandlerFn", "JobError", "JobTimeout", "Plugin", "PluginServer"]
