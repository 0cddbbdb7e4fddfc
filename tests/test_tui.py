"""Pilot tests: drive the console by keys against a real `pulse-tui serve` (and real plugins)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, TextArea

from pulse_tui.app import PulseApp
from pulse_tui.client import PulseClient, job_filter
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.confirm import ConfirmScreen
from pulse_tui.screens.enqueue import EnqueueScreen
from pulse_tui.screens.handlers import HandlersScreen
from pulse_tui.screens.help import HelpScreen
from pulse_tui.screens.job_detail import JobDetailScreen
from pulse_tui.screens.jobs import JobsScreen
from pulse_tui.screens.plugins import PluginsScreen
from pulse_tui.widgets.job_table import JobTable
from pulse_tui.widgets.status_bar import StatusBar

PLUGINS = """
[[plugins]]
name = "demo"
command = ["{python}", "-m", "pulse_tui.plugins.demo"]

[[plugins]]
name = "importer"
command = ["{python}", "-m", "pulse_tui.plugins.importer"]
"""


async def until(
    pilot: Pilot, cond: Callable[[], object], what: str = "condition", timeout: float = 10.0
) -> None:
    """Wait for `cond`; then the screen on top has mounted what it composes (a condition such as
    "the confirm screen is up" holds as soon as it is pushed, before its widgets exist)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
    screen = pilot.app.screen
    if not screen.is_mounted:
        await asyncio.wait_for(screen._mounted_event.wait(), max(0.1, deadline - loop.time()))
        await pilot._wait_for_screen()


async def jump(pilot: Pilot, view: str, screen: type[Screen[Any]]) -> None:
    """`:view⏎` and wait for the screen it opens to be on top."""
    await pilot.press("colon", *view, "enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, screen), f":{view}")


def table(app: PulseApp) -> JobTable:
    return app.screen.query_one(JobTable)


async def started(app: PulseApp, pilot: Pilot, rows: int | None = None) -> JobTable:
    await app.wait_connected()
    await until(pilot, lambda: isinstance(app.screen, JobsScreen), "jobs screen")
    t = table(app)
    if rows is not None:
        await until(pilot, lambda: t.total == rows and t.loaded_rows >= min(rows, 20), f"{rows} rows")
    return t


async def client_for(server) -> PulseClient:
    client = PulseClient(server.address, server.token)
    await client.probe()
    return client


async def status_of(client: PulseClient, job_id: str) -> str:
    return (await client.get_job(job_id)).job.status


async def test_jobs_table_detail_and_back(server) -> None:
    client = await client_for(server)
    ok = await client.enqueue("pulse.noop", {"hello": "world"})
    bad = await client.enqueue("pulse.fail", {"error": "disk full"}, max_attempts=1)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot, rows=2)
        await until(pilot, lambda: t.job_at(0) and t.job_at(0).status == "failed", "failed row")
        assert t.job_at(0).id == bad.id and t.job_at(1).id == ok.id  # newest first
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "detail screen")
        detail: JobDetailScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: detail.detail is not None, "detail loaded")
        assert detail.job_id == bad.id
        assert detail.query_one("#detail-tabs").active == "tab-error"  # a failed job opens on its error
        assert "disk full" in str(detail.query_one("#error").render())
        await pilot.press("right")
        assert detail.query_one("#detail-tabs").active == "tab-attempts"
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "back to jobs")
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "second detail")
        await until(pilot, lambda: app.screen.detail is not None, "detail loaded")
        assert b'"hello"' in app.screen.query_one("#payload").raw
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "escape goes back")
    await client.close()


async def test_filter_tabs_and_counts(server) -> None:
    client = await client_for(server)
    for _ in range(3):
        await client.enqueue("pulse.noop")
    await client.enqueue("pulse.fail", {"error": "needle in error"}, max_attempts=1)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot, rows=4)
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: screen.query_one("StatusTabs").counts.get("failed") == 1, "counts")
        await pilot.press("slash")
        assert app.focused is screen.query_one("#filter", Input)
        await pilot.press(*"handler:pulse.fail", "enter")
        await until(pilot, lambda: t.total == 1 and t.job_at(0) is not None, "filtered to 1")
        assert t.job_at(0).handler == "pulse.fail"
        assert "handler=pulse.fail" in str(screen.query_one("#jobs-note").render())
        await pilot.press("escape")  # clears the filter at the root
        await until(pilot, lambda: t.total == 4, "filter cleared")
        await pilot.press("slash", *"needle", "enter")
        await until(pilot, lambda: t.total == 1 and t.job_at(0) is not None, "text filter")
        await pilot.press("escape")
        await until(pilot, lambda: t.total == 4, "cleared again")
        await pilot.press("right", "right", "right")  # all → queued → running → failed
        assert screen.tab == "failed"
        await until(
            pilot, lambda: t.total == 1 and t.job_at(0) and t.job_at(0).status == "failed", "failed tab"
        )
        await pilot.press("left")
        assert screen.tab == "running"
    await client.close()


