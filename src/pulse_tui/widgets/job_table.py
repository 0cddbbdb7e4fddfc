"""A virtual job table: renders only the rows on screen, fetched page by page from a source.

The table never holds every job. It keeps a sparse row cache (row index → Job) filled by a
:data:`PageSource` — keyset pages (``after_seq`` of the row above) when the row above is cached,
offset jumps otherwise (End, PageDown far away, the scrollbar) — and forgets rows far from the
viewport. A million jobs therefore open as fast as ten: one count, one page.

Live updates arrive through :meth:`JobTable.upsert`: cached rows are replaced in place, newer jobs
that match the filter are prepended, and the cursor stays on the job it was on (the viewport is
shifted with it unless the user sits at the very top, where new arrivals should be seen).

Both ends are reached by keyset. When the total is only known to be "at least N" (capped counts),
`End` switches the table to *tail mode*: row indices count from the bottom of a virtual total, the
bottom page is the oldest jobs (``oldest_first`` pages), and scrolling up continues with keyset
pages in that direction (``after_seq`` of the row below). Reaching the top of the virtual window
while older pages say there is more grows the window above (the cursor and viewport shift with it);
finding the newest job fixes the exact total and the table is an ordinary one again. `Home` from
tail mode goes back to the newest page. New jobs are not inserted in tail mode (their position is
unknown until the exact total is): cached rows still update in place and the cursor never moves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from pulse_tui.client import filter_matches
from pulse_tui.protocol import operator_pb2
from pulse_tui.widgets import fmt
from pulse_tui.widgets.progress_cell import progress_text

Job = operator_pb2.Job

# (offset, after_seq, limit) -> (jobs, has_more). after_seq wins over offset when not None.
# Tail-mode pages call it with the keyword ``oldest_first=True`` (offset then counts from the oldest).
PageSource = Callable[..., Awaitable[tuple[list[Job], bool]]]

PAGE = 100
KEEP_ROWS = 4000  # cache budget; rows far from the viewport are forgotten beyond this
GROW = 10 * PAGE  # rows added above the tail window when its top is reached and more jobs exist
# A sorted listing pages by offset, and each page costs the server a sort of up to
# sorting.SORT_SCOPE rows whatever its length: fetch several pages' worth at once
SORTED_PAGE = 5 * PAGE
LINE_CACHE = 512  # drawn rows kept (job id → the job, what else the row showed, the strip)


# sort column (sorting.SORT_NAMES) → the value live updates compare, and the table column it marks
SORT_KEYS: dict[str, Callable[[Job], object]] = {
    "id": lambda j: j.id,
    "handler": lambda j: j.handler,
    "status": lambda j: j.status,
    "priority": lambda j: j.priority,
    "attempts": lambda j: j.attempts,
    "progress": lambda j: (j.progress_current / j.progress_total) if j.progress_total else 0.0,
    "created": lambda j: j.seq,
    "started": lambda j: j.started_at,
    "finished": lambda j: j.completed_at,
    "updated": lambda j: j.updated_at,
    "error": lambda j: j.error,
}
COLUMN_SORT: dict[str, str] = {
    "id": "id",
    "handler": "handler",
    "status": "status",
    "progress": "progress",
    "attempts": "attempts",
    "created": "age",
    "started": "age",
    "finished": "age",
    "updated": "age",
    "error": "error",
}


@dataclass(slots=True)
class _Column:
    key: str
    label: str
    width: int
    right: bool = False


class JobTable(ScrollView, can_focus=True):
    """Virtual, keyboard-driven job table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("down,j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("pageup,ctrl+b", "page_up", "Page up", show=False, id="table.page_up"),
        Binding("pagedown,ctrl+f", "page_down", "Page down", show=False, id="table.page_down"),
        Binding("home,g", "first", "First", show=False, id="table.first"),
        Binding("end,G", "last", "Last", show=False, id="table.last"),
    ]

    COMPONENT_CLASSES = {
        "job-table--header",
        "job-table--cursor",
        "job-table--cursor-blur",
        "job-table--marked",
        "job-table--loading",
        "job-table--dim",
        "job-table--empty",
    }

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Selected(Message):
        """Enter on a row."""

        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job

    class CursorMoved(Message):
        def __init__(self, job: Job | None) -> None:
            super().__init__()
            self.job = job

    class Loaded(Message):
        """A page arrived (tests and the status bar wait on this). ``gen`` is the table's
        generation it was fetched for: a message handled after a later reset is about rows that
        are gone (compare with `JobTable.generation`)."""

        def __init__(self, rows: int, gen: int = 0) -> None:
            super().__init__()
            self.rows = rows
            self.gen = gen

    class Stale(Message):
        """Live jobs arrived whose match against the filter only the server can decide."""

    class FetchFailed(Message):
        def __init__(self, error: Exception, gen: int = 0) -> None:
            super().__init__()
            self.error = error
            self.gen = gen

    def __init__(
        self,
        source: PageSource | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.source = source
        self.filter: operator_pb2.JobFilter | None = None
        self.marked: set[str] = set()
        self.empty_message = "No jobs."
        self._rows: dict[int, Job] = {}
        self._lines: dict[str, tuple[Job, tuple[object, ...], Strip]] = {}
        self._pass: tuple[int, Style, float] | None = None  # (width, base style, now) of a render pass
        self._index: dict[str, int] = {}
        self._total = 0
        self._exact = True
        self._gen = 0
        self._shifted = 0
        self._inflight: list[tuple[int, int]] = []
        self._prefetch_due = False  # the neighbouring pages are asked for after the next frame
        self._loaded_once = False
        self._active = False  # nothing is fetched before the first reset()
        self._tail = False  # rows anchored at the bottom (see module docstring)
        self._refocus = False  # lost focus to a Hide event; take it back on Show
        self._att_w = 4  # ATT grows (and stays) wide once a row shows interruptions (`1/3 +2↺`)
        self._status_w = 11  # STATUS grows (and stays) wide for a waiting job (`◷ retry in 12s`)
        self.both_ends = True  # the source supports oldest_first pages (False: End jumps by offset)
        self.sort_by = ""  # the listing's sort column ("" = seq, newest first)
        self.sort_desc = True
        self.fetches = 0  # pages requested (tests assert the table stays lazy)
        self.stale = False  # rows kept from before the connection was lost (drawn dim)

    # ------------------------------------------------------------------ data

    @property
    def total(self) -> int:
        return self._total

    @property
    def loaded_rows(self) -> int:
        return len(self._rows)

    def held_from_top(self) -> int:
        """k when the rows held are exactly the first k of the listing (no gap), else 0."""
        k = len(self._rows)
        return k if k and not self._tail and max(self._rows) == k - 1 else 0

    def lowest_seq(self) -> int:
        return min((j.seq for j in self._rows.values()), default=0)

    def loaded_ids(self) -> list[str]:
        """The ids of the rows held (shown or cached near the view): what live updates must reach."""
        return list(self._index)

    @property
    def fetching(self) -> bool:
        """A page is on its way, or the neighbouring pages are about to be asked for. (Not
        Textual's `loading`, which would make the table unfocusable and drop its keys meanwhile.)"""
        return bool(self._inflight) or self._prefetch_due

    @property
    def exact(self) -> bool:
        return self._exact

    @property
    def tail_mode(self) -> bool:
        """Rows are anchored at the bottom (End on a capped total): see the module docstring."""
        return self._tail

    @property
    def current_job(self) -> Job | None:
        return self._rows.get(self.cursor)

    @property
    def generation(self) -> int:
        """Bumped by every reset and restore: pages and messages of an older one are void."""
        return self._gen

    def job_at(self, row: int) -> Job | None:
        return self._rows.get(row)

    def row_of(self, job_id: str) -> int | None:
        return self._index.get(job_id)

    def reset(
        self,
        total: int | None = None,
        *,
        exact: bool = True,
        flt: operator_pb2.JobFilter | None = None,
        keep_cursor: bool = False,
        fetch: bool = True,
    ) -> None:
        """Forget every row and start again (new filter, resync, reconnect).

        With ``keep_cursor`` and no known total, a table in tail mode stays in tail mode (the rows
        are refetched from the bottom, the cursor keeps its place)."""
        self._void_pages()
        self.stale = False
        self._active = fetch  # False: an endpoint that lists no jobs; show the empty message
        self._rows.clear()
        self._index.clear()
        self._inflight.clear()
        self._loaded_once = not fetch
        if flt is not None:
            self.filter = flt
        if self._tail and keep_cursor and total is None:
            total = self._total  # same virtual window
        else:
            self._tail = False
            self._exact = exact if total is not None else False
        self._total = max(0, total if total is not None else PAGE)
        if not keep_cursor:
            self.cursor = 0
            self.scroll_to(y=0, animate=False, immediate=True)
        else:
            self.cursor = min(self.cursor, max(0, self._total - 1))
        self._update_size()
        self._request_visible()
        self.refresh()

    def set_total(self, total: int, *, exact: bool) -> None:
        """A fresh (possibly capped) count. Capped counts only ever grow the table."""
        if self._tail:
            if exact:  # an exact count: re-anchor the bottom-up rows on it (same jobs on screen)
                self._shift_view(total - self._total)
                self._tail = False
                self._exact = True
                self._request_visible()
                self.refresh()
            return
        if exact and self._loaded_once:
            self._total = total
        else:
            self._total = max(total, self._total if not exact else 0)
        self._exact = exact
        if self.cursor >= self._total:
            self.cursor = max(0, self._total - 1)
        self._update_size()
        self._request_visible()
        self.refresh()

    def snapshot(self) -> tuple[dict[int, Job], int, bool]:
        return dict(self._rows), self._total, self._exact

    def restore(self, snap: tuple[dict[int, Job], int, bool]) -> None:
        """Put back the rows of a snapshot, marked stale (the refetch failed: connection lost)."""
        rows, total, exact = snap
        self._void_pages()  # pages in flight belong to the failed refetch
        self._inflight.clear()
        self._active = False  # nothing is fetched until the next reset (reconnect)
        self._rows = dict(rows)
        self._index = {j.id: i for i, j in self._rows.items()}
        self._total, self._exact, self._loaded_once = total, exact, True
        self.stale = True
        self._update_size()
        self.refresh()

    def set_sort(self, sort_by: str, desc: bool) -> None:
        self.sort_by, self.sort_desc = sort_by, desc
        self.refresh()

    def _upsert_sorted(self, jobs: Iterable[Job]) -> None:
        """Live changes in a sorted listing: a row whose sort value is unchanged is replaced in
        place, one that stopped matching leaves; anything that would move (a new job, a changed
        sort value) asks the screen to refetch (Stale), which keeps the cursor on its job."""
        key = SORT_KEYS.get(self.sort_by)
        changed = stale = False
        for job in jobs:
            row = self._index.get(job.id)
            matches = filter_matches(self.filter, job)
            if row is None:
                stale = stale or matches
            elif not matches:
                self._remove_row(row)
                changed = True
            elif key is not None and key(job) != key(self._rows[row]):
                self._rows[row] = job
                changed = stale = True
            else:
                self._rows[row] = job
                changed = True
        if stale:
            self.post_message(self.Stale())
        if changed:
            self._update_size()
            self._request_visible()
            self.refresh()

    def upsert(self, jobs: Iterable[Job]) -> int:
        """Apply live changes under the active filter; returns how many rows were added at the top.

        A cached job that still matches is replaced in place; one that stopped matching leaves
        (the rows below move up); a job that starts matching enters at its place in the listing
        order (by seq): at the top when it is newer than the first row, between cached rows
        otherwise. In tail mode rows are only replaced or dropped (positions count from the
        bottom of a virtual total)."""
        if self.sort_by:
            self._upsert_sorted(jobs)
            return 0
        fresh: list[Job] = []
        top = self._rows.get(0)
        changed = unknown = False
        for job in jobs:
            row = self._index.get(job.id)
            matches = filter_matches(self.filter, job)
            if row is not None:
                if matches:
                    self._rows[row] = job
                else:
                    self._remove_row(row)
                changed = True
            elif not matches or self._tail:
                continue
            elif self.filter is not None and self.filter.payload:
                unknown = True
            elif (
                top is None
                and self._loaded_once
                and self._total == 0
                or top is not None
                and job.seq > top.seq
            ):
                fresh.append(job)
            elif top is not None and self._insert_ordered(job):
                changed = True
        if unknown:
            self.post_message(self.Stale())
        if fresh:
            fresh.sort(key=lambda j: j.seq, reverse=True)
            self._prepend(fresh)
        if changed or fresh:
            self._update_size()
            self._request_visible()
            self.refresh()
        return len(fresh)

    def _restart_inflight(self) -> None:
        """Rows moved unevenly: pages in flight would land in the wrong place; ask again."""
        if self._inflight:
            self._void_pages()
            self._inflight.clear()

    def _void_pages(self) -> None:
        """Pages on their way are for rows that are gone: a new generation ignores them, and their
        requests are cancelled (a filter typed on needs the server for its own first page)."""
        self._gen += 1
        if self.is_mounted:
            self.workers.cancel_group(self, "job-table")

    def _remove_row(self, row: int) -> None:
        """Drop one row; rows below move up; the cursor stays on its job (or the next one)."""
        job = self._rows.pop(row, None)
        if job is not None:
            self._index.pop(job.id, None)
        self._rows = {(i - 1 if i > row else i): j for i, j in self._rows.items()}
        self._index = {j.id: i for i, j in self._rows.items()}
        self._restart_inflight()
        self._total = max(0, self._total - 1)
        if self.cursor > row:
            self.cursor -= 1
        self.cursor = min(self.cursor, max(0, self._total - 1))
        if row < self.scroll_y:
            self.scroll_to(y=max(0, self.scroll_y - 1), animate=False, immediate=True)
        self.post_message(self.CursorMoved(self.current_job))

    def _insert_ordered(self, job: Job) -> bool:
        """A job older than the first row starts matching: put it where the listing has it.

        Rows at and below its place move down; when the row above the place is not cached the
        job itself is left to the next fetch of that gap. False when its place is below every
        cached row and the list goes on (nothing on screen changes; the count will say)."""
        below = [i for i, j in self._rows.items() if j.seq < job.seq]
        if below:
            at = min(below)
        else:
            last = max(self._rows, default=-1)
            if last + 1 < self._total or not self._exact:
                return False
            at = last + 1
        current = self.current_job
        self._rows = {(i + 1 if i >= at else i): j for i, j in self._rows.items()}
        self._restart_inflight()
        if at == 0 or (at - 1) in self._rows:
            self._rows[at] = job
        self._index = {j.id: i for i, j in self._rows.items()}
        self._total += 1
        if current is not None and self.cursor >= at:
            self.cursor += 1
        return True

    def _prepend(self, fresh: list[Job]) -> None:
        n = len(fresh)
        current = self.current_job
        at_top = self.scroll_y == 0
        self._shift(n)
        for i, job in enumerate(fresh):
            self._rows[i] = job
            self._index[job.id] = i
        self._total += n
        self._update_size()
        if current is not None:
            self.cursor = self.cursor + n
            if not at_top or self.cursor >= self._visible_rows():
                self.scroll_to(y=self.scroll_y + n, animate=False, immediate=True)
        elif self._total == n:
            self.cursor = 0
        self.post_message(self.CursorMoved(self.current_job))

    def _shift(self, n: int) -> None:
        """Move every cached row (and in-flight range) down by ``n`` rows (up when negative);
        rows pushed above the top are forgotten. Total, cursor and viewport are the caller's."""
        if n == 0:
            return
        self._rows = {i + n: job for i, job in self._rows.items() if i + n >= 0}
        self._index = {job.id: i for i, job in self._rows.items()}
        self._inflight = [(a + n, b + n) for a, b in self._inflight]
        self._shifted += n

    def _shift_view(self, n: int) -> None:
        """Shift rows, cursor and viewport together: the same jobs stay on screen."""
        self._shift(n)
        self._total = max(0, self._total + n)
        self._update_size()
        self.cursor = min(max(self.cursor + n, 0), max(0, self._total - 1))
        self.scroll_to(y=max(0, self.scroll_y + n), animate=False, immediate=True)

    # ------------------------------------------------------------------ fetching

    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _update_size(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self._total + 1)

    def _pending(self, row: int) -> bool:
        return row in self._rows or any(a <= row < b for a, b in self._inflight)

    def _request_visible(self) -> None:
        """Fetch what the screen shows now; after the next frame, once nothing is on its way, the
        neighbouring screens (the previous one and the next one, plus a margin), so that PageUp /
        PageDown paint from the cache. Prefetches go one page at a time, each continuing by keyset
        from rows here."""
        if self.source is None or not self.is_mounted or not self._active:
            return
        top = int(self.scroll_y)
        view = self._visible_rows()
        if self._total == 0 and not self._loaded_once:
            self._request_rows(0, 0)
            return
        self._request_rows(top, min(self._total - 1, top + view))
        if not self._prefetch_due:  # after the next frame: the rows here are drawn first
            self._prefetch_due = True
            self.call_after_refresh(self._prefetch)

    def _prefetch(self) -> None:
        self._prefetch_due = False
        if self.source is None or not self.is_mounted or not self._active or self._inflight:
            return  # a page on its way asks again when it lands
        top = int(self.scroll_y)
        view = self._visible_rows()
        first = max(0, top - view - PAGE // 4)
        last = min(self._total - 1, top + 2 * view + PAGE // 2)
        self._request_rows(first, last, one=True)

    def _page_size(self) -> int:
        return SORTED_PAGE if self.sort_by else PAGE

    def _request_rows(self, first: int, last: int, *, one: bool = False) -> None:
        """Start fetches for the rows of [first, last] neither cached nor on their way (with
        ``one``, at most one page)."""
        if self._tail:
            row = last
            while row >= first:  # bottom-up: each page ends at the row below the gap
                if self._pending(row):
                    row -= 1
                    continue
                self._start_fetch(row + 1, tail=True)
                if one:
                    return
                row -= PAGE
            return
        size = self._page_size()
        row = first
        while row <= last:
            if self._pending(row):
                row += 1
                continue
            self._start_fetch(row)
            if one:
                return
            row += size

    def _start_fetch(self, start: int, *, tail: bool = False) -> None:
        """Head mode: rows [start, start+limit) newest first, keyset from the row above.
        Tail mode: ``start`` is the end (exclusive) of rows filled oldest first upwards, keyset
        from the row below, offset counted from the bottom."""
        if tail:
            end = start
            limit = min(PAGE, end)
            below = self._rows.get(end)
            after = below.seq if below is not None else None
            offset = self._total - end
            self._inflight.append((end - limit, end))
        else:
            limit = self._page_size()
            above = self._rows.get(start - 1)
            after = above.seq if above is not None else None
            offset = start
            self._inflight.append((start, start + limit))
        self.fetches += 1
        gen, shifted = self._gen, self._shifted

        async def fetch() -> None:  # a page cancelled before it starts never makes its coroutine
            await self._fetch(start, offset, after, limit, tail, gen, shifted)

        # mypy cannot pick between WorkType's "callable returning a coroutine" and "callable
        # returning a result" for a function and infers Never; Textual awaits either at start
        self.run_worker(fetch, group="job-table", exit_on_error=False)  # type: ignore[arg-type]

    async def _fetch(
        self, start: int, offset: int, after_seq: int | None, limit: int, tail: bool, gen: int, shifted: int
    ) -> None:
        assert self.source is not None
        try:
            if tail:
                jobs, has_more = await self.source(offset, after_seq, limit, oldest_first=True)
            else:
                jobs, has_more = await self.source(offset, after_seq, limit)
        except Exception as exc:
            if gen == self._gen:
                start += self._shifted - shifted
                key = (start - limit, start) if tail else (start, start + limit)
                self._inflight = [r for r in self._inflight if r != key]
                self.post_message(self.FetchFailed(exc, gen))
            return
        if gen != self._gen:
            return
        start += self._shifted - shifted
        if tail:
            self._inflight = [r for r in self._inflight if r != (start - limit, start)]
            first, end = self._store_tail(start, jobs, has_more)
        else:
            self._inflight = [r for r in self._inflight if r != (start, start + limit)]
            first = start
            self._store(start, jobs)
            end = start + len(jobs)
            if has_more:
                self._total = max(self._total, end + 1)
            else:
                self._total = end if (self._exact or end >= self._total or start == 0) else self._total
                self._exact = True
        self._loaded_once = True
        self.cursor = min(self.cursor, max(0, self._total - 1))
        self._evict()
        self._update_size()
        self.refresh()
        self.post_message(self.Loaded(len(jobs), gen))
        if first <= self.cursor < end:
            self.post_message(self.CursorMoved(self.current_job))
        self._request_visible()  # the next neighbouring page (tail mode: the window may have grown)

    def _store(self, start: int, jobs: list[Job]) -> None:
        """Put ``jobs`` at rows start, start+1, … (dropping stale copies of the same jobs)."""
        for i, job in enumerate(jobs):
            row = start + i
            old = self._rows.get(row)
            if old is not None:
                self._index.pop(old.id, None)
            prev = self._index.get(job.id)
            if prev is not None and prev != row:
                self._rows.pop(prev, None)
            self._rows[row] = job
            self._index[job.id] = row

    def _store_tail(self, end: int, jobs: list[Job], has_more: bool) -> tuple[int, int]:
        """Put an oldest-first page at rows end-1, end-2, …; returns the rows filled (first, end)
        after any re-anchoring. Finding the newest job ends tail mode; reaching row 0 with more
        to come grows the window above."""
        top = end - len(jobs)
        self._store(top, list(reversed(jobs)))
        shift = 0
        if not has_more:
            # the newest job is at row `top`: everything above it is phantom; rows are now exact
            shift = -top
            self._tail = False
            self._exact = True
        elif top <= 0:
            shift = GROW
        self._shift_view(shift)
        return top + shift, end + shift

    def _evict(self) -> None:
        if len(self._rows) <= KEEP_ROWS:
            return
        centre = int(self.scroll_y)
        keep = KEEP_ROWS // 2
        for row in [r for r in self._rows if abs(r - centre) > keep]:
            job = self._rows.pop(row)
            self._index.pop(job.id, None)

    # ------------------------------------------------------------------ cursor

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._request_visible()

    def on_resize(self, event: events.Resize) -> None:
        self._update_size()
        self._request_visible()

    def _move(self, row: int) -> None:
        if self._total <= 0:
            return
        row = min(max(row, 0), self._total - 1)
        self.cursor = row
        visible = self._visible_rows()
        if row < self.scroll_y:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= self.scroll_y + visible:
            self.scroll_to(y=row - visible + 1, animate=False, immediate=True)
        self._request_visible()
        self.refresh()
        self.post_message(self.CursorMoved(self.current_job))

    def action_cursor_up(self) -> None:
        self._move(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._move(self.cursor + 1)

    def action_page_up(self) -> None:
        self._move(self.cursor - self._visible_rows())

    def action_page_down(self) -> None:
        self._move(self.cursor + self._visible_rows())

    def action_first(self) -> None:
        if self._tail:  # row 0 of the tail window is not the newest job: start again from the top
            self.reset(self._total, exact=False)
            self.post_message(self.CursorMoved(None))
            return
        self._move(0)

    def action_last(self) -> None:
        if not self._exact and not self._tail and self.both_ends and self.source is not None:
            self._enter_tail()
        self._move(self._total - 1)

    def _enter_tail(self) -> None:
        """The total is a lower bound: anchor the rows at the bottom so End shows the oldest jobs."""
        self._void_pages()
        self._rows.clear()
        self._index.clear()
        self._inflight.clear()
        self._tail = True
        self._total = max(1, self._total)
        self._update_size()

    def move_to_job(self, job_id: str) -> bool:
        row = self._index.get(job_id)
        if row is None:
            return False
        self._move(row)
        return True

    def select_current(self) -> None:
        job = self.current_job
        if job is not None:
            self.post_message(self.Selected(job))

    def toggle_mark(self) -> None:
        job = self.current_job
        if job is None:
            return
        if job.id in self.marked:
            self.marked.discard(job.id)
        else:
            self.marked.add(job.id)
        self._move(self.cursor + 1)

    def visible_jobs(self) -> list[Job]:
        first = int(self.scroll_y)
        rows = range(first, min(self._total, first + self._visible_rows()))
        return [j for r in rows if (j := self._rows.get(r)) is not None]

    def row_of_last_mark(self) -> int | None:
        rows = [r for job_id in self.marked if (r := self._index.get(job_id)) is not None]
        return max(rows) if rows else None

    def clear_marks(self) -> None:
        self.marked.clear()
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_y) + event.y - 1
        if event.y >= 1 and 0 <= row < self._total:
            if row == self.cursor and event.chain >= 2:
                self.select_current()
            self._move(row)

    def on_focus(self) -> None:
        self._refocus = False
        self.refresh()

    def on_hide(self) -> None:
        # runs before Widget._on_hide, which blurs a hidden widget (a terminal reported too small
        # for a moment at start-up, a parent hidden): remember to take the focus back on Show
        if self.has_focus:
            self._refocus = True

    def on_show(self) -> None:
        if self._refocus and self.screen.focused is None:
            self.focus()
        self._refocus = False

    def on_blur(self) -> None:
        self.refresh()

    # ------------------------------------------------------------------ rendering

    def _columns(self, width: int) -> list[_Column]:
        id_w = 16 if width >= 110 else 9
        prog_w = 18 if width >= 130 else 14 if width >= 100 else 12
        age_w = 11
        att_w = self._att_w
        status_w = self._status_w
        fixed = 2 + id_w + 1 + status_w + 1 + prog_w + 1 + att_w + 1 + age_w + 1
        rest = max(0, width - fixed - 1)
        handler_w = min(30, max(10, int(rest * 0.45)))
        error_w = max(0, rest - handler_w)
        return [
            _Column("mark", "", 2),
            _Column("id", "ID", id_w),
            _Column("handler", "HANDLER", handler_w),
            _Column("status", "STATUS", status_w),
            _Column("progress", "PROGRESS", prog_w),
            _Column("attempts", "ATT", att_w, right=True),
            _Column("age", "TIME", age_w, right=True),
            _Column("error", "ERROR", error_w),
        ]

    def render_lines(self, crop: Region) -> list[Strip]:
        # what every line of one pass shares, worked out once (rich_style walks the ancestors)
        self._pass = (self.scrollable_content_region.width, self.rich_style, fmt.app_now(self.app))
        try:
            return super().render_lines(crop)
        finally:
            self._pass = None

    def render_line(self, y: int) -> Strip:
        if self._pass is not None:
            width, base, now = self._pass
        else:
            width, base, now = self.scrollable_content_region.width, self.rich_style, fmt.app_now(self.app)
        if width <= 0:
            return Strip.blank(0)
        if y == 0:
            return self._render_header(width)
        row = int(self.scroll_y) + y - 1
        if row >= self._total:
            if self._total == 0 and y == 2 and self._loaded_once:
                style = self.get_component_rich_style("job-table--empty")
                return Strip(
                    [Segment(self.empty_message.center(width)[:width], base + style)]
                ).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        job = self._rows.get(row)
        if job is None:
            style = self.get_component_rich_style("job-table--loading")
            return Strip([Segment("  …".ljust(width), base + style)])
        cursor = 0 if row != self.cursor else 1 if self.has_focus else 2
        marked = job.id in self.marked
        # what a drawn row depends on besides the job itself: a press repaints every row, and
        # building them again (Rich text, styles) was most of a frame's time
        sig = (
            width,
            cursor,
            marked,
            self.stale,
            fmt.job_age(job, now),
            fmt.waiting_label(job, now),
            self._att_w,
            self._status_w,
            base,
            self.app.theme,
            fmt.colours_generation(),
        )
        hit = self._lines.get(job.id)
        if hit is not None and hit[0] is job and hit[1] == sig:
            return hit[2]
        text = self._row_text(job, width, now)
        if self.stale:
            text.stylize(self.get_component_rich_style("job-table--dim"))
        if cursor:
            cls = "job-table--cursor" if cursor == 1 else "job-table--cursor-blur"
            text.stylize(self.get_component_rich_style(cls))
        elif marked:
            text.stylize(self.get_component_rich_style("job-table--marked"))
        segments = list(text.render(self.app.console))
        strip = Strip(segments).apply_style(base).adjust_cell_length(width, base)
        if len(self._lines) >= LINE_CACHE:
            self._lines.clear()
        self._lines[job.id] = (job, sig, strip)
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines.clear()

    def _render_header(self, width: int) -> Strip:
        style = self.rich_style + self.get_component_rich_style("job-table--header")
        parts = []
        sorted_col = COLUMN_SORT.get(self.sort_by, "")
        for col in self._columns(width):
            if col.width <= 0:
                continue
            label = col.label
            if col.key == sorted_col:
                label += " ▼" if self.sort_desc else " ▲"
            label = label.rjust(col.width) if col.right else label.ljust(col.width)
            parts.append(label[: col.width])
        line = " ".join(parts)
        return Strip([Segment(line.ljust(width)[:width], style)])

    def _row_text(self, job: Job, width: int, now: float | None = None) -> Text:
        if now is None:
            now = fmt.app_now(self.app)
        dim = self.get_component_rich_style("job-table--dim")
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        for i, col in enumerate(self._columns(width)):
            if col.width <= 0:
                continue
            if i:
                text.append(" ")
            cell = self._cell(job, col, now, dim)
            cell.truncate(col.width, overflow="ellipsis", pad=True)
            text.append_text(cell)
        return text

    def _cell(self, job: Job, col: _Column, now: float, dim: Style) -> Text:
        key = col.key
        if key == "mark":
            return Text("● " if job.id in self.marked else "  ", style=fmt.C("bold #bb9af7"))
        if key == "id":
            return Text(fmt.short_id(job.id, col.width), style=dim)
        if key == "handler":
            return Text(job.handler, style="bold" if not job.no_handler else fmt.C("italic #e0af68"))
        if key == "status":
            wait = fmt.waiting_label(job, now)
            if wait:  # queued for a future time: say when, and whether it is a retry's backoff
                if len(wait) > self._status_w:
                    self._status_w = len(wait)
                    self.refresh()
                return Text(wait, style=fmt.C("#7aa2f7"))
            icon = fmt.STATUS_ICONS.get(job.status, "?")
            return Text(f"{icon} {job.status}", style=fmt.STATUS_STYLES.get(job.status, ""))
        if key == "progress":
            return progress_text(job.progress_current, job.progress_total, col.width, status=job.status)
        if key == "attempts":
            # charged attempts of the current run against its budget, and uncharged interruptions
            # apart; an operator retry starts a new run (the whole history is in the detail view)
            label = fmt.attempts_label(job)
            if len(label) > self._att_w:
                self._att_w = len(label)
                self.refresh()
            used = fmt.charged_attempts(job)
            return Text(label.rjust(col.width), style="" if used <= 1 else fmt.C("#e0af68"))
        if key == "age":
            return Text(fmt.job_age(job, now).rjust(col.width), style=dim)
        if key == "error":
            if job.no_handler and not job.error:
                return Text("no handler routes this name", style=fmt.C("italic #e0af68"))
            held = fmt.pause_reason(job)
            if held:  # `⏸ paused … (handler paused)`: why it is held comes first
                last = job.error.strip().splitlines()[0] if job.error.strip() else ""
                text = Text(f"({held})", style=fmt.STATUS_STYLES["paused"])
                if last:
                    text.append(f" last attempt: {last}", style=dim)
                return text
            first = job.error.strip().splitlines()[0] if job.error.strip() else ""
            if not first or job.status in ("running", "completed"):
                return Text("")  # a running row's error is the previous attempt's: not this one's
            if job.status in ("queued", "paused"):
                return Text(f"last attempt: {first}", style=dim)
            return Text(first, style=fmt.C("#f7768e") if job.status == "failed" else dim)
        return Text("")
