"""Console keys for pause and resume (jobs screen, marks, all matching, handlers, job detail)
against a real server."""

from __future__ import annotations

import pytest

from pulse_tui.app import PulseApp
from pulse_tui.screens.confirm import ConfirmScreen
from pulse_tui.screens.handlers import HandlersScreen
from pulse_tui.screens.job_detail import JobDetailScreen
from pulse_tui.screens.jobs import JobsScreen
from tests.test_tui import client_for, started, status_of, until
from tests.test_tui_console import _text


@pytest.fixture
def server(server_factory):
    return server_factory(extra_args=["--grace", "0.5"])


def message(app: PulseApp) -> str:
    return str(app.screen.query_one("#confirm-message").render())


async def test_pause_and_resume_by_keys_cursor_marks_and_all_matching(server) -> None:
    client = await client_for(server)
    jobs = [await client.enqueue("pulse.sleep", {"seconds": 1}, delay_secs=600) for _ in range(3)]
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot, rows=3)
        await pilot.press("P")  # the job under the cursor (the newest)
        await until(pilot, lambda: t.job_at(0).status == "paused", "cursor job paused (live)")
        assert t.job_at(0).pause_reason == "user_requested"
        assert "(paused by operator)" in str(t.render_line(1))  # row 0 under the header
        await pilot.press("U")
        await until(pilot, lambda: t.job_at(0).status == "queued", "cursor job resumed")
        await pilot.press("space", "space", "P")  # two marks: asks first
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "pause-marks confirm")
        assert "Pause 2 marked job(s)?" in message(app)
        await pilot.press("y")
        await until(pilot, lambda: not t.marked, "marks cleared")
        assert [await status_of(client, j.id) for j in jobs] == ["queued", "paused", "paused"]
        await pilot.press("alt+u")  # every paused job matching the (empty) filter
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "resume-all confirm")
        assert "Resume 2 paused job(s)?" in message(app)
        await pilot.press("y")
        await until(pilot, lambda: all(t.job_at(i).status == "queued" for i in range(3)), "all resumed")
        await pilot.press("alt+p")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "pause-all confirm")
        assert "Pause 3 queued job(s)?" in message(app)
        await pilot.press("y")
        await until(pilot, lambda: all(t.job_at(i).status == "paused" for i in range(3)), "all paused")
    await client.close()


async def test_pause_keys_on_the_detail_and_handlers_screens_refused_when_read_only(server) -> None:
    client = await client_for(server)
    job = await client.enqueue("pulse.sleep", {"seconds": 1}, delay_secs=600)
    newest = job.id
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot, rows=1)
        # the job detail: z pauses this job (P is its parent there), U resumes it
        t.move_to_job(newest)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "detail")
        await pilot.press("z")
        await until(pilot, lambda: any(f"paused {newest}" in n.message for n in app._notifications), "paused")
        assert (await client.get_job(newest)).job.pause_reason == "user_requested"
        await pilot.press("U")
        await until(
            pilot, lambda: any(f"resumed {newest}" in n.message for n in app._notifications), "resumed"
        )
        assert await status_of(client, newest) == "queued"
        await pilot.press("escape")
        # the handlers screen: P holds every job of the handler under the cursor, U releases them
        await app.switch_mode("handlers")
        screen = app.screen
        assert isinstance(screen, HandlersScreen)
        await until(pilot, lambda: bool(screen.handlers), "handlers listed")
        names = [h.name for h in screen.handlers]
        screen.query_one("DataTable").move_cursor(row=names.index("pulse.noop"))
        await pilot.press("P")
        await until(pilot, lambda: any(h.paused for h in screen.handlers if h.name == "pulse.noop"), "paused")
        held = await client.enqueue("pulse.noop")
        assert held.status == "paused" and held.pause_reason == "handler_paused"
        # the held job is counted in the PAUSED column (QUEUED and RUN say 0 while it is held)
        table = screen.query_one("DataTable")
        await until(
            pilot,
            lambda: str(table.get_cell("pulse.noop", "paused")) == "1",
            "the PAUSED column counts the held job",
        )
        await pilot.press("U")
        await until(pilot, lambda: not any(h.paused for h in screen.handlers), "handler resumed")
        assert (await client.get_job(held.id)).job.status in ("queued", "running", "completed")
        await client.pause_jobs([newest])
    # a read-only console refuses the keys and says why
    app = PulseApp(server.address, server.readonly_token)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("U", "alt+u")
        assert isinstance(app.screen, JobsScreen)
        assert any("read-only: resume is disabled" in n.message for n in app._notifications)
        assert await status_of(client, newest) == "paused"
    await client.close()


async def test_budgets_command_lists_every_budget(server_factory) -> None:
    """`:budgets` (README, the command line's list) answers with each budget and its spend."""
    srv = server_factory('[budgets]\ndaily = 5\n[budgets.handlers."pulse.noop"]\nmonthly = 2.5\n')
    app = PulseApp(srv.address, srv.token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await until(pilot, lambda: len(app.budgets) == 2, "budgets from ServerInfo")
        await pilot.press("colon", *"budgets", "enter")
        await until(pilot, lambda: any(n.title == "Spend budgets" for n in app._notifications), "listed")
        text = next(n.message for n in app._notifications if n.title == "Spend budgets")
        assert "daily: 0.00 of 5.00 (5.00 left)" in text and "pulse.noop monthly" in text, text
        assert not any("unknown command" in n.message for n in app._notifications)


async def test_detail_parent_and_children_keys_say_when_there_are_none(server) -> None:
    """P (the parent here, not pause) and C on a job with neither answer instead of doing nothing;
    a job that has not run yet names no plugin (it said "built-in / —")."""
    client = await client_for(server)
    await client.enqueue("pulse.noop", delay_secs=3600)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot, rows=1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "detail")
        detail: JobDetailScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: detail.detail is not None and detail.child_counts is not None, "loaded")
        summary = _text(detail.query_one("#detail-summary").content)
        assert "— (not run yet)" in summary and "built-in" not in summary, summary
        await pilot.press("P")
        await until(pilot, lambda: any("no parent" in n.message for n in app._notifications), "P answers")
        await pilot.press("C")
        await until(pilot, lambda: any("no child jobs" in n.message for n in app._notifications), "C answers")
        assert isinstance(app.screen, JobDetailScreen)
    await client.close()


async def test_messages_are_plain_text_not_markup(server) -> None:
    """A message naming a config table (`[budgets]`) or a usage (`[json]`) shows it: notifications
    are not parsed as markup, where `[word]` is a style tag and vanished."""
    from textual.widgets._toast import Toast

    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("colon", *"budgets", "enter")
        await pilot.press("colon", *"ix", "enter")
        await until(pilot, lambda: len(app._notifications) >= 2, "both messages")
        shown = " | ".join(str(Toast(n).render()) for n in app._notifications)  # as a toast draws it
        assert "([budgets] in the server's pulse.toml)" in shown, shown
        assert ":ix <command> [json]" in shown, shown
