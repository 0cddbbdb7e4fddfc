"""Pilot tests for the console as a k9s / Sidekiq user judges it (issue 20), against a real server."""

from __future__ import annotations

import asyncio
import time

import pytest
from textual.widgets import Input

from pulse_tui.app import PulseApp
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.confirm import QuitScreen
from pulse_tui.screens.jobs import JobsScreen
from pulse_tui.widgets.status_tabs import StatusTabs
from tests.test_tui import client_for, jump, started, until


@pytest.fixture
def server(server_factory):
    """A real server whose shutdown does not wait the default 10 s grace for the long jobs some of
    these tests leave running (what happens to them at a stop is tested in test_reliability)."""
    return server_factory(extra_args=["--grace", "0.5"])


def ids(t) -> list[str]:
    return [t.job_at(i).id if t.job_at(i) else "?" for i in range(t.total)]


async def test_filtered_list_follows_live_updates(server) -> None:
    """Rows leave the filtered list when they stop matching and come back at their place."""
    client = await client_for(server)
    jobs = [await client.enqueue("pulse.sleep", {"seconds": 60}) for _ in range(3)]
    await client.enqueue("pulse.noop")
    await client.cancel_jobs([j.id for j in jobs])
    newest_first = [j.id for j in reversed(jobs)]
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot)
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        tabs = screen.query_one(StatusTabs)
        await pilot.press("slash", *"status:cancelled", "enter")
        await until(pilot, lambda: ids(t) == newest_first, "three cancelled rows")
        await pilot.press("down", "r")  # retry the middle one: it is queued now, not cancelled
        await until(pilot, lambda: ids(t) == [newest_first[0], newest_first[2]], "retried row leaves")
        assert t.current_job is not None and t.current_job.id == newest_first[2]  # cursor on the next
        await until(pilot, lambda: tabs.counts.get("cancelled") == 2, "cancelled count follows")
        await client.cancel_jobs([newest_first[1]])  # matches again: back at its place, not on top
        await until(pilot, lambda: ids(t) == newest_first, "row re-enters in order")
        await until(pilot, lambda: tabs.counts.get("cancelled") == 3, "count follows back")
        assert t.current_job is not None and t.current_job.id == newest_first[2]  # cursor kept its job
    await client.close()


async def test_q_at_root_goes_back_then_asks_before_stopping_embedded_server(server) -> None:
    client = await client_for(server)
    await client.enqueue("pulse.sleep", {"seconds": 60})
    app = PulseApp(server.address, server.token, embedded=True)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot)
        await until(pilot, lambda: t.job_at(0) is not None and t.job_at(0).status == "running", "running")
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        await pilot.press("slash", *"pulse", "enter")
        await until(pilot, lambda: screen.filter.text == "pulse", "filter applied")
        await pilot.press("q")  # first q undoes the filter, does not quit
        await until(pilot, lambda: screen.filter.line() == "", "filter cleared by q")
        assert app.is_running and app.screen is screen
        await pilot.press("escape")  # nothing left to undo: escape never quits
        assert app.is_running
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "asks before stopping the server")
        assert "1 job(s) are running" in str(app.screen.query_one("#confirm-message").render())
        await pilot.press("n")
        await until(pilot, lambda: app.screen is screen, "stays")
        assert app.is_running and not app.keep_server
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitScreen), "asks again")
        await pilot.press("k")
        await until(pilot, lambda: not app.is_running, "quits")
    assert app.keep_server  # run_tui leaves the embedded server running
    await client.close()


async def test_q_quits_at_once_without_running_jobs_or_embedded_server(server) -> None:
    client = await client_for(server)
    await client.enqueue("pulse.sleep", {"seconds": 60})
    app = PulseApp(server.address, server.token)  # not embedded: quitting stops nothing
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "quits")
    assert not app.keep_server
    await client.close()


def _plain(prompt: object) -> str:
    text = getattr(prompt, "plain", None)
    if text is None:
        text = "".join(getattr(r, "plain", str(r)) for r in getattr(prompt, "renderables", [prompt]))
    return str(text).split("\n")[0]


def _text(renderable: object) -> str:
    import io

    from rich.console import Console

    console = Console(width=160, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def note(screen: JobsScreen) -> str:
    return str(screen.query_one("#jobs-note").render())


async def test_filter_applies_as_you_type_with_prefix_glob_error_payload(server) -> None:
    client = await client_for(server)
    await client.enqueue("pulse.noop", {"city": "Lyon"})
    await client.enqueue("pulse.noop", {"city": "Oslo"})
    boom = await client.enqueue("pulse.fail", {"error": "Disk FULL on /var"}, max_attempts=1)
    await client.enqueue("pulse.sleep", {"seconds": 0})
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=4)
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: t.job_at(1) is not None and t.job_at(1).status == "failed", "failed")
        await pilot.press("slash", *"handler:pulse.no")  # no enter: applies after a pause in typing
        await until(pilot, lambda: t.total == 2 and screen.filter.handler == "pulse.no", "prefix as typed")
        assert app.focused is screen.query_one("#filter", Input)  # still typing
        await until(pilot, lambda: "2 job(s)" in note(screen), "count in the note")
        assert "handler=pulse.no*" in note(screen)
        await pilot.press(*" payload:Oslo")
        await until(pilot, lambda: t.total == 1 and t.job_at(0) is not None, "payload search")
        assert b"Oslo" in (await client.get_job(t.job_at(0).id)).payload
        await pilot.press("enter")
        assert app.focused is t
        await pilot.press("escape")
        await until(pilot, lambda: t.total == 4, "cleared")
        await pilot.press("slash", *"handler:pulse.*", "enter")  # a glob
        await until(pilot, lambda: screen.filter.handler == "pulse.*" and t.total == 4, "glob")
        await pilot.press("slash", "ctrl+u", *"error:disk full", "enter")  # error:disk and the word "full"
        await until(pilot, lambda: t.total == 1 and t.job_at(0) is not None, "error search")
        assert t.job_at(0).id == boom.id
        await pilot.press("slash", "ctrl+u", *'error:"no such thing"')
        await until(pilot, lambda: screen.filter.error == "no such thing" and t.total == 0, "empty")
        await pilot.pause(0.2)
        shown = "\n".join(str(s.text) for s in t.render_lines(t.region.reset_offset)[:4])
        assert "No jobs match the filter" in shown and 'error~"no such thing"' in shown
        assert "enqueue" not in shown
        await pilot.press("escape")  # esc on the open line reverts what was typed
        await until(pilot, lambda: screen.filter.error == "disk" and t.total == 1, "reverted")
    await client.close()