async def test_cancel_running_asks_first_then_live_update(server) -> None:
    client = await client_for(server)
    slow = await client.enqueue("pulse.sleep", {"seconds": 60, "steps": 60})
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot, rows=1)
        await until(pilot, lambda: t.job_at(0) and t.job_at(0).status == "running", "running (live)")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "declined")
        assert await status_of(client, slow.id) == "running"
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm again")
        await pilot.press("y")
        await until(pilot, lambda: t.job_at(0) and t.job_at(0).status == "cancelled", "cancelled row (live)")
        assert t.cursor == 0
    await client.close()


async def test_retry_single_and_retry_all_failed(server) -> None:
    client = await client_for(server)
    fails = [await client.enqueue("pulse.fail", {"error": f"e{i}"}, max_attempts=1) for i in range(3)]
    await client.enqueue("pulse.noop")
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot, rows=4)
        await until(
            pilot, lambda: all(t.job_at(i) and t.job_at(i).status != "queued" for i in range(4)), "done"
        )
        t.move_to_job(fails[0].id)
        await pilot.press("r")
        await until(pilot, lambda: t.job_at(t.row_of(fails[0].id)).retry_count == 1, "retried (live)")
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "retry-all confirm")
        message = str(app.screen.query_one("#confirm-message").render())
        assert "Retry 3 failed job(s)" in message
        await pilot.press("y")
        await until(
            pilot,
            lambda: all(t.job_at(t.row_of(f.id)).retry_count >= 1 for f in fails[1:]),
            "all failed retried",
        )
        # a completed job cannot be retried: the console says why
        t.move_to_job(t.job_at(0).id if t.job_at(0).status == "completed" else t.job_at(3).id)
    await client.close()


async def test_mark_and_bulk_cancel(server) -> None:
    client = await client_for(server)
    jobs = [await client.enqueue("pulse.sleep", {"seconds": 1}, delay_secs=600) for _ in range(3)]
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot, rows=3)
        await pilot.press("space", "space")
        assert t.marked == {jobs[2].id, jobs[1].id}
        assert app.screen.query_one(StatusBar).marked == 2
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "bulk confirm")
        assert "2 marked" in str(app.screen.query_one("#confirm-message").render())
        await pilot.press("y")
        await until(pilot, lambda: not t.marked, "marks cleared")
        statuses = [await status_of(client, j.id) for j in jobs]
        assert statuses == ["queued", "cancelled", "cancelled"]
        await until(pilot, lambda: t.job_at(0).status == "cancelled", "live")
        await pilot.press("space", "u")
        assert not t.marked
    await client.close()


async def test_enqueue_modal_validates_and_submits(server) -> None:
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 36)) as pilot:
        t = await started(app, pilot, rows=0)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EnqueueScreen), "enqueue modal")
        modal: EnqueueScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: "pulse.noop" in modal.names, "handler names for completion")
        await pilot.press(*"pulse.sl")
        assert "pulse.sleep" in str(modal.query_one("#enqueue-matches").render())
        await pilot.press("right")  # accept the suggestion
        assert modal.query_one("#enqueue-handler", Input).value == "pulse.sleep"
        area = modal.query_one("#enqueue-payload", TextArea)
        area.text = '{"seconds": '
        await until(
            pilot, lambda: "✘" in str(modal.query_one("#enqueue-validation").render()), "invalid JSON"
        )
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "JSON" in str(modal.query_one("#enqueue-error").render()), "refused")
        area.text = '{"seconds": 0.1, "steps": 2}'
        await until(
            pilot, lambda: "valid JSON" in str(modal.query_one("#enqueue-validation").render()), "valid"
        )
        modal.query_one("#enqueue-priority", Input).value = "5"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "modal closed")
        await until(pilot, lambda: t.total == 1 and t.job_at(0) is not None, "new job appears (live)")
        job = t.job_at(0)
        assert job.handler == "pulse.sleep" and job.priority == 5
        await until(pilot, lambda: t.job_at(0).status == "completed", "progress reaches the end")
        assert t.job_at(0).progress_current == t.job_at(0).progress_total == 2
        # unknown handler: the server's error is shown in the modal, nothing is enqueued
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EnqueueScreen), "modal again")
        app.screen.query_one("#enqueue-handler", Input).value = "no.such"
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: "unknown handler" in str(app.screen.query_one("#enqueue-error").render()), "error"
        )
        # a number the protocol cannot carry is said in the form (it did nothing before)
        app.screen.query_one("#enqueue-handler", Input).value = "pulse.noop"
        app.screen.query_one("#enqueue-priority", Input).value = "99999999999"
        await pilot.pause()  # the edits' Changed messages (each clears the error line) are handled
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: (
                "priority 99999999999 is out of range" in str(app.screen.query_one("#enqueue-error").render())
            ),
            "range error",
        )
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "closed")
        assert t.total == 1


