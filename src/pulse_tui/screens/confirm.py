"""Yes/no confirmation modal (cancel a running job, bulk actions, disable a plugin)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Static


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


FINISHED = ("completed", "failed", "cancelled")


async def confirm_cancel(screen: Screen, job: Any) -> bool:
    """Whether to go on cancelling `job` (an operator Job message): finished jobs are refused with a
    notification, running ones ask first (their plugin call is cut short), queued ones just go."""
    if job.status in FINISHED:
        screen.notify(f"job {job.id} is {job.status}; only queued, paused or running jobs can be cancelled")
        return False
    if job.status != "running":
        return True
    return bool(
        await screen.app.push_screen_wait(
            ConfirmScreen(
                "Cancel running job",
                f"{job.id} ({job.handler}) is running; cancel it?\nThe plugin's in-flight call is cancelled.",
                yes="Cancel job",
                danger=True,
            )
        )
    )