async def test_a_new_filter_counts_after_its_first_page(server) -> None:
    """The counts of a new filter are asked for once its first page has come: a count over a
    million rows must not hold up the rows on screen (they share the server's readers)."""
    client = await client_for(server)
    await client.enqueue("pulse.noop")
    await client.enqueue("pulse.sleep", {"seconds": 0})
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=2)
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        events: list[str] = []
        real_list, real_count = app.client.list_jobs, app.client.count_jobs

        async def list_jobs(flt, **kw):  # type: ignore[no-untyped-def]
            mine = flt is not None and flt.handler_glob == "pulse.no*"
            resp = await real_list(flt, **kw)
            if mine:
                events.append("listed")
            return resp

        async def count_jobs(flt, **kw):  # type: ignore[no-untyped-def]
            if flt is not None and flt.handler_glob == "pulse.no*":
                events.append("count")
            return await real_count(flt, **kw)

        app.client.list_jobs = list_jobs  # type: ignore[method-assign]
        app.client.count_jobs = count_jobs  # type: ignore[method-assign]
        await pilot.press("slash", *"handler:pulse.no", "enter")
        await until(pilot, lambda: t.total == 1 and "1 job(s)" in note(screen), "filtered and counted")
        assert events.index("listed") < events.index("count"), events
    await client.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_backoff_delays_double_with_jitter_under_their_caps() -> None:
    """The real numbers: from 0.5 s, doubling, each wait 50-100 % of its step; at most 5 s while
    the server was seen recently, 30 s after that."""
    import random

    from pulse_tui.app import BACKOFF_CAP, BACKOFF_RECENT_CAP, BACKOFF_START, backoff_delays

    assert (BACKOFF_START, BACKOFF_RECENT_CAP, BACKOFF_CAP) == (0.5, 5.0, 30.0)
    recent = True
    delays = backoff_delays(lambda: recent, random.Random(7))
    waits = [next(delays) for _ in range(8)]
    steps = [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert all(step / 2 <= w <= step for w, step in zip(waits, steps, strict=True)), waits
    assert len(set(waits)) == len(waits)  # jittered
    recent = False  # not seen for a while: the steps grow on to the long cap
    later = [next(delays) for _ in range(6)]
    assert all(w <= BACKOFF_CAP for w in later) and max(later) > BACKOFF_RECENT_CAP, later
    assert later[-1] >= BACKOFF_CAP / 2


async def test_reconnect_backoff_is_capped_and_ctrl_r_reconnects_now(server_factory, monkeypatch) -> None:
    import pulse_tui.app as app_mod
    from pulse_tui.widgets.status_bar import StatusBar

    # the live behaviour on a shorter scale (the real numbers are checked above): doubling from
    # 0.1 s, capped at 2.5 s, each probe of the closed port waiting 0.3 s
    monkeypatch.setattr(app_mod, "BACKOFF_START", 0.1)
    monkeypatch.setattr(app_mod, "BACKOFF_RECENT_CAP", 2.5)
    monkeypatch.setattr(app_mod, "RECONNECT_PROBE_WAIT", 0.3)
    BACKOFF_RECENT_CAP = app_mod.BACKOFF_RECENT_CAP
    srv = server_factory(extra_args=["--listen", f"127.0.0.1:{free_port()}"])
    app = PulseApp(srv.address, srv.token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot, rows=0)
        srv.stop()
        await until(pilot, lambda: app.conn_state == "reconnecting", "reconnecting")
        # the waits double but stay under the cap while the server was just seen
        await until(pilot, lambda: len(app.backoff_waits) >= 5, "five waits", timeout=30)
        assert all(w <= BACKOFF_RECENT_CAP for w in app.backoff_waits), app.backoff_waits
        assert len(set(app.backoff_waits)) == len(app.backoff_waits)  # jittered
        await until(pilot, lambda: app.retry_in >= 2, "a countdown of 2 s or more", timeout=10)
        bar = app.screen.query_one(StatusBar)
        assert f"reconnecting in {app.retry_in}s" in str(bar.render())
        await pilot.press("e")  # refused; the toast has no countdown of its own to disagree with
        assert not any("retrying in" in n.message for n in app._notifications)
        await asyncio.to_thread(srv.restart)  # same port; the console keeps probing meanwhile
        await until(pilot, lambda: app.conn_state == "connected", "back within the cap", timeout=15)


async def test_ctrl_r_reconnects_now(server_factory, monkeypatch) -> None:
    import pulse_tui.app as app_mod

    monkeypatch.setattr(app_mod, "BACKOFF_START", 60.0)  # a long countdown ctrl+r must cut short
    monkeypatch.setattr(app_mod, "BACKOFF_RECENT_CAP", 60.0)
    srv = server_factory(extra_args=["--listen", f"127.0.0.1:{free_port()}"])
    app = PulseApp(srv.address, srv.token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot, rows=0)
        srv.stop()
        await until(pilot, lambda: app.retry_in >= 20, "a long countdown", timeout=15)
        await asyncio.to_thread(srv.restart)
        assert app.conn_state == "reconnecting" and app.retry_at - time.monotonic() > 5
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.conn_state == "connected", "reconnected now", timeout=5)
        assert any("reconnecting to" in n.message for n in app._notifications)