async def test_copy_pause_help_palette_and_jumps(server) -> None:
    client = await client_for(server)
    job = await client.enqueue("pulse.noop")
    app = PulseApp(server.address, server.token, keymap={"jobs.enqueue": "n"})
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot, rows=1)
        await pilot.press("y")
        assert app.clipboard == job.id
        await pilot.press("p")
        assert app.paused and app.screen.query_one(StatusBar).paused
        await client.enqueue("pulse.noop")
        # the event has arrived and is held back: only then does "nothing applied" mean anything
        # (a job the screen does not show yet: the view stream counts it among the others)
        await until(pilot, lambda: app._others, "the paused update to arrive")
        assert table(app).total == 1  # paused: nothing applied
        await pilot.press("p")
        await until(pilot, lambda: table(app).total == 2, "resumed: pending update applied")
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        rows = {bid: keys for keys, _desc, bid, _on in app.screen.rows()}
        assert rows["jobs.enqueue"] == "n"  # remapped key shown from the live keymap
        assert "jobs.cancel" in rows and "app.help" in rows
        await pilot.press("escape")
        await pilot.press("n")  # remapped enqueue
        await until(pilot, lambda: isinstance(app.screen, EnqueueScreen), "remapped key works")
        await pilot.press("escape")
        await jump(pilot, "handlers", HandlersScreen)
        await until(pilot, lambda: app.screen.handlers, "handlers listed")
        await jump(pilot, "plugins", PluginsScreen)
        await pilot.press("colon", *"nonsense", "enter")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "q goes back to jobs")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "palette")
        await pilot.press(*":plugins")

        def best_hit() -> str:  # the palette gathers hits asynchronously
            hits = app.screen.query_one(CommandList)
            return str(hits.get_option_at_index(0).prompt) if hits.option_count else ""

        await until(pilot, lambda: ":plugins" in best_hit(), "the palette's hits")
        await pilot.press("enter")  # highlights the best hit
        if isinstance(app.screen, CommandPalette):
            await pilot.press("enter")  # runs it
        await until(pilot, lambda: isinstance(app.screen, PluginsScreen), "palette runs :plugins")
    await client.close()


async def test_read_only_hides_and_refuses(server) -> None:
    client = await client_for(server)
    job = await client.enqueue("pulse.sleep", {"seconds": 1}, delay_secs=600)
    app = PulseApp(server.address, server.readonly_token)  # a read-only token: the server says so
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot, rows=1)
        assert app.read_only
        actions = {b.binding.action for b in app.screen.active_bindings.values()}
        assert "cancel" not in actions and "enqueue" not in actions and "detail" in actions
        await pilot.press("c", "e", "r")
        assert isinstance(app.screen, JobsScreen)
        assert await status_of(client, job.id) == "queued"
        assert app.screen.query_one(StatusBar).read_only
    app = PulseApp(server.address, server.token, read_only=True)  # --read-only with the admin token
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot, rows=1)
        await app.screen.action_cancel().wait()  # a worker: refused before anything is sent
        # the toast is a message to the app: it may be handled after the worker is done
        await until(
            pilot,
            lambda: any("read-only: cancel refused" in n.message for n in app._notifications),
            "refused",
        )
        assert await status_of(client, job.id) == "queued"
    await client.close()


