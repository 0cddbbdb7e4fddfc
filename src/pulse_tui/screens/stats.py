"""Stats screen (`:stats`): throughput over 1 h / 24 h / 30 d and per-handler rates and latencies.

Everything comes from one OperatorService.GetStats call, refreshed every few seconds (not while
live updates are paused with `p`). The graphs and the per-row trends are Textual's Sparkline (the
widget, and its renderable inside table cells). Enter on a handler opens the jobs list filtered
to it, the same way the handlers screen does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.color import Color
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.renderables.sparkline import Sparkline as SparklineRenderable
from textual.widgets import DataTable, Sparkline, Static

from pulse_tui.client import ClientError
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.base import PulseScreen
from pulse_tui.screens.jobs import JobsScreen
from pulse_tui.vocab import Capability
from pulse_tui.widgets import fmt

REFRESH_SECS = 5.0
WINDOWS = {"1h": 3600, "24h": 86400, "30d": 30 * 86400}
OK, BAD, DIM = "#9ece6a", "#f7768e", "#565f89"
TREND_WIDTH = 12


def latency(secs: float) -> str:
    """12ms, 0.84s, 3.2s, 4m10s; "—" for no data."""
    if secs <= 0:
        return "—"
    if secs < 1:
        return f"{secs * 1000:.0f}ms"
    return fmt.duration(secs)


def rate(per_min: float) -> str:
    if per_min <= 0:
        return "0"
    if per_min < 0.05:  # a few jobs in a long window: not "0.0", which reads as none
        return "<0.1"
    if per_min < 10:
        return f"{per_min:.1f}"
    return f"{per_min:,.0f}"


def step_label(secs: int) -> str:
    if secs % 3600 == 0:
        return f"{secs // 3600} h"
    if secs % 60 == 0:
        return f"{secs // 60} min"
    return f"{secs} s"


class StatsScreen(PulseScreen):
    TITLE = "Stats"

    DEFAULT_CSS = """
    StatsScreen #stats-note { height: 1; padding: 0 1; }
    StatsScreen .stats-graph { height: 6; padding: 0 1; }
    StatsScreen.-short .stats-graph { height: 2; }
    StatsScreen .stats-graph-label { width: 22; color: $text-muted; }
    StatsScreen .stats-graph Sparkline { width: 1fr; height: 100%; }
    StatsScreen #stats-completed > .sparkline--max-color { color: #9ece6a; }
    StatsScreen #stats-completed > .sparkline--min-color { color: #9ece6a 30%; }
    StatsScreen #stats-failed > .sparkline--max-color { color: #f7768e; }
    StatsScreen #stats-failed > .sparkline--min-color { color: #f7768e 30%; }
    StatsScreen #stats-table { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "window('1h')", "Last 1h", id="stats.window_1h"),
        Binding("2", "window('24h')", "Last 24h", id="stats.window_24h"),
        Binding("3", "window('30d')", "Last 30d", id="stats.window_30d"),
        Binding("enter", "jobs", "Jobs", id="stats.jobs"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, id="stats.refresh"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window = "1h"
        self.stats: operator_pb2.GetStatsResponse | None = None
        self.rows: list[str] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        yield Static("", id="stats-note")
        with Horizontal(classes="stats-graph"):
            yield Static("", id="stats-completed-label", classes="stats-graph-label")
            yield Sparkline([], id="stats-completed")
        with Horizontal(classes="stats-graph"):
            yield Static("", id="stats-failed-label", classes="stats-graph-label")
            yield Sparkline([], id="stats-failed")
        yield DataTable(id="stats-table", cursor_type="row")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (
            ("handler", "HANDLER"),
            ("rate", "/MIN"),
            ("errors", "ERR%"),
            ("wait95", "WAIT95"),
            ("run50", "RUN50"),
            ("run95", "RUN95"),
            ("due", "DUE"),
            ("oldest", "OLDEST"),
        ):
            table.add_column(label, key=key)
        table.add_column("TREND", key="trend", width=TREND_WIDTH)
        table.focus()
        self.set_class(self.app.size.height < 30, "-short")
        self.set_interval(REFRESH_SECS, self._tick)

        def on_paused(_paused: bool) -> None:
            self._fill_note()

        self.watch(self.app, "paused", on_paused, init=False)
        if self.pulse.conn_state == "connected":
            self.refresh_stats()

    def on_resize(self) -> None:
        super().on_resize()
        self.set_class(self.app.size.height < 30, "-short")

    def refocus(self) -> None:
        self.query_one(DataTable).focus()

    def resync(self) -> None:
        self.refresh_stats()

    def connection_changed(self, connected: bool) -> None:
        if connected:
            self.refresh_stats()

    def _tick(self) -> None:
        if not self.pulse.paused:
            self.refresh_stats()

    @work(exclusive=True, group="stats", exit_on_error=False)
    async def refresh_stats(self) -> None:
        if self.pulse.conn_state != "connected":
            return
        client = self.pulse.client
        note = self.query_one("#stats-note", Static)
        if not client.can(Capability.STATS):
            note.update(
                f"Stats are not available on this endpoint ({client.mode}); they need a Pulse server's "
                "operator API."
            )
            return
        try:
            resp = await client.get_stats(window_secs=WINDOWS[self.window])
        except ClientError as exc:
            if exc.code == "UNIMPLEMENTED":  # a server from before GetStats
                note.update(f"This server ({self.pulse.address}) does not keep stats; upgrade it for :stats.")
                return
            self.pulse.report(exc, "reading stats")
            return
        self.stats = resp
        self._fill()

    # ------------------------------------------------------------------ drawing

    def _fill(self) -> None:
        resp = self.stats
        if resp is None:
            return
        if not self._fill_note():
            return
        self._fill_graphs(resp)
        self._fill_table(resp)

    def _fill_note(self) -> bool:
        resp = self.stats
        if resp is None:
            return False
        note = self.query_one("#stats-note", Static)
        if not resp.enabled:
            note.update(Text("This server keeps no metrics.", style="dim"))
            return False
        s = resp.total.summary
        ended = sum(s.finished.values())
        t = Text()
        for name in WINDOWS:
            t.append(f" {name} ", style="bold reverse" if name == self.window else DIM)
        t.append(f"  every {step_label(resp.step_secs)}", style="dim")
        t.append(f"  {ended:,} ended  ")
        t.append(f"{rate(s.per_min)}/min", style="bold")
        t.append(f"  {s.error_pct:.1f} % errors", style=BAD if s.failed else DIM)
        t.append(f"  run p95 {latency(s.run_p95)}  wait p95 {latency(s.wait_p95)}", style="dim")
        if self.pulse.paused:
            t.append("  paused (p)", style="italic #e0af68")
        note.update(t)
        return True

    def _fill_graphs(self, resp: operator_pb2.GetStatsResponse) -> None:
        completed = [float(p.completed) for p in resp.total.points] or [0.0]
        failed = [float(p.failed) for p in resp.total.points] or [0.0]
        per = step_label(resp.step_secs).replace("1 ", "")
        self.query_one("#stats-completed", Sparkline).data = completed
        self.query_one("#stats-failed", Sparkline).data = failed
        self.query_one("#stats-completed-label", Static).update(
            Text.assemble(("completed", OK), f"/{per}\n", (f"max {max(completed):,.0f}", "dim"))
        )
        self.query_one("#stats-failed-label", Static).update(
            Text.assemble(("failed", BAD), f"/{per}\n", (f"max {max(failed):,.0f}", "dim"))
        )

    def _fill_table(self, resp: operator_pb2.GetStatsResponse) -> None:
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        gauges = {g.handler: g for g in resp.gauges}
        self.rows = []
        for series in resp.handlers:
            h = series.handler
            sm = series.summary
            g = gauges.get(h)
            trend = [float(p.completed + p.failed) for p in series.points] or [0.0]
            err = Text(f"{sm.error_pct:.1f}", style=BAD if sm.failed else DIM, justify="right")
            table.add_row(
                Text(h, style="bold"),
                Text(rate(sm.per_min), justify="right"),
                err,
                Text(latency(sm.wait_p95), justify="right"),
                Text(latency(sm.run_p50), justify="right"),
                Text(latency(sm.run_p95), justify="right"),
                Text(str(g.due) if g else "0", style="#7aa2f7" if g and g.due else DIM, justify="right"),
                Text(
                    fmt.duration(g.oldest_due_age_secs) if g and g.due else "—",
                    style="#e0af68" if g and g.oldest_due_age_secs > 60 else DIM,
                    justify="right",
                ),
                SparklineRenderable(
                    trend,
                    width=TREND_WIDTH,
                    min_color=Color.parse(DIM),
                    max_color=Color.parse(BAD if sm.failed and sm.error_pct >= 50 else OK),
                ),
                key=h,
            )
            self.rows.append(h)
        if self.rows:
            table.move_cursor(row=min(max(keep, 0), len(self.rows) - 1))

    # ------------------------------------------------------------------ actions

    def action_window(self, name: str) -> None:
        if name in WINDOWS and name != self.window:
            self.window = name
            self.refresh_stats()

    def action_refresh(self) -> None:
        self.refresh_stats()

    def current_handler(self) -> str | None:
        if not self.rows:
            return None
        row = self.query_one(DataTable).cursor_row
        return self.rows[min(max(row, 0), len(self.rows) - 1)]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.run_worker(self.action_jobs(), exit_on_error=False)

    async def action_jobs(self) -> None:
        handler = self.current_handler()
        if handler is None:
            return
        await self.app.switch_mode("jobs")
        jobs = self.app.screen
        if isinstance(jobs, JobsScreen):
            jobs.set_handler_filter(handler)
