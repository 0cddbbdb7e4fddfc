"""Build a SQLite job store of N rows fast: SQLiteStore creates the schema, then plain sqlite3
executemany fills `jobs` in one transaction with the secondary indexes dropped and recreated
after (a sort per index instead of N b-tree inserts each).

`python -m bench.tui_store PATH N` (the TUI measure runs it in a child process so the rows built
here never count towards the TUI's RSS).

Mix: 90 % completed, 7 % failed (with an error), 2 % cancelled, 1 % queued for a handler no
server routes (so they stay queued), over six handler names; ids time-ordered with the layout of new_job_id() (UUIDv7, 32 hex digits).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pulse_tui.pulse.store.sqlite import SQLiteStore

HANDLERS = ("demo.echo", "demo.sleep", "python.report", "data.import", "pulse.noop", "python.script")
CHUNK = 50_000


def rows(n: int, t_end: float) -> Iterator[tuple]:
    t0 = t_end - n * 0.01  # one job every 10 ms, ending now
    for i in range(n):
        created = t0 + i * 0.01
        k = i % 100
        if k < 90:
            status, error, completed, plugin = "completed", "", created + 0.005, "demo"
        elif k < 97:
            status, error, completed, plugin = (
                "failed",
                f"boom {i % 13}: upstream said no",
                created + 0.005,
                "demo",
            )
        elif k < 99:
            status, error, completed, plugin = "cancelled", "cancelled by operator", created + 0.002, ""
        else:
            status, error, completed, plugin = "queued", "", 0.0, ""
        handler = "bench.unrouted" if status == "queued" else HANDLERS[i % len(HANDLERS)]
        started = 0.0 if status == "queued" else created + 0.001
        attempts = 0 if status == "queued" else (3 if status == "failed" else 1)
        yield (
            f"{(int(created * 1000) & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | 0b10 << 62 | i:032x}",
            handler,
            status,
            b'{"n": %d}' % i,
            error,
            1 if status == "completed" else 0,
            1,
            attempts,
            attempts,
            created,
            started,
            completed,
            completed or created,
            created,
            plugin,
        )


def build(path: Path, n: int) -> float:
    t0 = time.perf_counter()

    async def schema() -> None:
        store = SQLiteStore(str(path))
        await store.open()
        await store.close()

    asyncio.run(schema())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-200000")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='jobs' AND sql IS NOT NULL"
    ).fetchall()
    conn.execute("BEGIN")
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    sql = (
        "INSERT INTO jobs (id, handler, status, payload, error, progress_current, progress_total, attempts,"
        " run_attempts, created_at, started_at, completed_at, updated_at, run_at, plugin)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    )
    gen = rows(n, time.time())
    while True:
        chunk = [r for _, r in zip(range(CHUNK), gen, strict=False)]
        if not chunk:
            break
        conn.executemany(sql, chunk)
    for _, ddl in indexes:
        conn.execute(ddl)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - t0


if __name__ == "__main__":
    secs = build(Path(sys.argv[1]), int(sys.argv[2]))
    print(f"BUILT {secs:.3f}", flush=True)