async def test_server_loss_reconnects_without_crashing(server_factory) -> None:
    srv = server_factory()
    app = PulseApp(srv.address, srv.token)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot, rows=0)
        srv.stop()
        await until(pilot, lambda: app.conn_state == "reconnecting", "reconnecting")
        await until(pilot, lambda: app.retry_in > 0, "countdown shown")
        bar = app.screen.query_one(StatusBar)
        assert "reconnecting in" in str(bar.render())
        await pilot.press("e")  # refused with a message, no modal, no crash
        assert isinstance(app.screen, JobsScreen)
        assert any("not connected" in n.message for n in app._notifications)


async def test_plugins_screen_shows_an_old_instance_draining_after_reload(
    server_factory, monkeypatch
) -> None:
    """Issue 13.2: after `r` (reload) with a job running, the plugins screen shows the old
    instance draining until the job ends on it; the job keeps its first attempt."""
    import pulse_tui.screens.plugins as plugins_mod

    monkeypatch.setattr(plugins_mod, "REFRESH_SECS", 0.3)  # the screen polls every 2 s
    srv = server_factory(PLUGINS)
    client = await client_for(srv)
    app = PulseApp(srv.address, srv.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        await jump(pilot, "plugins", PluginsScreen)
        screen: PluginsScreen = app.screen  # type: ignore[assignment]
        await until(
            pilot, lambda: screen.selected is not None and screen.selected.name == "demo", "demo selected"
        )
        job = await client.enqueue("demo.sleep", {"seconds": 4, "steps": 40}, max_attempts=1)
        await until(pilot, lambda: any(p.running_jobs for p in screen.plugins), "the job running", 20)
        await pilot.press("r")
        await until(pilot, lambda: screen.last_reload is not None, "reload result")
        assert screen.last_reload.draining_jobs == 1
        state_cell = lambda: str(screen.query_one("#plugins-table", DataTable).get_row("demo")[1])  # noqa: E731
        await until(pilot, lambda: "draining (1 job)" in state_cell(), "draining shown")
        await until(
            pilot,
            lambda: "old instance draining" in str(screen.query_one("#plugin-handlers").render()),
            "detail",
        )
        await until(pilot, lambda: "draining" not in state_cell(), "drained", 30)
    done = (await client.get_job(job.id)).job
    assert done.status == "completed" and done.attempts == 1
    await client.close()


async def test_plugins_and_handlers_with_real_plugins(server_factory) -> None:
    srv = server_factory(PLUGINS)
    client = await client_for(srv)
    app = PulseApp(srv.address, srv.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        await jump(pilot, "plugins", PluginsScreen)
        screen: PluginsScreen = app.screen  # type: ignore[assignment]
        await until(
            pilot,
            lambda: len(screen.plugins) == 2 and all(p.state == "ready" for p in screen.plugins),
            "ready",
        )
        await until(
            pilot, lambda: screen.selected is not None and screen.selected.name == "demo", "demo selected"
        )
        assert "demo.sleep" in str(screen.query_one("#plugin-handlers").render())
        await pilot.press("r")
        await until(pilot, lambda: screen.last_reload is not None, "reload result")
        assert screen.last_reload.plugin.name == "demo"
        assert "data.import" in screen.last_reload.conflicts
        await until(
            pilot, lambda: "Last reload" in str(screen.query_one("#plugin-handlers").render()), "shown"
        )
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "disable confirm")
        await pilot.press("y")
        await until(pilot, lambda: not screen.plugins[0].enabled, "disabled")
        await pilot.press("d")  # enabling needs no confirmation
        await until(pilot, lambda: screen.plugins[0].enabled, "enabled again")

        await jump(pilot, "handlers", HandlersScreen)
        hs: HandlersScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: any(h.name == "data.import" for h in hs.handlers), "handlers listed")
        conflict = next(h for h in hs.handlers if h.name == "data.import")
        assert conflict.conflict == "exact" and conflict.owner == "demo"
        await pilot.press("o")
        await until(
            pilot, lambda: hs.conflicts_only and all(h.conflict for h in hs.handlers), "conflicts only"
        )
        assert {h.conflict for h in hs.handlers} >= {"exact", "near"}
        await pilot.press("enter")  # jump to the jobs of the selected handler
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "jobs for handler")
        assert app.screen.filter.handler == hs.handlers[0].name
    await client.cancel_jobs(flt=job_filter(["queued", "running"]))
    await client.close()


class CompatClient(PulseClient):
    """Talks to the real server but only through protocol.QueueService (as against QNTX)."""

    async def probe(self, wait: float = 0.0) -> str:
        await super().probe(wait)
        self.info = None
        self.mode = "compat"
        return self.mode


