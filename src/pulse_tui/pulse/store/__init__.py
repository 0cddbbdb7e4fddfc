"""Job stores. `open_store(url)` picks the backend: a file path / `sqlite:PATH` → SQLite,
`postgresql://…` → PostgreSQL. `durability` ("full" | "normal") applies to SQLite; PostgreSQL keeps
its server's own settings (synchronous_commit, fsync)."""

from __future__ import annotations

from pulse_tui.pulse.store.base import Finish, Store


def open_store(url: str, *, node: str = "", durability: str = "full") -> Store:
    if url.startswith(("postgresql://", "postgres://")):
        from pulse_tui.pulse.store.postgres import PostgresStore

        return PostgresStore(url, node=node)
    from pulse_tui.pulse.store.sqlite import SQLiteStore

    return SQLiteStore(url.removeprefix("sqlite:"), node=node, durability=durability)


__all__ = ["Finish", "Store", "open_store"]
