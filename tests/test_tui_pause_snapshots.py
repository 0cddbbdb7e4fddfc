"""Snapshot tests of held jobs (120×40: jobs paused by an operator, by a paused handler and by a
reached budget, and the budget in the status bar) and a paused handler (80×24).

A real server with the demo plugins and a plugin whose jobs report a cost (shared with
`python -m scripts.screenshots`). Update with
`pytest tests/test_tui_pause_snapshots.py --snapshot-update` after an intended change.
"""

from __future__ import annotations

import asyncio

import pytest

from scripts import screenshots as shots

# one size each (the suite's time budget): the jobs list wide enough for the reasons, the handlers
# screen at the smallest size
CASES = [("jobs_paused", (120, 40)), ("handlers_paused", (80, 24))]


@pytest.fixture(scope="module")
def pause_server(tmp_path_factory: pytest.TempPathFactory):
    handle = shots.start_pause_server(tmp_path_factory.mktemp("snap-pause"))
    try:
        asyncio.run(shots.populate_paused(handle.address, handle.token))
        yield handle
    finally:
        handle.stop()


@pytest.mark.parametrize(("scene", "size"), CASES, ids=[f"{n}-{w}x{h}" for n, (w, h) in CASES])
def test_pause_snapshot(snap_compare, pause_server, scene: str, size: tuple[int, int]) -> None:
    app = shots.make_app(pause_server.address, pause_server.token)

    async def run_before(pilot) -> None:
        await shots.PAUSE_SCENES[scene](app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
