"""Snapshot tests of every screen at 80×24, 120×40 and 200×50, against a real server with stable data.

The data and the id/time stabilisation are shared with `python -m scripts.screenshots`.
Update with `pytest tests/test_tui_snapshots.py --snapshot-update` after an intended change.
"""

from __future__ import annotations

import asyncio

import pytest

from scripts import screenshots as shots

SIZES = [(80, 24), (120, 40), (200, 50)]  # 200×50: the split view (list and detail side by side)


@pytest.fixture(scope="module")
def stable_server(tmp_path_factory: pytest.TempPathFactory):
    handle = shots.start_server(tmp_path_factory.mktemp("snap"))
    try:
        asyncio.run(shots.populate(handle.address, handle.token))
        yield handle
        asyncio.run(shots.stop_running(handle.address, handle.token))
    finally:
        handle.stop()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("scene", list(shots.SCENES))
def test_screen_snapshot(snap_compare, stable_server, scene: str, size: tuple[int, int]) -> None:
    app = shots.make_app(stable_server.address, stable_server.token)

    async def run_before(pilot) -> None:
        await shots.SCENES[scene](app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