async def test_command_line_hint_lists_every_command(server) -> None:
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(200, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("colon")
        hint = app.screen.query_one("#command-line", Input).placeholder
        for name in ("jobs", "plugins", "handlers", "scripts", "ix", "reconnect", "quit"):
            assert name in hint, (name, hint)
        await pilot.press("escape")
        # at 80 columns the names that fit, then an ellipsis and the closing parenthesis (the
        # input cut the full list mid-way: "…, reconnect, purge," and nothing after)
        await pilot.resize_terminal(80, 24)
        await pilot.press("colon")
        line = app.screen.query_one("#command-line", Input)
        assert line.placeholder.startswith(":command  (jobs, plugins, handlers"), line.placeholder
        assert line.placeholder.endswith(", …)") and len(line.placeholder) <= 78, line.placeholder
        await pilot.press("escape")


def type_ahead(app: PulseApp, *keys: str) -> None:
    """Queue key presses back to back, as a fast typist or an SSH link delivers them (pilot.press
    waits for the app to go idle after each key, which hides what a burst does)."""
    from textual import events

    chars = {"colon": ":", "slash": "/", "enter": "\r"}
    for key in keys:
        event = events.Key(key, key if len(key) == 1 else chars.get(key))
        event.set_sender(app)
        app._driver.send_message(event)


async def test_keys_typed_right_after_colon_or_slash_go_to_the_line_not_the_list(server) -> None:
    """`:stats⏎` or `/status:failed⏎` arriving in one burst: every key after `:` / `/` is text in
    the line, none is a jobs-screen key (s, t, a mark, r retries, e enqueues, enter opens a job)."""
    from pulse_tui.screens.enqueue import EnqueueScreen
    from pulse_tui.screens.stats import StatsScreen

    client = await client_for(server)
    failed = await client.enqueue("pulse.fail", {"error": "boom"}, max_attempts=1)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=1)
        await until(pilot, lambda: t.current_job is not None and t.current_job.status == "failed", "failed")
        jobs_screen = app.screen
        type_ahead(app, "slash", *"status", "colon", *"failed", "enter")
        await until(pilot, lambda: jobs_screen.filter.line() == "status:failed", "filter typed")
        assert not t.marked and isinstance(app.screen, JobsScreen)
        type_ahead(app, "colon", *"reconnect")  # r would retry, e would open the enqueue form
        line = jobs_screen.query_one("#command-line", Input)
        await until(pilot, lambda: line.value == "reconnect", "command typed")
        assert not isinstance(app.screen, EnqueueScreen)
        assert (await client.get_job(failed.id)).job.attempts == 1  # not retried
        await pilot.press("escape")
        type_ahead(app, "colon", *"stats", "enter")
        await until(pilot, lambda: isinstance(app.screen, StatsScreen), "stats screen")
    await client.close()


async def test_keys_typed_right_after_e_land_in_the_enqueue_form(server) -> None:
    """`e` then a handler name in one burst: the form opens and every key after `e` is in its
    handler field, none reaches the jobs table behind it (d, e, m, o, p are not its keys either)."""
    from textual.widgets import TextArea

    from pulse_tui.screens.enqueue import EnqueueScreen
    from pulse_tui.screens.schedules import CreateScheduleScreen, SchedulesScreen

    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot, rows=0)
        type_ahead(app, "e", *"pulse.noop")
        await until(pilot, lambda: isinstance(app.screen, EnqueueScreen), "enqueue form")
        handler = app.screen.query_one("#enqueue-handler", Input)
        await until(pilot, lambda: handler.value == "pulse.noop", "handler typed")
        await pilot.press("escape")
        client = await client_for(server)
        await client.enqueue("pulse.noop")
        await until(pilot, lambda: app.screen.table.current_job is not None, "a row")
        type_ahead(app, "e", "delete", "delete", *'{"a":1}')  # a row's handler: the payload has focus
        await until(pilot, lambda: isinstance(app.screen, EnqueueScreen), "enqueue form again")
        payload = app.screen.query_one("#enqueue-payload", TextArea)
        await until(pilot, lambda: payload.text == '{"a":1}', "payload typed")
        await pilot.press("escape")
        await app.switch_mode("schedules")
        await until(pilot, lambda: isinstance(app.screen, SchedulesScreen), "schedules screen")
        type_ahead(app, "n", *"pulse.noop")  # the same for a new schedule's form
        await until(pilot, lambda: isinstance(app.screen, CreateScheduleScreen), "schedule form")
        handler = app.screen.query_one("#schedule-handler", Input)
        await until(pilot, lambda: handler.value == "pulse.noop", "schedule handler typed")
        await client.close()


async def test_unknown_key_ids_are_reported_with_the_valid_ones(server) -> None:
    app = PulseApp(server.address, server.token, keymap={"quit": "x", "jobs.filter": "f"})
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        msgs = [n.message for n in app._notifications]
        bad = [m for m in msgs if "unknown binding id" in m]
        assert bad and "quit" in bad[0] and "jobs.filter" in bad[0].split("Valid ids:")[1]
        assert "jobs.filter," not in bad[0].split("Valid ids:")[0]  # the remap that exists works
        await pilot.press("f")
        assert app.focused is app.screen.query_one("#filter", Input)


def test_default_config_suggests_real_binding_ids() -> None:
    import re

    from pulse_tui.app import binding_ids
    from pulse_tui.config import default_config_text

    text = default_config_text()
    keys_table = text.split("[tui.keys]", 1)[1]
    ids = re.findall(r'^# "([a-z_.]+)" = ', keys_table, re.M)
    assert ids and all(i in binding_ids() for i in ids), ids


