"""The :schedules screen driven by keys against a real `pulse-tui serve`."""

from __future__ import annotations

import io
import re

from rich.console import Console
from test_tui import client_for, jump, started, until
from textual.widgets import DataTable, Input, Static

from pulse_tui.app import PulseApp
from pulse_tui.screens.confirm import ConfirmScreen
from pulse_tui.screens.job_detail import JobDetailScreen
from pulse_tui.screens.schedules import CreateScheduleScreen, ScheduleHistoryScreen, SchedulesScreen


def runs_shown(screen: SchedulesScreen) -> int:
    return screen.schedules[0].run_count if screen.schedules else 0


async def test_create_watch_runs_pause_run_history_delete(server) -> None:
    client = await client_for(server)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 36)) as pilot:
        await started(app, pilot)
        await jump(pilot, "schedules", SchedulesScreen)
        screen: SchedulesScreen = app.screen  # type: ignore[assignment]
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateScheduleScreen), "create modal")
        modal = app.screen
        modal.query_one("#schedule-handler", Input).value = "pulse.noop"
        modal.query_one("#schedule-cadence", Input).value = "0 3 * * *"
        modal.query_one("#schedule-tz", Input).value = "Mars/Base"
        await pilot.pause(0.1)
        assert "unknown time zone 'Mars/Base'" in str(modal.query_one("#schedule-preview").render())
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert isinstance(app.screen, CreateScheduleScreen)  # refused in the modal, nothing sent
        assert await client.list_schedules() == []
        modal.query_one("#schedule-tz", Input).value = ""
        modal.query_one("#schedule-cadence", Input).value = "1s"
        await pilot.pause(0.1)
        assert re.search(
            r"✔ every 1s( · times in [^\n]+)?\nnext: 20", str(modal.query_one("#schedule-preview").render())
        )
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen), "modal closed")
        # runs appear live (WatchSchedules), without a refresh key
        await until(pilot, lambda: runs_shown(screen) >= 2, "two runs on screen", timeout=15)
        sid = screen.schedules[0].id
        await pilot.press("space")
        await until(pilot, lambda: screen.schedules[0].state == "paused", "paused")
        assert (await client.get_schedule(sid)).schedule.state == "paused"
        before = (await client.get_schedule(sid)).schedule.run_count
        await pilot.press("r")  # run now works on a paused schedule
        await until(pilot, lambda: runs_shown(screen) == before + 1, "run now")
        await pilot.press("space")
        await until(pilot, lambda: screen.schedules[0].state == "active", "resumed")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ScheduleHistoryScreen), "history")
        history: ScheduleHistoryScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: history.detail is not None and history.detail.executions, "runs listed")
        job_id = history.detail.executions[0].job_id
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "job detail")
        detail: JobDetailScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: detail.detail is not None, "detail loaded")
        assert detail.job_id == job_id and detail.detail.job.schedule_id == sid
        assert "schedule" in {b.binding.action for b in detail.active_bindings.values()}  # the jump key
        await pilot.press("s")  # jump to the schedule
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen), "back on schedules")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "delete asks first")
        await pilot.press("y")
        await until(
            pilot, lambda: isinstance(app.screen, SchedulesScreen) and not app.screen.schedules, "gone"
        )
        assert (await client.get_schedule(sid)).schedule.state == "deleted"
    await client.close()


async def test_read_only_hides_schedule_mutations(server) -> None:
    client = await client_for(server)
    s = await client.create_schedule("pulse.noop", b"{}", interval_secs=3600)
    app = PulseApp(server.address, server.readonly_token)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        app.goto("schedules")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen) and app.screen.schedules, "listed")
        actions = {b.binding.action for b in app.screen.active_bindings.values()}
        assert {"toggle", "run_now", "delete", "create"}.isdisjoint(actions) and "refresh" in actions
        await pilot.press("space", "r", "d", "n")
        await pilot.pause(0.2)
        assert isinstance(app.screen, SchedulesScreen)
        got = (await client.get_schedule(s.id)).schedule
        assert got.state == "active" and got.run_count == 0
        assert app.screen.query_one(DataTable).row_count == 1
    await client.close()


async def test_schedules_screen_says_what_is_missing_in_compat_mode(server) -> None:
    from test_tui import CompatClient

    app = PulseApp(server.address, server.token, client=CompatClient(server.address, server.token))
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await jump(pilot, "schedules", SchedulesScreen)
        note = app.screen.query_one("#schedules-note")
        await until(
            pilot, lambda: "not available" in str(note.render()), "says schedules need a Pulse server"
        )
        assert not app.screen.query_one(DataTable).display


async def test_every_column_fits_80_columns_and_is_whole_at_200(server) -> None:
    """At 80 columns the table had scrolled sideways, OWNER cut off: narrow, STATE goes (NEXT RUN
    says "(paused)"), the last run is its icon, and long ids, handlers and cadences are shortened
    with an ellipsis so that every column shows, also when a longer schedule arrives later (a
    column kept the widest cell it ever had); at 200 columns everything is whole."""
    client = await client_for(server)
    await client.create_schedule("pulse.sleep", b"{}", interval_secs=300, paused=True)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await jump(pilot, "schedules", SchedulesScreen)
        screen: SchedulesScreen = app.screen  # type: ignore[assignment]
        table = screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 1, "one row")
        long = await client.create_schedule(
            "pulse.noop", b"{}", cron="0 3 * * 1-5", timezone="America/Argentina/Buenos_Aires"
        )
        await until(pilot, lambda: table.row_count == 2, "two rows")
        await pilot.pause()
        labels = [str(c.label) for c in table.columns.values()]
        assert labels == ["ID", "HANDLER", "CADENCE", "NEXT RUN", "LAST RUN", "RUNS", "OWNER"], labels
        assert table.virtual_size.width <= table.scrollable_content_region.width, (
            table.virtual_size.width,
            table.scrollable_content_region.width,
        )
        row = [str(c) for c in table.get_row(long.id)]
        assert row[0] == "…" + long.id[-8:] and row[2].endswith("…") and row[-1] == "operator", row
        # its runs below: the ids' tails and the relative start, so status and took stay whole
        run = (await client.schedule_action("run", long.id)).execution
        await pilot.press("down")
        await until(
            pilot,
            lambda: (
                screen.history is not None
                and screen.history.schedule.id == long.id
                and bool(screen.history.executions)
            ),
            "the run listed",
        )
        console = Console(width=screen.size.width, record=True, file=io.StringIO())
        console.print(screen.query_one("#schedule-history", Static).content)
        shown = console.export_text()
        assert "…" + run.id[-8:] in shown and "…" + run.job_id[-8:] in shown, shown
        line = next(x for x in shown.splitlines() if run.id[-8:] in x)
        assert " took " in shown and line.count("…") == 2, shown  # the two ids' only: nothing cut

        await pilot.resize_terminal(200, 50)
        await until(pilot, lambda: len(table.columns) == 8, "the wide columns")
        await pilot.pause()
        row = [str(c) for c in table.get_row(long.id)]
        assert row[:4] == [long.id, "pulse.noop", long.cadence, "active"], row
        assert row[-1] == "operator", row
    await client.close()
