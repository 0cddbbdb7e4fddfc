"""The `:stats` screen against a real `pulse-tui serve`: what ran shows per handler, the window
keys ask the server for another window, enter opens the jobs list filtered to the handler."""

from __future__ import annotations

import asyncio
import time

from test_tui import client_for, started, until
from textual.widgets import DataTable

from pulse_tui.app import PulseApp
from pulse_tui.screens.jobs import JobsScreen
from pulse_tui.screens.stats import StatsScreen


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
