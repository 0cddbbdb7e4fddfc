"""The virtual job table in isolation, fed by a synthetic page source of a million jobs."""

from __future__ import annotations

import asyncio
import time

from textual.app import App, ComposeResult

from pulse_tui.protocol import operator_pb2
from pulse_tui.widgets.job_table import PAGE, JobTable

N = 1_000_000


class Source:
    """Newest first: row i holds seq N - i. Records how it was asked (keyset vs offset)."""

    def __init__(self, n: int = N) -> None:
        self.n = n
        self.calls: list[tuple[int, int | None]] = []

    def job(self, seq: int) -> operator_pb2.Job:
        return operator_pb2.Job(
            id=f"job{seq:07d}", seq=seq, handler="demo.sleep", status="queued", created_at=1.0, max_attempts=3
        )

    async def __call__(
        self, offset: int, after_seq: int | None, limit: int
    ) -> tuple[list[operator_pb2.Job], bool]:
        self.calls.append((offset, after_seq))
        start = self.n - after_seq + 1 if after_seq is not None else offset
        seqs = [self.n - i for i in range(start, min(start + limit, self.n))]
        return [self.job(s) for s in seqs], start + limit < self.n


class TableApp(App[None]):
    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        yield JobTable(self.source)

    def now(self) -> float:
        return 100.0


async def _loaded(pilot, table: JobTable, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout  # a deadline, not a count of pauses: a loaded machine is slow
    while table.fetching:
        if time.monotonic() > deadline:
            raise AssertionError("table kept loading")
        await pilot.pause(0.01)


async def test_million_rows_open_with_one_page_and_jump_by_offset() -> None:
    source = Source()
    app = TableApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        table.reset(N, exact=True)
        await _loaded(pilot, table)
        # the page on screen, then the next one prefetched by keyset (PageDown paints from cache)
        assert table.loaded_rows == 2 * PAGE and len(source.calls) == 2
        assert source.calls == [(0, None), (PAGE, N - PAGE + 1)]
        assert table.current_job.seq == N
        await pilot.press("pagedown")
        await _loaded(pilot, table)
        await pilot.press("end")
        await _loaded(pilot, table)
        assert table.cursor == N - 1 and table.current_job.seq == 1
        assert source.calls[-1][1] is None and source.calls[-1][0] > N - PAGE * 2  # an offset jump
        assert table.loaded_rows < 5 * PAGE  # never loads everything
        await pilot.press("home")
        await _loaded(pilot, table)
        await pilot.press("pagedown", "pagedown", "pagedown", "pagedown")  # continues with keyset pages
        await _loaded(pilot, table)
        assert table.cursor > PAGE
        assert any(after is not None for _offset, after in source.calls)
        assert table.current_job.seq == N - table.cursor


async def test_live_insert_keeps_cursor_on_its_job() -> None:
    source = Source(500)
    app = TableApp(source)
    async with app.run_test(size=(100, 20)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        table.reset(500, exact=True)
        await _loaded(pilot, table)
        for _ in range(30):
            await pilot.press("down")
        before = table.current_job
        scroll = table.scroll_y
        added = table.upsert([source.job(501), source.job(502)])
        assert added == 2 and table.total == 502
        assert table.current_job.id == before.id  # the cursor never jumps to another job
        assert table.scroll_y == scroll + 2  # and the viewport moves with it
        changed = operator_pb2.Job()
        changed.CopyFrom(before)
        changed.status = "running"
        table.upsert([changed])
        assert table.current_job.status == "running"
        table.toggle_mark()
        assert before.id in table.marked


async def test_empty_table_message_and_first_job() -> None:
    source = Source(0)
    app = TableApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(JobTable)
        table.reset(None)
        await _loaded(pilot, table)
        assert table.total == 0
        table.upsert([source.job(1)])
        assert table.total == 1 and table.current_job.seq == 1


class HeldSource(Source):
    """A Source whose pages wait for `release` while `hold` is set."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.hold = False
        self.release = asyncio.Event()

    async def __call__(
        self, offset: int, after_seq: int | None, limit: int
    ) -> tuple[list[operator_pb2.Job], bool]:
        if self.hold:
            await self.release.wait()
        return await super().__call__(offset, after_seq, limit)


async def test_keys_reach_the_table_while_a_page_loads() -> None:
    """A page in flight is not Textual's `loading` (a loading widget cannot be focused and its key
    bindings are skipped): the cursor still moves while a jump's page is on its way."""
    source = HeldSource(10_000)
    app = TableApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        table.reset(source.n, exact=True)
        await _loaded(pilot, table)
        source.hold = True
        await pilot.press("end")  # the last page is asked for and held
        assert table.cursor == source.n - 1 and table.fetching
        await pilot.press("home")  # the first page is loaded: the cursor goes there at once
        assert table.cursor == 0 and table.has_focus
        source.release.set()
        await _loaded(pilot, table)


async def test_neighbouring_pages_are_prefetched() -> None:
    """PageDown and PageUp paint from the cache: the screens before and after the one shown are
    fetched ahead, so while every further page is held the cursor still lands on loaded rows."""
    source = HeldSource(10_000)
    app = TableApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one(JobTable)
        table.focus()
        table.reset(source.n, exact=True)
        await _loaded(pilot, table)
        for keys in (("pagedown", "pagedown"), ("pageup", "pageup")):
            table._move(5000)  # a jump (an offset page), then the pages around it
            await _loaded(pilot, table)
            if keys[0] == "pageup":
                table._move(int(table.scroll_y))  # the cursor on the top row
            source.release = asyncio.Event()
            source.hold = True  # from here every page waits: only rows fetched ahead can paint
            for key in keys:
                await pilot.press(key)
                job = table.current_job
                assert job is not None and job.seq == source.n - table.cursor, (key, table.cursor)
            source.hold = False
            source.release.set()
            await _loaded(pilot, table)
        assert table.loaded_rows < 8 * PAGE  # ahead by a screen or two, never everything


def test_status_tabs_with_paused_fit_80_columns() -> None:
    """Every status tab, Paused included, with the widest counts (capped) fits an 80-column
    terminal in the short form; the Paused tab shows only with paused jobs or when chosen."""
    from pulse_tui.widgets.status_tabs import StatusTabs

    tabs = StatusTabs()
    big = {s: 99_999 for s in ("queued", "running", "failed", "completed", "cancelled", "paused")}
    tabs.set_reactive(StatusTabs.counts, big)
    tabs.set_reactive(StatusTabs.capped, True)
    tabs.set_reactive(StatusTabs.cap, 10_000)
    for active in ("all", "paused", "cancelled"):
        tabs.set_reactive(StatusTabs.active, active)
        short = tabs._build(short=True)
        assert short.cell_len <= 80 and "Pause 10k+" in short.plain, short.plain
    tabs.set_reactive(StatusTabs.counts, {**big, "paused": 0})
    tabs.set_reactive(StatusTabs.active, "all")
    assert "Pause" not in tabs._build(short=True).plain
    tabs.set_reactive(StatusTabs.active, "paused")
    assert "Pause 0" in tabs._build(short=True).plain