async def test_compat_mode_polls_and_says_what_is_missing(server) -> None:
    client = await client_for(server)
    await client.enqueue("pulse.noop")
    app = PulseApp(server.address, server.token, client=CompatClient(server.address, server.token))
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot, rows=1)
        assert "compat mode" in str(app.screen.query_one("#jobs-note").render())
        await client.enqueue("pulse.noop")
        await until(pilot, lambda: t.total == 2, "a new job shows up by polling")
        await jump(pilot, "plugins", PluginsScreen)
        await until(
            pilot, lambda: "not available" in str(app.screen.query_one("#plugins-note").render()), "says so"
        )
    await client.close()


async def test_too_small_terminal_gets_a_message(server) -> None:
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(50, 12)) as pilot:
        await started(app, pilot)
        assert app.has_class("-too-small")
        assert app.screen.query_one("TooSmall").display
        assert "too small" in str(app.screen.query_one("TooSmall").render())
        await pilot.resize_terminal(80, 24)
        await until(pilot, lambda: not app.has_class("-too-small"), "normal again")


async def test_handlers_at_80_columns_shorten_long_names_to_keep_every_count(server) -> None:
    """A long handler name (a script's, up to 64 characters) or claimant list is shortened with an
    ellipsis at 80 columns so that CONFLICT and every count stay on screen (it pushed them off)."""
    long_name = "import-customer-invoices-from-the-legacy-billing-system-nightly"
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await jump(pilot, "handlers", HandlersScreen)
        screen = app.screen
        assert isinstance(screen, HandlersScreen)
        await until(pilot, lambda: screen.handlers, "handlers listed")
        extra = operator_pb2.Handler(name=long_name, owner="python", claimants=["python", "scripts-two"])
        extra.queued, extra.failed = 7, 3
        screen.handlers = [*screen.handlers, extra]
        screen._fill()
        await pilot.pause()
        tbl = screen.query_one(DataTable)
        assert tbl.virtual_size.width <= tbl.scrollable_content_region.width, tbl.virtual_size
        row = [str(c) for c in tbl.get_row(long_name)]
        assert (
            row[0].endswith("…") and row[0].startswith("import-customer") and (row[3], row[6]) == ("7", "3")
        ), row


async def test_a_change_before_the_server_follows_a_shown_job_still_reaches_its_screen(server) -> None:
    """A detail reads its job, then the console asks the server to follow it (SetWatchView). A
    change landing in between reached the console only as a counted 'other', so the detail kept
    the old state (the editor's run never saw its job complete, once, under load). Once the server
    follows the newly shown job, the screen reads it again."""
    client = await client_for(server)
    job = await client.enqueue("pulse.noop", {}, delay_secs=600)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot, rows=1)
        gate = asyncio.Event()
        real = app.client.set_watch_view

        async def held(*args, **kwargs):  # the server's answer comes late, as under load
            await gate.wait()
            return await real(*args, **kwargs)

        app.client.set_watch_view = held  # type: ignore[method-assign]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "detail")
        detail = app.screen
        assert isinstance(detail, JobDetailScreen)
        await until(pilot, lambda: detail.detail is not None and detail.detail.job.status == "queued", "read")
        await client.cancel(job.id)  # before the server follows the job: counted as an other
        gate.set()
        await until(pilot, lambda: detail.detail.job.status == "cancelled", "the change after the view")
    await client.close()


async def test_what_a_job_says_cannot_drive_the_terminal(server) -> None:
    """A job's error comes from its plugin or, for pulse.fail, from whoever enqueued it. Textual
    and Rich drop only BEL, BS, VT, FF and CR from what they draw, so an ESC in an error reached
    the terminal: the list and the detail set the window title, cleared the screen and recoloured
    it. Such characters are now drawn as their control pictures (one column each)."""
    client = await client_for(server)
    evil = "\x1b]0;PWNED\x07 \x1b[2J\x1b[41mred \u202eevil\x9b end"
    bad = await client.enqueue("pulse.fail", {"error": evil}, max_attempts=1)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=1)
        await until(pilot, lambda: t.job_at(0) and t.job_at(0).status == "failed", "failed row")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "detail screen")
        detail: JobDetailScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: detail.detail is not None and detail.job_id == bad.id, "detail loaded")
        await pilot.pause()
        screen = app.export_screenshot()
        assert not any(c in screen for c in "\x1b\x07\u202e\x9b"), "a control character reached the screen"
        assert "␛]0;PWNED ␛[2J␛[41mred �evil� end" in screen.replace("&#160;", " ")
    await client.close()
