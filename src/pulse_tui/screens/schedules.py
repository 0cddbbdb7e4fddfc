"""Schedules screen: every schedule with its cadence, state, next and last run; pause / resume,
run now, delete (confirm), create (modal with a live "next 3 runs" preview); enter → the
schedule's run history, enter on a run → that job's detail. Live through WatchSchedules."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, DataTable, Input, Label, Static

from pulse_tui import cadence
from pulse_tui.client import ClientError
from pulse_tui.console import console_of
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.base import PulseScreen
from pulse_tui.screens.confirm import ConfirmScreen
from pulse_tui.vocab import Capability
from pulse_tui.widgets import fmt
from pulse_tui.widgets.columns import fit_columns, set_columns

STATE_STYLES = {
    "active": "bold #9ece6a",
    "paused": "bold #e0af68",
    "inactive": "#565f89",
    "stopping": "#e0af68",
    "deleted": "dim",
}
RUN_STYLES = {
    "completed": "#9ece6a",
    "failed": "bold #f7768e",
    "cancelled": "#bb9af7",
    "running": "#e0af68",
    "skipped": "#565f89",
}
HISTORY_ROWS = 6
# From this width every column is whole; narrower, STATE goes (NEXT RUN says "(paused)"), the last
# run is its icon, and the id, handler, cadence and owner give up characters (an ellipsis) until
# the table fits, so no column is cut off the right edge.
WIDE = 100
COLUMNS = (
    ("id", "ID"),
    ("handler", "HANDLER"),
    ("cadence", "CADENCE"),
    ("state", "STATE"),
    ("next", "NEXT RUN"),
    ("last", "LAST RUN"),
    ("runs", "RUNS"),
    ("owner", "OWNER"),
)
NARROW_MIN = {"id": 9, "handler": 10, "cadence": 12, "owner": 8}  # shortened widest first


def _relative(ts: float, now: float) -> str:
    if not ts:
        return "—"
    delta = ts - now
    return f"in {fmt.duration(delta)}" if delta >= 0 else f"{fmt.duration(-delta)} ago"


def next_text(s: operator_pb2.Schedule, now: float, tz: tzinfo | None, *, absolute: bool = True) -> Text:
    if s.state != "active":
        return Text(f"({s.state})", style="dim")
    t = Text(f"◷ {_relative(s.next_run_at, now)}", style="#7aa2f7")
    if absolute:
        t.append(f"  {fmt.clock(s.next_run_at, now, tz)}", style="dim")
    return t


def _zoned_times(runs: Sequence[float], tz: tzinfo | None) -> tuple[str, list[str]]:
    """The runs' times and their common zone ("" when they differ), the zone left off each time."""
    times = [fmt.absolute(t, tz) for t in runs]
    zones = {t.rpartition(" ")[2] for t in times}
    zone = zones.pop() if len(zones) == 1 and all(t.count(" ") == 2 for t in times) else ""
    if zone:
        times = [t.rpartition(" ")[0] for t in times]
    return zone, times


def next_runs_text(runs: Sequence[float], tz: tzinfo | None) -> Text:
    """The next runs' times on one line: their common zone once, in the label (`next (UTC):`),
    so that three of them fit 80 columns."""
    zone, times = _zoned_times(runs, tz)
    t = Text()
    t.append("\nnext" + (f" ({zone})" if zone else "") + ": ", style="dim")
    t.append("  ".join(times))
    return t


def last_text(s: operator_pb2.Schedule, now: float, *, icon: bool = False) -> Text:
    if not s.last_status:
        return Text("never", style="dim")
    label = fmt.STATUS_ICONS.get(s.last_status, s.last_status) if icon else s.last_status
    t = Text(label, style=RUN_STYLES.get(s.last_status, ""))
    if s.last_run_at:
        t.append(f" {_relative(s.last_run_at, now)}", style="dim")
    return t


