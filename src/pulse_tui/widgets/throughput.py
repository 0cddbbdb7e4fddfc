"""Throughput on the jobs screen's tab row: jobs/min over the last 30 minutes, completed and failed,
as Textual Sparklines, from OperatorService.GetStats.

It asks the server every REFRESH_SECS while it is shown, the app is connected and live updates are
not paused (`p`). It hides itself where it does not fit beside the status tabs (below MIN_WIDTH
columns; the failed series below FULL_WIDTH), and on endpoints without stats (QNTX compat mode, a
server from before GetStats, metrics turned off).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from pulse_tui.client import ClientError
from pulse_tui.protocol import operator_pb2
from pulse_tui.widgets import fmt

REFRESH_SECS = 10.0
WINDOW_SECS = 1800  # the last 30 minutes …
STEP_SECS = 60  # … in one-minute points
MIN_WIDTH = 110  # screen columns below which the sparkline does not fit beside the tabs
FULL_WIDTH = 150  # … and below which the failed series is left out
OK, BAD = "#9ece6a", "#f7768e"


def per_min(n: float) -> str:
    if n <= 0:
        return "0"
    if n < 10:
        return f"{n:.1f}".removesuffix(".0")
    return f"{n:,.0f}"


class Throughput(Horizontal):
    """`30m ▂▃▅▇▆▅ 41/min  ▁▁▃▁ 2 failed/min` at the right end of the tab row."""

    DEFAULT_CSS = """
    Throughput { width: auto; height: 1; background: $surface; padding: 0 1; display: none; }
    Throughput.-shown { display: block; }
    Throughput > Static { width: auto; height: 1; }
    Throughput > Sparkline { height: 1; }
    Throughput #throughput-completed { width: 30; }
    Throughput #throughput-failed { width: 15; }
    Throughput #throughput-completed > .sparkline--max-color { color: #9ece6a; }
    Throughput #throughput-completed > .sparkline--min-color { color: #9ece6a 30%; }
    Throughput #throughput-failed > .sparkline--max-color { color: #f7768e; }
    Throughput #throughput-failed > .sparkline--min-color { color: #f7768e 30%; }
    Throughput.-narrow #throughput-completed { width: 16; }
    Throughput.-narrow #throughput-failed, Throughput.-narrow #throughput-failed-rate { display: none; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stats: operator_pb2.GetStatsResponse | None = None
        self.available = True  # False: this endpoint keeps no stats (hidden until a reconnection)
        self.fetches = 0  # GetStats answers received
        self.ticks = 0  # refresh timer ticks (a tick while paused or hidden asks nothing)
        self._width = 0  # the screen's width, from fit()

    def compose(self) -> ComposeResult:
        yield Static(Text("30m ", style="dim"), id="throughput-label")
        yield Sparkline([0.0], id="throughput-completed")
        yield Static("", id="throughput-rate")
        yield Sparkline([0.0], id="throughput-failed")
        yield Static("", id="throughput-failed-rate")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECS, self._tick)
        self.fit(self.screen.size.width or self.app.size.width)

    @property
    def fits(self) -> bool:
        return self._width >= MIN_WIDTH

    def fit(self, width: int) -> None:  # the screen's width
        """Show it (and the failed series) only where it fits beside the tabs."""
        self._width = width
        self.set_class(width < FULL_WIDTH, "-narrow")
        if self.stats is not None:
            self._fill(self.stats)
        self._show()
        if self.fits and self.stats is None:
            self.refresh_now()

    def reconnected(self) -> None:
        """Connected (again): the server may be another one, or now keep stats; ask at once."""
        self.available = True
        self.refresh_now()

    def _show(self) -> None:
        self.set_class(self.available and self.fits and self.stats is not None, "-shown")

    def _tick(self) -> None:
        self.ticks += 1
        if not getattr(self.app, "paused", False) and self.screen.is_current:
            self.refresh_now()

    @work(exclusive=True, group="throughput", exit_on_error=False)
    async def refresh_now(self) -> None:
        app = self.app
        client = getattr(app, "client", None)
        if not self.available or not self.fits or client is None:
            return
        if getattr(app, "conn_state", "") != "connected":
            return
        if not client.can("stats"):
            self.available = False
            self._show()
            return
        try:
            resp = await client.get_stats(window_secs=WINDOW_SECS, step_secs=STEP_SECS)
        except ClientError as exc:
            if exc.code == "UNIMPLEMENTED":  # a server from before GetStats
                self.available = False
                self._show()
            return  # anything else: the next tick tries again (the :stats screen reports errors)
        self.fetches += 1
        if not resp.enabled:
            self.available = False
            self._show()
            return
        self.stats = resp
        self._fill(resp)
        self._show()

    def _fill(self, resp: operator_pb2.GetStatsResponse) -> None:
        points = list(resp.total.points)
        step_min = max(resp.step_secs, 1) / 60
        # the minutes before the server's first point (a fresh server has one) are zeros: a
        # Sparkline given a single value draws it full height, a solid bar beside "0/min"
        pad = [0.0] * max(2 - len(points), resp.window_secs // max(resp.step_secs, 1) - len(points), 0)
        completed = pad + [p.completed / step_min for p in points]
        failed = pad + [p.failed / step_min for p in points]
        self.query_one("#throughput-completed", Sparkline).data = completed
        self.query_one("#throughput-failed", Sparkline).data = failed
        # the rate now: the last complete point (the current minute is still filling)
        last = completed[-2] if len(completed) > 1 else completed[-1]
        last_failed = failed[-2] if len(failed) > 1 else failed[-1]
        rate = Text(" ")
        rate.append(f"{per_min(last)}/min", style=fmt.C(f"bold {OK}"))
        if self.has_class("-narrow") and last_failed:
            rate.append(f" {per_min(last_failed)} failed", style=fmt.C(BAD))
        rate.append("  ")
        self.query_one("#throughput-rate", Static).update(rate)
        self.query_one("#throughput-failed-rate", Static).update(
            Text(f" {per_min(last_failed)} failed/min", style=fmt.C(BAD) if last_failed else "dim")
        )
