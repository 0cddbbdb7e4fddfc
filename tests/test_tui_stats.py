"""The `:stats` screen against a real `pulse-tui serve`: what ran shows per handler, the window
keys ask the server for another window, enter opens the jobs list filtered to the handler."""

from __future__ import annotations

import asyncio
import io
import time

from rich.console import Console
from test_tui import client_for, started, until
from textual.renderables.sparkline import Sparkline as SparklineBars
from textual.widgets import DataTable, Sparkline

from pulse_tui.app import PulseApp
from pulse_tui.screens.jobs import JobsScreen
from pulse_tui.screens.stats import StatsScreen
from pulse_tui.widgets import throughput
from pulse_tui.widgets.throughput import Throughput


async def test_stats_screen_shows_what_ran_and_filters_jobs(server) -> None:
    client = await client_for(server)
    ids = [(await client.enqueue("pulse.noop", {})).id for _ in range(3)]
    ids.append((await client.enqueue("pulse.fail", {}, max_attempts=1)).id)
    deadline = time.monotonic() + 30
    for job_id in ids:  # a retried check with a deadline, before the console starts
        while (await client.get_job(job_id)).job.status not in ("completed", "failed"):
            assert time.monotonic() < deadline, f"job {job_id} did not finish"
            await asyncio.sleep(0.02)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        await app.run_command_line("stats")
        await until(pilot, lambda: isinstance(app.screen, StatsScreen), "stats screen")
        screen: StatsScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: set(screen.rows) >= {"pulse.noop", "pulse.fail"}, "handler rows")
        assert screen.stats is not None
        by = {s.handler: s.summary for s in screen.stats.handlers}
        assert by["pulse.noop"].completed == 3 and by["pulse.fail"].failed == 1
        assert screen.stats.total.summary.error_pct == 25.0
        await pilot.press("3")  # 30 days: hour buckets
        await until(pilot, lambda: screen.stats.window_secs == 30 * 86400, "30 d window")
        assert screen.stats.total.summary.completed == 3
        screen.query_one(DataTable).move_cursor(row=screen.rows.index("pulse.fail"))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "jobs screen")
        jobs: JobsScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: jobs.filter.handler == "pulse.fail", "handler filter")
    await client.close()


async def _finished(client, ids: list[str]) -> None:
    deadline = time.monotonic() + 30
    for job_id in ids:  # a retried check with a deadline
        while (await client.get_job(job_id)).job.status not in ("completed", "failed"):
            assert time.monotonic() < deadline, f"job {job_id} did not finish"
            await asyncio.sleep(0.02)


def bars(sparkline: Sparkline) -> str:
    """What the sparkline's data draws, 30 columns wide (as the jobs screen shows it)."""
    console = Console(width=30, file=io.StringIO(), record=True)
    console.print(SparklineBars(sparkline.data or [], width=30))
    return console.export_text().strip()


async def test_jobs_screen_throughput_sparkline(server, monkeypatch) -> None:
    """Issue 16: jobs/min (completed, failed) beside the status tabs, live, paused with `p`, hidden
    where it does not fit."""
    monkeypatch.setattr(throughput, "REFRESH_SECS", 0.2)
    client = await client_for(server)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(160, 40)) as pilot:
        await started(app, pilot)
        tp = app.screen.query_one(Throughput)
        completed = tp.query_one("#throughput-completed", Sparkline)
        failed = tp.query_one("#throughput-failed", Sparkline)
        await until(pilot, lambda: tp.has_class("-shown"), "the sparkline")
        assert tp.display and failed.display  # both series at 160 columns
        # nothing ran yet (the server sends no points): a flat line, not one solid bar
        assert bars(completed) == bars(failed) == "▁" * 30, bars(completed)
        ids = [(await client.enqueue("pulse.noop", {})).id for _ in range(3)]
        ids.append((await client.enqueue("pulse.fail", {}, max_attempts=1)).id)
        await _finished(client, ids)
        await until(pilot, lambda: sum(completed.data or []) == 3, "3 completed")
        assert sum(failed.data or []) == 1
        assert len(completed.data or []) == throughput.WINDOW_SECS // throughput.STEP_SECS
        # live: a job that ends now shows on a later refresh
        await _finished(client, [(await client.enqueue("pulse.noop", {})).id])
        await until(pilot, lambda: sum(completed.data or []) == 4, "4 completed")
        # paused: the timer ticks, nothing is asked
        await pilot.press("p")
        assert app.paused
        fetches, ticks = tp.fetches, tp.ticks
        await until(pilot, lambda: tp.ticks >= ticks + 3, "three ticks")
        assert tp.fetches == fetches
        await pilot.press("p")
        await until(pilot, lambda: tp.fetches > fetches, "a fetch after resuming")
        # narrower: the failed series goes first, then the whole sparkline
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: tp.has_class("-narrow") and not failed.display, "narrow")
        assert tp.display
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: not tp.display, "hidden at 80 columns")
        fetches = tp.fetches
        await until(pilot, lambda: tp.ticks >= ticks + 6, "more ticks")
        assert tp.fetches == fetches  # hidden: nothing is asked
    await client.close()


def test_rates_say_none_and_few_apart() -> None:
    """No jobs reads 0; a few jobs over a long window read <0.1, not 0.0 (which read as none)."""
    from pulse_tui.screens.stats import rate

    assert [rate(r) for r in (0.0, 0.01, 0.049, 0.05, 2.34, 12.6, 1234.0)] == [
        "0",
        "<0.1",
        "<0.1",
        "0.1",
        "2.3",
        "13",
        "1,234",
    ]
