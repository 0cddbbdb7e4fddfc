"""Big stores in the jobs table: End/Home by keyset from both ends past the count cap, and the
table keeping (or taking back) the keyboard focus.

The real-server tests start `pulse-tui serve` on a SQLite file filled beforehand with more jobs
than the count cap (rows inserted straight into the store, like `bench/tui_store.py` does for a
million), so the tabs say "10k+" and the table's total is only a lower bound.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ServerHandle, start_server_process
from test_tui import started, until
from textual.app import App, ComposeResult

from pulse_tui.app import PulseApp
from pulse_tui.client import PulseClient
from pulse_tui.protocol import operator_pb2
from pulse_tui.pulse.store.sqlite import SQLiteStore
from pulse_tui.screens.jobs import COUNT_CAP, JobsScreen
from pulse_tui.widgets.job_table import GROW, PAGE, JobTable

BIG = COUNT_CAP + 2_345


def build_store(path: Path, n: int) -> None:
    """n finished jobs, seq 1 (oldest) … n (newest); every 10th failed."""

    async def schema() -> None:
        store = SQLiteStore(str(path))
        await store.open()
        await store.close()

    asyncio.run(schema())
    now = time.time()
    rows = []
    for i in range(n):
        created = now - (n - i) * 0.01
        failed = i % 10 == 9
        rows.append(
            (
                f"big{i + 1:013d}",
                "demo.sleep" if i % 2 else "demo.echo",
                "failed" if failed else "completed",
                b"{}",
                f"boom {i + 1}" if failed else "",
                1,
                1,
                1,
                1,
                created,
                created,
                created + 0.005,
                created + 0.005,
                created,
                "demo",
            )
        )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO jobs (id, handler, status, payload, error, progress_current, progress_total,"
        " attempts, run_attempts, created_at, started_at, completed_at, updated_at, run_at, plugin)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.execute("COMMIT")
    conn.close()


@pytest.fixture(scope="module")
def big_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    base = tmp_path_factory.mktemp("big")
    (base / "data").mkdir()
    build_store(base / "data" / "pulse.db", BIG)
    handle = start_server_process(base)
    yield handle
    handle.stop()


def visible_rows(t: JobTable) -> list[operator_pb2.Job]:
    first = int(t.scroll_y)
    height = t.scrollable_content_region.height - 1  # minus the header line
    return [j for r in range(first, first + height) if (j := t.job_at(r)) is not None]


async def test_end_and_home_past_the_count_cap(big_server: ServerHandle) -> None:
    client = PulseClient(big_server.address, big_server.token)
    await client.probe()
    app = PulseApp(big_server.address, big_server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot)
        await until(pilot, lambda: t.job_at(0) is not None and t.total >= COUNT_CAP, "first page, capped")
        assert t.job_at(0).seq == BIG and not t.exact  # newest first; the count is a lower bound
        await pilot.press("end")
        await until(pilot, lambda: t.current_job is not None, "the bottom page")
        assert t.tail_mode and t.cursor == t.total - 1
        assert t.current_job.seq == 1  # the oldest job, not the 10,000th newest
        assert t.loaded_rows <= 2 * PAGE
        seqs = [j.seq for j in visible_rows(t)]
        assert seqs == sorted(seqs, reverse=True) and seqs[-1] == 1  # newest above, oldest at the bottom
        await pilot.press("pageup", "pageup", "pageup", "up")
        await until(pilot, lambda: t.current_job is not None and not t.fetching, "paged up")
        assert t.current_job.seq == t.total - t.cursor  # bottom-anchored rows stay consistent
        rows = visible_rows(t)
        assert all(a.seq == b.seq + 1 for a, b in zip(rows, rows[1:], strict=False))

        # live updates in tail mode: the cursor stays on its job and on its row (a job far above
        # the rows held arrives as a change elsewhere: the screen refetches its rows from the bottom)
        here, row, scroll = t.current_job.id, t.cursor, t.scroll_y
        screen: JobsScreen = app.screen  # type: ignore[assignment]
        refetched: list[int] = []
        refetch = screen.others_changed

        def spy(near: bool) -> None:
            refetched.append(t.generation)
            refetch(near)

        screen.others_changed = spy  # type: ignore[method-assign]
        job = await client.enqueue("pulse.noop")
        await until(pilot, lambda: refetched, "the new job noticed")
        await until(pilot, lambda: t.generation > refetched[0] and not t.fetching, "rows refetched")
        await until(pilot, lambda: t.current_job is not None, "the rows back")
        assert (t.current_job.id, t.cursor, t.scroll_y) == (here, row, scroll)
        assert t.tail_mode

        await pilot.press("home")
        await until(pilot, lambda: t.current_job is not None, "the top page again")
        assert not t.tail_mode and t.cursor == 0
        await until(pilot, lambda: t.current_job.id == job.id, "the newest job on top")
        await pilot.press("down")
        assert t.current_job.seq == BIG
        assert isinstance(app.focused, JobTable)
    await client.close()


async def test_table_takes_the_focus_back(big_server: ServerHandle) -> None:
    app = PulseApp(big_server.address, big_server.token)
    async with app.run_test(size=(100, 30)) as pilot:
        t = await started(app, pilot)
        await until(pilot, lambda: t.job_at(1) is not None, "first page")
        assert app.focused is t
        # a terminal reported too small for a moment hides the table, which blurs it
        await pilot.resize_terminal(40, 10)
        await until(pilot, lambda: app.focused is None, "the table hidden and blurred")
        await pilot.resize_terminal(100, 30)
        await until(pilot, lambda: app.focused is t, "focus back on the table")
        await pilot.press("down")
        assert t.cursor == 1

        # nothing focused at all (any other cause): the next page load gives the table the keys
        app.screen.set_focus(None)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.focused is t, "focus after the page loaded")
        await pilot.press("down")
        assert t.cursor == 2

        # and when the screen is resumed (back from another mode)
        await pilot.press("colon", *"plugins", "enter")
        await until(pilot, lambda: not isinstance(app.screen, JobsScreen), "plugins screen")
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), "jobs again")
        await until(pilot, lambda: app.focused is t, "focus on resume")
        await pilot.press("up")
        assert t.cursor == 1


class Source:
    """n jobs, seq 1 … n, with oldest_first pages (what ListJobs does)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls: list[tuple[int, int | None, bool]] = []

    def job(self, seq: int) -> operator_pb2.Job:
        return operator_pb2.Job(id=f"job{seq:07d}", seq=seq, handler="demo.sleep", status="completed")

    async def __call__(
        self, offset: int, after_seq: int | None, limit: int, *, oldest_first: bool = False
    ) -> tuple[list[operator_pb2.Job], bool]:
        self.calls.append((offset, after_seq, oldest_first))
        if oldest_first:
            start = after_seq + 1 if after_seq is not None else 1 + offset
            seqs = list(range(start, min(start + limit, self.n + 1)))
            return [self.job(s) for s in seqs], start + limit <= self.n
        start = after_seq - 1 if after_seq is not None else self.n - offset
        seqs = list(range(start, max(start - limit, 0), -1))
        return [self.job(s) for s in seqs], start - limit >= 1


