"""Child process that runs one handler script (spawned by the python plugin for every job).

Protocol: the parent writes one JSON object on stdin: {"code", "filename", "payload", "job_id",
"config", "sandbox"}. We answer with JSON lines on the *original* stdout, which we move aside first: the
script's own prints go to stderr, so they cannot corrupt the message stream. Messages:
  {"type": "progress", "current": c, "total": t}
  {"type": "cost", "value": x}
  {"type": "log", "level": ..., "message": ..., "stage": ..., "metadata": ...}
  {"type": "result", "value": ...}                      -- last message on success
  {"type": "error", "error": "...", "traceback": "..."}   -- last message on failure
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import resource
import sys
import traceback
from typing import Any, TextIO


class ScriptContext:
    """The `ctx` a script's run(payload, ctx) receives; mirrors the SDK's Context."""

    def __init__(self, out: TextIO, job_id: str, config: dict[str, str]) -> None:
        self._out = out
        self.job_id = job_id
        self.config = config
        self.cancelled = False  # the parent kills this process on cancel; kept for API symmetry

    def _send(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()

    def progress(self, current: int, total: int) -> None:
        self._send({"type": "progress", "current": int(current), "total": int(total)})

    def cost(self, value: float) -> None:
        self._send({"type": "cost", "value": float(value)})

    def log(self, level: str, message: str, *, stage: str = "", metadata: Any = None) -> None:
        self._send(
            {
                "type": "log",
                "level": str(level),
                "message": str(message),
                "stage": stage,
                "metadata": metadata,
            }
        )


def enter_sandbox(box: dict[str, Any]) -> None:
    """Limits, then the unprivileged user (groups, gid, uid — in that order), then the work dir.
    Runs before any script code; a failure here ends the child before the script runs."""
    for name, value in box.get("limits", {}).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if "uid" in box:
        os.setgroups([])
        os.setgid(box["gid"])
        os.setuid(box["uid"])
        if os.getuid() == 0 or os.geteuid() == 0:
            raise PermissionError("could not drop root privileges")
    if box.get("cwd"):
        os.chdir(box["cwd"])


def main() -> None:
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    job = json.loads(sys.stdin.read())
    ctx = ScriptContext(out, job.get("job_id", ""), job.get("config", {}))
    try:
        enter_sandbox(job.get("sandbox") or {})
    except Exception as exc:
        out.write(
            json.dumps({"type": "error", "error": f"could not sandbox the script: {exc}", "traceback": ""})
        )
        out.write("\n")
        out.flush()
        return
    try:
        namespace: dict[str, Any] = {"__name__": "__pulse_script__", "__file__": job["filename"]}
        exec(compile(job["code"], job["filename"], "exec"), namespace)
        run = namespace.get("run")
        if not callable(run):
            raise TypeError("the script defines no run(payload, ctx) function")
        value = run(job.get("payload"), ctx)
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
        line = json.dumps({"type": "result", "value": value})
    except BaseException as exc:
        text = str(exc)
        error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        line = json.dumps({"type": "error", "error": error, "traceback": traceback.format_exc()})
    out.write(line + "\n")
    out.flush()


async def _await(value: Any) -> Any:
    return await value


if __name__ == "__main__":
    main()
