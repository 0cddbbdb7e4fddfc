"""The keys of results.json, the targets (issues 7 and 19), and RESULTS.md rendering."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bench.common import fmt_num

KEYS: tuple[str, ...] = (
    "peer_huey_full_drain_jobs_per_s",
    "peer_huey_normal_drain_jobs_per_s",
    "peer_huey_process_drain_jobs_per_s",
    "peer_dramatiq_drain_jobs_per_s",
    "peer_celery_drain_jobs_per_s",
    "peer_pgqueuer_drain_jobs_per_s",
    "peer_procrastinate_drain_jobs_per_s",
    "inproc_full_drain_jobs_per_s",
    "inproc_normal_drain_jobs_per_s",
    "plugin_unary_drain_jobs_per_s",
    "plugin_batched_drain_jobs_per_s",
    "plugin_batched_prefetch_drain_jobs_per_s",
    "pg_inproc_drain_jobs_per_s",
    "watchers64_drain_ratio",
    "watchers64_all_events_drain_ratio",
    "bulk_enqueue_sqlite_jobs_per_s",
    "bulk_enqueue_pg_jobs_per_s",
    "peer_pgqueuer_enqueue_jobs_per_s",
    "peer_huey_drain_jobs_per_s",
    "inproc_drain_jobs_per_s",
    "plugin_drain_jobs_per_s",
    "enqueue_jobs_per_s",
    "latency_enqueue_to_start_p50_ms",
    "latency_enqueue_to_start_p99_ms",
    "tui_first_paint_s_1m",
    "tui_keypress_p95_ms_1m",
    "tui_rss_mb_1m",
    "live_progress_lag_p95_ms",
    "server_rss_growth_pct_200k",
    "pg_one_node_jobs_per_s",
    "pg_two_nodes_jobs_per_s",
    "pg_two_vs_one_ratio",
    "metrics_drain_overhead_pct",
    "metrics_drain_wall_overhead_pct",
    "metrics_scrape_ms_1k_handlers",
    "schedules_idle_cpu_s_per_min_10k",
    "schedules_lateness_p99_ms_10k",
)

EARLIER = "(measured"  # a figure kept from an earlier run: its note ends "(measured <date>)"
_EARLIER_OLD = re.compile(r"(\s*\(from an earlier run\))+|\s*\(measured [^)]*\)")


def strip_earlier(note: str) -> str:
    """A note without the markers an earlier partial run appended (they piled up, one per run)."""
    return _EARLIER_OLD.sub("", note).rstrip()


UNITS = {
    "_jobs_per_s": "jobs/s",
    "_ms": "ms",
    "_ms_1m": "ms",
    "_s_1m": "s",
    "_mb_1m": "MB",
    "_pct_200k": "%",
    "_ratio": "×",
    "_overhead_pct": "%",
    "_scrape_ms_1k_handlers": "ms",
    "_ms_10k": "ms",
    "_s_per_min_10k": "CPU s/min",
}


def unit(key: str) -> str:
    for suffix, u in UNITS.items():
        if key.endswith(suffix):
            return u
    return ""


Check = Callable[[dict[str, Any]], bool | None]


def _at_most(key: str, limit: float) -> Check:
    return lambda d: None if d.get(key) is None else d[key] <= limit


def _ratio_at_least(key: str, peer: str, factor: float) -> Check:
    def check(d: dict[str, Any]) -> bool | None:
        v, p = d.get(key), d.get(peer)
        if v is None or p is None:
            return None
        return v >= factor * p

    check.pair = (key, peer)  # type: ignore[attr-defined]
    return check


def _best_separate_process_peer(d: dict[str, Any]) -> tuple[str, float] | None:
    peers = [(k, d[k]) for k in SEPARATE_PROCESS_PEERS if d.get(k)]
    return max(peers, key=lambda kv: kv[1]) if peers else None


def _batched_ok(d: dict[str, Any]) -> bool | None:
    v, best = d.get("plugin_batched_drain_jobs_per_s"), _best_separate_process_peer(d)
    if v is None or best is None:
        return None
    return v >= 2 * best[1]


def _plugin_ok(d: dict[str, Any]) -> bool | None:
    v, peer = d.get("plugin_drain_jobs_per_s"), d.get("peer_huey_drain_jobs_per_s")
    if v is None or peer is None:
        return None
    return v >= 1000 and v >= peer


SEPARATE_PROCESS_PEERS = (
    "peer_dramatiq_drain_jobs_per_s",
    "peer_celery_drain_jobs_per_s",
    "peer_huey_process_drain_jobs_per_s",
)


def _at_least(key: str, floor: float) -> Check:
    return lambda d: None if d.get(key) is None else d[key] >= floor


# (key, target as text, check)
TARGETS: list[tuple[str, str, Check]] = [
    (
        "inproc_full_drain_jobs_per_s",
        "≥ 3 × huey at FULL",
        _ratio_at_least("inproc_full_drain_jobs_per_s", "peer_huey_full_drain_jobs_per_s", 3),
    ),
    (
        "inproc_normal_drain_jobs_per_s",
        "≥ 3 × huey at NORMAL",
        _ratio_at_least("inproc_normal_drain_jobs_per_s", "peer_huey_normal_drain_jobs_per_s", 3),
    ),
    ("plugin_batched_drain_jobs_per_s", "≥ 2 × best separate-process peer", _batched_ok),
    (
        "plugin_unary_drain_jobs_per_s",
        "≥ 1 × huey at FULL",
        _ratio_at_least("plugin_unary_drain_jobs_per_s", "peer_huey_full_drain_jobs_per_s", 1),
    ),
    (
        "pg_inproc_drain_jobs_per_s",
        "≥ pgqueuer (same PostgreSQL)",
        _ratio_at_least("pg_inproc_drain_jobs_per_s", "peer_pgqueuer_drain_jobs_per_s", 1),
    ),
    (
        "bulk_enqueue_sqlite_jobs_per_s",
        "≥ 50,000 jobs/s",
        _at_least("bulk_enqueue_sqlite_jobs_per_s", 50_000),
    ),
    (
        "bulk_enqueue_pg_jobs_per_s",
        "≥ pgqueuer's batched enqueue",
        _ratio_at_least("bulk_enqueue_pg_jobs_per_s", "peer_pgqueuer_enqueue_jobs_per_s", 1),
    ),
    ("watchers64_drain_ratio", "≥ 0.9", _at_least("watchers64_drain_ratio", 0.9)),
    ("plugin_drain_jobs_per_s", "≥ 1,000 jobs/s and ≥ huey (issue 7)", _plugin_ok),
    (
        "inproc_drain_jobs_per_s",
        "≥ 3 × huey (issue 7)",
        _ratio_at_least("inproc_drain_jobs_per_s", "peer_huey_drain_jobs_per_s", 3),
    ),
    ("latency_enqueue_to_start_p50_ms", "≤ 2 ms", _at_most("latency_enqueue_to_start_p50_ms", 2)),
    ("latency_enqueue_to_start_p99_ms", "≤ 10 ms", _at_most("latency_enqueue_to_start_p99_ms", 10)),
    ("tui_first_paint_s_1m", "≤ 1 s", _at_most("tui_first_paint_s_1m", 1)),
    ("tui_keypress_p95_ms_1m", "≤ 50 ms", _at_most("tui_keypress_p95_ms_1m", 50)),
    ("tui_rss_mb_1m", "≤ 150 MB", _at_most("tui_rss_mb_1m", 150)),
    ("live_progress_lag_p95_ms", "≤ 250 ms", _at_most("live_progress_lag_p95_ms", 250)),
    ("server_rss_growth_pct_200k", "≤ 10 %", _at_most("server_rss_growth_pct_200k", 10)),
    ("metrics_drain_overhead_pct", "≤ 3 %", _at_most("metrics_drain_overhead_pct", 3)),
    ("schedules_lateness_p99_ms_10k", "≤ 50 ms", _at_most("schedules_lateness_p99_ms_10k", 50)),
]

# (ratio name, ours, theirs): same run, same machine
RATIOS = (
    ("inproc_full_vs_huey_full", "inproc_full_drain_jobs_per_s", "peer_huey_full_drain_jobs_per_s"),
    ("inproc_normal_vs_huey_normal", "inproc_normal_drain_jobs_per_s", "peer_huey_normal_drain_jobs_per_s"),
    ("plugin_unary_vs_huey_full", "plugin_unary_drain_jobs_per_s", "peer_huey_full_drain_jobs_per_s"),
    ("plugin_unary_vs_huey_process", "plugin_unary_drain_jobs_per_s", "peer_huey_process_drain_jobs_per_s"),
    ("plugin_unary_vs_dramatiq", "plugin_unary_drain_jobs_per_s", "peer_dramatiq_drain_jobs_per_s"),
    ("plugin_unary_vs_celery", "plugin_unary_drain_jobs_per_s", "peer_celery_drain_jobs_per_s"),
    ("plugin_batched_vs_unary", "plugin_batched_drain_jobs_per_s", "plugin_unary_drain_jobs_per_s"),
    ("plugin_batched_vs_huey_full", "plugin_batched_drain_jobs_per_s", "peer_huey_full_drain_jobs_per_s"),
    (
        "plugin_batched_vs_huey_process",
        "plugin_batched_drain_jobs_per_s",
        "peer_huey_process_drain_jobs_per_s",
    ),
    ("plugin_batched_vs_dramatiq", "plugin_batched_drain_jobs_per_s", "peer_dramatiq_drain_jobs_per_s"),
    ("plugin_batched_vs_celery", "plugin_batched_drain_jobs_per_s", "peer_celery_drain_jobs_per_s"),
    ("pg_inproc_vs_pgqueuer", "pg_inproc_drain_jobs_per_s", "peer_pgqueuer_drain_jobs_per_s"),
    ("pg_inproc_vs_procrastinate", "pg_inproc_drain_jobs_per_s", "peer_procrastinate_drain_jobs_per_s"),
    ("bulk_enqueue_pg_vs_pgqueuer", "bulk_enqueue_pg_jobs_per_s", "peer_pgqueuer_enqueue_jobs_per_s"),
    ("inproc_drain_vs_peer", "inproc_drain_jobs_per_s", "peer_huey_drain_jobs_per_s"),
    ("plugin_drain_vs_peer", "plugin_drain_jobs_per_s", "peer_huey_drain_jobs_per_s"),
)


def same_run(doc: dict[str, Any], a: str, b: str) -> bool:
    """Whether two figures were measured in one run (by their dates; older files by the marker
    an earlier partial run appended to a kept figure's note)."""
    when = doc.get("measured_at")
    if when is not None:
        return bool(when.get(a) == when.get(b))
    notes = doc.get("notes", {})
    old = "(from an earlier run)"
    return (old in notes.get(a, "")) == (old in notes.get(b, ""))


def ratios(doc: dict[str, Any]) -> dict[str, float]:
    """ours / theirs for each pair measured in the same run (a partial re-run leaves pairs whose
    two figures come from different runs out)."""
    out = {}
    for name, ours, theirs in RATIOS:
        if doc.get(ours) and doc.get(theirs):
            if not same_run(doc, ours, theirs):
                continue
            out[name] = round(doc[ours] / doc[theirs], 2)
    return out


def verdicts(doc: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, _, check in TARGETS:
        ok = check(doc)
        out[key] = "not measured" if ok is None else ("met" if ok else "NOT MET")
        if ok is not None and "normal-only" in doc.get("notes", {}).get(key, ""):
            out[key] = f"not comparable (ours ran at NORMAL; would be {out[key]})"
        pair = getattr(check, "pair", None)
        if ok is not None and pair and not same_run(doc, pair[0], pair[1]):
            out[key] = "not comparable (measured in different runs)"
    return out


def write_markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    targets = {k: t for k, t, _ in TARGETS}
    verdict = verdicts(doc)
    lines = [
        "# pulse-tui benchmarks",
        "",
        "Generated by `python -m bench"
        + (" --quick" if doc["mode"] == "quick" else "")
        + "` (`make bench"
        + ("-quick" if doc["mode"] == "quick" else "")
        + "`). Do not edit by hand.",
        "",
        f"- **Date**: {doc['date']}  ·  **mode**: {doc['mode']}  ·  run took {doc['duration_s']} s",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}",
        f"- **Software**: Python {m['python']}, SQLite {m['sqlite']}, grpcio {m['grpcio']}, "
        f"textual {m['textual']}; peers: "
        + ", ".join(f"{p} {m.get(p)}" for p in ("huey", "dramatiq", "celery", "pgqueuer", "procrastinate")),
        f"- **Load average** before / after: {doc['load_avg_before']} / {doc['load_avg_after']} "
        "(the machine may be shared; drain measures are the best of "
        f"{doc['reps']} interleaved runs, every run listed below)",
    ]
    try:
        loads = [float(x) for x in f"{doc['load_avg_before']} {doc['load_avg_after']}".split()]
    except ValueError:
        loads = []
    if loads and m.get("cores") and max(loads) > m["cores"]:
        lines.append(
            f"- **The machine was loaded** (load average up to {max(loads):.1f} on {m['cores']} cores: other"
            " work ran meanwhile). Single runs swing widely; read the ratios of this run and the CPU"
            " seconds per 1,000 jobs rather than absolute rates."
        )
    if doc.get("rerun"):
        r = doc["rerun"]
        lines.append(
            f"- **Partly re-run**: {', '.join(r['measures'])} at the date above; every other figure is kept"
            " from the run that measured it, its note ending `(measured <date>)`."
        )
    if doc["mode"] == "quick":
        lines.append(
            "- **Quick mode**: every size is smaller than the key names say (see the notes column): "
            "figures are indicative; run `make bench` for the real ones."
        )
    lines += ["", "## Figures", "", "| key | value | target | verdict | how |", "|---|---:|---|---|---|"]
    for k in KEYS:
        if k not in doc:
            continue
        v = doc[k]
        val = "null" if v is None else f"{fmt_num(v)} {unit(k)}"
        lines.append(
            f"| `{k}` | {val} | {targets.get(k, '—')} | {verdict.get(k, '—')} | {doc['notes'].get(k, '')} |"
        )
    lines += ["", "## Against the peers (same run, same machine, ratios of this run)", ""]
    rs = doc.get("ratios", {})
    if rs:
        lines += ["| ours / theirs | ratio |", "|---|---:|"]
        lines += [f"| {name} | {v:.2f}× |" for name, v in rs.items()]
    else:
        lines.append("- no peer measured in this run; no ratios")
    cpu = doc.get("cpu_s_per_1k_jobs") or {}
    if cpu:
        lines += [
            "",
            "## CPU seconds per 1,000 jobs (every process of each system over its drain; lower is better)",
            "",
            "| system | CPU s / 1k jobs |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v:.3f} |" for k, v in sorted(cpu.items(), key=lambda kv: kv[1])]
    lines += pg_section(doc)
    if doc.get("samples"):
        lines += ["", "Every drain run (jobs/s): "]
        for k, vals in doc["samples"].items():
            lines.append(f"- `{k}`: " + ", ".join(fmt_num(v) for v in vals))
    if doc.get("secondary"):
        lines += ["", "## Secondary figures", ""]
        for k, v in doc["secondary"].items():
            lines.append(f"- `{k}`: {v}")
    lines += ["", "## Targets", ""]
    for k, t, _ in TARGETS:
        v = doc.get(k)
        shown = "null" if v is None else f"{fmt_num(v)} {unit(k)}"
        lines.append(f"- {verdict[k]}: `{k}` {t} (measured {shown})")
    lines += ["", "Profiles of the missed targets and what to change: [PROFILE.md](PROFILE.md)."]
    return "\n".join(lines) + "\n"


def pg_section(doc: dict[str, Any]) -> list[str]:
    """One PostgreSQL-backed node against two on the same database (bench/pg_nodes.py)."""
    if "pg_two_vs_one_ratio" not in doc:
        return []
    lines = ["", "## PostgreSQL: one node against two (same run, same machine)", ""]
    one, two, ratio = (
        doc.get(k) for k in ("pg_one_node_jobs_per_s", "pg_two_nodes_jobs_per_s", "pg_two_vs_one_ratio")
    )
    if one is None or two is None or ratio is None:
        return [*lines, f"- not measured ({doc['notes'].get('pg_two_vs_one_ratio', '')})"]
    share = doc.get("secondary", {}).get("pg_two_nodes_share", {})
    ran = ", ".join(f"node {k.upper()} {v:.0%}" for k, v in share.items())
    cores = doc["machine"]["cores"]
    lines += [
        f"- one `serve` node: **{fmt_num(one)} jobs/s**",
        f"- two `serve` nodes: **{fmt_num(two)} jobs/s = {ratio:.2f}× one node**"
        + (f" (jobs run: {ran})" if ran else ""),
        f"- This machine has {cores} cores, shared by both nodes, both demo plugins, PostgreSQL and the "
        "client"
        + (
            ", so a second node cannot add throughput here: the row shows that two nodes drain one "
            "queue correctly (every job completed exactly once) at speed, and what sharing the queue "
            "costs, not how throughput scales with nodes."
            if cores is not None and cores <= 2
            else "; every job was completed exactly once."
        ),
    ]
    return lines
