"""Jobs screen: status tabs with counts, `/` filter, the virtual job table and every job action."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.timer import Timer
from textual.widgets import Input, Static, TextArea

from pulse_tui.client import STATUSES, ClientError, job_filter
from pulse_tui.protocol import operator_pb2
from pulse_tui.screens.base import PulseScreen
from pulse_tui.screens.confirm import ConfirmScreen, confirm_cancel
from pulse_tui.sorting import SORT_NAMES, sort_scope
from pulse_tui.vocab import FINISHED, Capability, EndpointMode, JobStatus
from pulse_tui.widgets import fmt
from pulse_tui.widgets.command_line import CommandLine
from pulse_tui.widgets.job_side import WIDE, JobSide
from pulse_tui.widgets.job_table import JobTable
from pulse_tui.widgets.status_bar import StatusBar
from pulse_tui.widgets.status_tabs import TAB_IDS, StatusTabs
from pulse_tui.widgets.throughput import Throughput

RETRY_ALL_CAP = 10_000
PAUSE_ALL_CAP = 10_000  # jobs one "pause/resume all matching" changes at most
PURGE_CAP = 10_000  # jobs one :purge deletes at most
MARK_CAP = 10_000  # jobs A (mark all matching) marks at most
EXPORT_CAP = 100_000  # jobs one :export writes at most
EXPORT_FIELDS = (
    "id",
    "handler",
    "status",
    "priority",
    "progress_current",
    "progress_total",
    "attempts",
    "run_attempts",
    "max_attempts",
    "retry_count",
    "error",
    "created_at",
    "started_at",
    "completed_at",
    "plugin",
    "source",
    "parent_job_id",
    "node",
)


# A spreadsheet runs a cell that starts with one of these as a formula (`=HYPERLINK(…)`,
# `=cmd|…`): job errors and sources come from plugins and from whoever enqueued.
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading `'` (OWASP's advice for
    CSV injection): it then shows as the text it is."""
    return "'" + value if isinstance(value, str) and value.startswith(CSV_FORMULA_START) else value


def _write_export(target: Path, jobs: list[operator_pb2.Job]) -> None:
    rows = [{f: getattr(j, f) for f in EXPORT_FIELDS} for j in jobs]
    with target.open("x", encoding="utf-8", newline="") as fh:
        if target.suffix.lower() == ".csv":
            w = csv.DictWriter(fh, fieldnames=EXPORT_FIELDS)
            w.writeheader()
            w.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
        else:
            for row in rows:
                fh.write(json.dumps(row) + "\n")


TYPING_DEBOUNCE = 0.25  # seconds of no typing before the filter line is applied
COUNT_CAP = 10_000
REFRESH_ROWS = 500  # a list holding more rows than this is reloaded when jobs may enter it


@dataclass(slots=True)
class Filter:
    """What the `/` line holds: ``handler:NAME status:a,b error:TEXT payload:TEXT parent:ID free text``.

    ``handler:demo`` is a prefix (``demo``, ``demo.sleep``…), ``handler:demo.*`` a glob (``*``,
    ``?``); the handlers screen sets an exact name. Values with spaces go in quotes."""

    handler: str = ""
    statuses: tuple[str, ...] = ()
    text: str = ""
    error: str = ""
    payload: str = ""
    parent: str = ""  # the children of this job (its exact id)
    exact_handler: bool = False
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, line: str) -> Filter:
        f = cls()
        words: list[str] = []
        try:
            tokens = shlex.split(line)
        except ValueError:  # an unclosed quote while typing: take the words as they are
            tokens = line.replace('"', " ").replace("'", " ").split()
        for token in tokens:
            key, sep, value = token.partition(":")
            key = key.lower()
            if sep and key in ("handler", "h"):
                f.handler = value
            elif sep and key in ("status", "s", "is"):
                wanted = tuple(s for s in value.lower().split(",") if s)
                bad = [s for s in wanted if s not in STATUSES]
                if bad:
                    f.errors.append(f"unknown status {', '.join(bad)} (one of {', '.join(STATUSES)})")
                f.statuses = tuple(s for s in wanted if s in STATUSES)
            elif sep and key in ("error", "err"):
                f.error = value
            elif sep and key in ("payload", "p"):
                f.payload = value
            elif sep and key == "parent":
                f.parent = value
            else:
                words.append(token)
        f.text = " ".join(words)
        return f

    @property
    def handler_glob(self) -> str:
        """The glob sent to the server for a typed ``handler:`` (a prefix unless it has ``*``/``?``)."""
        if not self.handler or self.exact_handler:
            return ""
        return self.handler if any(c in self.handler for c in "*?") else self.handler + "*"

    def job_filter(self, statuses: tuple[str, ...]) -> operator_pb2.JobFilter:
        return job_filter(
            statuses,
            self.handler if self.exact_handler else "",
            self.text,
            handler_glob=self.handler_glob,
            payload=self.payload,
            error=self.error,
            parent_job_id=self.parent,
        )

    def key(self) -> tuple[str, bool]:
        return self.line(), self.exact_handler

    def describe(self) -> str:
        parts = []
        if self.handler:
            parts.append(f"handler={self.handler}" if self.exact_handler else f"handler={self.handler_glob}")
        if self.statuses:
            parts.append(f"status={','.join(self.statuses)}")
        if self.error:
            parts.append(f'error~"{self.error}"')
        if self.payload:
            parts.append(f'payload~"{self.payload}"')
        if self.parent:
            parts.append(f"children of {self.parent}")
        if self.text:
            parts.append(f'"{self.text}"')
        return " ".join(parts)

    def line(self) -> str:
        parts = []
        if self.handler:
            parts.append(f"handler:{_quote(self.handler)}")
        if self.statuses:
            parts.append(f"status:{','.join(self.statuses)}")
        if self.error:
            parts.append(f"error:{_quote(self.error)}")
        if self.payload:
            parts.append(f"payload:{_quote(self.payload)}")
        if self.parent:
            parts.append(f"parent:{_quote(self.parent)}")
        if self.text:
            parts.append(self.text)
        return " ".join(parts)


