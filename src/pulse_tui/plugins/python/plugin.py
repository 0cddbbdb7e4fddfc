"""The `python` plugin: `python.script` and one `python.<name>` handler per saved script.

Every job runs in a fresh child process (`runner.py`), so a script that crashes, leaks or loops
forever cannot take the plugin down: on timeout or cancellation the child is killed and the
plugin stays healthy. `ctx.progress` / `ctx.log` calls in the script travel back as JSON lines
on the child's stdout and are relayed to the job; whatever the script prints goes to stderr and
is attached to the job as log lines (stage "output", the last OUTPUT_LINES of them).

The child is sandboxed (a script is operator code, but it should not hold the server's keys):
  * a scrubbed environment (PATH, locale, HOME/TMPDIR pointing at its own directory; nothing else —
    no tokens, no credentials the server's environment may hold);
  * a private temporary working directory, removed when the job ends;
  * resource limits: address space (`memory_mb`), size of files written (`max_file_mb`), open
    files (`max_open_files`), CPU seconds (the job's timeout plus a margin);
  * when the plugin runs as root (so the server does), the user `user` (default `nobody`): the
    child drops to it before the script runs, so it cannot read the data dir (token files, the
    database). The child starts as root and drops itself, after the interpreter has loaded, so the
    interpreter need not be readable by that user; modules a script imports must be.
  `user = ""` keeps root (not recommended).

Scripts directory: config key `scripts_dir`. It is listed at every Initialize, i.e. at start-up
and on every reload, and each `<name>.py` becomes `python.<name>`. The file is read when a job
runs, so the code that runs is the code saved last. With `example_script = "true"` (the demo
config sets it) a scripts directory that does not exist yet is created holding `hello.py`, so a
first run has a saved script to look at; it is never re-created once the directory exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pwd
import re
import shutil
import signal
import sys
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

from pulse_tui.sdk import Context, HandlerFn, JobError, JobTimeout, Plugin

SCRIPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # used with fullmatch
OUTPUT_LINES = 200
DEFAULT_TIMEOUT = 600.0

plugin = Plugin("python", version="1.0.0", description="runs Python handler scripts in child processes")
plugin.config("scripts_dir", description="directory whose <name>.py files become python.<name>", default="")
plugin.config(
    "example_script",
    type="bool",
    description="create scripts_dir with an example hello.py when it does not exist yet",
    default="false",
)
plugin.config(
    "timeout",
    type="number",
    description="seconds a script may run when the job has no timeout",
    default=str(int(DEFAULT_TIMEOUT)),
)
plugin.config(
    "user",
    description="when the server runs as root, scripts run as this user ('' keeps root)",
    default="nobody",
)
plugin.config(
    "memory_mb", type="number", description="address-space limit of a script process", default="1024"
)
plugin.config("max_file_mb", type="number", description="largest file a script may write", default="64")
plugin.config(
    "max_open_files", type="number", description="open-file limit of a script process", default="256"
)

RUNNER = Path(__file__).with_name("runner.py")  # stdlib only: runs whatever made pulse_tui importable
CPU_MARGIN = 5  # CPU seconds beyond the job's timeout before the kernel stops a script
KEPT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")


def _number(config: dict[str, str], key: str, default: float) -> float:
    try:
        value = float(config.get(key) or default)
    except ValueError:
        raise JobError(f"python plugin config {key}={config.get(key)!r} is not a number") from None
    if not value > 0:
        raise JobError(f"python plugin config {key} must be positive, got {value:g}")
    return value


_warned_unreadable: set[str] = set()


def readable_by_others(path: str) -> bool:
    """Whether a user that is neither the owner nor in the group can reach and read `path`."""
    current = os.path.realpath(path)
    try:
        if not os.stat(current).st_mode & 0o004:
            return False
        while True:
            if not os.stat(current).st_mode & 0o001:
                return False
            parent = os.path.dirname(current)
            if parent == current:
                return True
            current = parent
    except OSError:
        return False


def _warn_if_python_unreadable(user: str) -> None:
    """Once per user: the child drops privileges after the interpreter has loaded, so scripts
    run, but imports of modules not yet loaded fail when the user cannot read the library."""
    stdlib = os.path.dirname(os.__file__)
    if user in _warned_unreadable or readable_by_others(stdlib):
        return
    _warned_unreadable.add(user)
    print(
        f"python plugin: script user {user!r} may not be able to read the Python library at {stdlib}; "
        "scripts can import only modules the runner loaded before dropping privileges. Install Python "
        "where that user can read it.",
        file=sys.stderr,
        flush=True,
    )


def sandbox(config: dict[str, str], timeout: float, workdir: str) -> tuple[dict[str, str], dict[str, Any]]:
    """(environment, runner sandbox settings) for one script child."""
    env = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=workdir, TMPDIR=workdir)
    mb = 1024 * 1024
    box: dict[str, Any] = {
        "cwd": workdir,
        "limits": {
            "RLIMIT_AS": int(_number(config, "memory_mb", 1024) * mb),
            "RLIMIT_FSIZE": int(_number(config, "max_file_mb", 64) * mb),
            "RLIMIT_NOFILE": int(_number(config, "max_open_files", 256)),
            "RLIMIT_CPU": math.ceil(timeout) + CPU_MARGIN,
        },
    }
    user = config.get("user", "nobody")
    if os.geteuid() == 0 and user:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise JobError(
                f"the python plugin's script user {user!r} does not exist; create it or set `user` in "
                "the plugin's config"
            ) from None
        if pw.pw_uid == 0:
            raise JobError(f"the python plugin's script user {user!r} is root; pick an unprivileged user")
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        _warn_if_python_unreadable(user)
        box.update(uid=pw.pw_uid, gid=pw.pw_gid, user=user)
    return env, box


def script_names(scripts_dir: str) -> dict[str, Path]:
    """`python.<name>` -> path for every valid `<name>.py` in the directory (sorted)."""
    if not scripts_dir:
        return {}
    folder = Path(scripts_dir).expanduser()
    if not folder.is_dir():
        return {}
    return {
        f"python.{p.stem}": p
        for p in sorted(folder.glob("*.py"))
        if SCRIPT_NAME.fullmatch(p.stem) and p.stem != "script" and p.is_file()
    }


EXAMPLE_SCRIPT = '''"""Announced by the python plugin as `python.hello` (an example: edit it, or delete it)."""


def run(payload, ctx):
    name = payload.get("name", "world") if isinstance(payload, dict) else "world"
    ctx.progress(1, 1)
    ctx.log("info", f"greeting {name}")
    return {"greeting": f"hello, {name}"}
'''


def seed_example(scripts_dir: str) -> bool:
    """Create `scripts_dir` holding `hello.py` when the directory does not exist yet; True when it
    did. An existing directory is left alone, so a deleted example stays deleted."""
    if not scripts_dir:
        return False
    folder = Path(scripts_dir).expanduser()
    if folder.exists():
        return False
    folder.mkdir(parents=True, mode=0o700)
    (folder / "hello.py").write_text(EXAMPLE_SCRIPT, encoding="utf-8")
    return True


@plugin.on_initialize
def announce_scripts(config: dict[str, str]) -> dict[str, HandlerFn]:
    if config.get("example_script", "").strip().lower() in ("true", "1", "yes"):
        seed_example(config.get("scripts_dir", ""))
    return {name: _script_handler(path) for name, path in script_names(config.get("scripts_dir", "")).items()}


def _script_handler(path: Path) -> HandlerFn:
    async def run_saved(ctx: Context, payload: Any) -> Any:
        try:
            code = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except OSError as exc:
            raise JobError(f"script {path.name} cannot be read: {exc.strerror}; reload the plugin") from None
        return await run_script(ctx, code, str(path), payload)

    return run_saved


@plugin.handler("python.script")
async def python_script(ctx: Context, payload: Any) -> Any:
    """Payload `{"code": "def run(payload, ctx): ...", "args": {...}}`; run(args, ctx) is called."""
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), str):
        raise JobError(
            'python.script wants {"code": "<python source defining run(payload, ctx)>", "args": {...}}'
        )
    return await run_script(ctx, payload["code"], "<python.script>", payload.get("args", {}))


async def run_script(ctx: Context, code: str, filename: str, payload: Any) -> Any:
    timeout = ctx.timeout or float(ctx.config.get("timeout") or DEFAULT_TIMEOUT)
    workdir = tempfile.mkdtemp(prefix="pulse-script-")
    try:
        return await _run_child(ctx, code, filename, payload, timeout, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _run_child(
    ctx: Context, code: str, filename: str, payload: Any, timeout: float, workdir: str
) -> Any:
    env, box = sandbox(ctx.config, timeout, workdir)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",  # isolated: no PYTHON* variables, no user site, not the runner's folder on sys.path
        str(RUNNER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=64 << 20,
        env=env,
        cwd=workdir,
    )
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    assert stdin is not None and stdout is not None and stderr is not None
    output: deque[str] = deque(maxlen=OUTPUT_LINES)
    final: dict[str, Any] = {}
    job = {
        "code": code,
        "filename": filename,
        "payload": payload,
        "job_id": ctx.job_id,
        "config": ctx.config,
        "sandbox": box,
    }

    async def feed() -> None:
        stdin.write(json.dumps(job).encode())
        with contextlib.suppress(ConnectionError):
            await stdin.drain()
        stdin.close()

    async def read_messages() -> None:
        async for raw in stdout:
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "progress":
                ctx.progress(msg["current"], msg["total"])
            elif kind == "cost":
                ctx.cost(msg["value"])
            elif kind == "log":
                ctx.log(
                    msg["level"], msg["message"], stage=msg.get("stage", ""), metadata=msg.get("metadata")
                )
            elif kind in ("result", "error"):
                final.update(msg)

    async def read_output() -> None:
        async for raw in stderr:
            output.append(raw.decode(errors="replace").rstrip("\n"))

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(feed(), read_messages(), read_output())
            await proc.wait()
    except TimeoutError:
        raise JobTimeout(f"script {filename} ran longer than {timeout:g}s and was killed") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for line in output:
            ctx.log("info", line, stage="output")
    if final.get("type") == "result":
        return final.get("value")
    if final.get("type") == "error":
        if final.get("traceback"):
            ctx.log("error", final["traceback"], stage="exception")
        raise JobError(final["error"])
    tail = "; ".join(list(output)[-3:])
    if proc.returncode == -signal.SIGXCPU:
        raise JobError(
            f"script {filename} used more than {box['limits']['RLIMIT_CPU']} CPU seconds and was stopped"
        )
    raise JobError(
        f"script process exited with code {proc.returncode} without a result" + (f": {tail}" if tail else "")
    )


if __name__ == "__main__":
    plugin.run()
