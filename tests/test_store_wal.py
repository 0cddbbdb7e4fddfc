"""SQLite store: WAL checkpoints run beside the writer (issue 15: a full checkpoint inside a commit
stalled every write queued behind it), and the WAL stays bounded.

Real store on a real file; the checkpointer's pacing and the bound are shortened so the tests
stay fast.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path

import pytest

from pulse_tui.pulse.jobs import Job
from pulse_tui.pulse.store import sqlite as S
from pulse_tui.pulse.store.sqlite import SQLiteStore

ROUND_BYTES = 1 << 20  # payload bytes written per round


def _jobs(prefix: str, total_bytes: int, size: int = 16 << 10) -> list[Job]:
    now = time.time()
    body = b'{"x":"' + b"a" * (size - 8) + b'"}'
    return [
        Job(id=f"{prefix}{i}", handler="h", payload=body, created_at=now, updated_at=now, run_at=now)
        for i in range(total_bytes // size)
    ]


def _count(d: Path) -> int:
    conn = sqlite3.connect(d / "pulse.db")
    try:
        return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    finally:
        conn.close()


async def test_the_checkpointer_copies_the_wal_so_it_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(S, "CHECKPOINT_SECS", 0.02)
    store = SQLiteStore(str(tmp_path / "pulse.db"))
    await store.open()
    wal = tmp_path / "pulse.db-wal"
    rounds, per_round = 6, len(_jobs("x", ROUND_BYTES))
    try:
        assert (
            store._wconn is not None
        )  # the writer checkpoints only at the bound (16 MB), not at 1,000 pages
        assert store._wconn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == S.WAL_AUTOCHECKPOINT_PAGES
        assert store.checkpoint_done is not None
        for r in range(rounds):
            runs = store.checkpoint_runs
            await store.insert(_jobs(f"r{r}-", ROUND_BYTES))
            async with asyncio.timeout(10):
                while store.checkpoint_runs == runs:
                    store.checkpoint_done.clear()
                    await store.checkpoint_done.wait()
        # each round's frames were copied into the database by the checkpointer, so the next round's
        # first commit started the WAL over: it holds about one round, not all six
        assert os.path.getsize(wal) < 2.5 * ROUND_BYTES, os.path.getsize(wal)
        assert _count(tmp_path) == rounds * per_round
    finally:
        await store.close()
    assert not wal.exists()  # closed: everything is in the database file itself
    assert _count(tmp_path) == rounds * per_round


async def test_the_writers_own_checkpoint_bounds_the_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """With the checkpointer held back (one checkpoint, then a long pause), the writer's checkpoint
    at WAL_AUTOCHECKPOINT_PAGES still keeps the WAL from growing with every write."""
    monkeypatch.setattr(S, "CHECKPOINT_SECS", 600.0)
    monkeypatch.setattr(S, "WAL_AUTOCHECKPOINT_PAGES", 100)  # 400 KB
    store = SQLiteStore(str(tmp_path / "pulse.db"))
    await store.open()
    wal = tmp_path / "pulse.db-wal"
    try:
        for r in range(16):
            await store.insert(_jobs(f"b{r}-", 256 << 10))  # 4 MB in all
        assert os.path.getsize(wal) < 1 << 20, os.path.getsize(wal)
        assert _count(tmp_path) == 16 * 16
    finally:
        await store.close()


async def test_sqlite_checkpoints_setting(tmp_path: Path):
    """`checkpoints="sqlite"` keeps SQLite's in-commit checkpoints alone (before/after measurements)."""
    store = SQLiteStore(str(tmp_path / "pulse.db"), checkpoints="sqlite")
    await store.open()
    try:
        assert store._wconn is not None
        assert store._wconn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
        assert store.checkpoint_done is None
    finally:
        await store.close()
    with pytest.raises(ValueError, match="checkpoints must be"):
        SQLiteStore(str(tmp_path / "x.db"), checkpoints="never")
