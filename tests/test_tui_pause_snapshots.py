"""Snapshot tests of held jobs and a paused handler at 80×24 and 120×40: jobs paused by an
operator, by a paused handler and by a reached budget, and the budget in the status bar.

A real server with the demo plugins and a plugin whose jobs report a cost (shared with
`python -m scripts.screenshots`). Update with
`pytest tests/test_tui_pause_snapshots.py --snapshot-update` after an intended change.
"""

from __future__ import annotations

import asyncio

import pytest

from scripts import screenshots as shots

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(scope="module")
def pause_server(tmp_path_factory: pytest.TempPathFactory):
    handle = shots.start_pause_server(tmp_path_factory.mktemp("snap-pause"))
    try:
        asyncio.run(shots.populate_paused(handle.address, handle.token))
        yield handle
    finally:
        handle.stop()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("scene", list(shots.PAUSE_SCENES))
def test_pause_snapshot(snap_compare, pause_server, scene: str, size: tuple[int, int]) -> None:
    app = shots.make_app(pause_server.address, pause_server.token)

    async def run_before(pilot) -> None:
        await shots.PAUSE_SCENES[scene](app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
