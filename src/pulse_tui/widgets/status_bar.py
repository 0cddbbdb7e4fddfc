"""Status bar: server address, connection state, mode, read-only marker, the job store's condition
(a full disk, a damaged file), spend against the tightest budget, counts, live/paused."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from pulse_tui.console import find_console
from pulse_tui.vocab import EndpointMode
from pulse_tui.widgets import fmt

STATE_STYLES = fmt.ThemedStyles(
    {
        "connected": "bold #9ece6a",
        "connecting": "bold #e0af68",
        "reconnecting": "bold #e0af68",
        "offline": "bold #f7768e",
        "auth failed": "bold #f7768e",
    }
)


class StatusBar(Static):
    """One line at the bottom of every screen. It watches the console's reactive state (connection,
    countdown, mode, pause, counts, store condition); the screen sets ``marked`` and ``note``."""

    address: reactive[str] = reactive("")
    state: reactive[str] = reactive("connecting")
    retry_in: reactive[int] = reactive(0)
    mode: reactive[str] = reactive("")
    read_only: reactive[bool] = reactive(False)
    paused: reactive[bool] = reactive(False)
    counts: reactive[str] = reactive("")
    marked: reactive[int] = reactive(0)
    note: reactive[str] = reactive("")
    store: reactive[str] = reactive("")  # the server's store_condition: "" = the store can write
    budget: reactive[str] = reactive("")  # markup: spend against the tightest budget ("" = none)

    def render(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis", end="")
        dot = "●" if self.state == "connected" else "○"
        t.append(f" {dot} ", style=STATE_STYLES.get(self.state, ""))
        state = self.state
        if state == "reconnecting" and self.retry_in > 0:
            state = f"reconnecting in {self.retry_in}s"
        t.append(state, style=STATE_STYLES.get(self.state, ""))
        t.append("  ")
        t.append(self.address, style="bold")
        if self.mode and self.mode != EndpointMode.OPERATOR:
            t.append(f"  [{self.mode}]", style=fmt.C("bold #e0af68"))
        if self.read_only:
            t.append("  READ-ONLY", style=fmt.C("bold reverse #e0af68"))
        if self.store:
            t.append(f"  ⚠ {self.store}", style=fmt.C("bold reverse #f7768e"))
        if self.paused:
            t.append("  ‖ PAUSED", style=fmt.C("bold #e0af68"))
        if self.budget:
            t.append("  ")
            t.append_text(Text.from_markup(self.budget))
        if self.marked:
            t.append(f"  ● {self.marked} marked", style=fmt.C("bold #bb9af7"))
        if self.note:
            t.append(f"  {self.note}", style="italic")
        if self.counts:
            t.append("  │ ", style="dim")
            t.append_text(Text.from_markup(self.counts))
        return t

    def on_mount(self) -> None:
        console = find_console(self.app)
        if console is None:
            return
        app = self.app
        self.address = console.address

        def follow_mode(mode: str) -> None:
            self.mode = mode
            self.read_only = console.read_only  # known once the endpoint answered

        self.watch(app, "conn_state", lambda v: setattr(self, "state", v))
        self.watch(app, "retry_in", lambda v: setattr(self, "retry_in", v))
        self.watch(app, "paused", lambda v: setattr(self, "paused", v))
        self.watch(app, "counts_markup", lambda v: setattr(self, "counts", v))
        self.watch(app, "store_condition", lambda v: setattr(self, "store", v))
        self.watch(app, "budget_markup", lambda v: setattr(self, "budget", v))
        self.watch(app, "endpoint_mode", follow_mode)
