"""Handler editor: the server's handler scripts (`python.<name>`).

Left: the scripts (name, live flag, modified) and a test-run panel (payload, progress, result or
traceback, live from the app's job events). Right: a Python editor. ``ctrl+s`` saves through
``SaveScript``; a syntax error comes back with its line and column, is shown under the code and the
cursor jumps there; a save against a version someone else replaced is refused and says what to do.

The screen is a small state machine: the open script (``name_``, ``version``, ``saved_code``,
``live``), an `ix` line waiting for the next save (``pending_ix``) and the last test run
(``run_job``, ``run_detail``) are reactives; the header and the run panel
(:mod:`pulse_tui.widgets.script_panes`) are bound to them and repaint themselves. `:ix` and
`:scripts` live in :mod:`pulse_tui.commands`; the new-script dialog in
:mod:`pulse_tui.screens.new_script`.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import var
from textual.widgets import DataTable, Input, Static, TextArea

from pulse_tui.client import ClientError
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.base import PulseScreen
from pulse_tui.screens.confirm import ConfirmScreen
from pulse_tui.screens.new_script import NewScriptScreen
from pulse_tui.script_template import handler_of, template
from pulse_tui.vocab import FINISHED, Capability
from pulse_tui.widgets import fmt
from pulse_tui.widgets.data_table import PulseDataTable
from pulse_tui.widgets.script_panes import BAD, DIM, OK, WARN, RunPanel, ScriptHeader, trim_traceback

__all__ = ["EditorScreen", "NewScriptScreen", "short_ago", "trim_traceback"]

REFRESH_SECS = 3.0
DEFAULT_PAYLOAD = '{"items": 3}'
_POSITION = re.compile(r"\s*\(line \d+, column \d+\)\s*$")


def short_ago(ts: float, now: float) -> str:
    """ "8m ago" — narrow enough for the script list at 80 columns."""
    if not ts:
        return "—"
    secs = max(now - ts, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit} ago"
    return "just now" if secs < 5 else f"{int(secs)}s ago"


class EditorScreen(PulseScreen):
    TITLE = "Handler editor"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="editor.save", priority=True),
        Binding("f5,ctrl+r", "test_run", "Test run", id="editor.run", priority=True),
        Binding("ctrl+n", "new", "New", id="editor.new", priority=True),
        Binding("f8", "delete", "Delete", id="editor.delete", priority=True),
        Binding("ctrl+o", "reload", "Reload", id="editor.reload", priority=True),
        Binding("f2", "focus_list", "Scripts", show=False, id="editor.list"),
        Binding("f3", "focus_payload", "Payload", show=False, id="editor.payload"),
        Binding("f4", "focus_code", "Code", show=False, id="editor.code"),
    ]

    # The state. The header and the run panel are bound to these: setting one repaints them.
    name_: var[str | None] = var(None)  # the script in the editor
    version: var[str] = var("")  # server version it was loaded from ("" = new, unsaved)
    saved_code: var[str] = var("", init=False)  # watched: the header says "modified"
    modified: var[bool] = var(False)  # the editor's text differs from saved_code
    live: var[bool] = var(False)  # the python plugin announces the handler
    pending_ix: var[tuple[str, str] | None] = var(None)  # (name, payload) to run after the next save
    run_job: var[operator_pb2.Job | None] = var(None)  # the last test run (or `ix` line)
    run_detail: var[operator_pb2.JobDetail | None] = var(None)  # its detail once it finished

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scripts: list[operator_pb2.Script] = []
        self.listed = False
        self.last_problem = ""
        self.claimed = False  # a script was asked for: the first listing does not open one

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        yield Static("", id="editor-note", classes="note")
        with Horizontal(id="editor-body"):
            with Vertical(id="editor-side"):
                yield Static("Scripts", classes="pane-title")
                yield PulseDataTable(id="scripts-table", cursor_type="row")
                yield Static("Test run  (f5)", classes="pane-title")
                yield Input(DEFAULT_PAYLOAD, placeholder="payload JSON", id="run-payload")
                with VerticalScroll(id="run-scroll"):
                    yield RunPanel(id="run-output").data_bind(
                        job=EditorScreen.run_job, detail=EditorScreen.run_detail
                    )
            with Vertical(id="editor-main"):
                yield ScriptHeader(id="editor-file").data_bind(
                    EditorScreen.name_,
                    EditorScreen.version,
                    EditorScreen.modified,
                    EditorScreen.live,
                    EditorScreen.pending_ix,
                )
                yield TextArea.code_editor(
                    "",
                    language="python",
                    theme="vscode_dark",
                    id="editor-code",
                    classes="-closed",
                    placeholder="No script open. ctrl+n creates one from the template; "
                    ":ix <command> runs python.<command> and offers to create it.",
                )
                yield Static("", id="editor-problem")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        table = self.query_one("#scripts-table", DataTable)
        table.add_column("SCRIPT", key="name")
        table.add_column("LIVE", key="live")
        table.add_column("SAVED", key="modified")
        self.query_one("#editor-note", Static).display = False
        self.query_one("#editor-problem", Static).display = False
        code = self.query_one("#editor-code", TextArea)
        code.read_only = True  # until a script is open
        code.focus()
        self.set_interval(REFRESH_SECS, self.refresh_scripts)
        if self.pulse.conn_state == "connected":
            self.refresh_scripts()

    def refocus(self) -> None:
        self.query_one("#editor-code", TextArea).focus()

    def resync(self) -> None:
        self.refresh_scripts()
        if self.run_job is not None:
            self.fetch_run()

    def connection_changed(self, connected: bool) -> None:
        if connected:
            self.refresh_scripts()

    # ------------------------------------------------------------------ state helpers

    @property
    def code(self) -> TextArea:
        return self.query_one("#editor-code", TextArea)

    @property
    def is_new(self) -> bool:
        return self.name_ is not None and not self.version

    @property
    def dirty(self) -> bool:
        return self.name_ is not None and (self.is_new or self.code.text != self.saved_code)

    def _script(self, name: str) -> operator_pb2.Script | None:
        return next((s for s in self.scripts if s.name == name), None)

    def problem(self, message: str | Text, style: str = BAD) -> None:
        out = self.query_one("#editor-problem", Static)
        text = message if isinstance(message, Text) else Text(message, style=fmt.C(style))
        self.last_problem = text.plain
        out.update(text)
        out.display = bool(text.plain)

    def _note(self, message: str) -> None:
        note = self.query_one("#editor-note", Static)
        note.update(message)
        note.display = bool(message)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._check_modified()

    def watch_saved_code(self) -> None:
        self._check_modified()

    def _check_modified(self) -> None:
        self.modified = self.code.text != self.saved_code

    # ------------------------------------------------------------------ the script list

    @work(exclusive=True, group="editor-list", exit_on_error=False)
    async def refresh_scripts(self) -> None:
        if self.pulse.conn_state != "connected":
            return
        client = self.pulse.client
        if not client.can(Capability.SCRIPTS):
            self._note(
                f"Handler scripts are not available on this endpoint ({client.mode}); they need a Pulse "
                "server's operator API with the python plugin."
            )
            return
        try:
            scripts = await client.list_scripts()
        except ClientError as exc:
            if exc.code == "NOT_FOUND":  # the server runs without the python plugin
                self._note(f"{exc.message}: add the bundled python plugin to pulse.toml ([[plugins]] python)")
                return
            self.pulse.report(exc, "listing scripts")
            return
        self._note("")
        self.scripts = sorted(scripts, key=lambda s: s.name)
        self.listed = True
        self._fill()
        if self.name_ is None and self.scripts and not self.claimed:
            self.open_script(self.scripts[0].name)
        elif self.name_ is not None and not self.is_new:
            s = self._script(self.name_)
            if s is not None:
                self.live = s.live

    def _fill(self) -> None:
        table = self.query_one("#scripts-table", DataTable)
        now = fmt.app_now(self.app)
        table.clear()
        for s in self.scripts:
            table.add_row(
                Text(s.name, style="bold"),
                Text(" ●", style=fmt.C(OK)) if s.live else Text(" ○", style=fmt.C(WARN)),
                Text(short_ago(s.modified_at, now), style=DIM),
                key=s.name,
            )
        if not self.scripts:
            table.add_row(Text("(none yet)", style="dim italic"), "", "", key="")
        current = self.name_ if self.name_ and self._script(self.name_) else None
        if current is not None:
            table.move_cursor(row=[s.name for s in self.scripts].index(current))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        name = event.row_key.value if event.row_key else ""
        if name:
            self.switch_to(name)

    def switch_to(self, name: str, *, new: bool = False) -> None:
        """Open `name` (or a new script from the template), asking first when edits would be lost."""
        if name == self.name_ and not new:
            self.refocus()
            return

        def go(yes: bool | None) -> None:
            if not yes:
                return
            if new:
                self.open_new(name)
            else:
                self.open_script(name)

        if self.dirty:
            self.app.push_screen(
                ConfirmScreen(
                    "Unsaved changes",
                    f"Discard your changes to {handler_of(self.name_ or '')}?",
                    yes="Discard",
                    danger=True,
                ),
                go,
            )
        else:
            go(True)

    # ------------------------------------------------------------------ opening

    def load(self, name: str, code: str, version: str, *, live: bool = False) -> None:
        if name != self.name_ and self.run_job is not None:
            # another script: the last test run's result belongs to the one before
            self.run_job, self.run_detail = None, None
            self._run_message(Text(""))
        editor = self.code
        editor.read_only = self.pulse.read_only
        editor.remove_class("-closed")
        editor.load_text(code)
        editor.cursor_location = (0, 0)
        self.name_ = name
        self.version = version
        self.saved_code = code if version else ""
        self.live = live
        self._check_modified()  # also when saved_code stayed the same but the text did not
        self.problem("")
        if self.pending_ix is not None and self.pending_ix[0] != name:
            self.pending_ix = None
        if name in [s.name for s in self.scripts]:
            self._fill()

    @work(exclusive=True, group="editor-open", exit_on_error=False)
    async def open_script(self, name: str) -> None:
        self.claimed = True  # the first listing must not open another script over this one
        try:
            s = await self.pulse.client.get_script(name)
        except ClientError as exc:
            if exc.code == "NOT_FOUND":
                self.problem(f"script {name} is gone (deleted by someone else?)")
                self.refresh_scripts()
                return
            self.pulse.report(exc, f"opening {name}")
            return
        self.load(s.name, s.code, s.version, live=s.live)
        self.refocus()

    @work(exclusive=True, group="editor-open", exit_on_error=False)
    async def open_new(self, name: str, ix_payload: str | None = None) -> None:
        """Start `name` from the template — or open it when it exists already. With `ix_payload`,
        `ix <name> <payload>` runs after the next successful save."""
        self.claimed = True
        existing: operator_pb2.Script | None = None
        if self.pulse.client.can(Capability.SCRIPTS):
            try:
                existing = await self.pulse.client.get_script(name)
            except ClientError as exc:
                if exc.code != "NOT_FOUND":
                    self.pulse.report(exc, f"opening {name}")
        self.pending_ix = (name, ix_payload) if ix_payload is not None else None
        if existing is not None:
            self.load(existing.name, existing.code, existing.version, live=existing.live)
            self.problem(
                Text(
                    f"{name} exists already: opened the saved script (ctrl+s saves it again).",
                    style=fmt.C(WARN),
                )
            )
        else:
            self.load(name, template(name), "")
            self.problem(
                Text(
                    f"New handler {handler_of(name)} from the template: edit run(payload, ctx), "
                    "then ctrl+s saves it.",
                    style=DIM,
                )
            )
        if ix_payload is not None:
            self.query_one("#run-payload", Input).value = ix_payload
        self.refocus()

    # ------------------------------------------------------------------ save

    def _refuse_read_only(self, what: str) -> bool:
        if not self.pulse.read_only:
            return False
        message = f"read-only: {what} refused (started with --read-only or a read-only token)"
        self.problem(message, WARN)
        self.app.notify(message, severity="warning")
        return True

    def action_save(self) -> None:
        self._save_worker()

    @work(exclusive=True, group="editor-save", exit_on_error=False)
    async def _save_worker(self) -> None:
        await self.save()

    async def save(self) -> bool:
        """Save the editor's text; True when it was saved (then a pending `ix` line runs)."""
        if self.name_ is None:
            self.problem("nothing to save: ctrl+n creates a script", WARN)
            return False
        if self._refuse_read_only("saving a script"):
            return False
        if not self.pulse.guard(f"saving {self.name_}", capability=Capability.SCRIPTS):
            return False
        name, code = self.name_, self.code.text
        self.problem(Text(f"saving {handler_of(name)}…", style=DIM))
        try:
            resp = await self.pulse.client.save_script(name, code, self.version)
        except ClientError as exc:
            if exc.unavailable:
                self.pulse.report(exc)
                self.problem(f"not saved: {exc.message}")
                return False
            if exc.code == "FAILED_PRECONDITION":
                what = (
                    "ctrl+o loads the server's version (your text here is replaced — copy what you need "
                    "first)"
                    if self.version
                    else f"open {name} from the list, or ctrl+n a new name"
                )
                self.problem(f"✘ not saved: {exc.message}.\nYour text is kept. {what}.")
            else:
                self.problem(f"✘ not saved: {exc.message}")
            return False
        if not resp.saved:
            line, col = resp.error_line, resp.error_column
            msg = _POSITION.sub("", resp.error) or "the script was refused"
            where = f"line {line}, col {col}: " if line else ""
            self.problem(f"✘ not saved — {where}{msg}")
            if line > 0:
                row = min(line - 1, self.code.document.line_count - 1)
                self.code.cursor_location = (row, max(col - 1, 0))
                self.code.scroll_cursor_visible()
            self.refocus()
            return False
        self.version = resp.script.version
        self.saved_code = resp.script.code or code
        self.live = resp.live
        ok = Text(f"✔ saved {handler_of(name)}", style=fmt.C(OK))
        if resp.live:
            ok.append(" — live: announced by the python plugin", style=fmt.C(OK))
        else:
            ok.append(
                " — not live yet" + (f": {resp.reload_message}" if resp.reload_message else ""),
                style=fmt.C(WARN),
            )
        self.problem(ok)
        self.refresh_scripts()
        if self.pending_ix is not None and self.pending_ix[0] == name:
            _, payload = self.pending_ix
            self.pending_ix = None
            job = await self._enqueue(name, payload, test=False)
            if job is not None:
                self.app.notify(f"ix {name}: enqueued job {job.id} ({handler_of(name)})", timeout=10)
        return True

    # ------------------------------------------------------------------ test run

    def action_test_run(self) -> None:
        self._run_worker()

    @work(exclusive=True, group="editor-run", exit_on_error=False)
    async def _run_worker(self) -> None:
        if self.name_ is None:
            self.problem("nothing to run: open or create a script first", WARN)
            return
        if self._refuse_read_only("test run"):
            return
        raw = self.query_one("#run-payload", Input).value.strip() or "{}"
        try:
            json.loads(raw)
        except ValueError as exc:
            self._run_message(Text(f"✘ the payload is not JSON: {exc}", style=fmt.C(BAD)))
            self.query_one("#run-payload", Input).focus()
            return
        if self.dirty and not await self.save():  # a test run runs what is saved
            self._run_message(
                Text("not run: the script was not saved (see under the code)", style=fmt.C(WARN))
            )
            return
        await self._enqueue(self.name_, raw, test=True)

    async def _enqueue(self, name: str, payload: str, *, test: bool) -> operator_pb2.Job | None:
        if not self.pulse.guard(f"running {handler_of(name)}", capability=Capability.ENQUEUE):
            return None
        try:
            job = await self.pulse.client.enqueue(
                handler_of(name),
                payload.encode(),
                max_attempts=1 if test else 0,
                source="pulse-tui editor" if test else "pulse-tui ix",
            )
        except ClientError as exc:
            if exc.unavailable:
                self.pulse.report(exc)
            self._run_message(Text(f"✘ not enqueued: {exc.message}", style=fmt.C(BAD)))
            return None
        self.run_job, self.run_detail = job, None
        self.fetch_run()  # it may have finished before the first event reaches us
        return job

    def shown_job_ids(self) -> list[str]:
        return [self.run_job.id] if self.run_job is not None else []

    def view_followed(self, ids: frozenset[str]) -> None:
        if self.run_job is not None and self.run_job.id in ids:
            self.fetch_run()  # it may have finished before the server followed it

    def jobs_changed(self, jobs: list[operator_pb2.Job]) -> None:
        if self.run_job is None:
            return
        for j in jobs:
            if j.id == self.run_job.id:
                self.run_job = j
                if j.status in FINISHED:
                    self.fetch_run()  # the result, the traceback and the logs

    @work(exclusive=True, group="editor-run-detail", exit_on_error=False)
    async def fetch_run(self) -> None:
        if self.run_job is None:
            return
        job_id = self.run_job.id
        try:
            detail = await self.pulse.client.get_job(job_id)
        except ClientError as exc:
            self.pulse.report(exc, f"following job {job_id}")
            return
        if self.run_job is not None and self.run_job.id == job_id:
            self.run_job, self.run_detail = detail.job, detail

    def _run_message(self, text: Text) -> None:
        """A line in the run panel instead of the run (until the run changes)."""
        self.query_one(RunPanel).message = text

    # ------------------------------------------------------------------ new / delete / reload

    async def action_new(self) -> None:
        if self._refuse_read_only("creating a script"):
            return

        def chosen(name: str | None) -> None:
            if name:
                self.switch_to(name, new=True)

        taken = frozenset(s.name for s in self.scripts)
        await self.open_form(NewScriptScreen(taken), chosen)

    def action_delete(self) -> None:
        if self.name_ is None:
            self.problem("nothing to delete", WARN)
            return
        if self._refuse_read_only("deleting a script"):
            return
        name = self.name_
        if self.is_new:
            self._close_editor()
            self.problem(Text(f"discarded the unsaved new script {name}", style=DIM))
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._delete(name, self.version)

        self.app.push_screen(
            ConfirmScreen(
                "Delete handler script",
                f"Delete {name}.py? The handler {handler_of(name)} is no longer announced; jobs "
                "already queued for it wait without a handler.",
                yes="Delete",
                danger=True,
            ),
            answer,
        )

    @work(exclusive=True, group="editor-delete", exit_on_error=False)
    async def _delete(self, name: str, version: str) -> None:
        if not self.pulse.guard(f"deleting {name}", capability=Capability.SCRIPTS):
            return
        try:
            await self.pulse.client.delete_script(name, version)
        except ClientError as exc:
            if exc.unavailable:
                self.pulse.report(exc)
            self.problem(f"✘ not deleted: {exc.message}")
            return
        self.app.notify(f"deleted {name}.py ({handler_of(name)})")
        self.scripts = [s for s in self.scripts if s.name != name]
        self._close_editor()
        self.problem(Text(f"deleted {handler_of(name)}", style=DIM))
        self._fill()
        self.refresh_scripts()

    def _close_editor(self) -> None:
        self.name_, self.version, self.saved_code, self.live, self.pending_ix = None, "", "", False, None
        self.code.load_text("")
        self.code.read_only = True
        self.code.add_class("-closed")  # the placeholder, padded as the other empty states

    def action_reload(self) -> None:
        if self.name_ is None or self.is_new:
            self.refresh_scripts()
            return
        name = self.name_

        def go(yes: bool | None) -> None:
            if yes:
                self.open_script(name)

        if self.dirty:
            self.app.push_screen(
                ConfirmScreen(
                    "Reload from the server",
                    f"Replace your unsaved text with the server's version of {name}.py?",
                    yes="Reload",
                    danger=True,
                ),
                go,
            )
        else:
            go(True)

    def action_focus_list(self) -> None:
        self.query_one("#scripts-table", DataTable).focus()

    def action_focus_payload(self) -> None:
        self.query_one("#run-payload", Input).focus()

    def action_focus_code(self) -> None:
        self.refocus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "run-payload":
            self.action_test_run()
