"""Snapshot tests of the handler editor and the `:ix` "not found, create?" prompt at 80×24 and 120×40.

A real server with the bundled python plugin and a fixed set of handler scripts (shared with
`python -m scripts.screenshots`). Update with
`pytest tests/test_tui_editor_snapshots.py --snapshot-update` after an intended change.
"""

from __future__ import annotations

import asyncio

import pytest

from scripts import screenshots as shots

SIZES = [(80, 24), (120, 40)]


@pytest.fixture(scope="module")
def editor_server(tmp_path_factory: pytest.TempPathFactory):
    handle = shots.start_editor_server(tmp_path_factory.mktemp("snap-editor"))
    try:
        asyncio.run(shots.populate_scripts(handle.address, handle.token))
        yield handle
    finally:
        handle.stop()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("scene", list(shots.EDITOR_SCENES))
def test_editor_snapshot(snap_compare, editor_server, scene: str, size: tuple[int, int]) -> None:
    app = shots.make_app(editor_server.address, editor_server.token)

    async def run_before(pilot) -> None:
        await shots.EDITOR_SCENES[scene](app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
