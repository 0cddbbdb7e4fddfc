"""Job detail: summary, payload/result JSON, error, attempts timeline and logs; cancel / retry."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from pulse_tui.client import ClientError, job_filter
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.base import PulseScreen
from pulse_tui.screens.confirm import confirm_cancel
from pulse_tui.vocab import Capability, EndpointMode, JobStatus
from pulse_tui.widgets import fmt
from pulse_tui.widgets.job_side import CHILD_COUNT_CAP, children_line
from pulse_tui.widgets.json_view import JsonView
from pulse_tui.widgets.progress_cell import progress_text

TAB_ORDER = ("tab-payload", "tab-result", "tab-error", "tab-attempts", "tab-logs", "tab-children")
CHILD_ROWS = 100  # children listed in the Children tab (C shows them all on the jobs screen)


class JobDetailScreen(PulseScreen):
    TITLE = "Job"
    MUTATING = frozenset({"cancel", "retry", "pause", "resume"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel", "Cancel", id="detail.cancel"),
        Binding("r", "retry", "Retry", id="detail.retry"),
        Binding("z", "pause", "Pause", show=False, id="detail.pause"),  # P is the parent here
        Binding("U", "resume", "Resume", show=False, id="detail.resume"),
        Binding("y", "copy_id", "Copy id", id="detail.copy"),
        Binding("s", "schedule", "Schedule", id="detail.schedule"),
        Binding("P", "parent", "Parent", show=False, id="detail.parent"),
        Binding("C", "children", "Children", show=False, id="detail.children"),
        Binding("right,l", "tab(1)", "Next tab", id="detail.next_tab"),
        Binding("left,h", "tab(-1)", "Prev tab", show=False, id="detail.prev_tab"),
        Binding("ctrl+r", "refresh", "Refresh", show=False, id="detail.refresh"),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.detail: operator_pb2.JobDetail | None = None
        self.child_counts: operator_pb2.CountJobsResponse | None = None  # its children, counted by status
        self.child_rows: list[operator_pb2.Job] = []  # the first CHILD_ROWS of them, oldest first

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        yield Static("loading…", id="detail-summary")
        with TabbedContent(id="detail-tabs"):
            with TabPane("Payload", id="tab-payload"), VerticalScroll(classes="pane-scroll"):
                yield JsonView(id="payload", empty="(empty payload)")
            with TabPane("Result", id="tab-result"), VerticalScroll(classes="pane-scroll"):
                yield JsonView(id="result", empty="(no result yet)")
            with TabPane("Error", id="tab-error"), VerticalScroll(classes="pane-scroll"):
                yield Static(id="error")
            with TabPane("Attempts", id="tab-attempts"), VerticalScroll(classes="pane-scroll"):
                yield Static(id="attempts")
            with TabPane("Logs", id="tab-logs"), VerticalScroll(classes="pane-scroll", id="logs-scroll"):
                yield Static(id="logs")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        tz = fmt.app_tz(self.app)
        zone = fmt.absolute(fmt.app_now(self.app), tz)[20:] or "local"
        self.query_one("#screen-title", Static).update(f"Job {self.job_id}   (times in {zone})")
        self.load()
        self.load_children()
        self.set_interval(1.0, self._tick)

    def refocus(self) -> None:
        self.query_one(TabbedContent).focus()

    def _tick(self) -> None:
        # Relative times age even when nothing changes; live jobs are refreshed by events.
        if self.detail is not None:
            self._render_summary(self.detail)

    def jobs_changed(self, jobs: list[operator_pb2.Job]) -> None:
        if any(j.id == self.job_id for j in jobs):
            self.load()
        if any(j.parent_job_id == self.job_id for j in jobs):
            self.load_children()

    def resync(self) -> None:
        self.load()
        self.load_children()

    def shown_job_ids(self) -> list[str]:
        return [self.job_id]

    def view_followed(self, ids: frozenset[str]) -> None:
        if self.job_id in ids:
            self.load()

    def others_changed(self, near: bool) -> None:
        self.load_children()  # the job itself is shown (its changes come in full); its children not

    @work(exclusive=True, group="detail-children", exit_on_error=False)
    async def load_children(self) -> None:
        """Count the job's children by status and list the first CHILD_ROWS of them."""
        client = self.pulse.client
        if not client.can(Capability.COUNTS):
            return
        flt = job_filter(parent_job_id=self.job_id)
        try:
            counts = await client.count_jobs(flt, cap=CHILD_COUNT_CAP)
            rows = (
                list((await client.list_jobs(flt, limit=CHILD_ROWS, oldest_first=True)).jobs)
                if counts.total
                else []
            )
        except ClientError as exc:
            if exc.code != "NOT_FOUND":
                self.pulse.report(exc, f"loading the children of job {self.job_id}")
            return
        await self.show_children(counts, rows)

    async def show_children(
        self, counts: operator_pb2.CountJobsResponse, rows: list[operator_pb2.Job]
    ) -> None:
        """The Children tab appears once the job has children: counts by status and a list (enter
        opens one)."""
        self.child_counts, self.child_rows = counts, rows
        if self.detail is not None:
            self._render_summary(self.detail)
        if not counts.total:
            return
        tabs = self.query_one(TabbedContent)
        if not self.query("#tab-children"):
            table: DataTable[Any] = DataTable(id="children-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("id", "handler", "status", "progress", "error")
            pane = TabPane(
                "Children", Static(id="children-counts"), table, id="tab-children", classes="pane-scroll"
            )
            await tabs.add_pane(pane)
        self.query_one("#children-counts", Static).update(self._children_line(counts, with_hint=True))
        table = self.query_one("#children-table", DataTable)
        table.clear()
        for j in rows:
            table.add_row(
                j.id,
                j.handler,
                Text(
                    f"{fmt.STATUS_ICONS.get(j.status, '?')} {j.status}",
                    style=fmt.STATUS_STYLES.get(j.status, ""),
                ),
                f"{j.progress_current}/{j.progress_total}" if j.progress_total else "",
                Text(j.error.strip().splitlines()[0] if j.error.strip() else "", style=fmt.C("#f7768e")),
                key=j.id,
            )

    def _children_line(self, counts: operator_pb2.CountJobsResponse, *, with_hint: bool = False) -> Text:
        t = children_line(counts, dim=False)
        if with_hint:
            shown = len(self.child_rows)
            more = f"the first {shown} below; " if shown < counts.total else ""
            t.append(f"   ({more}enter opens one, C lists them all on the jobs screen)", style="dim")
        return t

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "children-table" and event.row_key.value:
            self.app.push_screen(JobDetailScreen(str(event.row_key.value)))

    @work(exclusive=True, group="detail-load", exit_on_error=False)
    async def load(self) -> None:
        try:
            detail = await self.pulse.client.get_job(self.job_id)
        except ClientError as exc:
            if exc.code == "NOT_FOUND":
                self.query_one("#detail-summary", Static).update(
                    Text(
                        f"job {self.job_id} not found (pruned by retention?) — q goes back",
                        style=fmt.C("bold #f7768e"),
                    )
                )
                return
            self.pulse.report(exc, f"loading job {self.job_id}")
            return
        self.show(detail)

    def show(self, detail: operator_pb2.JobDetail) -> None:
        first = self.detail is None
        self.detail = detail
        job = detail.job
        self._render_summary(detail)
        self.query_one("#payload", JsonView).show(detail.payload)
        self.query_one("#result", JsonView).show(detail.result)
        err = self.query_one("#error", Static)
        err.update(
            Text(job.error, style=fmt.C("#f7768e")) if job.error else Text("(no error)", style="dim italic")
        )
        self.query_one("#attempts", Static).update(self._attempts(detail))
        logs_scroll = self.query_one("#logs-scroll", VerticalScroll)
        at_end = logs_scroll.scroll_y >= logs_scroll.max_scroll_y
        self.query_one("#logs", Static).update(self._logs(detail))
        if at_end:
            logs_scroll.call_after_refresh(logs_scroll.scroll_end, animate=False)
        if first and job.status == JobStatus.FAILED and job.error:
            self.query_one(TabbedContent).active = "tab-error"
        if self.pulse.mode_name == EndpointMode.COMPAT:
            self.query_one("#attempts", Static).update(
                Text(
                    "Attempt history and logs are not available from a QueueService-only server.", style="dim"
                )
            )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "schedule":
            return bool(self.detail and self.detail.job.schedule_id)
        return super().check_action(action, parameters)

    def action_parent(self) -> None:
        """Open the parent job's detail (P and C are not in the footer: without a parent or
        children they say so rather than doing nothing)."""
        if self.detail is None:
            return
        if not self.detail.job.parent_job_id:
            self.notify("this job has no parent (no running job enqueued it); z pauses it here")
            return
        self.app.push_screen(JobDetailScreen(self.detail.job.parent_job_id))

    async def action_children(self) -> None:
        """The jobs screen, filtered to this job's children (`parent:ID`)."""
        from pulse_tui.screens.jobs import JobsScreen  # it opens this screen: no cycle

        if self.child_counts is None:
            return  # not counted yet
        if not self.child_counts.total:
            self.notify("this job has no child jobs")
            return
        app = self.app
        if app.current_mode != "jobs":
            await app.switch_mode("jobs")
        while len(app.screen_stack) > 1 and not isinstance(app.screen, JobsScreen):
            await app.pop_screen()
        if isinstance(app.screen, JobsScreen):
            app.screen.set_parent_filter(self.job_id)

    async def action_schedule(self) -> None:
        """Jump to the schedule that fired this job."""
        if self.detail is None or not self.detail.job.schedule_id:
            return
        from pulse_tui.screens.schedules import SchedulesScreen  # it opens this screen: no cycle

        app = self.app
        if app.current_mode == "schedules":  # came from the schedule's history: go back down
            while len(app.screen_stack) > 1 and not isinstance(app.screen, SchedulesScreen):
                await app.pop_screen()
        else:
            await app.switch_mode("schedules")
        if isinstance(app.screen, SchedulesScreen):
            app.screen.select(self.detail.job.schedule_id)

    # ------------------------------------------------------------------ rendering

    def _render_summary(self, detail: operator_pb2.JobDetail) -> None:
        job = detail.job
        now = fmt.app_now(self.app)
        tz = fmt.app_tz(self.app)
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column(style="dim", no_wrap=True, width=8)
        grid.add_column(ratio=3)
        grid.add_column(style="dim", no_wrap=True, width=8)
        grid.add_column(ratio=2)
        status = Text(
            f"{fmt.STATUS_ICONS.get(job.status, '?')} {job.status}",
            style=fmt.STATUS_STYLES.get(job.status, ""),
        )
        if job.no_handler:
            status.append("  (no handler routes this name)", style=fmt.C("italic #e0af68"))
        held = fmt.pause_reason(job)
        if held:
            status.append(f" ({held})")
        wait = fmt.waiting(job, now)
        if wait:  # queued for a future time: when (absolute and relative), and why
            what = "retry at" if wait == "retry" else "runs at"
            status.append(f"  · {what} {fmt.absolute(job.run_at, tz)} (in {fmt.until(job.run_at - now)})")
        if job.progress_total > 0:
            prog = progress_text(job.progress_current, job.progress_total, 24, status=job.status)
        else:  # no bar: the dash (or the bare count) where the values start, not 24 columns in
            prog = Text(str(job.progress_current) if job.progress_current else "—")
        compat = self.pulse.mode_name == EndpointMode.COMPAT  # QueueService says nothing of these
        if job.plugin:
            plugin = job.plugin + (f" {job.plugin_version}" if job.plugin_version else "")
        elif compat:
            plugin = "unknown (compat mode)"
        elif job.started_at:
            plugin = "built-in"
        else:
            plugin = "— (not run yet)"  # which plugin runs it is known once an attempt starts
        grid.add_row("handler", Text(job.handler, style="bold"), "status", status)
        if job.retry_count:  # an operator retry starts a new run with its own budget
            retries = "retry" if job.retry_count == 1 else "retries"
            attempts = (
                f"{fmt.charged_attempts(job)} of {job.max_attempts} this run; "
                f"{job.attempts} in all, {job.retry_count} {retries}"
            )
        elif compat or not job.max_attempts:
            attempts = f"{job.attempts} (budget unknown)" if compat else str(job.attempts)
        else:
            attempts = f"{fmt.charged_attempts(job)} of {job.max_attempts}"
        if job.interrupted_attempts:
            attempts += f" +{job.interrupted_attempts}↺ interrupted (not charged)"
        grid.add_row("progress", prog, "attempts", attempts)
        grid.add_row("created", fmt.when(job.created_at, now, tz), "plugin", plugin)
        started = fmt.when(job.started_at, now, tz)
        if job.status == JobStatus.RUNNING and job.started_at:
            started += f" · running {fmt.duration(now - job.started_at)}"
        grid.add_row("started", started, "priority", str(job.priority))
        finished = fmt.when(job.completed_at, now, tz)
        if job.completed_at and job.started_at:
            finished += f" · took {fmt.duration(job.completed_at - job.started_at)}"
        timeout = (
            f"{job.timeout_secs}s"
            if job.timeout_secs
            else ("unknown (compat mode)" if compat else "server default")
        )
        grid.add_row("finished", finished, "timeout", timeout)
        extra = []
        if job.parent_job_id:
            extra.append(f"parent {job.parent_job_id} (P)")
        if job.schedule_id:
            extra.append(f"from schedule {job.schedule_id} (s)")
        elif job.source:
            extra.append(f"source {job.source}")
        if job.cost_actual or job.cost_estimate:
            extra.append(f"cost {job.cost_actual:g} (est. {job.cost_estimate:g})")
        if job.node:
            extra.append(f"node {job.node}")
        # lines with nothing on the right take the whole width (in the grid's second column they
        # wrapped at 80 columns: "cost 0 (est." / "2.5)"). A label and the gap after it are one
        # dim run and the line another, as in the grid above: a dim blank label before a dim line
        # made one run from the left edge, which screenshots drew with the blanks narrower than
        # columns, so the line started left of the values above it.
        wide = Table.grid(expand=True)
        wide.add_column(no_wrap=True, width=10)
        wide.add_column(ratio=1)
        if extra:
            wide.add_row("", Text(" · ".join(extra), style="dim"))
        if self.child_counts is not None and self.child_counts.total:
            line = self._children_line(self.child_counts)
            line.append("  (C)", style="dim")
            wide.add_row(Text("children".ljust(10), style="dim"), line)
        self.query_one("#detail-summary", Static).update(Group(grid, wide) if wide.row_count else grid)

    def _attempts(self, detail: operator_pb2.JobDetail) -> Table | Text:
        if not detail.attempts:
            if self.pulse.mode_name == EndpointMode.COMPAT:
                return Text(
                    "Attempt history is not available in compat mode (QueueService).", style="dim italic"
                )
            return Text("No attempts yet.", style="dim italic")
        now = fmt.app_now(self.app)
        tz = fmt.app_tz(self.app)
        table = Table(expand=True, box=None, padding=(0, 1), header_style="bold dim")
        table.add_column("#", justify="right", width=3)
        table.add_column("outcome", no_wrap=True)
        table.add_column("plugin", no_wrap=True)
        table.add_column("started", no_wrap=True)
        table.add_column("took", justify="right", no_wrap=True)
        table.add_column("error", ratio=1)
        for a in detail.attempts:
            style = fmt.OUTCOME_STYLES.get(a.outcome, "")
            took = fmt.duration((a.ended_at or now) - a.started_at) if a.started_at else "—"
            plugin = a.plugin + (f" {a.plugin_version}" if a.plugin_version else "") if a.plugin else "—"
            table.add_row(
                str(a.number),
                Text(a.outcome, style=style),
                plugin,
                fmt.when(a.started_at, now, tz),
                took,
                Text(a.error.strip().splitlines()[0] if a.error.strip() else "", style=fmt.C("#f7768e")),
            )
        return table

    def _logs(self, detail: operator_pb2.JobDetail) -> Group | Text:
        if not detail.logs:
            if self.pulse.mode_name == EndpointMode.COMPAT:
                return Text("Logs are not available in compat mode (QueueService).", style="dim italic")
            return Text("No log entries.", style="dim italic")
        tz = fmt.app_tz(self.app)
        lines: list[Text] = []
        for entry in detail.logs:
            t = Text(no_wrap=False)
            t.append(_clock(entry.timestamp, tz), style="dim")
            t.append(f" #{entry.attempt} " if entry.attempt else " ", style="dim")
            level = entry.level.lower() or "info"
            t.append(f"{level.upper():<5}", style=fmt.LEVEL_STYLES.get(level, ""))
            if entry.stage:
                t.append(f" [{entry.stage}]", style=fmt.C("#bb9af7"))
            t.append(f" {entry.message}", style=fmt.C("#f7768e") if level in ("error", "critical") else "")
            if entry.metadata and entry.metadata not in ("{}", "null"):
                t.append(f"  {entry.metadata}", style="dim")
            lines.append(t)
        return Group(*lines)

    # ------------------------------------------------------------------ actions

    def action_tab(self, step: int) -> None:
        tabs = self.query_one(TabbedContent)
        order = [t for t in TAB_ORDER if self.query(f"#{t}")]
        i = order.index(tabs.active) if tabs.active in order else 0
        tabs.active = order[(i + step) % len(order)]

    def action_refresh(self) -> None:
        self.load()

    def action_copy_id(self) -> None:
        self.pulse.copy_id(self.job_id)

    @work(group="detail-action", exit_on_error=False)
    async def action_cancel(self) -> None:
        if not self.pulse.guard("cancel", capability=Capability.CANCEL):
            return
        job = self.detail.job if self.detail else None
        if job is not None and not await confirm_cancel(self, job):
            return
        try:
            await self.pulse.client.cancel(self.job_id)
        except ClientError as exc:
            self.pulse.report(exc, "cancel")
            return
        self.notify(f"cancelled {self.job_id}")
        self.load()

    @work(group="detail-action", exit_on_error=False)
    async def action_retry(self) -> None:
        if not self.pulse.guard("retry", capability=Capability.RETRY):
            return
        try:
            await self.pulse.client.retry(self.job_id)
        except ClientError as exc:
            self.pulse.report(exc, "retry")
            return
        self.notify(f"re-queued {self.job_id}")
        self.load()

    @work(group="detail-action", exit_on_error=False)
    async def action_pause(self) -> None:
        """z (P opens the parent here): pause this job (queued or delayed only; a running one is
        cancelled instead)."""
        if not self.pulse.guard("pause", capability=Capability.PAUSE):
            return
        try:
            await self.pulse.client.pause(self.job_id)
        except ClientError as exc:
            self.pulse.report(exc, "pause")
            return
        self.notify(f"paused {self.job_id}")
        self.load()

    @work(group="detail-action", exit_on_error=False)
    async def action_resume(self) -> None:
        """U: resume this paused job (back to its place in the queue)."""
        if not self.pulse.guard("resume", capability=Capability.PAUSE):
            return
        try:
            await self.pulse.client.resume(self.job_id)
        except ClientError as exc:
            self.pulse.report(exc, "resume")
            return
        self.notify(f"resumed {self.job_id}")
        self.load()


def _clock(rfc3339: str, tz: tzinfo | None) -> str:
    """HH:MM:SS.mmm in the display zone; the raw string when it does not parse."""
    try:
        dt = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return rfc3339[:23] or "—"
    dt = dt.astimezone(tz) if tz is not None else dt.astimezone()
    return dt.strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"
