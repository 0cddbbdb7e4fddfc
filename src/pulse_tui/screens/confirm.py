"""Yes/no confirmation modal (cancel a running job, bulk actions, disable a plugin)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static

from pulse_tui.protocol import operator_pb2
from pulse_tui.vocab import FINISHED, JobStatus


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, title: str, message: str, *, yes: str = "Yes", danger: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.yes_label = yes
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(self.message, id="confirm-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    f"{self.yes_label} (y)",
                    id="yes",
                    variant="error" if self.danger else "primary",
                    compact=True,
                )
                yield Button("No (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


async def confirm_cancel(screen: Screen[Any], job: operator_pb2.Job) -> bool:
    """Whether to go on cancelling `job` (an operator Job message): finished jobs are refused with a
    notification, running ones ask first (their plugin call is cut short), queued ones just go."""
    if job.status in FINISHED:
        screen.notify(f"job {job.id} is {job.status}; only queued, paused or running jobs can be cancelled")
        return False
    if job.status != JobStatus.RUNNING:
        return True
    answer = await screen.app.push_screen_wait(
        ConfirmScreen(
            "Cancel running job",
            f"{job.id} ({job.handler}) is running; cancel it?\nThe plugin's in-flight call is cancelled.",
            yes="Cancel job",
            danger=True,
        )
    )
    return bool(answer)


class QuitScreen(ModalScreen[str]):
    """Leaving the console would stop its embedded server while jobs run: stop, keep, or stay.

    Dismisses with ``"stop"`` (quit and stop the server; running jobs are re-queued),
    ``"keep"`` (quit and leave the server running) or ``"stay"``."""

    BINDINGS = [
        Binding("s", "answer('stop')", "Stop server", id="quit.stop"),
        Binding("k", "answer('keep')", "Keep server", id="quit.keep"),
        Binding("n,escape,q", "answer('stay')", "Stay", id="quit.stay"),
    ]

    def __init__(self, address: str, running: int, capped: bool = False) -> None:
        super().__init__()
        self.address = address
        self.running = running
        self.capped = capped

    def compose(self) -> ComposeResult:
        n = f"{self.running:,}{'+' if self.capped else ''}"
        with Vertical(id="quit-dialog", classes="dialog"):
            yield Static("Quit pulse-tui", classes="dialog-title")
            yield Static(
                f"This console started the server at {self.address}; {n} job(s) are running. "
                "Stop it and they are re-queued (their progress is lost); keep it and they "
                "finish (the next `pulse-tui` attaches to it; `pulse-tui server stop` stops it).",
                id="confirm-message",
                markup=False,
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Keep server, quit (k)", id="keep", variant="primary", compact=True)
                yield Button("Stop server, quit (s)", id="stop", variant="error", compact=True)
                yield Button("Stay (n)", id="stay", compact=True)

    def on_mount(self) -> None:
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "stay")

    def action_answer(self, choice: str) -> None:
        self.dismiss(choice)
