"""What a handler script looks like: the name rule and the new-handler template.

Shared by the server (`pulse_tui.pulse.scripts`) and the console's handler editor, which must not
import the server package: one copy of the template, so `:ix <name>` in the TUI and a script saved
through the API start from the same text.
"""

from __future__ import annotations

import re

NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")  # always used with fullmatch: `$` lets "x\n" pass
RESERVED_NAMES = frozenset({"script"})  # python.script is the built-in that runs code from the payload
NAME_RULE = "a lowercase letter, then letters, digits, - or _ (at most 64)"

TEMPLATE = '''"""{name}: a Pulse handler script, run as the job handler python.{name}.

Enqueue it with:  pulse-tui ix {name} --payload '{{"items": 3}}'
"""


def run(payload, ctx):
    """Called once per job. `payload` is the job's JSON payload (a dict).

    ctx.progress(current, total) reports progress; ctx.log(level, message) adds a log line.
    Return anything JSON-serialisable: it becomes the job's result. Raise to fail the job.
    """
    items = int(payload.get("items", 3))
    for i in range(items):
        ctx.progress(i + 1, items)
    ctx.log("info", f"processed {{items}} item(s)")
    return {{"processed": items}}
'''


def handler_of(name: str) -> str:
    """The handler a script called `name` becomes."""
    return f"python.{name}"


def template(name: str) -> str:
    """The new-handler template for a script called `name` (handler `python.<name>`)."""
    return TEMPLATE.format(name=name)


def valid_name(name: str) -> bool:
    return bool(NAME_RE.fullmatch(name or "")) and name not in RESERVED_NAMES
