"""Help: the bindings in force on the screen below, read from the live keymap (remaps included)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from pulse_tui.widgets import fmt


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close"),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            title = getattr(self.under, "TITLE", "") or type(self.under).__name__
            yield Static(f"Keys — {title}", classes="dialog-title")
            with VerticalScroll():
                yield Static(self.bindings_table(), id="help-body")
            yield Static(
                "esc / q / ? closes · ctrl+p lists every action · keys remap in the config's [tui.keys]"
                " table (binding id = key)",
                classes="hint",
                markup=False,
            )

    def rows(self) -> list[tuple[str, str, str, bool]]:
        """(keys, description, binding id, enabled) for every described binding on the screen below."""
        by_action: dict[tuple[str, str], tuple[list[str], str, str, bool]] = {}
        for key, active in self.under.active_bindings.items():
            b = active.binding
            if not b.description or not b.id:
                continue  # only Pulse's own (remappable) bindings; widget internals are not listed
            k = (b.action, b.description)
            display = self.app.get_key_display(Binding(key, b.action, b.description))
            if k in by_action:
                by_action[k][0].append(display)
            else:
                by_action[k] = ([display], b.description, b.id or "", active.enabled)
        rows = [(" ".join(keys), desc, bid, enabled) for keys, desc, bid, enabled in by_action.values()]
        return sorted(rows, key=lambda r: (r[2].split(".")[0] == "app", r[2]))

    def bindings_table(self) -> Table:
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold dim")
        table.add_column("key", style=fmt.C("bold #7aa2f7"), no_wrap=True)
        table.add_column("action", ratio=1)
        table.add_column("binding id", style="dim", no_wrap=True)
        for keys, desc, bid, enabled in self.rows():
            table.add_row(keys, Text(desc, style="" if enabled else "dim strike"), bid)
        return table

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