async def test_help_hint_palette_and_vim_keys_on_every_table(server_factory) -> None:
    from textual.command import CommandPalette

    from pulse_tui.screens.help import HelpScreen
    from pulse_tui.screens.plugins import PluginsScreen
    from tests.test_tui import PLUGINS

    srv = server_factory(PLUGINS)
    app = PulseApp(srv.address, srv.token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        hint = str(app.screen.query_one(".hint").render())
        assert "[tui.keys]" in hint  # not eaten as markup
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "palette")
        palette: CommandPalette = app.screen  # type: ignore[assignment]
        cl = palette.query_one("CommandList")
        await until(pilot, lambda: cl.option_count > 10, "entries")
        await pilot.pause(0.3)  # the palette gathers hits asynchronously
        labels = [_plain(cl.get_option_at_index(i).prompt) for i in range(cl.option_count)]
        assert labels[0].startswith("Detail  ("), labels[:5]  # the screen's actions lead
        assert not any(lbl.startswith(("Up", "Down", "Scroll", "Cursor")) for lbl in labels), labels
        assert len(labels) == len(set(labels))
        assert any(lbl.startswith("Quit  (") and ", " in lbl for lbl in labels), labels  # both keys, once
        await pilot.press("escape")
        await jump(pilot, "plugins", PluginsScreen)
        dt = app.screen.query_one("#plugins-table")
        await until(pilot, lambda: dt.row_count >= 2, "two plugins")
        dt.focus()
        await pilot.press("j")
        assert dt.cursor_row == 1
        await pilot.press("k")
        assert dt.cursor_row == 0
        await pilot.press("G")
        assert dt.cursor_row == dt.row_count - 1
        await pilot.press("g")
        assert dt.cursor_row == 0


async def test_read_only_keys_say_why_and_enqueue_errors_do_not_go_stale(server) -> None:
    from textual.widgets import TextArea

    from pulse_tui.screens.enqueue import EnqueueScreen

    app = PulseApp(server.address, server.readonly_token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("e", "r")
        msgs = [n.message for n in app._notifications]
        assert any(m.startswith("read-only: enqueue is disabled (the server granted") for m in msgs), msgs
        assert any(m.startswith("read-only: retry is disabled") for m in msgs), msgs
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EnqueueScreen), "enqueue form")
        form = app.screen
        form.query_one("#enqueue-handler", Input).value = "no.such.handler.anywhere"
        form.query_one("#enqueue-payload", TextArea).text = "{oops"
        await pilot.pause(0.1)
        form.action_submit()
        err = lambda: str(form.query_one("#enqueue-error").render())  # noqa: E731
        await until(pilot, lambda: "must be JSON" in err(), "payload error")
        form.query_one("#enqueue-payload", TextArea).text = "{}"
        await until(pilot, lambda: "must be JSON" not in err(), "error cleared once fixed")
        form.action_submit()
        await until(pilot, lambda: "unknown handler" in err(), "unknown handler")
        assert ":handlers" in err() and "pulse-tui handlers list" not in err()


async def test_time_column_says_which_time_and_running_rows_hide_old_errors(server) -> None:
    from pulse_tui.protocol import operator_pb2

    app = PulseApp(server.address, server.token, now=lambda: 1000.0)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot)
        running = operator_pb2.Job(
            id="a" * 16,
            handler="demo.sleep",
            status="running",
            created_at=900.0,
            started_at=995.0,
            error="server shutting down; re-queued",
        )
        row = t._row_text(running, 120).plain
        assert "run 5.0s" in row and "shutting down" not in row
        done = operator_pb2.Job(
            id="b" * 16, handler="x", status="completed", created_at=900, started_at=990, completed_at=990.01
        )
        assert "took <0.1s" in t._row_text(done, 120).plain
        queued = operator_pb2.Job(id="c" * 16, handler="x", status="queued", created_at=820.0, error="boom")
        row = t._row_text(queued, 120).plain
        assert "wait 3m00s" in row and "last attempt: boom" in row
        assert "TIME" in t._render_header(120).text


async def test_delete_one_then_purge_under_a_filter_with_confirm(server) -> None:
    from pulse_tui.screens.confirm import ConfirmScreen

    client = await client_for(server)
    done = [await client.enqueue("pulse.noop") for _ in range(3)]
    bad = await client.enqueue("pulse.fail", max_attempts=1)
    waiting = await client.enqueue("pulse.sleep", {"seconds": 1}, delay_secs=600)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=5)
        await until(
            pilot, lambda: all(t.job_at(i) and t.job_at(i).status != "queued" for i in (1, 2, 3, 4)), "ran"
        )
        await pilot.press("D")  # the newest is queued (delayed): refused with the reason
        await until(pilot, lambda: any("only finished" in n.message for n in app._notifications), "refused")
        await pilot.press("down", "down", "D")  # done[2]
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm")
        assert done[2].id in str(app.screen.query_one("#confirm-message").render())
        await pilot.press("y")
        await until(pilot, lambda: t.total == 4 and t.row_of(done[2].id) is None, "deleted row leaves")
        await pilot.press("slash", *"handler:pulse.noop", "enter")
        await until(pilot, lambda: t.total == 2, "filtered")
        await jump(pilot, "purge", ConfirmScreen)
        assert "Delete 2 completed/failed/cancelled job(s) matching handler=pulse.noop*" in str(
            app.screen.query_one("#confirm-message").render()
        )
        await pilot.press("y")
        await until(pilot, lambda: t.total == 0, "purged")
        await pilot.press("escape")
        await until(pilot, lambda: t.total == 2, "the others stay")
        assert {t.job_at(0).id, t.job_at(1).id} == {waiting.id, bad.id}
    app = PulseApp(server.address, server.readonly_token)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot, rows=2)
        await pilot.press("down", "D")
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("read-only: delete is disabled" in n.message for n in app._notifications)
    assert (await client.get_job(bad.id)).job.status == "failed"  # read-only deleted nothing
    await client.close()


async def test_marks_range_visible_matching_and_clear(server) -> None:
    from pulse_tui.widgets.status_bar import StatusBar

    client = await client_for(server)
    for _ in range(6):
        await client.enqueue("pulse.sleep", {"seconds": 1}, delay_secs=600)
    for _ in range(3):
        await client.enqueue("pulse.noop")
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=9)
        bar = app.screen.query_one(StatusBar)
        await pilot.press("down", "space", "down", "down", "V")  # rows 1..4
        assert {t.row_of(i) for i in t.marked} == {1, 2, 3, 4}
        assert bar.marked == 4 and "4 marked" in str(bar.render())
        await pilot.press("u")
        assert not t.marked and bar.marked == 0
        await pilot.press("a")
        assert len(t.marked) == 9  # all nine fit on screen
        await pilot.press("u", "slash", *"handler:pulse.sleep", "enter")
        await until(pilot, lambda: t.total == 6, "filtered")
        await pilot.press("A")
        await until(pilot, lambda: len(t.marked) == 6, "all matching marked")
        assert any("marked 6 job(s) matching handler=pulse.sleep*" in n.message for n in app._notifications)
        await pilot.press("escape")  # esc clears marks first
        assert not t.marked
    await client.close()


