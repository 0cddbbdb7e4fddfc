"""Text the console shows cannot drive the terminal.

Job errors, logs, results, plugin output and descriptions come from plugins and from whoever
enqueued (`pulse.fail` takes its error from the payload). Textual and Rich drop only BEL, BS, VT,
FF and CR from the text they draw; ESC went through, so a job's error could set the window title,
write the clipboard (OSC 52), clear the screen or recolour it on the operator's terminal. `guard()`
extends the tables both use to clean text, so every widget gets it: C0 controls (but tab and
newline) and DEL are drawn as their control pictures (`␛`, one column, as wide as what they
replace), C1 controls and the bidi marks, embeddings, overrides and isolates as `�`.

The tables are module-level dicts that their cleaning functions take as a default argument, so
they are extended in place; `guard()` checks that they are still there (a Textual or Rich upgrade
that renames them fails the console's start in the test suite, not silently).
"""

from __future__ import annotations

from typing import cast

import rich.control
import textual.content

_KEEP = (0x09, 0x0A)  # tab and newline lay text out
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))

SHOWN_AS: dict[int, str | None] = {cp: chr(0x2400 + cp) for cp in range(0x20) if cp not in _KEEP}
SHOWN_AS[0x7F] = "\u2421"
SHOWN_AS.update({cp: "\ufffd" for cp in (*range(0x80, 0xA0), *_BIDI)})


def guard() -> None:
    """Make Textual's and Rich's control-code cleaning cover every character in SHOWN_AS (the ones
    they already drop stay dropped)."""
    for module in (textual.content, rich.control):
        table = module._CONTROL_STRIP_TRANSLATE
        if not isinstance(table, dict):  # pragma: no cover - a changed library
            raise RuntimeError(f"{module.__name__}._CONTROL_STRIP_TRANSLATE is no longer a dict")
        cleaned = cast(dict[int, str | None], table)
        for cp, shown in SHOWN_AS.items():
            cleaned.setdefault(cp, shown)
