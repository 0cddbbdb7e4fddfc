"""Snapshot of a job detail with children (counts by status, the Children tab) at 80×24 and
120×40, against a real server with built-in handlers and stable data (shared with
`python -m scripts.screenshots`). Update with
`pytest tests/test_tui_children_snapshots.py --snapshot-update` after an intended change.
"""

from __future__ import annotations

import asyncio

import pytest
import screenshot_module

shots = screenshot_module.load()

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(scope="module")
def children_server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    handle = shots.start_children_server(tmp_path_factory.mktemp("snap-children"))
    try:
        asyncio.run(shots.populate_children(handle.address, handle.token))
        yield handle
        asyncio.run(shots.stop_running(handle.address, handle.token))
    finally:
        handle.stop()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("scene", list(shots.CHILDREN_SCENES))
def test_children_snapshot(snap_compare, children_server, scene: str, size: tuple[int, int]) -> None:  # noqa: ANN001
    app = shots.make_app(children_server.address, children_server.token)

    async def run_before(pilot) -> None:  # noqa: ANN001
        await shots.CHILDREN_SCENES[scene](app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def test_detail_keys_jump_to_children_and_parent(children_server) -> None:  # noqa: ANN001
    """C lists the children on the jobs screen (`parent:ID`), enter opens one, P its parent."""
    app = shots.make_app(children_server.address, children_server.token)
    async with app.run_test(size=(120, 40)) as pilot:
        await shots.scene_job_children(app, pilot)
        app.paused = False
        parent_id = app.screen.job_id
        await pilot.press("C")
        screen = app.screen
        await shots.settle(
            app, pilot, lambda: hasattr(screen, "set_parent_filter") and screen.table.total == 6
        )
        assert screen.filter.line() == f"parent:{parent_id}"
        assert {screen.table.job_at(i).parent_job_id for i in range(6)} == {parent_id}
        await pilot.press("enter")
        await shots.settle(app, pilot, lambda: getattr(app.screen, "detail", None) is not None)
        child = app.screen
        assert child.detail.job.parent_job_id == parent_id and child.job_id != parent_id
        await pilot.press("P")
        await shots.settle(
            app, pilot, lambda: getattr(app.screen, "detail", None) is not None and app.screen is not child
        )
        assert app.screen.job_id == parent_id
