"""Snapshot tests of every screen at 80×24, 120×40 and 200×50, against a real server with stable data.

The data and the id/time stabilisation are shared with `python -m scripts.screenshots`.
Update with `pytest tests/test_tui_snapshots.py --snapshot-update` after an intended change.
"""

from __future__ import annotations

import asyncio
import html
import re
from pathlib import Path

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


SNAPSHOTS = Path(__file__).parent / "__snapshots__"
SVG_TEXT = re.compile(r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>')


@pytest.mark.parametrize(
    "svg",
    [
        "test_tui_snapshots/test_screen_snapshot[job_detail-80x24].svg",
        "test_tui_snapshots/test_screen_snapshot[job_detail-120x40].svg",
        "test_tui_children_snapshots/test_children_snapshot[job_children-80x24].svg",
        "test_tui_children_snapshots/test_children_snapshot[job_children-120x40].svg",
    ],
)
def test_detail_lines_start_at_the_value_column(svg: str) -> None:
    """In a job's detail the full-width lines (source · cost, children) and a progress without a
    bar start where the values above them do, in the picture too: a screenshot draws each run of
    text from its own x, so a line drawn from the left edge behind its blank label (or a dash
    right-aligned in the bar's 24 columns) lands wherever the blanks' font puts it."""
    spans = [
        (float(x), float(y), html.unescape(text).replace("\xa0", " "))
        for x, y, text in SVG_TEXT.findall((SNAPSHOTS / svg).read_text())
    ]

    def line(label: str) -> list[tuple[float, str]]:
        """The runs of text on `label`'s line, left to right."""
        y = next(y for _, y, t in spans if t.startswith(label + " "))
        return sorted((x, t) for x, yy, t in spans if yy == y)

    value_x = line("handler")[1][0]
    lines = [(x, t) for x, _, t in spans if t.lstrip().startswith("source ")]
    if any("—" in t for _, t in line("progress")):  # no bar: the dash alone
        lines.append(next((x, t) for x, t in line("progress") if "—" in t))
    if any(t.startswith("children ") for _, _, t in spans):
        lines.append(line("children")[1])
    for x, text in lines:
        assert x == value_x and not text.startswith(" "), (x, value_x, text.rstrip())


def _svg_lines(svg: str) -> list[str]:
    """The text of a snapshot, one string per screen line (runs of text joined left to right)."""
    rows: dict[str, list[tuple[float, str]]] = {}
    for x, y, text in SVG_TEXT.findall((SNAPSHOTS / svg).read_text()):
        rows.setdefault(y, []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    return [
        "".join(t for _, t in sorted(runs)) for _, runs in sorted(rows.items(), key=lambda r: float(r[0]))
    ]


@pytest.mark.parametrize(
    "svg",
    [
        "test_tui_snapshots/test_screen_snapshot[handlers-80x24].svg",
        "test_tui_pause_snapshots/test_pause_snapshot[handlers_paused-80x24].svg",
    ],
)
def test_handlers_at_80_columns_show_every_count(svg: str) -> None:
    """The handlers table's counts (queued, running, paused, failed) all fit 80 columns; with the
    PAUSED column added, FAILED had slid off the right edge (only a sideways scroll showed it).
    The plugins claiming a name are under a header that says so (it had been cut to "ALSO BY"):
    at 80 columns one CLAIMED BY column, the owner first; the two claimants of data.import show."""
    lines = _svg_lines(svg)
    header = next(line for line in lines if line.lstrip().startswith("HANDLER"))
    assert header.split() == "HANDLER CLAIMED BY CONFLICT QUEUED RUN PAUSED FAILED".split(), header
    row = next(line for line in lines if line.lstrip().startswith(("data.import", "‖ data.import")))
    assert "demo, importer" in row and "CONFLICT" in row, row


@pytest.mark.parametrize("size", ["120x40", "200x50"])
def test_handlers_wider_say_owner_and_also_claimed_by(size: str) -> None:
    lines = _svg_lines(f"test_tui_snapshots/test_screen_snapshot[handlers-{size}].svg")
    header = next(line for line in lines if line.lstrip().startswith("HANDLER"))
    assert "  OWNER  " in header and "  ALSO CLAIMED BY  " in header, header
    row = next(line for line in lines if line.lstrip().startswith("data.import "))
    assert row.split()[1:3] == ["demo", "importer"], row
