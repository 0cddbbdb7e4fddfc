"""Message shown instead of a screen when the terminal is too small to be useful."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

MIN_WIDTH, MIN_HEIGHT = 60, 16


class TooSmall(Static):
    def render(self) -> Text:
        w, h = self.app.size
        return Text(
            f"Terminal too small ({w}×{h}).\npulse-tui needs at least {MIN_WIDTH}×{MIN_HEIGHT}; "
            "enlarge the window or press q to quit.",
            justify="center",
        )
