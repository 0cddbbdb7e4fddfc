"""The handler editor's "new script" dialog: asks for a name and checks it as it is typed."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from pulse_tui.script_template import NAME_RULE, handler_of, valid_name
from pulse_tui.widgets import fmt
from pulse_tui.widgets.script_panes import BAD, DIM, OK


class NewScriptScreen(ModalScreen[str | None]):
    """Ask for the name of a new handler script."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Cancel", id="newscript.close")]

    def __init__(self, taken: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.taken = taken

    def compose(self) -> ComposeResult:
        with Vertical(id="new-script-dialog", classes="dialog"):
            yield Static("New handler script", classes="dialog-title")
            yield Label("Name — the handler becomes python.<name>")
            yield Input(placeholder="e.g. vacancies", id="new-script-name")
            yield Static("", id="new-script-hint", classes="hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create (enter)", id="new-script-ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="new-script-cancel", compact=True)

    def on_mount(self) -> None:
        self.set_focus(self.query_one(Input))  # now: see PulseScreen.open_form
        self._check("")

    def _check(self, name: str) -> bool:
        hint = self.query_one("#new-script-hint", Static)
        if not name:
            hint.update(Text(f"use {NAME_RULE}", style=DIM))
            return False
        if not valid_name(name):
            hint.update(Text(f"✘ {name!r} is not a script name: use {NAME_RULE}", style=fmt.C(BAD)))
            return False
        if name in self.taken:
            hint.update(Text(f"✘ {name} exists already: open it from the list", style=fmt.C(BAD)))
            return False
        hint.update(Text(f"→ handler {handler_of(name)}, starting from the template", style=fmt.C(OK)))
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        self._check(event.value.strip())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "new-script-ok":
            self._submit()
        else:
            self.dismiss(None)

    def _submit(self) -> None:
        name = self.query_one(Input).value.strip()
        if self._check(name):
            self.dismiss(name)

    def action_close(self) -> None:
        self.dismiss(None)