def _quote(value: str) -> str:
    return shlex.quote(value) if any(c.isspace() or c in "'\"" for c in value) else value


class JobsScreen(PulseScreen):
    TITLE = "Jobs"
    MUTATING = frozenset(
        {
            "enqueue",
            "cancel",
            "retry",
            "retry_all_failed",
            "delete",
            "purge",
            "pause",
            "resume",
            "pause_all",
            "resume_all",
        }
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "detail", "Detail", id="jobs.detail"),
        Binding("slash", "filter", "Filter", priority=True, id="jobs.filter"),  # see action_filter
        Binding("e", "enqueue", "Enqueue", priority=True, id="jobs.enqueue"),  # see open_form
        Binding("c", "cancel", "Cancel", id="jobs.cancel"),
        Binding("r", "retry", "Retry", id="jobs.retry"),
        Binding("R", "retry_all_failed", "Retry all failed", show=False, id="jobs.retry_all"),
        Binding("D", "delete", "Delete", show=False, id="jobs.delete"),
        Binding("P", "pause", "Pause", show=False, id="jobs.pause"),
        Binding("U", "resume", "Resume", show=False, id="jobs.resume"),
        Binding("alt+p", "pause_all", "Pause all matching", show=False, id="jobs.pause_all"),
        Binding("alt+u", "resume_all", "Resume all matching", show=False, id="jobs.resume_all"),
        Binding("S", "sort", "Sort", show=False, id="jobs.sort"),
        Binding("space", "mark", "Mark", show=False, id="jobs.mark"),  # the footer fits 80 columns
        Binding("u", "clear_marks", "Unmark", show=False, id="jobs.unmark"),
        Binding("V,shift+space", "mark_range", "Mark range", show=False, id="jobs.mark_range"),
        Binding("a", "mark_visible", "Mark visible", show=False, id="jobs.mark_visible"),
        Binding("A", "mark_matching", "Mark all matching", show=False, id="jobs.mark_matching"),
        Binding("y", "copy_id", "Copy id", show=False, id="jobs.copy"),
        Binding("right,l", "tab(1)", "Next tab", show=False, id="jobs.next_tab"),
        Binding("left,h", "tab(-1)", "Prev tab", show=False, id="jobs.prev_tab"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="jobs.reload"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter = Filter()
        self.tab = "all"
        self._restore_id: str | None = None
        self._filter_before: Filter | None = None  # what esc on the open filter line restores
        self._typing_timer: Timer | None = None
        self._stale_timer: Timer | None = None
        self._matched: str = ""  # "12 jobs" for the note, from the last count
        self._mark_anchor: int | None = None  # the row V marks a range from
        self._kept: tuple[dict[int, operator_pb2.Job], int, bool] | None = None  # rows before a reload
        self._count_gen: int | None = None  # the table generation whose first page asks for the counts
        self.sort_by = ""  # a sorting.SORT_NAMES key; "" = newest first (seq)
        self.sort_desc = True

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield from self.compose_header()
        with Horizontal(id="tab-row"):
            yield StatusTabs(id="status-tabs")
            yield Throughput(id="throughput")
        yield Input(
            placeholder="handler:demo* status:failed error:TEXT payload:TEXT parent:ID text…  (applies as you type; enter keeps, esc reverts)",
            id="filter",
        )
        yield Static("", id="jobs-note", classes="note")
        with Horizontal(id="jobs-body"):
            yield JobTable(self._page, id="job-table")
            yield JobSide(id="job-side")
        yield from self.compose_footer()

    @property
    def table(self) -> JobTable:
        return self.query_one(JobTable)

    def on_mount(self) -> None:
        self.table.focus()
        self._empty_message()
        self.query_one("#screen-title", Static).display = False
        if self.pulse.conn_state == "connected":
            self.reload()

    def refocus(self) -> None:
        self.table.focus()

    def ensure_focus(self) -> None:
        """Give the table the keys unless the filter line or the command line has them.

        Called when the screen is shown or resumed and when a page arrives: a Hide event at
        start-up (the terminal reported too small for a moment) blurs the table, and without this
        arrow keys would do nothing until a click."""
        focused = self.focused
        if focused is self.table or self.app.has_class("-too-small"):
            return  # hidden under the too-small notice: a page landing must not focus it (Show will)
        if isinstance(focused, Input) and focused.has_class("-open"):
            return  # the user is typing a filter or a `:` command
        self.table.focus()

    def on_screen_resume(self) -> None:
        self.ensure_focus()

    def on_show(self) -> None:
        self.ensure_focus()

    def escape(self) -> bool:
        """Esc / q at the root: close the filter, then clear marks, then clear the filter.
        False when there was nothing left to undo."""
        inp = self.query_one("#filter", Input)
        if inp.has_class("-open"):
            before, self._filter_before = self._filter_before, None
            self._close_filter()
            if before is not None and before.line() != self.filter.line():
                self._apply(before)  # esc reverts what was typed
        elif self.table.marked:
            self.action_clear_marks()
        elif self.filter.line():
            self.filter = Filter()
            self.reload()
        else:
            return False
        return True

    # ------------------------------------------------------------------ data

    def effective_filter(self) -> operator_pb2.JobFilter:
        statuses = self.filter.statuses or (() if self.tab == "all" else (self.tab,))
        return self.filter.job_filter(statuses)

    async def _page(
        self, offset: int, after_seq: int | None, limit: int, *, oldest_first: bool = False
    ) -> tuple[list[operator_pb2.Job], bool]:
        # rows below the lowest seq the server counts as near may land: until they are followed
        # (the next view update), every change counts as near
        async with self.pulse.view_widening():
            return await self._fetch_page(offset, after_seq, limit, oldest_first=oldest_first)

    async def _fetch_page(
        self, offset: int, after_seq: int | None, limit: int, *, oldest_first: bool = False
    ) -> tuple[list[operator_pb2.Job], bool]:
        if self.sort_by:  # a sorted listing pages by offset (the table asks row by row from the top)
            resp = await self.pulse.client.list_jobs(
                self.effective_filter(),
                limit=limit,
                offset=offset,
                oldest_first=not self.sort_desc,
                sort_by=self.sort_by,
            )
            return list(resp.jobs), resp.has_more
        resp = await self.pulse.client.list_jobs(
            self.effective_filter(),
            limit=limit,
            after_seq=after_seq,
            oldest_first=oldest_first,
            offset=0 if after_seq is not None else offset,
        )
        return list(resp.jobs), resp.has_more

    def reload(self, *, keep_cursor: bool = False) -> None:
        table = self.table
        # compat listing is newest first only; a sorted one pages by offset (End jumps there)
        table.both_ends = self.pulse.mode_name != EndpointMode.COMPAT and not self.sort_by
        table.set_sort(self.sort_by, self.sort_desc)
        current = table.current_job
        if not keep_cursor:
            self._restore_id = None
        elif current is not None:
            self._restore_id = current.id
        # else: a reload while the last one is still loading keeps the job it is restoring
        if not self.pulse.client.can(Capability.JOBS):
            table.reset(0, exact=True, flt=self.effective_filter(), fetch=False)
            self._empty_message()
            self._note()
            return
        if table.loaded_rows and not table.stale:
            self._kept = table.snapshot()  # put back, marked stale, if the refetch cannot reach the server
        table.reset(None, exact=False, flt=self.effective_filter(), keep_cursor=keep_cursor)
        self._matched = ""
        self._empty_message()
        self._note()
        # the counts are asked for once the first page has come (on_job_table_loaded): a count
        # over a million rows must not hold up the rows on screen
        self._count_gen = table.generation
        self.workers.cancel_group(self, "jobs-counts")

    def _empty_message(self) -> None:
        scope = self.filter.describe()
        tab = self.filter.statuses[0] if len(self.filter.statuses) == 1 else self.tab
        if self.pulse.mode_name == EndpointMode.PLUGIN:
            self.table.empty_message = (
                "A bare plugin endpoint has no jobs; :plugins shows its metadata and health."
            )
        elif scope:
            self.table.empty_message = f"No jobs match the filter {scope} — esc clears it."
        elif tab != "all":
            self.table.empty_message = f"No {tab} jobs (← → switch tabs)."
        else:
            self.table.empty_message = "No jobs yet — press e to enqueue one."

    def counts_arrived(self, counts: operator_pb2.CountJobsResponse) -> None:
        """The live stream's counts are this list's when no filter narrows it: the count asked
        in this same flush (not sent yet) is not needed."""
        if self.filter.job_filter(()) == operator_pb2.JobFilter() and counts.cap == COUNT_CAP:
            self.workers.cancel_group(self, "jobs-counts")
            self._show_counts(counts)

    @work(exclusive=True, group="jobs-counts", exit_on_error=False)
    async def refresh_counts(self) -> None:
        if not self.pulse.client.can(Capability.COUNTS):
            return  # a bare plugin endpoint has no jobs to count
        flt = self.filter.job_filter(())
        try:
            resp = await self.pulse.client.count_jobs(flt, cap=COUNT_CAP)
        except ClientError as exc:
            self.pulse.report(exc, "counting jobs")
            return
        self._show_counts(resp)

    def _show_counts(self, resp: operator_pb2.CountJobsResponse) -> None:
        tabs = self.query_one(StatusTabs)
        tabs.counts = dict(resp.by_status)
        tabs.capped = resp.capped
        tabs.cap = resp.cap
        statuses = self.filter.statuses or (() if self.tab == "all" else (self.tab,))
        wanted = statuses or STATUSES
        n = sum(resp.by_status.get(s, 0) for s in wanted)
        capped = any(resp.by_status.get(s, 0) >= resp.cap for s in wanted) if resp.cap else False
        scope = sort_scope(self.sort_by)
        if scope and n > scope and not capped:
            n = scope  # the sorted listing ranks the newest `scope` only
        self.table.set_total(n, exact=not capped)
        matched = f"{fmt.count(n, capped, resp.cap)} job(s)"
        if matched != self._matched:
            self._matched = matched
            self._note()

    def _note(self) -> None:
        parts = []
        if self.table.stale:
            parts.append("disconnected: the rows are the last ones seen (dim) until the server is back")
        if self.filter.describe():
            found = f" — {self._matched}" if self._matched else ""
            parts.append(f"filter: {self.filter.describe()}{found}  (esc clears)")
        mode = self.pulse.mode_name
        if mode == EndpointMode.COMPAT:
            parts.append("compat mode: QueueService only — polling every 2s; no attempts history or logs")
        elif mode == EndpointMode.PLUGIN:
            parts.append("bare plugin endpoint: no jobs here — see :plugins for its metadata and health")
        note = self.query_one("#jobs-note", Static)
        note.update("  ·  ".join(parts))
        note.display = bool(parts)
        self.query_one(StatusTabs).active = (
            self.filter.statuses[0] if len(self.filter.statuses) == 1 else self.tab
        )

    def _count_after_page(self, gen: int) -> None:
        if self._count_gen is not None and gen >= self._count_gen:
            self._count_gen = None
            self.refresh_counts()

    def on_job_table_loaded(self, event: JobTable.Loaded) -> None:
        if not self.table_alive():
            return  # a page that landed while the screen is torn down (the app exiting)
        self._count_after_page(event.gen)
        if event.gen == self.table.generation:
            # the refetch reached the server (a page of an earlier reset, handled after the next
            # reload began, says nothing about that reload: its kept rows must stay)
            self._kept = None
        if self._restore_id and self.table.move_to_job(self._restore_id):
            self._restore_id = None
        if self.app.screen is self:
            self.ensure_focus()

    def on_job_table_fetch_failed(self, event: JobTable.FetchFailed) -> None:
        self._count_after_page(event.gen)
        err = event.error
        current = event.gen == self.table.generation
        if current and isinstance(err, ClientError) and err.unavailable and self._kept is not None:
            self.table.restore(self._kept)  # keep the last rows (dim) rather than "…" placeholders
            self._kept = None
            self._note()
        self.pulse.report(err, "loading jobs")

    def on_job_table_selected(self, event: JobTable.Selected) -> None:
        self._open_detail(event.job.id)

    def on_job_table_cursor_moved(self, event: JobTable.CursorMoved) -> None:
        self._marks_changed()
        self.query_one(JobSide).follow(event.job)

    def on_resize(self) -> None:
        super().on_resize()
        self.query_one(Throughput).fit(self.size.width)
        side = self.query_one(JobSide)
        wide = self.size.width >= WIDE
        if side.display != wide:
            side.display = wide
            side.follow(self.table.current_job)

    def jobs_changed(self, jobs: list[operator_pb2.Job]) -> None:
        self.table.upsert(jobs)
        self.refresh_counts()
        self.query_one(JobSide).jobs_changed(jobs)

    def on_job_table_stale(self, event: JobTable.Stale) -> None:
        """Jobs arrived whose match the console cannot decide (a payload filter): ask the server,
        at most once a second."""
        if self._stale_timer is None:
            # the job under the cursor now: rows may shift (a count, a page) before the refetch
            current = self.table.current_job
            keep = current.id if current is not None else self._restore_id

            def again() -> None:
                self._stale_timer = None
                self.reload(keep_cursor=True)
                if keep is not None:
                    self._restore_id = keep

            self._stale_timer = self.set_timer(1.0, again)

    def resync(self) -> None:
        self.reload(keep_cursor=True)

    def shown_job_ids(self) -> list[str]:
        side = self.query_one(JobSide)
        return self.table.loaded_ids() + ([side.job_id] if side.display and side.job_id else [])

    def table_alive(self) -> bool:
        return bool(self.query(JobTable))

    def shown_from_seq(self) -> int:
        """The lowest seq held when the listing is newest first by seq and no status decides which
        jobs it lists: a job below its rows that changed can neither enter nor leave them (its
        row, when scrolled to, is fetched fresh). Otherwise 0: any change may move the rows."""
        table = self.table
        if self.sort_by or table.tail_mode or self.effective_filter().statuses or not table.loaded_rows:
            return 0
        return table.lowest_seq()

    def others_changed(self, near: bool) -> None:
        """Jobs not held in the table changed: the counts move, and when some are `near` new ones
        may enter the rows (or enter the filter): then fetch the rows from the top again and apply
        them as live changes (the rows stay in place, the cursor on its job); a sorted list, one
        shown from the bottom or one with nothing held yet is reloaded."""
        table = self.table
        held = table.held_from_top()
        if not near and self.shown_from_seq() != 0:
            self.refresh_counts()
        elif self.sort_by or not 0 < held <= REFRESH_ROWS:
            self.reload(keep_cursor=True)
        else:
            self.refresh_rows(table.generation, held)
            self.refresh_counts()
        self.query_one(JobSide).others_changed()

    @work(exclusive=True, group="jobs-rows", exit_on_error=False)
    async def refresh_rows(self, gen: int, held: int) -> None:
        """The first `held` rows of the listing again (the table holds exactly those) and one
        more, applied as live updates: new jobs enter on top, ones that entered the filter at
        their place. When none of the rows fetched is held (more new jobs than that: the ones
        below the page would be missing between it and the rows held) the list is reloaded,
        the cursor kept on its job."""
        table = self.table
        try:
            async with self.pulse.view_widening():
                resp = await self.pulse.client.list_jobs(self.effective_filter(), limit=held + 1)
                if gen != table.generation:  # reloaded meanwhile
                    return
                jobs = list(resp.jobs)
                if len(jobs) > held and not any(table.row_of(j.id) is not None for j in jobs):
                    self.reload(keep_cursor=True)
                    return
                table.upsert(jobs)
                await self.pulse.push_view()  # follow the new rows at once (still widened)
        except ClientError as exc:
            self.pulse.report(exc, "listing jobs")

    def connection_changed(self, connected: bool) -> None:
        self._note()
        if connected:
            self.query_one(Throughput).reconnected()

    def _marks_changed(self) -> None:
        for bar in self.query(StatusBar):
            bar.marked = len(self.table.marked)

    # ------------------------------------------------------------------ filter

    def action_filter(self) -> None:
        # a priority binding, so that the keys typed right after `/` are handed to the filter line
        # (opened and focused here) rather than to the table; a `/` typed into a line is text
        if isinstance(self.focused, Input | TextArea):
            raise SkipAction()
        inp = self.query_one("#filter", Input)
        self._filter_before = self.filter
        inp.value = self.filter.line()
        inp.add_class("-open")
        self.set_focus(inp)  # now, not deferred: keys typed right after `/` belong to the filter

    def on_input_changed(self, event: Input.Changed) -> None:
        """Apply the filter as it is typed, debounced (one list and one count per pause)."""
        if event.input.id != "filter" or not event.input.has_class("-open"):
            return
        if self._typing_timer is not None:
            self._typing_timer.stop()
        value = event.value
        self._typing_timer = self.set_timer(TYPING_DEBOUNCE, lambda: self._typed(value))

    def _typed(self, value: str) -> None:
        self._typing_timer = None
        self._apply_line(value)

    def _apply_line(self, value: str) -> None:
        """Apply a filter line unless it is the one in force (an untouched line keeps the
        handlers screen's exact handler)."""
        before = self._filter_before
        f = before if before is not None and value.strip() == before.line() else Filter.parse(value)
        if f.key() != self.filter.key():
            self._apply(f)

    def _apply(self, f: Filter) -> None:
        self.filter = f
        if len(f.statuses) == 1:
            self.tab = f.statuses[0]
        self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        if self._typing_timer is not None:
            self._typing_timer.stop()
            self._typing_timer = None
        errors = Filter.parse(event.value).errors
        if errors:
            self.notify("; ".join(errors), severity="warning")
        self._apply_line(event.value)
        self._filter_before = None
        self._close_filter()

    def _close_filter(self) -> None:
        inp = self.query_one("#filter", Input)
        inp.remove_class("-open")
        self.table.focus()

    def action_tab(self, step: int) -> None:
        i = TAB_IDS.index(self.tab) if self.tab in TAB_IDS else 0
        self.tab = TAB_IDS[(i + step) % len(TAB_IDS)]
        if self.filter.statuses:
            self.filter = dataclasses.replace(self.filter, statuses=())
        self.reload()

    def set_tab(self, tab: str) -> None:
        self.tab = tab
        self.filter = dataclasses.replace(self.filter, statuses=())
        self.reload()

    def set_handler_filter(self, handler: str) -> None:
        self.filter = Filter(handler=handler, exact_handler=True)
        self.tab = "all"
        self.reload()

    def set_parent_filter(self, job_id: str) -> None:
        """Show the children of `job_id` (the filter line reads `parent:ID`)."""
        self.filter = Filter(parent=job_id)
        self.tab = "all"
        self.reload()

    def action_reload(self) -> None:
        if self.pulse.conn_state != "connected":
            self.pulse.reconnect_now()  # ctrl+r while disconnected: try now, not at the countdown
            return
        self.reload(keep_cursor=True)

    # ------------------------------------------------------------------ actions

    def _current(self) -> operator_pb2.Job | None:
        job = self.table.current_job
        if job is None:
            self.notify("no job selected", severity="warning")
        return job

    def action_detail(self) -> None:
        job = self._current()
        if job is not None:
            self._open_detail(job.id)

    def _open_detail(self, job_id: str) -> None:
        if not self.pulse.guard("job detail", mutating=False, capability=Capability.DETAIL):
            return
        from pulse_tui.screens.job_detail import JobDetailScreen

        self.app.push_screen(JobDetailScreen(job_id))

    def action_mark(self) -> None:
        self._mark_anchor = self.table.cursor
        self.table.toggle_mark()
        self._marks_changed()

    def action_sort(self) -> None:
        """S: `:sort ` on the command line (a column, then asc/desc; `:sort` alone: newest first)."""
        for cl in self.query(CommandLine):
            cl.open("sort ")
            return

    def sort(self, args: str = "") -> None:
        """`:sort [COLUMN] [asc|desc]`: kept across live updates, pages and filters."""
        words = args.lower().split()
        column = words[0] if words else ""
        column = {"time": "created", "age": "created", "att": "attempts"}.get(column, column)
        if column and column not in SORT_NAMES:
            self.notify(f"cannot sort by {column!r}; one of {', '.join(SORT_NAMES)}", severity="warning")
            return
        direction = words[1] if len(words) > 1 else ""
        if direction not in ("", "asc", "desc"):
            self.notify(f"sort direction is asc or desc, not {direction!r}", severity="warning")
            return
        if direction:
            desc = direction == "desc"
        elif column and column == self.sort_by:
            desc = not self.sort_desc  # the same column again flips it
        else:
            desc = column not in ("handler", "id", "error")  # names A→Z; numbers and times high first
        self.sort_by, self.sort_desc = column, desc
        self.reload()
        scope = sort_scope(column)
        among = f" (among the newest {scope:,} matching jobs: no index orders {column})" if scope else ""
        self.notify(
            f"sorted by {column} {'desc' if desc else 'asc'}{among}" if column else "sorted newest first"
        )

    def action_mark_range(self) -> None:
        """Mark every row from the last marked one (the anchor) to the cursor."""
        t = self.table
        anchor = self._mark_anchor if self._mark_anchor is not None else t.row_of_last_mark()
        if anchor is None:
            self.action_mark()
            return
        lo, hi = sorted((anchor, t.cursor))
        rows = [t.job_at(r) for r in range(lo, hi + 1)]
        ids = [job.id for job in rows if job is not None]
        if len(ids) < len(rows):
            self.notify("some rows in the range are still loading; try again in a moment", severity="warning")
            return
        t.marked.update(ids)
        self._mark_anchor = t.cursor
        t.refresh()
        self._marks_changed()

    def action_mark_visible(self) -> None:
        """Mark every row on screen."""
        t = self.table
        for job in t.visible_jobs():
            t.marked.add(job.id)
        t.refresh()
        self._marks_changed()

    @work(exclusive=True, group="jobs-mark", exit_on_error=False)
    async def action_mark_matching(self) -> None:
        """Mark every job matching the filter and tab (up to MARK_CAP), saying how many."""
        if not self.pulse.guard("mark all matching", mutating=False, capability=Capability.JOBS):
            return
        flt = self.effective_filter()
        ids: list[str] = []
        after: int | None = None
        more = True
        try:
            while more and len(ids) < MARK_CAP:
                resp = await self.pulse.client.list_jobs(
                    flt, limit=min(1000, MARK_CAP - len(ids)), after_seq=after
                )
                ids.extend(j.id for j in resp.jobs)
                more = resp.has_more and bool(resp.jobs)
                after = resp.jobs[-1].seq if resp.jobs else None
        except ClientError as exc:
            self.pulse.report(exc, "mark all matching")
            return
        self.table.marked.update(ids)
        self.table.refresh()
        self._marks_changed()
        scope = f" matching {self.filter.describe()}" if self.filter.describe() else ""
        cap = f" (the first {MARK_CAP:,}; more match)" if more else ""
        self.notify(f"marked {len(ids):,} job(s){scope}{cap}")

    def action_clear_marks(self) -> None:
        self.table.clear_marks()
        self._marks_changed()

    def action_copy_id(self) -> None:
        job = self._current()
        if job is not None:
            self.pulse.copy_id(job.id)

    async def action_enqueue(self) -> None:
        self.typing_guard()
        if not self.pulse.guard("enqueue", capability=Capability.ENQUEUE):
            return
        from pulse_tui.screens.enqueue import EnqueueScreen

        job = self.table.current_job
        await self.open_form(
            EnqueueScreen(default_handler=self.filter.handler or (job.handler if job else ""))
        )

    @work(group="jobs-action", exit_on_error=False)
    async def action_cancel(self) -> None:
        if not self.pulse.guard("cancel", capability=Capability.CANCEL):
            return
        marked = sorted(self.table.marked)
        if marked:
            ok = await self.app.push_screen_wait(
                ConfirmScreen(
                    "Cancel marked jobs",
                    f"Cancel {len(marked)} marked job(s)?",
                    yes="Cancel jobs",
                    danger=True,
                )
            )
            if ok:
                await self._bulk("cancel", marked)
            return
        job = self._current()
        if job is None:
            return
        if not await confirm_cancel(self, job):
            return
        await self._bulk("cancel", [job.id])

    @work(group="jobs-action", exit_on_error=False)
    async def action_retry(self) -> None:
        if not self.pulse.guard("retry", capability=Capability.RETRY):
            return
        marked = sorted(self.table.marked)
        if marked:
            ok = await self.app.push_screen_wait(
                ConfirmScreen("Retry marked jobs", f"Retry {len(marked)} marked job(s)?", yes="Retry jobs")
            )
            if ok:
                await self._bulk("retry", marked)
            return
        job = self._current()
        if job is None:
            return
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            self.notify(f"job {job.id} is {job.status}; only failed or cancelled jobs can be retried")
            return
        await self._bulk("retry", [job.id])

    @work(group="jobs-action", exit_on_error=False)
    async def action_pause(self) -> None:
        """P: pause the marked jobs (after a confirm) or the queued job under the cursor."""
        await self._pause_or_resume("pause")

    @work(group="jobs-action", exit_on_error=False)
    async def action_resume(self) -> None:
        """U: resume the marked jobs (after a confirm) or the paused job under the cursor."""
        await self._pause_or_resume("resume")

    async def _pause_or_resume(self, what: str) -> None:
        if not self.pulse.guard(what, capability=Capability.PAUSE):
            return
        marked = sorted(self.table.marked)
        if marked:
            title = "Pause marked jobs" if what == "pause" else "Resume marked jobs"
            ok = await self.app.push_screen_wait(
                ConfirmScreen(
                    title, f"{what.capitalize()} {len(marked)} marked job(s)?", yes=title.split()[0]
                )
            )
            if ok:
                await self._bulk(what, marked)
            return
        job = self._current()
        if job is None:
            return
        if what == "pause" and job.status != "queued":
            hint = (
                "cancel it instead"
                if job.status == "running"
                else "only queued or delayed jobs can be paused"
            )
            self.notify(f"job {job.id} is {job.status}; {hint}")
            return
        if what == "resume" and job.status != "paused":
            self.notify(f"job {job.id} is {job.status}; only paused jobs can be resumed")
            return
        await self._bulk(what, [job.id])

    @work(group="jobs-action", exit_on_error=False)
    async def action_pause_all(self) -> None:
        """alt+p: pause every queued job matching the filter (capped), after a count and a confirm."""
        await self._all_matching("pause")

    @work(group="jobs-action", exit_on_error=False)
    async def action_resume_all(self) -> None:
        """alt+u: resume every paused job matching the filter (capped), after a count and a confirm."""
        await self._all_matching("resume")

    def pause_all(self) -> None:
        """`:pause-all`"""
        self.action_pause_all()

    def resume_all(self) -> None:
        """`:resume-all`"""
        self.action_resume_all()

    async def _all_matching(self, what: str) -> None:
        if not self.pulse.guard(f"{what} all matching", capability=Capability.PAUSE):
            return
        status = "queued" if what == "pause" else "paused"
        flt = self.filter.job_filter((status,))
        client = self.pulse.client
        call = client.pause_jobs if what == "pause" else client.resume_jobs
        try:
            dry = await call(flt=flt, limit=PAUSE_ALL_CAP, dry_run=True)
        except ClientError as exc:
            self.pulse.report(exc, f"{what} all matching")
            return
        n = len(dry.affected_ids)
        scope = f" matching {self.filter.describe()}" if self.filter.describe() else ""
        if n == 0:
            self.notify(f"no {status} jobs{scope}")
            return
        capped = f"\nOnly the first {PAUSE_ALL_CAP:,} now." if dry.truncated else ""
        held = ""
        if dry.failures:  # resume: jobs held by a paused handler stay until the handler resumes
            held = f"\n{len(dry.failures):,} stay paused: {dry.failures[0].error}"
        title = "Pause jobs" if what == "pause" else "Resume jobs"
        ok = await self.app.push_screen_wait(
            ConfirmScreen(
                title,
                f"{what.capitalize()} {n:,}{'+' if dry.truncated else ''} {status} job(s){scope}?{capped}{held}",
                yes=f"{what.capitalize()} all",
            )
        )
        if not ok:
            return
        try:
            resp = await call(list(dry.affected_ids))
        except ClientError as exc:
            self.pulse.report(exc, f"{what} all matching")
            return
        self.notify(f"{'paused' if what == 'pause' else 'resumed'} {len(resp.affected_ids):,} job(s){scope}")
        if resp.failures:
            self.notify(
                f"{len(resp.failures)} not {what}d: {resp.failures[0].error}", severity="warning", timeout=8
            )
        if not client.can(Capability.WATCH):
            self.reload(keep_cursor=True)

    async def _bulk(self, what: str, ids: list[str]) -> None:
        client = self.pulse.client
        call, verb = {
            "cancel": (client.cancel_jobs, "cancelled"),
            "retry": (client.retry_jobs, "re-queued"),
            "pause": (client.pause_jobs, "paused"),
            "resume": (client.resume_jobs, "resumed"),
        }[what]
        try:
            resp = await call(ids)
        except ClientError as exc:
            self.pulse.report(exc, what)
            return
        done = len(resp.affected_ids)
        new_id = client.retried_as.pop(ids[0], "") if what == "retry" else ""
        if len(ids) == 1 and done == 1 and new_id:
            self.notify(f"retried {ids[0]} as new job {new_id} (compat mode: a retry enqueues a copy)")
        elif len(ids) == 1 and done == 1:
            self.notify(f"{verb} {ids[0]}")
        elif done:
            self.notify(f"{verb} {done} of {len(ids)} job(s)")
        if resp.failures:
            first = resp.failures[0]
            more = f" (+{len(resp.failures) - 1} more)" if len(resp.failures) > 1 else ""
            self.notify(f"{what} refused for {first.id}: {first.error}{more}", severity="warning", timeout=8)
        for job_id in resp.affected_ids:
            self.table.marked.discard(job_id)
        self._marks_changed()
        if not client.can(Capability.WATCH):
            self.reload(keep_cursor=True)

    @work(group="jobs-action", exit_on_error=False)
    async def action_delete(self) -> None:
        """D: delete the marked jobs, or the one under the cursor (finished jobs only), after a
        confirmation that says how many."""
        if not self.pulse.guard("delete", capability=Capability.DELETE):
            return
        ids = sorted(self.table.marked)
        if not ids:
            job = self._current()
            if job is None:
                return
            if job.status not in FINISHED:
                self.notify(
                    f"job {job.id} is {job.status}; only finished jobs can be deleted (cancel it first)"
                )
                return
            ids = [job.id]
        client = self.pulse.client
        try:
            dry = await client.delete_jobs(ids, dry_run=True)
        except ClientError as exc:
            self.pulse.report(exc, "delete")
            return
        n = len(dry.affected_ids)
        if n == 0:
            self.notify(
                f"nothing to delete: {dry.failures[0].error}" if dry.failures else "nothing to delete"
            )
            return
        skipped = f"\n{len(dry.failures)} not finished: kept." if dry.failures else ""
        what = ids[0] if len(ids) == 1 else f"{n:,} job(s)"
        ok = await self.app.push_screen_wait(
            ConfirmScreen(
                "Delete jobs",
                f"Delete {what} with attempts and logs? This cannot be undone.{skipped}",
                yes="Delete",
                danger=True,
            )
        )
        if ok:
            await self._delete(ids)

    async def _delete(self, ids: Sequence[str] = (), flt: operator_pb2.JobFilter | None = None) -> None:
        try:
            resp = await self.pulse.client.delete_jobs(list(ids), flt, limit=PURGE_CAP)
        except ClientError as exc:
            self.pulse.report(exc, "delete")
            return
        self.notify(f"deleted {len(resp.affected_ids):,} job(s)")
        for job_id in resp.affected_ids:
            self.table.marked.discard(job_id)
        self._marks_changed()
        self.reload(keep_cursor=True)

    @work(group="jobs-action", exit_on_error=False)
    async def purge(self) -> None:
        """`:purge`: delete every finished job matching the filter (capped), after a dry-run count."""
        if self.pulse.read_only:
            self.notify("read-only: purge is disabled", severity="warning")
            return
        if not self.pulse.guard("purge", capability=Capability.DELETE):
            return
        statuses = tuple(s for s in (self.filter.statuses or STATUSES) if s in FINISHED)  # in tab order
        if self.tab != "all" and not self.filter.statuses:
            statuses = (self.tab,) if self.tab in FINISHED else ()
        if not statuses:
            self.notify(
                "only finished jobs (completed, failed, cancelled) can be deleted", severity="warning"
            )
            return
        flt = self.filter.job_filter(statuses)
        try:
            dry = await self.pulse.client.delete_jobs(flt=flt, limit=PURGE_CAP, dry_run=True)
        except ClientError as exc:
            self.pulse.report(exc, "purge")
            return
        n = len(dry.affected_ids)
        scope = self.filter.describe() or "no filter"
        if n == 0:
            self.notify(f"no finished jobs match ({scope})")
            return
        capped = f"\nOnly the first {PURGE_CAP:,} go now; run :purge again for more." if dry.truncated else ""
        ok = await self.app.push_screen_wait(
            ConfirmScreen(
                "Purge finished jobs",
                f"Delete {n:,}{'+' if dry.truncated else ''} {'/'.join(statuses)} job(s) matching {scope}?"
                f" This cannot be undone.{capped}",
                yes="Delete all",
                danger=True,
            )
        )
        if ok:
            await self._delete(flt=flt)

    @work(exclusive=True, group="jobs-export", exit_on_error=False)
    async def export(self, path: str = "") -> None:
        """`:export FILE`: the jobs matching the filter and tab, newest first, as JSON Lines (or CSV
        for a ``.csv`` name), at most EXPORT_CAP. An existing file is not overwritten."""
        if not path:
            self.notify("usage: :export FILE  (.csv for CSV, anything else JSON Lines)", severity="warning")
            return
        if not self.pulse.guard("export", mutating=False, capability=Capability.JOBS):
            return
        # a few stats of a local path, once per operator command
        target = Path(path).expanduser()  # noqa: ASYNC240
        if target.exists():
            self.notify(f"{target} exists; remove it or choose another name", severity="warning")
            return
        jobs: list[operator_pb2.Job] = []
        after: int | None = None
        more = True
        try:
            while more and len(jobs) < EXPORT_CAP:
                resp = await self.pulse.client.list_jobs(
                    self.effective_filter(), limit=min(1000, EXPORT_CAP - len(jobs)), after_seq=after
                )
                jobs.extend(resp.jobs)
                more = resp.has_more and bool(resp.jobs)
                after = resp.jobs[-1].seq if resp.jobs else None
        except ClientError as exc:
            self.pulse.report(exc, "export")
            return
        try:
            await asyncio.to_thread(_write_export, target, jobs)
        except OSError as exc:
            self.notify(f"export: cannot write {target}: {exc.strerror or exc}", severity="error")
            return
        cap = f" (the first {EXPORT_CAP:,}; more match)" if more else ""
        self.notify(f"exported {len(jobs):,} job(s) to {target}{cap}")

    @work(group="jobs-action", exit_on_error=False)
    async def action_retry_all_failed(self) -> None:
        if not self.pulse.guard("retry all failed", capability=Capability.BULK):
            return
        flt = self.filter.job_filter((JobStatus.FAILED,))
        client = self.pulse.client
        try:
            dry = await client.retry_jobs(flt=flt, limit=RETRY_ALL_CAP, dry_run=True)
        except ClientError as exc:
            self.pulse.report(exc, "retry failed jobs")
            return
        n = int(dry.matched)
        scope = f" matching {self.filter.describe()}" if self.filter.describe() else ""
        if n == 0:
            self.notify(f"no failed jobs{scope}")
            return
        capped = f"\nOnly the first {RETRY_ALL_CAP:,} will be retried." if dry.truncated else ""
        ok = await self.app.push_screen_wait(
            ConfirmScreen(
                "Retry failed jobs",
                f"Retry {n:,}{'+' if dry.truncated else ''} failed job(s){scope}?{capped}",
                yes="Retry all",
            )
        )
        if not ok:
            return
        try:
            resp = await client.retry_jobs(flt=flt, limit=RETRY_ALL_CAP)
        except ClientError as exc:
            self.pulse.report(exc, "retry failed jobs")
            return
        self.notify(f"re-queued {len(resp.affected_ids):,} failed job(s){scope}")
        if resp.failures:
            self.notify(
                f"{len(resp.failures)} could not be retried: {resp.failures[0].error}", severity="warning"
            )

    # ------------------------------------------------------------------ helpers for tests / other screens

    def counts_text(self) -> str:
        tabs = self.query_one(StatusTabs)
        return ", ".join(f"{k}={fmt.count(v)}" for k, v in sorted(tabs.counts.items()))
