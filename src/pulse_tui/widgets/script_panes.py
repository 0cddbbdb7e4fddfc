"""The handler editor's two reactive panes: the header over the code and the test-run panel.

Each renders from its reactives only; the editor screen binds them to its own state
(``data_bind``), so a change of state repaints what shows it without the screen asking.
"""

from __future__ import annotations

import re

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from pulse_tui.console import find_console
from pulse_tui.protocol import operator_pb2
from pulse_tui.script_template import handler_of
from pulse_tui.vocab import FINISHED
from pulse_tui.widgets import fmt
from pulse_tui.widgets.json_view import pretty_json
from pulse_tui.widgets.progress_cell import progress_text

OK, BAD, WARN, DIM = "#9ece6a", "#f7768e", "#e0af68", "dim"

_FRAME = re.compile(r'^  File "([^"]*)"')


def trim_traceback(tb: str) -> str:
    """A script's traceback without the runner's frames, file paths cut to the script's name."""
    lines = tb.rstrip().splitlines()
    frames = [(i, m) for i, line in enumerate(lines) if (m := _FRAME.match(line))]
    scripts = [i for i, m in frames if "/pulse_tui/plugins/" not in m.group(1)]
    if scripts and lines and lines[0].startswith("Traceback"):
        lines = [lines[0], *lines[scripts[0] :]]
    return "\n".join(
        _FRAME.sub(lambda m: f'  File "{m.group(1).replace(chr(92), "/").rsplit("/", 1)[-1]}"', line)
        for line in lines
    )


class ScriptHeader(Static):
    """One line over the code: the open script's handler and whether it is new, modified, live or
    saved but not announced; READ-ONLY when the console cannot save."""

    name_: reactive[str | None] = reactive(None)  # the script in the editor
    version: reactive[str] = reactive("")  # "" = new, never saved
    modified: reactive[bool] = reactive(False)  # the text differs from the saved code
    live: reactive[bool] = reactive(False)  # the python plugin announces the handler
    pending_ix: reactive[tuple[str, str] | None] = reactive(None)  # an `ix` line runs after the save

    def on_mount(self) -> None:
        if find_console(self.app) is not None:  # READ-ONLY is known once the endpoint answered
            self.watch(self.app, "endpoint_mode", self._endpoint_answered, init=False)

    def _endpoint_answered(self) -> None:
        self.refresh()

    def render(self) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        if self.name_ is None:
            t.append("no script open", style="dim italic")
        else:
            t.append(handler_of(self.name_), style="bold")
            t.append(f"  {self.name_}.py", style=DIM)
            if not self.version:
                t.append("  ● new, not saved", style=fmt.C(f"bold {WARN}"))
            elif self.modified:
                t.append("  ● modified", style=fmt.C(f"bold {WARN}"))
            elif self.live:
                t.append("  ● live", style=fmt.C(OK))
            else:
                t.append("  ○ saved, not announced", style=fmt.C(WARN))
            if self.pending_ix is not None:
                t.append("  · ix runs after save", style=fmt.C("italic #bb9af7"))
        console = find_console(self.app)
        if console is not None and console.read_only:
            t.append("  READ-ONLY", style=fmt.C(f"bold reverse {WARN}"))
        return t


class RunPanel(Static):
    """The last test run: status, progress, then the result or the traceback and the logs. A
    ``message`` (a refused run) shows instead until the run changes."""

    job: reactive[operator_pb2.Job | None] = reactive(None, layout=True)
    detail: reactive[operator_pb2.JobDetail | None] = reactive(None, layout=True)
    message: reactive[Text | None] = reactive(None, layout=True)

    def watch_job(self) -> None:
        self.message = None

    def watch_detail(self) -> None:
        self.message = None

    def render(self) -> Text:
        if self.message is not None:
            return self.message
        job = self.job
        if job is None:
            return Text(
                "f5 saves if needed, then enqueues the handler with this payload; progress, result "
                "or traceback show here.",
                style="dim italic",
            )
        scroll = self.parent  # #run-scroll, padded by one column each side
        width = max((scroll.size.width if isinstance(scroll, Widget) else 0) - 2, 16)
        parts: list[Text] = []
        head = Text(no_wrap=True, overflow="ellipsis")
        head.append(
            f"{fmt.STATUS_ICONS.get(job.status, '?')} {job.status}",
            style=fmt.STATUS_STYLES.get(job.status, ""),
        )
        head.append(f"  {job.handler}", style="bold")
        parts.append(head)
        parts.append(Text(f"job {job.id}", style=DIM, no_wrap=True, overflow="ellipsis"))
        if job.progress_total or job.status == "running":
            parts.append(progress_text(job.progress_current, job.progress_total, width, status=job.status))
        detail = self.detail
        if detail is not None and detail.job.id == job.id and detail.job.status in FINISHED:
            parts.extend(_outcome(detail))
        return Text("\n").join(parts)


def _outcome(detail: operator_pb2.JobDetail) -> list[Text]:
    """A finished run: how it ended, the result or the error, the traceback, the last logs."""
    parts: list[Text] = []
    job = detail.job
    took = ""
    if job.completed_at and job.started_at:
        took = f" in {fmt.duration(job.completed_at - job.started_at)}"
    if job.status == "completed":
        parts.append(Text(f"completed{took}", style=fmt.C(OK)))
        text, _ok = pretty_json(detail.result)
        parts.append(Text("result", style="bold"))
        parts.append(Text(text or "(no result)", style="" if text else "dim italic"))
    else:
        parts.append(Text(f"{job.status}{took}", style=fmt.C(BAD) if job.status == "failed" else DIM))
        if job.error:
            parts.append(Text(job.error, style=fmt.C(BAD)))
    trace = [e.message for e in detail.logs if e.stage == "exception" and e.message.strip()]
    if trace:
        parts.append(Text("traceback", style="bold"))
        parts.append(Text(trim_traceback(trace[-1]), style=fmt.C("#db4b4b")))
    logs = [e for e in detail.logs if e.stage != "exception"]
    if logs:
        parts.append(Text("logs", style="bold"))
        for e in logs[-20:]:
            line = Text()
            line.append(f"{e.level:<5} ", style=fmt.LEVEL_STYLES.get(e.level, DIM))
            line.append(e.message)
            parts.append(line)
    return parts