async def test_export_filtered_list_to_jsonl_and_csv(server, tmp_path) -> None:
    import csv
    import json

    client = await client_for(server)
    for _ in range(3):
        await client.enqueue("pulse.noop")
    await client.enqueue("pulse.fail", max_attempts=1)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=4)
        await pilot.press("slash", *"handler:pulse.noop", "enter")
        await until(pilot, lambda: t.total == 3, "filtered")
        out = tmp_path / "jobs.jsonl"
        await app.run_command_line(f":export {out}")
        await until(pilot, lambda: out.exists() and out.read_text().count("\n") == 3, "jsonl")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert {r["handler"] for r in rows} == {"pulse.noop"} and rows[0]["id"] == t.job_at(0).id
        csv_out = tmp_path / "jobs.csv"
        await app.run_command_line(f":export {csv_out}")
        await until(pilot, lambda: csv_out.exists() and len(csv_out.read_text().splitlines()) == 4, "csv")
        assert [r["status"] for r in csv.DictReader(csv_out.open())] == ["completed"] * 3
        await app.run_command_line(f":export {out}")  # exists: not overwritten
        await until(pilot, lambda: any("exists" in n.message for n in app._notifications), "refused")
    await client.close()


async def test_sort_by_column_kept_across_live_updates_and_pages(server) -> None:
    client = await client_for(server)
    for name in ("pulse.sleep", "pulse.noop", "pulse.fail", "pulse.noop"):
        await client.enqueue(name, {"seconds": 600} if name == "pulse.sleep" else {}, max_attempts=1)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=4)
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        await pilot.press("S")  # opens `:sort ` on the command line
        await pilot.press(*"handler", "enter")
        names = lambda: [t.job_at(i).handler if t.job_at(i) else "?" for i in range(t.total)]  # noqa: E731
        await until(
            pilot, lambda: names() == ["pulse.fail", "pulse.noop", "pulse.noop", "pulse.sleep"], "sorted"
        )
        assert "HANDLER ▲" in t._render_header(120).text
        t.move_to_job(t.job_at(3).id)  # the cursor on pulse.sleep
        sleeper = t.current_job.id
        await client.enqueue("pulse.fail", max_attempts=1)  # the newest, sorted second (ties by seq)
        await until(pilot, lambda: names()[:2] == ["pulse.fail"] * 2 and t.total == 5, "new job in order")
        await until(pilot, lambda: t.current_job is not None and t.current_job.id == sleeper, "cursor kept")
        await app.run_command_line(":sort handler")  # the same column again: flips
        await until(pilot, lambda: names()[0] == "pulse.sleep", "descending")
        assert "HANDLER ▼" in t._render_header(120).text
        await app.run_command_line(":sort nonsense")
        await until(
            pilot, lambda: any("cannot sort by 'nonsense'" in n.message for n in app._notifications), "says"
        )
        await app.run_command_line(":sort")
        await until(
            pilot,
            lambda: screen.sort_by == "" and names()[:2] == ["pulse.fail", "pulse.noop"],
            "newest first",
        )
    await client.close()


async def test_split_view_at_wide_terminals_follows_the_cursor(server) -> None:
    from pulse_tui.widgets.job_side import JobSide

    client = await client_for(server)
    ok = await client.enqueue("pulse.noop", {"city": "Lyon"})
    bad = await client.enqueue("pulse.fail", {"error": "disk full"}, max_attempts=1)
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(200, 50)) as pilot:
        t = await started(app, pilot, rows=2)
        side = app.screen.query_one(JobSide)
        body = lambda: side.plain  # noqa: E731
        await until(
            pilot, lambda: side.display and bad.id in body() and "disk full" in body(), "detail beside"
        )
        assert t.region.width < 200 and side.region.x > 0
        await pilot.press("down")
        await until(pilot, lambda: ok.id in body() and "Lyon" in body(), "follows the cursor")
        assert "child" not in body()
        # its children, counted by status, follow their changes
        kid = await client.enqueue("pulse.noop", parent_job_id=ok.id, delay_secs=3600)
        await until(pilot, lambda: "1 child: 1 queued" in body(), "the child counted")
        await client.cancel_jobs([kid.id])
        await until(pilot, lambda: "1 child: 1 cancelled" in body(), "the count follows the child")
        rows = [t.job_at(i).id if t.job_at(i) else "" for i in range(t.total)]
        await pilot.press(*["up"] * (rows.index(ok.id) - rows.index(kid.id)))
        await until(
            pilot, lambda: kid.id in body() and f"parent {ok.id}" in body(), "a child names its parent"
        )
        await pilot.resize_terminal(120, 40)
        await until(pilot, lambda: not side.display, "hidden when narrow")
    await client.close()


