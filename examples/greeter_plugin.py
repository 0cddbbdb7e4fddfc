"""A complete Pulse plugin in 15 lines. Add it to pulse.toml:

[[plugins]]
name = "greeter"
command = ["{python}", "greeter_plugin.py"]   # relative to the config file's folder
"""

from pulse_tui.sdk import Plugin

plugin = Plugin("greeter", version="1.0", description="says hello")
plugin.config("greeting", description="the word to greet with", default="hello")


@plugin.handler("greeter.hello")
async def hello(ctx, payload):
    names = payload.get("names", ["world"])
    for i, name in enumerate(names, 1):
        ctx.log("info", f"greeting {name}", stage="greet")
        ctx.progress(i, len(names))
    return {"greetings": [f"{ctx.config['greeting']}, {n}" for n in names]}


if __name__ == "__main__":
    plugin.run()
