"""Announced by the python plugin as `python.hello`."""


def run(payload, ctx):
    name = payload.get("name", "world") if isinstance(payload, dict) else "world"
    ctx.progress(1, 1)
    ctx.log("info", f"greeting {name}")
    return {"greeting": f"hello, {name}"}