async def test_themes_colour_statuses_and_a_palette_choice_is_remembered(server, tmp_path) -> None:
    from pulse_tui.widgets import fmt

    def row_colours(t) -> set[str]:
        """The colours the job table's second row (the failed job, not under the cursor) is drawn with."""
        return {
            s.style.color.triplet.hex.upper() for s in t.render_line(2) if s.style and s.style.color.triplet
        }

    client = await client_for(server)
    await client.enqueue("pulse.fail", {"error": "x"}, max_attempts=1)
    await client.enqueue("pulse.noop", {})
    theme_file = tmp_path / "tui-theme"
    app = PulseApp(server.address, server.token, theme="textual-light", theme_file=theme_file)
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=2)
        error = app.get_css_variables()["text-error"][:7].upper()
        await until(pilot, lambda: t.job_at(1).status == "failed" and error in row_colours(t), "a failed row")
        assert fmt.STATUS_STYLES["failed"] == f"bold {error}" and "#f7768e" not in fmt.STATUS_STYLES["failed"]
        assert not theme_file.exists()  # the --theme choice is not a palette pick
        await until(pilot, lambda: f"bold {error}" in app.counts_markup, "status bar counts")
        app.paused = True  # no new count comes: the status bar's counts follow the theme anyway
        app.theme = "nord"  # what the palette's Change theme does
        await until(pilot, lambda: theme_file.exists(), "remembered")
        await pilot.pause()
        # the rows too: one drawn after the theme's CSS changed, before its colours were taken, had
        # been kept (the light theme's screenshot showed the dark theme's pale statuses)
        assert app.get_css_variables()["text-error"][:7].upper() in row_colours(t), row_colours(t)
        assert error not in row_colours(t)
        assert f"bold {app.get_css_variables()['text-error'][:7]}" in app.counts_markup
        assert f"bold {error}" not in app.counts_markup
        assert theme_file.read_text().strip() == "nord"
        assert fmt.STATUS_STYLES["failed"] == f"bold {app.get_css_variables()['text-error'][:7]}"
    app = PulseApp(server.address, server.token, theme_file=theme_file)
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        assert app.theme == "nord"  # picked last time
        app.theme = "textual-dark"
        await pilot.pause(0.1)
        assert fmt.STATUS_STYLES["failed"] == "bold #f7768e"  # the built-in look
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 30)) as pilot:
        app.theme = "textual-light"  # at once, as the light screenshot: rows drawn before its colours came
        t = await started(app, pilot, rows=2)
        error = app.get_css_variables()["text-error"][:7].upper()
        await until(pilot, lambda: error in row_colours(t), "the failed row in the light theme's colour")
    app = PulseApp(server.address, server.token, theme="no-such-theme")
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        await until(pilot, lambda: any("unknown theme" in n.message for n in app._notifications), "said")


async def test_bare_plugin_endpoint_asks_only_for_what_it_can_give() -> None:
    import subprocess
    import sys

    from pulse_tui.screens.plugins import PluginsScreen

    proc = subprocess.Popen(  # noqa: ASYNC220 — the plugin process under test, started once
        [sys.executable, "-m", "pulse_tui.plugins.demo", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("QNTX_PLUGIN_PORT="), line
        port = int(line.split("=", 1)[1])
        app = PulseApp(f"127.0.0.1:{port}")
        async with app.run_test(size=(120, 30)) as pilot:
            t = await started(app, pilot)
            await pilot.pause(0.5)
            assert t.fetches == 0 and t.total == 0
            assert "bare plugin endpoint has no jobs" in t.empty_message
            await jump(pilot, "plugins", PluginsScreen)
            await pilot.pause(0.5)
            errors = [n.message for n in app._notifications if n.severity == "error"]
            assert errors == [], errors  # no "jobs is not available" / "plugins is not available"
            shown = str(app.screen.query_one("#plugin-handlers").render())
            assert "handlers: unknown (a plugin announces its handlers to the host at Initialize)" in shown
            assert "health: healthy" in shown and "0 announced" not in shown
            # the SDK plugin answers ConfigSchema with no fields: that is "declares no configuration"
            config = str(app.screen.query_one("#plugin-config").render())
            assert "declares no configuration" in config
    finally:
        proc.terminate()
        proc.wait(10)


async def test_a_dead_bare_plugin_is_called_a_plugin() -> None:
    """Issue 20 (bare plugin): when the plugin process goes away the console says "plugin at …"
    and asks whether the plugin process is running, not "server at …" / `pulse-tui serve`."""
    import subprocess
    import sys

    from pulse_tui.screens.plugins import PluginsScreen

    proc = subprocess.Popen(  # noqa: ASYNC220 — the plugin process under test, started once
        [sys.executable, "-m", "pulse_tui.plugins.demo", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split("=", 1)[1])
        app = PulseApp(f"127.0.0.1:{port}")
        async with app.run_test(size=(120, 30)) as pilot:
            await started(app, pilot)
            await jump(pilot, "plugins", PluginsScreen)
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)

            def said() -> list[str]:
                return [n.message for n in app._notifications if "127.0.0.1" in n.message]

            await until(
                pilot, lambda: any("not reachable" in m for m in said()), "the lost plugin is reported"
            )
            lost = next(m for m in said() if "not reachable" in m)
            assert lost.startswith(f"plugin at 127.0.0.1:{port} is not reachable"), said()
            assert "plugin process" in lost and not any("server at" in m for m in said()), said()
    finally:
        proc.kill()
        proc.wait(10)


def _raw_plugin(argv: list[str]):
    import subprocess

    proc = subprocess.Popen([*argv, "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("QNTX_PLUGIN_PORT="), line
    return proc, int(line.split("=", 1)[1])


async def test_bare_plugin_without_config_schema_and_dying_is_shown_so() -> None:
    """Issue 20.12: a plugin that does not implement ConfigSchema is not "declares no
    configuration"; and once the plugin process dies its row stops reading `ready ✔ ok`."""
    import sys
    from pathlib import Path

    from pulse_tui.screens.plugins import PluginsScreen

    proc, port = _raw_plugin([sys.executable, str(Path(__file__).with_name("plugins") / "noschema.py")])
    try:
        app = PulseApp(f"127.0.0.1:{port}")
        async with app.run_test(size=(120, 30)) as pilot:
            await started(app, pilot)
            await jump(pilot, "plugins", PluginsScreen)
            screen: PluginsScreen = app.screen  # type: ignore[assignment]
            table = screen.query_one("#plugins-table")

            def cell(column: str) -> str:
                return str(table.get_cell("rawcheck", column)) if table.row_count else ""

            await until(pilot, lambda: cell("health") == "✔ ok" and cell("state") == "ready", "healthy row")
            config = str(screen.query_one("#plugin-config").render())
            assert "does not implement ConfigSchema" in config and "declares no configuration" not in config
            proc.kill()
            proc.wait(10)
            await until(pilot, lambda: cell("state") == "unreachable", "row follows the dead plugin", 15)
            assert cell("health").startswith("✘ ")
            assert "health: unhealthy" in str(screen.query_one("#plugin-handlers").render())
            assert "not answering" in str(screen.query_one("#plugins-note").render())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def test_compat_enqueue_form_hides_fields_queueservice_lacks(server) -> None:
    from pulse_tui.screens.enqueue import EnqueueScreen
    from tests.test_tui import CompatClient

    app = PulseApp(server.address, server.token, client=CompatClient(server.address, server.token))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EnqueueScreen), "form")
        assert not app.screen.query_one("#enqueue-numbers").display
        assert app.screen.query_one("#enqueue-compat").display
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EnqueueScreen), "form")
        assert app.screen.query_one("#enqueue-numbers").display
        assert not app.screen.query_one("#enqueue-compat").display


