"""Job stores. `open_store(url)` picks the backend: a file path / `sqlite:PATH` → SQLite,
`postgresql://…` → PostgreSQL. `durability` ("full" | "normal") applies to SQLite; PostgreSQL keeps
its server's own settings (synchronous_commit, fsync); so does `lock_timeout` (seconds a write waits
for another process's lock)."""

from __future__ import annotations

import re

from pulse_tui.pulse.store.base import Finish, Store

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")


def store_url_problem(url: str) -> str:
    """Why `url` names no store we open ("" = it does): a SQLite path, sqlite:PATH (also
    sqlite:///PATH) or a postgresql:// URL; another scheme (mysql://…) is not a file name."""
    m = _SCHEME.match(url)
    if m and m.group(1) not in ("sqlite", "postgresql", "postgres"):  # as open_store reads them
        return f"{url!r}: expected a SQLite path, sqlite:PATH or postgresql://…"
    return ""


def open_store(url: str, *, node: str = "", durability: str = "full", lock_timeout: float = 5.0) -> Store:
    if url.startswith(("postgresql://", "postgres://")):
        from pulse_tui.pulse.store.postgres import PostgresStore

        return PostgresStore(url, node=node)
    from pulse_tui.pulse.store.sqlite import SQLiteStore

    return SQLiteStore(
        url.removeprefix("sqlite:"), node=node, durability=durability, lock_timeout=lock_timeout
    )


__all__ = ["Finish", "Store", "open_store", "store_url_problem"]
