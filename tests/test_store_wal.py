"""SQLite store: WAL checkpoints run off the write path (issue 15: a checkpoint inside a commit
stalled every write queued behind it), and the WAL stays bounded.

Real store on a real file; the checkpointer's pacing is shortened so the tests stay fast.
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


async def _until(store: SQLiteStore, cond, timeout: float = 10.0) -> None:  # noqa: ANN001
    """Wait (on the store's checkpoint signal) until cond() holds."""
    assert store.checkpoint_done is not None
    async with asyncio.timeout(timeout):
        while not cond():
            store.checkpoint_done.clear()
            await store.checkpoint_done.wait()


async def test_commits_never_checkpoint_and_the_wal_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(S, "CHECKPOINT_SECS", 0.02)
    store = SQLiteStore(str(tmp_path / "pulse.db"))
    await store.open()
    wal = tmp_path / "pulse.db-wal"
    try:
        assert store._wconn is not None
        # the writer never checkpoints inside a commit
        assert store._wconn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        rounds = 6
        for r in range(rounds):
            runs = store.checkpoint_runs
            await store.insert(_jobs(f"r{r}-", ROUND_BYTES))
            await _until(store, lambda runs=runs: store.checkpoint_runs > runs)
        # each round's WAL frames were copied into the database by the checkpointer, so the next
        # round's first commit started the WAL over: it holds about one round, not all of them
        assert os.path.getsize(wal) < 2.5 * ROUND_BYTES, os.path.getsize(wal)
        assert _count(tmp_path) == rounds * len(_jobs("x", ROUND_BYTES))
    finally:
        await store.close()
    assert not wal.exists()  # closed: everything is in the database file itself
    assert _count(tmp_path) == rounds * len(_jobs("x", ROUND_BYTES))


async def test_a_wal_past_its_bound_is_truncated_when_the_writer_is_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(S, "CHECKPOINT_SECS", 0.02)
    monkeypatch.setattr(S, "WAL_LIMIT_BYTES", 256 << 10)
    store = SQLiteStore(str(tmp_path / "pulse.db"))
    await store.open()
    wal = tmp_path / "pulse.db-wal"
    reader = sqlite3.connect(tmp_path / "pulse.db", isolation_level=None)
    try:
        await store.insert(_jobs("a", 64 << 10))
        # a reader holding an old snapshot: passive checkpoints cannot copy past it, the WAL grows
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM jobs").fetchone()
        for r in range(4):
            await store.insert(_jobs(f"b{r}-", 256 << 10))
        await _until(store, lambda: store.wal_bytes > S.WAL_LIMIT_BYTES)
        assert store.wal_truncations == 0  # never while a reader is in the way … (retried later)
        reader.execute("COMMIT")  # … the reader lets go
        store._truncate_after = 0.0  # no need to wait out the retry delay in a test
        await store.insert(_jobs("c", 16 << 10))  # the next commit, then the writer is idle
        await _until(store, lambda: store.wal_truncations >= 1)
        assert os.path.getsize(wal) < S.WAL_LIMIT_BYTES
        assert _count(tmp_path) == len(_jobs("a", 64 << 10)) + 4 * 16 + 1
    finally:
        reader.close()
        await store.close()


async def test_sqlite_checkpoints_setting(tmp_path: Path):
    """`checkpoints="sqlite"` keeps SQLite's in-commit checkpoints (for before/after measurements)."""
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


def _count(d: Path) -> int:
    conn = sqlite3.connect(d / "pulse.db")
    try:
        return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    finally:
        conn.close()
