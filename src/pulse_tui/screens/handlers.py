"""Handlers screen: every announced name, its owner and other claimants, conflicts, job counts;
P / U pause and resume a handler (its jobs are held, running ones finish)."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from pulse_tui.client import ClientError
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.base import PulseScreen
from pulse_tui.screens.jobs import JobsScreen
from pulse_tui.vocab import Capability
from pulse_tui.widgets import fmt
from pulse_tui.widgets.columns import fit_columns, set_columns
from pulse_tui.widgets.data_table import PulseDataTable

CONFLICT_STYLES = fmt.ThemedStyles(
    {"exact": "bold reverse #f7768e", "near": "bold #e0af68", "shadow": "bold #e0af68"}
)
CONFLICT_LABELS = {"exact": " CONFLICT ", "near": "near", "shadow": "shadows"}
REFRESH_SECS = 2.0
# From this width the owner and the other claimants have a column each (OWNER, ALSO CLAIMED BY);
# narrower, one CLAIMED BY column lists them, the owner first, so every count fits 80 columns.
WIDE = 100
NARROW_MIN = {"name": 14, "claimed": 10}  # below WIDE, long cells are shortened down to these


class HandlersScreen(PulseScreen):
    TITLE = "Handlers"
    MUTATING = frozenset({"enqueue", "pause", "resume"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "jobs", "Jobs", id="handlers.jobs"),
        Binding("o", "conflicts_only", "Conflicts only", id="handlers.conflicts_only"),
        Binding("e", "enqueue", "Enqueue", priority=True, id="handlers.enqueue"),  # see open_form
        Binding("P", "pause", "Pause", show=False, id="handlers.pause"),
        Binding("U", "resume", "Resume", show=False, id="handlers.resume"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, id="handlers.refresh"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conflicts_only = False
        self.handlers: list[operator_pb2.Handler] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        yield Static("", id="handlers-note", classes="note")
        yield PulseDataTable(id="handlers-table", cursor_type="row")
        yield Static("", id="handler-explanation")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self._wide: bool | None = None
        self._columns: list[tuple[str, str]] = []  # (key, label) of the table's columns
        self._layout()
        self.query_one(DataTable).focus()
        self.set_interval(REFRESH_SECS, self.refresh_handlers)
        if self.pulse.conn_state == "connected":
            self.refresh_handlers()

    def on_resize(self) -> None:
        super().on_resize()
        self._layout()

    def _layout(self) -> None:
        """The table's columns for the screen's width (again only when that crosses WIDE)."""
        wide = (self.size.width or self.app.size.width) >= WIDE
        if wide == self._wide:
            return
        self._wide = wide
        claimed = (
            [("owner", "OWNER"), ("claimants", "ALSO CLAIMED BY")]  # the other plugins announcing it
            if wide
            else [("claimed", "CLAIMED BY")]  # the owner, then the others
        )
        self._columns = [
            ("name", "HANDLER"),
            *claimed,
            ("conflict", "CONFLICT"),
            ("queued", "QUEUED"),
            ("running", "RUN"),
            ("paused", "PAUSED"),  # held: by the handler's pause, an operator or a budget
            ("failed", "FAILED"),
            *([("why", "EXPLANATION")] if wide else []),  # narrower: the one below the table says it
        ]
        set_columns(self.query_one(DataTable), self._columns)
        if self.handlers:
            self._fill()

    def refocus(self) -> None:
        self.query_one(DataTable).focus()

    def resync(self) -> None:
        self.refresh_handlers()

    def connection_changed(self, connected: bool) -> None:
        if connected:
            self.refresh_handlers()

    @work(exclusive=True, group="handlers-list", exit_on_error=False)
    async def refresh_handlers(self) -> None:
        if self.pulse.conn_state != "connected":
            return
        client = self.pulse.client
        note = self.query_one("#handlers-note", Static)
        if not client.can(Capability.HANDLERS):
            note.update(
                "Handlers and conflicts are not available on this endpoint "
                f"({client.mode}); they need a Pulse server's operator API."
            )
            self.query_one(DataTable).display = False
            self.note_only(note)
            return
        try:
            handlers = await client.list_handlers(conflicts_only=self.conflicts_only)
        except ClientError as exc:
            self.pulse.report(exc, "listing handlers")
            return
        self.handlers = handlers
        self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        exact = sum(1 for h in self.handlers if h.conflict == "exact")
        warn = sum(1 for h in self.handlers if h.conflict in ("near", "shadow"))
        note = self.query_one("#handlers-note", Static)
        summary = Text(f"{len(self.handlers)} handler(s)")
        if exact:
            summary.append(f"  {exact} conflict(s)", style=fmt.C("bold #f7768e"))
        if warn:
            summary.append(f"  {warn} warning(s)", style=fmt.C("bold #e0af68"))
        if self.conflicts_only:
            summary.append("  · showing conflicts only (o shows all)", style=fmt.C("italic #bb9af7"))
        note.update(summary)
        note.display = True
        rows: list[dict[str, Text]] = []
        for h in self.handlers:
            others = [c for c in h.claimants if c != h.owner]
            owner = Text(h.owner or ("built-in" if h.builtin else "—"), style="bold" if h.owner else "dim")
            if h.pinned:
                owner.append(" (pinned)", style="dim")
            conflict = Text(CONFLICT_LABELS.get(h.conflict, ""), style=CONFLICT_STYLES.get(h.conflict, ""))
            name = Text(h.name, style=fmt.C("bold #f7768e") if h.conflict == "exact" else "bold")
            if h.paused:
                name = Text.assemble((f"{fmt.STATUS_ICONS['paused']} ", fmt.STATUS_STYLES["paused"]), name)
            if self._wide:
                claimed = [owner, Text(", ".join(others) or "—", style=fmt.C("#e0af68") if others else "dim")]
            else:
                both = owner.copy()
                for other in others:  # ", " in the owner's style: a picture draws bold text wider
                    both.append(", ")
                    both.append(other, style=fmt.C("#e0af68"))
                claimed = [both]
            cells = [
                name,
                *claimed,
                conflict,
                _num(h.queued, fmt.C("#7aa2f7")),
                _num(h.running, fmt.C("#e0af68")),
                _num(h.paused_jobs, fmt.STATUS_STYLES["paused"]),
                _num(h.failed, fmt.C("#f7768e")),
                *([Text(h.explanation, style="dim")] if self._wide else []),
            ]
            rows.append(dict(zip([k for k, _ in self._columns], cells, strict=True)))
        keys = [k for k, _ in self._columns]
        if not self._wide:  # long names (a script's, a qualified route) shortened: every count on screen
            labels = dict(self._columns)
            width = table.scrollable_content_region.width or self.size.width - 2
            widths = fit_columns(rows, labels, keys, width, NARROW_MIN)
            set_columns(table, ((k, labels[k]) for k in keys), widths)
        for h, row in zip(self.handlers, rows, strict=True):
            table.add_row(*(row[k] for k in keys), key=h.name)
        if self.handlers:
            table.move_cursor(row=min(keep, len(self.handlers) - 1))
        self._explain()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._explain()

    def _current(self) -> operator_pb2.Handler | None:
        table = self.query_one(DataTable)
        if not self.handlers:
            return None
        return self.handlers[min(max(table.cursor_row, 0), len(self.handlers) - 1)]

    def _explain(self) -> None:
        h = self._current()
        out = self.query_one("#handler-explanation", Static)
        if h is None:
            out.update(
                Text(
                    "No handlers announced yet." if not self.conflicts_only else "No conflicts.", style="dim"
                )
            )
            return
        t = Text()
        t.append(h.name, style="bold")
        if h.conflict:
            t.append(f"  {CONFLICT_LABELS[h.conflict].strip()}:", style=CONFLICT_STYLES.get(h.conflict, ""))
        t.append(f"{' ' if h.conflict else '  '}{h.explanation}\n" if h.explanation else "\n")
        if h.paused:
            since = fmt.absolute(h.paused_at, fmt.app_tz(self.app)) if h.paused_at else "?"
            t.append(
                f"{fmt.STATUS_ICONS['paused']} paused since {since}: {h.paused_jobs:,} job(s) held, "
                "running ones finish (U resumes)\n",
                style=fmt.STATUS_STYLES["paused"],
            )
        if h.qualified:
            t.append("always routable as: ", style="dim")
            t.append(", ".join(h.qualified))
        out.update(t)

    def action_conflicts_only(self) -> None:
        self.conflicts_only = not self.conflicts_only
        self.refresh_handlers()

    def action_refresh(self) -> None:
        self.refresh_handlers()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.run_worker(self.action_jobs(), exit_on_error=False)

    async def action_jobs(self) -> None:
        h = self._current()
        if h is None:
            return
        await self.app.switch_mode("jobs")
        jobs = self.app.screen
        if isinstance(jobs, JobsScreen):
            jobs.set_handler_filter(h.name)

    @work(group="handlers-action", exit_on_error=False)
    async def action_pause(self) -> None:
        """P: pause the handler under the cursor: its queued and new jobs are held."""
        await self._set_paused(True)

    @work(group="handlers-action", exit_on_error=False)
    async def action_resume(self) -> None:
        """U: resume the handler under the cursor: its held jobs run in their FIFO order."""
        await self._set_paused(False)

    async def _set_paused(self, paused: bool) -> None:
        what = "pause handler" if paused else "resume handler"
        if not self.pulse.guard(what, capability=Capability.PAUSE_HANDLERS):
            return
        h = self._current()
        if h is None:
            return
        if h.paused == paused:
            self.notify(f"{h.name} is {'already paused' if paused else 'not paused'}")
            return
        client = self.pulse.client
        try:
            got = await (client.pause_handler(h.name) if paused else client.resume_handler(h.name))
        except ClientError as exc:
            self.pulse.report(exc, what)
            return
        if paused:
            self.notify(f"paused {got.name}: {got.changed_jobs:,} job(s) held; running ones finish")
        else:
            self.notify(f"resumed {got.name}: {got.changed_jobs:,} held job(s) released")
        self.refresh_handlers()

    async def action_enqueue(self) -> None:
        self.typing_guard()
        if not self.pulse.guard("enqueue", capability=Capability.ENQUEUE):
            return
        from pulse_tui.screens.enqueue import EnqueueScreen

        h = self._current()
        await self.open_form(EnqueueScreen(default_handler=h.name if h else ""))


def _num(n: int, style: str) -> Text:
    return Text(str(n), style=style if n else "dim", justify="right")
