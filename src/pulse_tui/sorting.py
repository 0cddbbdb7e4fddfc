"""Job sort columns, shared by the server's stores and the console (which never imports the server).

A listing (``ListJobsRequest.sort_by``) may be sorted by one of ``SORT_NAMES``; ``""`` means newest
first. The stores map each name to SQL (``pulse.jobs.SORT_COLUMNS``); the console checks a `:sort`
argument and says how far an unindexed sort reaches.
"""

from __future__ import annotations

SORT_NAMES: tuple[str, ...] = (
    "id",
    "handler",
    "status",
    "priority",
    "attempts",
    "progress",
    "created",
    "started",
    "finished",
    "updated",
    "error",
)

# Columns no index orders: a sort by one of them ranks the newest SORT_SCOPE matching jobs only
# (one page of 1M jobs sorted by error took 1.4-2.8 s; within 50,000 it takes ~0.1 s).
INDEXED_SORTS = frozenset({"", "id", "handler", "status", "created"})
SORT_SCOPE = 50_000


def sort_scope(sort_by: str) -> int:
    """How many of the newest matching jobs a sort by this column ranks (0 = all)."""
    return 0 if sort_by in INDEXED_SORTS else SORT_SCOPE
