"""Common base for Pulse screens: header line, status bar, footer, `:` command line, guards."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from textual import events
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TextArea

from pulse_tui.console import PulseConsole, console_of
from pulse_tui.protocol import operator_pb2
from pulse_tui.widgets.command_line import CommandLine
from pulse_tui.widgets.status_bar import StatusBar
from pulse_tui.widgets.too_small import TooSmall


class PulseScreen(Screen[None]):
    """A top-level screen (jobs, plugins, handlers, detail)."""

    TITLE: ClassVar[str] = ""
    # Actions that change state on the server: hidden and refused in read-only mode.
    MUTATING: ClassVar[frozenset[str]] = frozenset()

    @property
    def pulse(self) -> PulseConsole:
        """The app as the console's contract (client, connection state, guard, report, clock)."""
        return console_of(self.app)

    def typing_guard(self) -> None:
        """For a priority binding on a plain letter: a letter typed into a text field (the filter,
        the command line) is text, not this screen's key."""
        if isinstance(self.focused, Input | TextArea):
            raise SkipAction()

    async def open_form(self, form: Screen[Any], callback: Callable[[Any], None] | None = None) -> None:
        """Open a form so that the keys typed in one burst after the key that opened it land in
        the form. The opening binding is a priority one (it runs before the keys after it are handed
        out to the focused table) and awaits this: the form is mounted and has focused its field
        (forms call `set_focus` in `on_mount`, not the deferred `focus()`) before the next key is read."""
        await self.app.push_screen(form, callback)

    def compose_header(self) -> ComposeResult:
        yield TooSmall(id="too-small")
        yield Static(self.TITLE, id="screen-title", classes="screen-title")

    def note_only(self, note: Static) -> None:
        """The screen shows nothing but `note` (e.g. compat mode cannot give its data): let the note
        take the free height, so the status bar and footer stay at the bottom as on other screens."""
        note.display = True
        note.add_class("-alone")

    def compose_footer(self) -> ComposeResult:
        yield CommandLine(self.pulse.command_names(), id="command-line")
        yield StatusBar(id="status-bar")
        yield Footer(compact=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.MUTATING and self.pulse.read_only:
            return False
        return True

    def on_key(self, event: events.Key) -> None:
        """A key of an action read-only mode hides still gets an answer: say why nothing happens."""
        if not self.MUTATING or not self.pulse.read_only:
            return
        try:
            bindings = self._bindings.get_bindings_for_key(event.key)
        except Exception:
            return
        for b in bindings:
            if b.action in self.MUTATING:
                event.stop()
                why = (
                    "the server granted a read-only token"
                    if self.pulse.client.read_only
                    else "the console was started with --read-only"
                )
                self.notify(f"read-only: {b.description.lower()} is disabled ({why})", severity="warning")
                return

    def on_resize(self) -> None:
        self.pulse.check_size()

    def on_screen_resume(self) -> None:
        self.pulse.check_size()

    def refocus(self) -> None:
        """Give focus back to the screen's main widget (after the command line closes)."""

    # Hooks the app calls; screens override what they need.
    def jobs_changed(self, jobs: list[operator_pb2.Job]) -> None:
        """A coalesced batch of live job updates (≤ 10/s)."""

    def resync(self) -> None:
        """The event stream fell behind or was re-established: refetch what is shown."""

    def shown_job_ids(self) -> Iterable[str]:
        """The jobs this screen shows: their live changes come in full (`jobs_changed`)."""
        return ()

    def shown_from_seq(self) -> int | None:
        """The lowest seq of a newest-first list's rows held (None: no such list here; 0: any
        change may matter). Changes to other jobs below it are not `near` (`others_changed`)."""
        return None

    def counts_arrived(self, counts: operator_pb2.CountJobsResponse) -> None:
        """Every job's count by status, taken after every change this flush brought."""

    def view_followed(self, ids: frozenset[str]) -> None:
        """The server now sends these shown jobs' changes in full. Changes made between the
        screen's own read of them and now came only as counted others: read them once more."""

    def others_changed(self, near: bool) -> None:
        """Jobs that no screen shows changed (at most once a second while they do): refetch
        whatever may depend on them (a page that new jobs may enter, counts, children). `near`:
        some of them are at or above the lowest seq a list holds (`shown_from_seq`)."""

    def connection_changed(self, connected: bool) -> None:
        """Connection went up or down."""
