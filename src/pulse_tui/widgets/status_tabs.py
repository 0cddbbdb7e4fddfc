"""Status tabs with capped counts: ``All 10k+ │ Queued 3 │ Running 2 │ Failed 5 │ …``."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from pulse_tui.widgets import fmt

TABS: tuple[tuple[str, str, str], ...] = (
    ("all", "All", "All"),
    ("queued", "Queued", "Q"),
    ("running", "Running", "Run"),
    ("failed", "Failed", "Fail"),
    ("completed", "Done", "Done"),
    ("cancelled", "Cancelled", "Canc"),
    ("paused", "Paused", "Pause"),
)
TAB_IDS: tuple[str, ...] = tuple(t[0] for t in TABS)


class StatusTabs(Static):
    """Not focusable: the table keeps the keyboard; ←/→ (or h/l) on the jobs screen switch tabs."""

    active: reactive[str] = reactive("all")
    counts: reactive[dict[str, int]] = reactive(dict, always_update=True)
    capped: reactive[bool] = reactive(False)
    cap: reactive[int] = reactive(0)
    note: reactive[str] = reactive("")

    def render(self) -> Text:
        width = self.size.width or 80
        text = self._build(short=False)
        if text.cell_len > width:
            text = self._build(short=True)
        return text

    def _build(self, *, short: bool) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis", end="")
        counts = self.counts or {}
        total = sum(counts.values())
        for i, (tab_id, label, short_label) in enumerate(TABS):
            n = total if tab_id == "all" else counts.get(tab_id, 0)
            if tab_id == "paused" and not n and self.active != "paused":
                continue
            if i:
                t.append(" │ " if not short else "│", style="dim")
            number = fmt.count(n, self.capped and tab_id != "all", self.cap) if counts else "·"
            if tab_id == "all" and self.capped:
                number = fmt.count(n) + "+"
            style = fmt.STATUS_STYLES.get(tab_id, "bold")
            name = short_label if short else label
            if tab_id == self.active:
                t.append(f" {name} {number} ", style=f"{style} reverse")
            else:
                t.append(f" {name} ", style=style)
                t.append(f"{number} ", style="dim")
        if self.note:
            t.append("  ")
            t.append(self.note, style=fmt.C("italic #bb9af7"))
        return t
