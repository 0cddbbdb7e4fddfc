"""Highlighted, pretty-printed JSON (payloads and results), tolerant of bytes that are not JSON."""

from __future__ import annotations

import json
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.widgets import Static


def pretty_json(raw: bytes | str, *, indent: int = 2) -> tuple[str, bool]:
    """Return (text, is_json). Empty input → ("", True)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode()
        except UnicodeDecodeError:
            return repr(raw), False
    if not raw.strip():
        return "", True
    try:
        return json.dumps(json.loads(raw), indent=indent, ensure_ascii=False, sort_keys=False), True
    except ValueError:
        return raw, False


class JsonView(Static):
    """Static that shows JSON highlighted; ``empty`` is shown when there is nothing."""

    def __init__(self, raw: bytes | str = b"", *, empty: str = "(none)", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.empty = empty
        self.raw = raw

    def on_mount(self) -> None:
        self.show(self.raw)

    def show(self, raw: bytes | str) -> None:
        self.raw = raw
        text, ok = pretty_json(raw)
        if not text:
            self.update(Text(self.empty, style="dim italic"))
        elif ok:
            self.update(Syntax(text, "json", theme="ansi_dark", background_color="default", word_wrap=True))
        else:
            self.update(Text(text))
