"""Job stores. `open_store(url)` picks the backend: a file path / `sqlite:PATH` → SQLite,
`postgresql://…` → PostgreSQL. `durability` ("full" | "normal") applies to SQLite; PostgreSQL keeps
its server's own settings (synchronous_commit, fsync); so does `lock_timeout` (seconds a write waits
for another process's lock)."""

from __future__ import annotations

from pulse_tui.pulse.store.base import Finish, Store


def open_store(url: str, *, node: str = "", durability: str = "full", lock_timeout: float = 5.0) -> Store:
    if url.startswith(("postgresql://", "postgres://")):
        from pulse_tui.pulse.store.postgres import PostgresStore

        return PostgresStore(url, node=node)
    from pulse_tui.pulse.store.sqlite import SQLiteStore

    return SQLiteStore(
        url.removeprefix("sqlite:"), node=node, durability=durability, lock_timeout=lock_timeout
    )


__all__ = ["Finish", "Store", "open_store"]