async def test_compat_retry_names_the_new_job(server) -> None:
    from tests.test_tui import CompatClient

    client = await client_for(server)
    bad = await client.enqueue("pulse.fail", max_attempts=1)
    app = PulseApp(server.address, server.token, client=CompatClient(server.address, server.token))
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=1)
        await until(pilot, lambda: t.job_at(0) is not None and t.job_at(0).status == "failed", "failed")
        await pilot.press("r")
        await until(pilot, lambda: any("as new job" in n.message for n in app._notifications), "told")
        msg = next(n.message for n in app._notifications if "as new job" in n.message)
        new_id = msg.split("as new job ")[1].split()[0]
        assert (await client.get_job(new_id)).job.parent_job_id == bad.id
    await client.close()


async def test_compat_detail_says_unknown_not_made_up_values(server) -> None:
    from pulse_tui.screens.job_detail import JobDetailScreen
    from tests.test_tui import CompatClient

    client = await client_for(server)
    await client.enqueue("pulse.noop")
    app = PulseApp(server.address, server.token, client=CompatClient(server.address, server.token))
    async with app.run_test(size=(120, 40)) as pilot:
        t = await started(app, pilot, rows=1)
        await until(pilot, lambda: t.job_at(0) is not None, "row")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen) and app.screen.detail, "detail")
        summary = _text(app.screen.query_one("#detail-summary").content)
        logs = _text(app.screen.query_one("#logs").content)
    assert "of 0" not in summary and "budget unknown" in summary
    assert (
        "built-in" not in summary and "server default" not in summary and "unknown (compat mode)" in summary
    )
    assert "not available in compat mode" in logs
    await client.close()


async def test_compat_keeps_the_last_rows_marked_stale_while_disconnected(server_factory) -> None:
    from tests.test_tui import CompatClient

    srv = server_factory()
    client = await client_for(srv)
    for _ in range(3):
        await client.enqueue("pulse.noop")
    await client.close()
    app = PulseApp(srv.address, srv.token, client=CompatClient(srv.address, srv.token))
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=3)
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        srv.stop()
        screen.reload(keep_cursor=True)  # what the 2 s poll does
        await until(pilot, lambda: t.stale, "rows kept, marked stale", timeout=15)
        assert t.total == 3 and all(t.job_at(i) is not None for i in range(3))
        assert "disconnected" in note(screen)


async def test_a_late_page_of_the_previous_load_does_not_drop_the_kept_rows(server_factory) -> None:
    """The compat poll reloads every 2 s: a page of that reload whose Loaded message is handled
    after the next reload began (the server stopped in between) must not make the console forget
    the rows it keeps to show, dim, while disconnected (seen: 1 run in 6 under load)."""
    from pulse_tui.widgets.job_table import JobTable
    from tests.test_tui import CompatClient

    srv = server_factory()
    client = await client_for(srv)
    for _ in range(3):
        await client.enqueue("pulse.noop")
    await client.close()
    app = PulseApp(srv.address, srv.token, client=CompatClient(srv.address, srv.token))
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=3)
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        srv.stop()
        earlier = t.generation
        screen.reload(keep_cursor=True)
        t.post_message(JobTable.Loaded(3, earlier))  # the previous load's page, handled late
        await until(pilot, lambda: t.stale, "rows kept, marked stale", timeout=15)
        assert t.total == 3 and all(t.job_at(i) is not None for i in range(3))


async def test_compat_unavailable_screens_keep_the_status_bar_at_the_bottom(server) -> None:
    """Issue 20.11: in compat mode `:plugins`, `:handlers` (and `:schedules`) show only a note; the
    status bar stays on the second-to-last line, above the footer, as on every other screen."""
    from textual.widgets import Footer

    from pulse_tui.widgets.status_bar import StatusBar
    from tests.test_tui import CompatClient

    app = PulseApp(server.address, server.token, client=CompatClient(server.address, server.token))
    async with app.run_test(size=(100, 24)) as pilot:
        await started(app, pilot)
        jobs_bar_y = app.screen.query_one(StatusBar).region.y
        assert jobs_bar_y == 22 and app.screen.query_one(Footer).region.y == 23
        for command, note in (
            ("plugins", "#plugins-note"),
            ("handlers", "#handlers-note"),
            ("schedules", "#schedules-note"),
        ):
            await pilot.press("colon", *command, "enter")
            await until(pilot, lambda c=command: type(app.screen).__name__.lower().startswith(c), command)
            screen = app.screen
            bar, footer = screen.query_one(StatusBar), screen.query_one(Footer)
            shown = screen.query_one(note)
            await until(pilot, lambda n=shown: "not available" in str(n.render()), f"{command} note")
            await until(pilot, lambda b=bar: b.region.y == jobs_bar_y, f"{command}: status bar at the bottom")
            assert footer.region.y == 23, command
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, JobsScreen), "back to jobs")


