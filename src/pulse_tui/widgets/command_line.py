"""The `:` command line (k9s style): `:jobs`, `:plugins`, `:handlers`, … with completion.

Commands are registered in :mod:`pulse_tui.commands` (the app holds the table), so new commands plug
in without touching this widget.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Input

from pulse_tui.console import find_console


class CommandLine(Input):
    BINDINGS = [Binding("escape", "dismiss", "Close", show=False, id="cmdline.close")]

    class Submitted(Message):
        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    def __init__(self, commands: list[str], **kwargs: Any) -> None:
        super().__init__(placeholder=":command  (jobs, plugins, handlers, help, quit)", **kwargs)
        self.suggester = SuggestFromList(commands, case_sensitive=False)

    def set_commands(self, commands: list[str]) -> None:
        self.suggester = SuggestFromList(commands, case_sensitive=False)

    def open(self, text: str = "") -> None:
        console = find_console(self.app)
        names = console.commands.names() if console is not None else []  # every listed command, in order
        if names:  # as many as fit the line (its padding takes 2 columns); Input cuts the rest
            self.placeholder = command_hint(names, self.app.size.width - 2)
        self.select_on_focus = False  # a prefilled `:sort ` is continued, not replaced
        self.value = text
        self.cursor_position = len(text)
        self.add_class("-open")
        # focus now, not after the queued events (Widget.focus defers): keys typed right after `:`
        # (a fast typist, an SSH link delivering a burst) are text here, not jobs-screen keys
        self.screen.set_focus(self)

    def action_dismiss(self) -> None:
        self.remove_class("-open")
        self.value = ""
        self.screen.focus_next()
        self.screen.set_focus(None)
        self.screen.call_after_refresh(self._refocus)

    def _refocus(self) -> None:
        refocus = getattr(self.screen, "refocus", None)
        if refocus is not None:
            refocus()

    async def action_submit(self) -> None:
        line = self.value.strip().lstrip(":")
        self.remove_class("-open")
        self.value = ""
        self._refocus()
        if line:
            self.post_message(self.Submitted(line))


def command_hint(names: list[str], width: int) -> str:
    """`:command  (jobs, plugins, …)`: the names that fit in `width` columns, an ellipsis for the
    rest (cut by the input, the list ended mid-name or on a comma with no closing parenthesis)."""
    full = f":command  ({', '.join(names)})"
    if len(full) <= width:
        return full
    shown: list[str] = []
    for name in names:
        if len(f":command  ({', '.join([*shown, name])}, …)") > width:
            break
        shown.append(name)
    return f":command  ({', '.join([*shown, '…'])})"
