"""Snapshot of a job detail with children (counts by status, the Children tab) at 80×24 and
120×40, and of the jobs screen's split view on the parent (its children counted) at 200×50, against a real server with built-in handlers and stable data (shared with
`python -m scripts.screenshots`). Update with
`pytest tests/test_tui_children_snapshots.py --snapshot-update` after an intended change.
"""

from __future__ import annotations

import asyncio

import pytest

from scripts import screenshots as shots

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(scope="module")
def children_server(tmp_path_factory: pytest.TempPathFactory):
    handle = shots.start_children_server(tmp_path_factory.mktemp("snap-children"))
    try:
        asyncio.run(shots.populate_children(handle.address, handle.token))
        yield handle
        asyncio.run(shots.stop_running(handle.address, handle.token))
    finally:
        handle.stop()


SCENES = {**shots.CHILDREN_SCENES, **shots.CHILDREN_WIDE_SCENES}
CASES = [(scene, size) for scene in shots.CHILDREN_SCENES for size in SIZES]
CASES += [(scene, (200, 50)) for scene in shots.CHILDREN_WIDE_SCENES]  # the split view


@pytest.mark.parametrize(
    ("scene", "size"), CASES, ids=lambda c: c if isinstance(c, str) else f"{c[0]}x{c[1]}"
)
def test_children_snapshot(snap_compare, children_server, scene: str, size: tuple[int, int]) -> None:
    app = shots.make_app(children_server.address, children_server.token)

    async def run_before(pilot) -> None:
        await SCENES[scene](app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def _until(pilot, cond, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "the console did not get there"
        await pilot.pause(0.02)


async def test_detail_keys_jump_to_children_and_parent(children_server) -> None:
    """C lists the children on the jobs screen (`parent:ID`), enter opens one, P its parent."""
    from pulse_tui.screens.job_detail import JobDetailScreen
    from pulse_tui.screens.jobs import JobsScreen

    app = shots.make_app(children_server.address, children_server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.wait_connected(10)
        jobs = app.screen
        # the count can arrive before the page: wait for the rows themselves
        await _until(pilot, lambda: all(jobs.table.job_at(i) is not None for i in range(7)))
        parent_id = next(
            jobs.table.job_at(i).id for i in range(7) if jobs.table.job_at(i).status == "running"
        )
        app.push_screen(JobDetailScreen(parent_id))
        await _until(pilot, lambda: bool(getattr(app.screen, "child_rows", None)))
        await pilot.press("C")
        await _until(
            pilot,
            lambda: (
                isinstance(app.screen, JobsScreen)
                and app.screen.table.total == 6
                and all(app.screen.table.job_at(i) is not None for i in range(6))
            ),
        )
        assert jobs.filter.line() == f"parent:{parent_id}"
        assert {jobs.table.job_at(i).parent_job_id for i in range(6)} == {parent_id}
        await pilot.press("enter")
        await _until(pilot, lambda: getattr(app.screen, "detail", None) is not None)
        child = app.screen
        assert child.detail.job.parent_job_id == parent_id and child.job_id != parent_id
        await pilot.press("P")
        await _until(
            pilot, lambda: app.screen is not child and getattr(app.screen, "detail", None) is not None
        )
        assert app.screen.job_id == parent_id
