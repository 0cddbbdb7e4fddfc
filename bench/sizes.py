"""Problem sizes, full and quick, in one place so every measure of one run agrees."""

from __future__ import annotations


def drain_n(quick: bool) -> int:
    """Jobs drained by the peer and by ours (the same N for both)."""
    return 2_000 if quick else 20_000


def enqueue_n(quick: bool) -> int:
    return 3_000 if quick else 20_000


def latency_samples(quick: bool) -> int:
    return 200 if quick else 2_000


def tui_store_rows(quick: bool) -> int:
    return 200_000 if quick else 1_000_000


def rss_growth_points(quick: bool) -> tuple[int, int]:
    """(baseline jobs, final jobs) for server_rss_growth_pct_200k."""
    return (2_000, 20_000) if quick else (10_000, 200_000)


def progress_samples(quick: bool) -> int:
    return 20 if quick else 100