async def test_jobs_waiting_for_a_future_time_say_when_and_why(server) -> None:
    """A delayed job shows `◷ in 1h00m` and a job in a retry's backoff `◷ retry in …` (not a plain
    queued job stuck on something); the detail and `jobs show --json` give the absolute time."""
    from datetime import datetime

    from pulse_tui.cli import job_summary
    from pulse_tui.screens.job_detail import JobDetailScreen

    client = await client_for(server)
    t0 = time.time()
    delayed = await client.enqueue("pulse.noop", delay_secs=3600)
    flaky = await client.enqueue("pulse.fail", {"error": "flaky"}, max_attempts=5)
    app = PulseApp(server.address, server.token, now=lambda: t0)  # the console's clock stands still
    async with app.run_test(size=(120, 30)) as pilot:
        t = await started(app, pilot, rows=2)
        assert t.job_at(1).id == delayed.id
        assert "◷ in 1h00m" in t._row_text(t.job_at(1), 120).plain

        def retry_row() -> str:
            job = t.job_at(0)
            return t._row_text(job, 120).plain if job is not None and job.id == flaky.id else ""

        # between attempts the failing job waits for its backoff (run_at is after the frozen clock)
        await until(pilot, lambda: "◷ retry in " in retry_row(), "the retry's backoff shown")
        assert "last attempt: flaky" in retry_row()
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, JobDetailScreen), "detail screen")
        detail: JobDetailScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: detail.detail is not None, "detail loaded")
        summary = _text(detail.query_one("#detail-summary").content)
        due = datetime.fromtimestamp(delayed.run_at).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        assert f"runs at {due}" in summary and "(in 1h00m)" in summary
    doc = job_summary((await client.get_job(delayed.id)).job)
    assert doc["waiting"] == "delay" and doc["run_at"] == pytest.approx(t0 + 3600, abs=30)
    assert datetime.fromisoformat(doc["run_at_iso"]).timestamp() == pytest.approx(doc["run_at"], abs=0.001)
    await client.close()


def test_screens_reach_the_app_through_its_protocol() -> None:
    """The console app is a PulseConsole (every member the protocol lists); a plain Textual app is
    not, so widgets mounted alone fall back and screens refuse it; `:` commands live in one table."""
    from textual.app import App

    from pulse_tui.console import PulseConsole, console_of, find_console

    app = PulseApp("127.0.0.1:1", now=lambda: 42.0)
    assert isinstance(app, PulseConsole) and find_console(app) is app
    assert console_of(app).now() == 42.0 and not console_of(app).read_only
    plain = App()
    assert find_console(plain) is None
    with pytest.raises(TypeError, match="not a Pulse console"):
        console_of(plain)
    names = app.commands.names()
    assert names[:2] == ["jobs", "plugins"] and {"ix", "scripts", "editor", "sort"} <= set(names)
    assert "q" not in names and app.commands.get("q") is not None  # hidden, still runs
    assert app.command_names() == sorted(names)


async def test_live_updates_reaching_a_screen_torn_down_mid_exit(server) -> None:
    """At exit a screen loses its widgets before it stops counting as mounted; the live-update
    flush that lands in between must not raise (seen: NoMatches JobTable at teardown, 1 run in 4)."""
    from pulse_tui.widgets.job_table import JobTable

    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        screen = app.screen
        await screen.query_one(JobTable).remove()  # what teardown does first
        assert screen.is_mounted
        app._pending["x"] = operator_pb2.Job(id="x", handler="pulse.noop", status="queued")
        app._others = True  # jobs not shown changed too: the screens refetch
        app._flush_updates()  # raised NoMatches


async def test_a_flush_of_stdout_or_stderr_while_the_console_runs() -> None:
    """While the app runs Textual captures stdout and stderr and calls ``App._flush(stderr=…)`` on
    every flush (a logging handler flushes after each record). The console's own live-update flush
    once had that name and took no argument: every flush raised TypeError."""
    import sys

    app = PulseApp("127.0.0.1:1", live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert type(sys.stdout).__name__ == "_PrintCapture"  # what the app sees, not pytest's capture
        sys.stdout.flush()
        sys.stderr.flush()


async def test_a_burst_bigger_than_the_rows_held_leaves_no_gap(server) -> None:
    """More new jobs at once than the list holds from the top: the rows fetched again do not
    reach the rows held, so the list is reloaded (the cursor stays on its job) rather than
    showing the newest few above the old rows with the jobs in between missing."""
    client = await client_for(server)
    req = lambda: operator_pb2.EnqueueRequest(handler="pulse.noop", delay_secs=3600)  # noqa: E731
    await client.enqueue_many([req() for _ in range(5)])
    app = PulseApp(server.address, server.token)
    async with app.run_test(size=(120, 50)) as pilot:
        t = await started(app, pilot, rows=5)
        assert t.held_from_top() == 5
        first = t.current_job.id
        await client.enqueue_many([req() for _ in range(20)])
        want = [j.id for j in (await client.list_jobs(None, limit=100)).jobs]
        assert len(want) == 25
        await until(pilot, lambda: ids(t) == want, "the 25 rows in order")
        assert t.current_job.id == first  # the cursor kept its job, now 20 rows down
    await client.close()


def test_a_csv_export_does_not_hand_a_spreadsheet_formulas(tmp_path) -> None:
    """`:export FILE.csv` wrote a job's error as it was; a spreadsheet opening the file runs a
    cell starting with = + - @ (or a tab / CR) as a formula, and errors and sources come from
    plugins and from whoever enqueued (pulse.fail takes its error from the payload). Such cells
    now start with `'`; JSON Lines keep the text as it was."""
    import csv
    import json

    from pulse_tui.screens.jobs import _write_export

    jobs = [
        operator_pb2.Job(id="a", handler="pulse.fail", status="failed", error='=HYPERLINK("http://x","y")'),
        operator_pb2.Job(id="b", handler="pulse.fail", status="failed", error="@SUM(1)", source="+cmd"),
        operator_pb2.Job(id="c", handler="pulse.noop", status="completed", priority=-3, error="fine = ok"),
    ]
    _write_export(tmp_path / "jobs.csv", jobs)
    rows = list(csv.DictReader((tmp_path / "jobs.csv").open(encoding="utf-8")))
    assert [r["error"] for r in rows] == ['\'=HYPERLINK("http://x","y")', "'@SUM(1)", "fine = ok"]
    assert rows[1]["source"] == "'+cmd" and rows[2]["priority"] == "-3"  # numbers stay numbers
    _write_export(tmp_path / "jobs.jsonl", jobs)
    assert json.loads((tmp_path / "jobs.jsonl").read_text().splitlines()[0])["error"].startswith("=HYPERLINK")
