"""Handler editor and `ix` routing, driven by Pilot against a real server with the real python plugin.

`:ix vacancies` → "not found, create?" → editor with the template → ctrl+s → the job runs; a syntax
error is shown with its line and column and nothing is saved; a stale save is refused; test run
(f5) shows the traceback beside the code; delete asks first; read-only refuses; `pulse-tui ix`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from pulse_tui.app import PulseApp
from pulse_tui.cli import main
from pulse_tui.client import PulseClient
from pulse_tui.screens.confirm import ConfirmScreen
from pulse_tui.screens.editor import EditorScreen, NewScriptScreen, trim_traceback
from pulse_tui.script_template import template

PYTHON_PLUGIN = """
[[plugins]]
name = "python"
command = ["{python}", "-m", "pulse_tui.plugins.python"]
"""

TIMEOUT = 20.0


async def until(pilot: Pilot, cond: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


@pytest.fixture
def pyserver(server_factory):
    return server_factory(PYTHON_PLUGIN)


async def client_for(server) -> PulseClient:
    client = PulseClient(server.address, server.token)
    await client.probe()
    return client


async def command(pilot: Pilot, line: str) -> None:
    await pilot.press("colon")
    await pilot.press(*line)
    await pilot.press("enter")


async def editor_for(app: PulseApp, pilot: Pilot) -> EditorScreen:
    await app.wait_connected()
    await command(pilot, "scripts")
    await until(pilot, lambda: isinstance(app.screen, EditorScreen), "editor screen")
    screen: EditorScreen = app.screen  # type: ignore[assignment]
    await until(pilot, lambda: screen.listed, "script list")
    return screen


def notes(app: PulseApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_ix_not_found_create_save_runs(pyserver) -> None:
    client = await client_for(pyserver)
    app = PulseApp(pyserver.address, pyserver.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.wait_connected()
        await command(pilot, 'ix vacancies {"items": 4}')
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "create prompt")
        message = str(app.screen.query_one("#confirm-message").render())
        assert "Handler python.vacancies not found. Create it?" in message
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, EditorScreen), "editor")
        editor: EditorScreen = app.screen  # type: ignore[assignment]
        await until(pilot, lambda: editor.name_ == "vacancies", "template loaded")
        assert editor.code.text == template("vacancies") and editor.is_new
        assert editor.pending_ix == ("vacancies", '{"items": 4}')
        assert editor.query_one("#run-payload", Input).value == '{"items": 4}'
        assert await client.list_scripts() == []  # nothing saved before ctrl+s

        await pilot.press("ctrl+s")
        await until(pilot, lambda: editor.run_job is not None, "the ix line ran after the save")
        assert "saved python.vacancies" in editor.last_problem and "live" in editor.last_problem
        job_id = editor.run_job.id
        await until(pilot, lambda: any(job_id in n for n in notes(app)), "told the job id")
        await until(
            pilot,
            lambda: editor.run_detail is not None and editor.run_detail.job.status == "completed",
            "job completed (live, through the app's events)",
        )
        assert json.loads(editor.run_detail.result) == {"processed": 4}
        shown = str(editor.query_one("#run-output").render())
        assert "completed" in shown and '"processed": 4' in shown
        d = await client.get_job(job_id)
        assert d.job.handler == "python.vacancies" and d.job.source == "pulse-tui ix"
        assert (d.job.progress_current, d.job.progress_total) == (4, 4)
        assert [(s.name, s.live) for s in await client.list_scripts()] == [("vacancies", True)]

        # Now the handler exists: the same line just enqueues, no prompt. (In the code editor `:` types
        # a colon; escape leaves the editor first.)
        await pilot.press("escape")
        await command(pilot, "ix vacancies")
        await until(
            pilot,
            lambda: any("ix vacancies: enqueued job" in n and job_id not in n for n in notes(app)),
            "second ix enqueued directly",
        )
        assert not isinstance(app.screen, ConfirmScreen)
    await client.close()


async def test_ix_declined_and_bad_input(pyserver) -> None:
    client = await client_for(pyserver)
    app = PulseApp(pyserver.address, pyserver.token)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_connected()
        await command(pilot, "ix Bad.Name")
        await until(pilot, lambda: any("not a handler script name" in n for n in notes(app)), "bad name")
        await command(pilot, "ix report {nope")
        await until(pilot, lambda: any("payload is not JSON" in n for n in notes(app)), "bad json")
        await command(pilot, "ix report")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "prompt")
        await pilot.press("n")
        await until(pilot, lambda: any("nothing enqueued" in n for n in notes(app)), "declined")
        assert app.current_mode == "jobs"
    assert await client.list_scripts() == []
    await client.close()


async def test_syntax_error_shows_position_and_saves_nothing(pyserver) -> None:
    client = await client_for(pyserver)
    app = PulseApp(pyserver.address, pyserver.token)
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await editor_for(app, pilot)
        await pilot.press("ctrl+n")
        await until(pilot, lambda: isinstance(app.screen, NewScriptScreen), "name prompt")
        await pilot.press(*"digest", "enter")
        await until(pilot, lambda: app.screen is editor and editor.name_ == "digest", "new script")
        editor.code.load_text("def run(payload, ctx):\n    return {'ok': True\n\nx = 1\n")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not saved" in editor.last_problem, "validation result")
        assert "line 2, col" in editor.last_problem, editor.last_problem
        row, _col = editor.code.cursor_location
        assert row == 1  # the cursor moved to the error
        assert await client.list_scripts() == []  # nothing saved
        assert editor.is_new

        # Fix it, save; then break it again: the server keeps the good version.
        editor.code.load_text("def run(payload, ctx):\n    return {'ok': True}\n")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "✔ saved python.digest" in editor.last_problem, "saved")
        good = await client.get_script("digest")
        editor.code.load_text("def run(payload, ctx):\n  return 1\n    oops\n")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not saved" in editor.last_problem, "refused again")
        assert "line 3" in editor.last_problem and editor.code.cursor_location[0] == 2
        assert (await client.get_script("digest")).version == good.version
    await client.close()


async def test_stale_save_refused_then_reload(pyserver) -> None:
    client = await client_for(pyserver)
    first = await client.save_script("shared", template("shared"))
    assert first.saved
    app = PulseApp(pyserver.address, pyserver.token)
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await editor_for(app, pilot)
        await until(pilot, lambda: editor.name_ == "shared" and editor.version, "first script opened")
        # Someone else saves a newer version meanwhile.
        theirs = template("shared").replace("processed", "handled")
        other = await client.save_script("shared", theirs, first.script.version)
        assert other.saved
        editor.code.load_text(template("shared") + "\n# mine\n")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "not saved" in editor.last_problem, "stale save refused")
        assert "someone else" in editor.last_problem and "ctrl+o" in editor.last_problem
        assert editor.code.text.endswith("# mine\n")  # the user's text is kept
        assert (await client.get_script("shared")).code == theirs
        await pilot.press("ctrl+o")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "discard prompt")
        await pilot.press("y")
        await until(pilot, lambda: editor.code.text == theirs, "server version loaded")
        assert editor.version == other.script.version and not editor.dirty
    await client.close()


async def test_test_run_traceback_then_delete(pyserver) -> None:
    client = await client_for(pyserver)
    boom = (
        "def run(payload, ctx):\n    ctx.progress(1, 2)\n    raise ValueError('boom ' + str(payload['n']))\n"
    )
    assert (await client.save_script("boom", boom)).saved
    app = PulseApp(pyserver.address, pyserver.token)
    async with app.run_test(size=(120, 40)) as pilot:
        editor = await editor_for(app, pilot)
        await until(pilot, lambda: editor.name_ == "boom" and editor.version, "script opened")
        code = editor.code
        assert code.content_region.x == code.region.x  # the line numbers start at the pane's edge
        payload = editor.query_one("#run-payload", Input)
        payload.value = '{"n": 7}'
        await pilot.press("f5")
        await until(
            pilot,
            lambda: editor.run_detail is not None and editor.run_detail.job.status == "failed",
            "test run failed",
        )
        shown = str(editor.query_one("#run-output").render())
        assert "ValueError: boom 7" in shown and "Traceback" in shown and 'File "boom.py", line 3' in shown
        assert "runner.py" not in shown  # the runner's own frames are trimmed
        assert editor.run_detail.job.max_attempts == 1  # a test run is not retried

        editor.open_new("vacancies")  # what `:ix vacancies` → Create does: a new script
        await until(pilot, lambda: editor.name_ == "vacancies", "new script")
        assert editor.run_job is None and "boom" not in str(editor.query_one("#run-output").render())
        editor.open_script("boom")
        await until(pilot, lambda: editor.name_ == "boom" and editor.version, "boom again")

        await pilot.press("f8")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm delete")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is editor, "kept")
        assert [s.name for s in await client.list_scripts()] == ["boom"]
        await pilot.press("f8")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirm delete")
        await pilot.press("y")
        await until(pilot, lambda: editor.name_ is None, "editor closed")
        # "No script open …" is padded from the pane's edge like every other empty state
        await until(pilot, lambda: code.content_region.x == code.region.x + 1, "the empty state's padding")
        assert await client.list_scripts() == []
        handlers = {h.name for h in await client.list_handlers()}
        assert "python.boom" not in handlers
        await until(pilot, lambda: editor.scripts == [], "list emptied")
    await client.close()


async def test_read_only_refuses_save_and_delete(pyserver) -> None:
    client = await client_for(pyserver)
    assert (await client.save_script("ro", template("ro"))).saved
    app = PulseApp(pyserver.address, pyserver.readonly_token, read_only=True)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await editor_for(app, pilot)
        await until(pilot, lambda: editor.name_ == "ro" and editor.version, "script opened")
        assert editor.code.read_only
        await pilot.press("ctrl+s")
        await until(
            pilot, lambda: "read-only: saving a script refused" in editor.last_problem, "save refused"
        )
        await pilot.press("f8")
        await until(pilot, lambda: "read-only: deleting a script refused" in editor.last_problem, "delete")
        await pilot.press("f5")
        await until(pilot, lambda: "read-only: test run refused" in editor.last_problem, "run refused")
        assert not isinstance(app.screen, ConfirmScreen)
    assert [s.name for s in await client.list_scripts()] == ["ro"]
    await client.close()


def test_trim_traceback_keeps_script_frames() -> None:
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/x/site-packages/pulse_tui/plugins/python/runner.py", line 67, in main\n'
        "    value = run(job.get('payload'), ctx)\n"
        '  File "/srv/data/scripts/job.py", line 3, in run\n'
        "    raise KeyError('x')\n"
        "KeyError: 'x'\n"
    )
    assert trim_traceback(tb).splitlines() == [
        "Traceback (most recent call last):",
        '  File "job.py", line 3, in run',
        "    raise KeyError('x')",
        "KeyError: 'x'",
    ]


def test_cli_ix(pyserver, monkeypatch, capsys) -> None:
    monkeypatch.delenv("PULSE_TOKEN", raising=False)
    monkeypatch.setenv("PULSE_CONFIG", str(pyserver.config_path))
    conn = ["--connect", pyserver.address, "--token-file", str(pyserver.token_file)]

    assert main(["ix", "tally", *conn]) == 1
    err = capsys.readouterr().err
    assert "handler python.tally not found; create it with the handler editor (:ix tally" in err

    async def save() -> None:
        async with PulseClient(pyserver.address, pyserver.token) as c:
            await c.probe()
            assert (await c.save_script("tally", template("tally"))).saved

    asyncio.run(save())
    assert main(["ix", "tally", "--payload", '{"items": 2}', "--wait", "--json", *conn]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["handler"] == "python.tally" and doc["status"] == "completed"
    assert doc["result"] == {"processed": 2}

    assert main(["ix", "tally", "--payload", "{nope", *conn]) == 1
    assert "--payload is not JSON" in capsys.readouterr().err