class SchedulesScreen(PulseScreen):
    TITLE = "Schedules"
    MUTATING = frozenset({"toggle", "run_now", "delete", "create"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "history", "History", id="schedules.history"),
        Binding("space", "toggle", "Pause/resume", id="schedules.toggle"),
        Binding("r", "run_now", "Run now", id="schedules.run"),
        Binding("d", "delete", "Delete", id="schedules.delete"),
        Binding("n", "create", "New", priority=True, id="schedules.create"),  # see open_form
        Binding("ctrl+r", "refresh", "Refresh", show=False, id="schedules.refresh"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedules: list[operator_pb2.Schedule] = []
        self.history: operator_pb2.ScheduleDetail | None = None
        self.select_id = ""
        self._watching = False

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        yield Static("", id="schedules-note", classes="note")
        yield DataTable(id="schedules-table", cursor_type="row")
        yield Static("", id="schedule-history")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self._wide: bool | None = None
        self._layout()
        table = self.query_one(DataTable)
        table.focus()
        self.set_interval(1.0, self._tick)
        if self.pulse.conn_state == "connected":
            self.refresh_schedules()

    def on_resize(self) -> None:
        super().on_resize()
        self._layout()
        if self.schedules:
            self._fill()  # the narrow widths follow the screen's

    def _layout(self) -> None:
        """The table's columns for the screen's width (again only when that crosses WIDE)."""
        wide = (self.size.width or self.app.size.width) >= WIDE
        if wide == self._wide:
            return
        self._wide = wide
        set_columns(self.query_one(DataTable), [(k, label) for k, label in COLUMNS if wide or k != "state"])

    def refocus(self) -> None:
        self.query_one(DataTable).focus()

    def resync(self) -> None:
        self.refresh_schedules()

    def connection_changed(self, connected: bool) -> None:
        if connected:
            self.refresh_schedules()

    def select(self, schedule_id: str) -> None:
        """Put the cursor on a schedule (e.g. from a job's "from schedule" jump)."""
        self.select_id = schedule_id
        self._fill()

    # ------------------------------------------------------------------ data

    @work(exclusive=True, group="schedules-list", exit_on_error=False)
    async def refresh_schedules(self) -> None:
        if self.pulse.conn_state != "connected":
            return
        client = self.pulse.client
        note = self.query_one("#schedules-note", Static)
        if not client.can(Capability.SCHEDULES):
            note.update(
                f"Schedules are not available on this endpoint ({client.mode}); they need a Pulse server."
            )
            self.query_one(DataTable).display = False
            self.note_only(note)
            return
        try:
            self.schedules = await client.list_schedules()
        except ClientError as exc:
            self.pulse.report(exc, "listing schedules")
            return
        self._fill()
        self.load_history()
        if not self._watching and self.pulse.live:
            self._watching = True
            self.watch_changes()

    @work(group="schedules-watch", exit_on_error=False)
    async def watch_changes(self) -> None:
        """Refetch (coalesced) whenever a schedule changes on the server."""
        try:
            async for ev in self.pulse.client.watch_schedules():
                if ev.kind == "upsert":
                    await asyncio.sleep(0)  # let a burst of events arrive before refetching
                    self.refresh_schedules()
        except ClientError:
            pass
        finally:
            self._watching = False

    @work(exclusive=True, group="schedules-history", exit_on_error=False)
    async def load_history(self) -> None:
        s = self._current()
        if s is None:
            self.history = None
            self._render_history()
            return
        try:
            self.history = await self.pulse.client.get_schedule(s.id, executions=HISTORY_ROWS)
        except ClientError as exc:
            if exc.code != "NOT_FOUND":
                self.pulse.report(exc, f"loading schedule {s.id}")
            return
        self._render_history()

    def _tick(self) -> None:
        if self.schedules and not self.pulse.paused:
            self._fill()
            self._render_history()

    # ------------------------------------------------------------------ rendering

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        if self.select_id:
            ids = [s.id for s in self.schedules]
            if self.select_id in ids:
                keep = ids.index(self.select_id)
                self.select_id = ""
        table.clear()
        now = fmt.app_now(self.app)
        tz = fmt.app_tz(self.app)
        active = sum(1 for s in self.schedules if s.state == "active")
        summary = Text(f"{len(self.schedules)} schedule(s), {active} active")
        if self.pulse.read_only:
            summary.append("  · read-only", style="italic #bb9af7")
        self.query_one("#schedules-note", Static).update(summary)
        wide = bool(self._wide)  # narrow terminals: the relative time only (absolute below)
        rows = [
            {
                "id": Text(s.id, style="bold"),
                "handler": Text(s.handler),
                "cadence": Text(s.cadence, style="#7dcfff"),
                "state": Text(s.state, style=STATE_STYLES.get(s.state, "")),
                "next": next_text(s, now, tz, absolute=wide),
                "last": last_text(s, now, icon=not wide),
                "runs": Text(str(s.run_count), justify="right"),
                "owner": Text(s.owner, style="dim"),
            }
            for s in self.schedules
        ]
        keys = [str(k.value) for k in table.columns]
        if not wide:
            widths = fit_columns(  # the id first: its tail tells schedules apart
                rows,
                dict(COLUMNS),
                keys,
                table.scrollable_content_region.width or self.size.width - 2,
                NARROW_MIN,
                tails=frozenset({"id"}),
                first="id",
            )
            # columns as wide as now (a column keeps the widest cell it ever had: one that was
            # whole before a longer schedule came would push OWNER off the edge again)
            labels = dict(COLUMNS)
            set_columns(table, ((k, labels[k]) for k in keys), widths)
        for s, cells in zip(self.schedules, rows, strict=True):
            table.add_row(*(cells[k] for k in keys), key=s.id)
        if self.schedules:
            table.move_cursor(row=min(max(keep, 0), len(self.schedules) - 1))

    def _render_history(self) -> None:
        out = self.query_one("#schedule-history", Static)
        d = self.history
        if d is None:
            out.update(Text("No schedules yet. n creates one.", style="dim") if not self.schedules else "")
            return
        now = fmt.app_now(self.app)
        tz = fmt.app_tz(self.app)
        s = d.schedule
        head = Text()
        head.append(s.id, style="bold")
        head.append(f"  {s.handler}  {s.cadence}  overlap {s.overlap}")
        if s.jitter_secs:
            head.append(f"  jitter {s.jitter_secs}s")
        if d.next_runs:
            head.append_text(next_runs_text(d.next_runs[:3], tz))
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold dim")
        table.add_column("run", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("started", no_wrap=True)
        table.add_column("took", justify="right", no_wrap=True)
        table.add_column("job", no_wrap=True)
        table.add_column("note", ratio=1)
        wide = bool(self._wide)  # narrow: the ids' tails and the relative time, so the rest fits
        for e in d.executions:
            took = fmt.duration(e.duration_ms / 1000) if e.completed_at else "—"
            table.add_row(
                e.id if wide else fmt.short_id(e.id, 9),
                Text(e.status, style=RUN_STYLES.get(e.status, "")),
                fmt.when(e.started_at, now, tz) if wide else fmt.ago(e.started_at, now),
                took,
                (e.job_id if wide else fmt.short_id(e.job_id, 9)) or "—",
                Text((e.note + "  " + e.error).strip(), style="dim"),
            )
        from rich.console import Group

        body = table if d.executions else Text("no runs yet", style="dim italic")
        out.update(Group(head, body))

    # ------------------------------------------------------------------ actions

    def _current(self) -> operator_pb2.Schedule | None:
        if not self.schedules:
            return None
        row = self.query_one(DataTable).cursor_row
        return self.schedules[min(max(row, 0), len(self.schedules) - 1)]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        cur = self._current()
        if cur is not None and (self.history is None or self.history.schedule.id != cur.id):
            self.load_history()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_history()

    def action_history(self) -> None:
        s = self._current()
        if s is not None:
            self.app.push_screen(ScheduleHistoryScreen(s.id))

    def action_refresh(self) -> None:
        self.refresh_schedules()

    # the space binding's action: not DOMNode's toggle(attribute), which no binding here names
    @work(group="schedules-action", exit_on_error=False)
    async def action_toggle(self) -> None:  # type: ignore[override]
        s = self._current()
        if s is None or not self.pulse.guard("pause or resume schedules", capability=Capability.SCHEDULES):
            return
        action = "resume" if s.state == "paused" else "pause"
        await self._do(action, s)

    @work(group="schedules-action", exit_on_error=False)
    async def action_run_now(self) -> None:
        s = self._current()
        if s is None or not self.pulse.guard("run schedules", capability=Capability.SCHEDULES):
            return
        await self._do("run", s)

    @work(group="schedules-action", exit_on_error=False)
    async def action_delete(self) -> None:
        s = self._current()
        if s is None or not self.pulse.guard("delete schedules", capability=Capability.SCHEDULES):
            return
        ok = await self.app.push_screen_wait(
            ConfirmScreen(
                "Delete schedule",
                f"Delete {s.id} ({s.handler}, {s.cadence})? It stops running; its history is kept.",
                yes="Delete",
                danger=True,
            )
        )
        if ok:
            await self._do("delete", s)

    async def _do(self, action: str, s: operator_pb2.Schedule) -> None:
        try:
            r = await self.pulse.client.schedule_action(action, s.id)
        except ClientError as exc:
            self.pulse.report(exc, f"{action} schedule {s.id}")
            return
        if action == "run":
            what = f"job {r.execution.job_id}" if r.execution.job_id else r.execution.error
            self.app.notify(f"{s.id}: run {r.execution.id} ({what})")
        else:
            self.app.notify(f"{s.id}: {r.state}")
        self.refresh_schedules()

    async def action_create(self) -> None:
        self.typing_guard()
        if not self.pulse.guard("create schedules", capability=Capability.SCHEDULES):
            return

        def created(schedule: Any) -> None:
            if schedule is not None:
                self.select_id = schedule.id
                self.refresh_schedules()

        await self.open_form(CreateScheduleScreen(), created)


class ScheduleHistoryScreen(PulseScreen):
    """One schedule's runs, newest first; enter opens the run's job."""

    TITLE = "Schedule history"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_job", "Job detail", id="schedule_history.job"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, id="schedule_history.refresh"),
    ]

    def __init__(self, schedule_id: str) -> None:
        super().__init__()
        self.schedule_id = schedule_id
        self.detail: operator_pb2.ScheduleDetail | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        yield Static("loading…", id="schedule-summary")
        yield DataTable(id="executions-table", cursor_type="row")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#screen-title", Static).update(f"Schedule {self.schedule_id} — runs")
        table = self.query_one(DataTable)
        for key, label in (
            ("id", "RUN"),
            ("status", "STATUS"),
            ("started", "STARTED"),
            ("took", "TOOK"),
            ("job", "JOB"),
            ("note", "NOTE"),
        ):
            table.add_column(label, key=key)
        table.focus()
        self.load()

    def refocus(self) -> None:
        self.query_one(DataTable).focus()

    def jobs_changed(self, jobs: list[operator_pb2.Job]) -> None:
        if any(j.schedule_id == self.schedule_id for j in jobs):
            self.load()

    def others_changed(self, near: bool) -> None:
        self.load()  # the schedule's runs are not followed one by one: they may be among them

    @work(exclusive=True, group="schedule-history", exit_on_error=False)
    async def load(self) -> None:
        try:
            self.detail = await self.pulse.client.get_schedule(self.schedule_id, executions=200)
        except ClientError as exc:
            self.pulse.report(exc, f"loading schedule {self.schedule_id}")
            return
        now = fmt.app_now(self.app)
        tz = fmt.app_tz(self.app)
        s = self.detail.schedule
        summary = Text()
        summary.append(f"{s.handler}  ", style="bold")
        summary.append(f"{s.cadence}  ", style="#7dcfff")
        summary.append(s.state, style=STATE_STYLES.get(s.state, ""))
        summary.append(
            f"  owner {s.owner}  runs {s.run_count}  payload {s.payload.decode()[:60]}", style="dim"
        )
        self.query_one("#schedule-summary", Static).update(summary)
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for e in self.detail.executions:
            table.add_row(
                e.id,
                Text(e.status, style=RUN_STYLES.get(e.status, "")),
                fmt.when(e.started_at, now, tz),
                fmt.duration(e.duration_ms / 1000) if e.completed_at else "—",
                e.job_id or "—",
                Text((e.note + "  " + e.error).strip(), style="dim"),
                key=e.id,
            )
        if self.detail.executions:
            table.move_cursor(row=min(max(keep, 0), len(self.detail.executions) - 1))

    def action_refresh(self) -> None:
        self.load()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_job()

    def action_open_job(self) -> None:
        if self.detail is None or not self.detail.executions:
            return
        row = self.query_one(DataTable).cursor_row
        e = self.detail.executions[min(max(row, 0), len(self.detail.executions) - 1)]
        if not e.job_id:
            self.app.notify(f"run {e.id} enqueued no job ({e.status})", severity="warning")
            return
        from pulse_tui.screens.job_detail import JobDetailScreen

        self.app.push_screen(JobDetailScreen(e.job_id))


class CreateScheduleScreen(ModalScreen[operator_pb2.Schedule | None]):
    """Handler (with completion), cadence ("5m" or a cron expression), time zone, payload; the next
    three runs are previewed live, and every field is checked before anything is sent."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "submit", "Create", id="create_schedule.submit", priority=True),
        Binding("escape", "close", "Cancel", id="create_schedule.close"),
    ]

    def __init__(self, handler: str = "") -> None:
        super().__init__()
        self.default_handler = handler
        self.names: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="schedule-dialog", classes="dialog"):
            yield Static("New schedule", classes="dialog-title")
            yield Label("Handler")
            yield Input(self.default_handler, placeholder="e.g. demo.echo", id="schedule-handler")
            yield Label("Every (30s, 5m, 1h30m) or a cron expression (0 3 * * *)")
            yield Input("5m", id="schedule-cadence")
            yield Label("Time zone (cron only)")
            yield Input("", placeholder="UTC", id="schedule-tz")
            yield Label("Payload (JSON)")
            yield Input("{}", id="schedule-payload")
            yield Static("", id="schedule-preview", classes="hint")
            yield Static("", id="schedule-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create (ctrl+s)", id="schedule-ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="schedule-cancel", compact=True)

    def on_mount(self) -> None:
        for w in self.query(Input):
            w.cursor_blink = False
        self.set_focus(self.query_one("#schedule-handler", Input))  # now: see PulseScreen.open_form
        self._preview()
        self.load_names()

    @work(exclusive=True, group="schedule-names", exit_on_error=False)
    async def load_names(self) -> None:
        try:
            handlers = await console_of(self.app).client.list_handlers()
        except ClientError:
            return
        self.names = sorted({n for h in handlers for n in (h.name, *h.qualified)})
        self.query_one("#schedule-handler", Input).suggester = SuggestFromList(
            self.names, case_sensitive=False
        )

    def cadence_fields(self) -> dict[str, Any]:
        """interval_secs or cron+timezone from the inputs; raises CadenceError."""
        text = self.query_one("#schedule-cadence", Input).value.strip()
        tz = self.query_one("#schedule-tz", Input).value.strip()
        if " " in text or "*" in text:
            cadence.check_cadence(0, text, tz)
            return {"cron": text, "timezone": tz}
        if tz:
            raise cadence.CadenceError("a time zone only applies to a cron expression")
        return {"interval_secs": cadence.parse_every(text)}

    def _preview(self) -> bool:
        out = self.query_one("#schedule-preview", Static)
        try:
            f = self.cadence_fields()
        except cadence.CadenceError as exc:
            out.update(Text(f"✘ {exc.message}", style="#f7768e"))
            return False
        now = fmt.app_now(self.app) or time.time()
        tz = fmt.app_tz(self.app)
        runs = cadence.preview(f.get("interval_secs", 0), f.get("cron", ""), f.get("timezone", ""), now, 3)
        label = cadence.describe(f.get("interval_secs", 0), f.get("cron", ""), f.get("timezone", ""))
        zone, times = _zoned_times(runs, tz)  # the zone once, so that three times fit 80 columns
        t = Text(f"✔ {label}" + (f" · times in {zone}" if zone else "") + "\nnext: ", style="#9ece6a")
        t.append("  ".join(times), style="")
        out.update(t)
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("schedule-cadence", "schedule-tz"):
            self._preview()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "schedule-ok":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)

    def _error(self, message: str) -> None:
        self.query_one("#schedule-error", Static).update(Text(message, style="bold #f7768e"))

    @work(exclusive=True, group="schedule-submit", exit_on_error=False)
    async def action_submit(self) -> None:
        handler = self.query_one("#schedule-handler", Input).value.strip()
        if not handler:
            self._error("choose a handler")
            return
        try:
            fields = self.cadence_fields()
        except cadence.CadenceError as exc:
            self._error(exc.message)
            return
        raw = self.query_one("#schedule-payload", Input).value.strip() or "{}"
        try:
            json.loads(raw)
        except ValueError as exc:
            self._error(f"payload is not JSON: {exc}")
            return
        try:
            s = await console_of(self.app).client.create_schedule(handler, raw.encode(), **fields)
        except ClientError as exc:
            self._error(exc.message)
            return
        self.app.notify(f"created schedule {s.id} ({s.handler}, {s.cadence})")
        self.dismiss(s)