class TableApp(App[None]):
    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        yield JobTable(self.source)


async def _settled(pilot, t: JobTable) -> None:
    await until(pilot, lambda: not t.fetching, "pages loaded")


async def test_tail_window_grows_upwards_until_the_newest_job() -> None:
    n = 10_000 + 3 * GROW + 37
    source = Source(n)
    app = TableApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(JobTable)
        t.focus()
        t.reset(10_000, exact=False)  # a capped count
        await _settled(pilot, t)
        await pilot.press("end")
        await _settled(pilot, t)
        assert t.tail_mode and t.current_job.seq == 1
        assert source.calls[-1] == (0, None, True)  # the oldest page, by keyset from the other end
        await pilot.press("up", "up")
        await _settled(pilot, t)
        assert t.current_job.seq == 3

        # the scrollbar dragged to the top of the window: more jobs exist above, the window grows
        # and the jobs on screen stay where they are
        t.scroll_to(y=0, animate=False, immediate=True)
        await _settled(pilot, t)
        assert t.tail_mode and t.total == 10_000 + GROW
        assert t.scroll_y == GROW and t.current_job.seq == 3
        assert any(after is not None and oldest for _o, after, oldest in source.calls)  # keyset upwards
        for _ in range(10):
            if not t.tail_mode:
                break
            t.scroll_to(y=0, animate=False, immediate=True)
            await _settled(pilot, t)
        # the newest job was found: the total is exact and the table an ordinary one again
        assert not t.tail_mode and t.exact and t.total == n
        assert t.job_at(0).seq == n and t.current_job.seq == 3 and t.cursor == n - 3
        await pilot.press("end")
        await _settled(pilot, t)
        assert t.current_job.seq == 1 and t.cursor == n - 1

        # live insert in head mode still keeps the cursor on its job
        here = t.current_job.id
        assert t.upsert([source.job(n + 1)]) == 1
        assert t.current_job.id == here and t.total == n + 1


async def test_resync_in_tail_mode_keeps_the_bottom_window() -> None:
    source = Source(20_000)
    app = TableApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        t = app.query_one(JobTable)
        t.focus()
        t.reset(10_000, exact=False)
        await _settled(pilot, t)
        await pilot.press("end", "up")
        await _settled(pilot, t)
        assert t.current_job.seq == 2
        assert t.upsert([source.job(20_001)]) == 0  # not inserted: its row is unknown in tail mode
        t.reset(None, exact=False, keep_cursor=True)  # what a resync does
        await _settled(pilot, t)
        assert t.tail_mode and t.current_job.seq == 2
        t.set_total(10_000, exact=False)  # capped counts leave the window alone
        assert t.tail_mode and t.current_job.seq == 2 and t.cursor == 9_998
        t.set_total(20_000, exact=True)  # an exact count re-anchors: same job, right row
        await _settled(pilot, t)
        assert not t.tail_mode and t.cursor == 19_998 and t.current_job.seq == 2
        assert t.job_at(int(t.scroll_y)).seq == 20_000 - int(t.scroll_y)
        await pilot.press("end")
        await _settled(pilot, t)
        assert t.current_job.seq == 1
        await pilot.press("end")  # exact now: End stays an ordinary jump
        assert not t.tail_mode
        await pilot.press("home")
        await _settled(pilot, t)
        assert not t.tail_mode and t.current_job.seq == 20_000
