"""`python -m bench [--quick] [--only NAME ...]`: run every measure, each in its own process, and
write bench/results.json and bench/RESULTS.md.

The drain measures (ours and the peers) run interleaved `reps` times and the best run of each is
kept: the machine may be shared, and the best of several runs is the least disturbed one. Every
sample is listed in RESULTS.md. One redis-server and one PostgreSQL server are started for the
run (bench/infra.py) and shared by the measures that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULT_PREFIX, machine, scrub
from bench.infra import infra_env, pg_server, redis_server
from bench.report import EARLIER, KEYS, ratios, strip_earlier, write_markdown

HERE = Path(__file__).resolve().parent

# measure name -> (module, variant or None, the keys it fills); a failed measure records its
# keys as null, with the reason
MEASURES: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "huey_full": ("peer_huey", "full", ("peer_huey_full_drain_jobs_per_s", "peer_huey_drain_jobs_per_s")),
    "huey_normal": ("peer_huey", "normal", ("peer_huey_normal_drain_jobs_per_s",)),
    "huey_process": ("peer_huey", "process", ("peer_huey_process_drain_jobs_per_s",)),
    "dramatiq": ("peer_redis", "dramatiq", ("peer_dramatiq_drain_jobs_per_s",)),
    "celery": ("peer_redis", "celery", ("peer_celery_drain_jobs_per_s",)),
    "inproc_full": ("inproc_drain", "full", ("inproc_full_drain_jobs_per_s", "inproc_drain_jobs_per_s")),
    "inproc_normal": ("inproc_drain", "normal", ("inproc_normal_drain_jobs_per_s",)),
    "plugin_unary": ("plugin_drain", "unary", ("plugin_unary_drain_jobs_per_s", "plugin_drain_jobs_per_s")),
    "plugin_batched": ("plugin_drain", "batched", ("plugin_batched_drain_jobs_per_s",)),
    "plugin_batched_prefetch": (
        "plugin_drain",
        "batched_prefetch",
        ("plugin_batched_prefetch_drain_jobs_per_s",),
    ),
    "pg_inproc": ("pg_drain", "ours", ("pg_inproc_drain_jobs_per_s",)),
    "pgqueuer": ("pg_drain", "pgqueuer", ("peer_pgqueuer_drain_jobs_per_s",)),
    "procrastinate": ("pg_drain", "procrastinate", ("peer_procrastinate_drain_jobs_per_s",)),
    "watchers": ("watchers", None, ("watchers64_drain_ratio", "watchers64_all_events_drain_ratio")),
    "bulk_enqueue": (
        "bulk_enqueue",
        None,
        ("bulk_enqueue_sqlite_jobs_per_s", "bulk_enqueue_pg_jobs_per_s", "peer_pgqueuer_enqueue_jobs_per_s"),
    ),
    "enqueue": ("enqueue", None, ("enqueue_jobs_per_s",)),
    "latency": ("latency", None, ("latency_enqueue_to_start_p50_ms", "latency_enqueue_to_start_p99_ms")),
    "live_progress": ("live_progress", None, ("live_progress_lag_p95_ms",)),
    "server_rss": ("server_rss", None, ("server_rss_growth_pct_200k",)),
    "tui": ("tui", None, ("tui_first_paint_s_1m", "tui_keypress_p95_ms_1m", "tui_rss_mb_1m")),
    "pg_nodes": (
        "pg_nodes",
        None,
        ("pg_one_node_jobs_per_s", "pg_two_nodes_jobs_per_s", "pg_two_vs_one_ratio"),
    ),
    "metrics_cost": (
        "metrics_cost",
        None,
        ("metrics_drain_overhead_pct", "metrics_drain_wall_overhead_pct", "metrics_scrape_ms_1k_handlers"),
    ),
    "schedules": ("schedules", None, ("schedules_idle_cpu_s_per_min_10k", "schedules_lateness_p99_ms_10k")),
}
# drains: higher is better; run interleaved `reps` times, the best kept
DRAINS = (
    "huey_full",
    "huey_normal",
    "huey_process",
    "dramatiq",
    "celery",
    "inproc_full",
    "inproc_normal",
    "plugin_unary",
    "plugin_batched",
    "plugin_batched_prefetch",
    "pg_inproc",
    "pgqueuer",
    "procrastinate",
)
# make bench-quick: the SQLite comparisons at the same durability, watchers, bulk enqueue (< 2 min)
QUICK = (
    "huey_full",
    "huey_normal",
    "dramatiq",
    "inproc_full",
    "inproc_normal",
    "plugin_unary",
    "plugin_batched",
    "watchers",
    "bulk_enqueue",
)
NEEDS_REDIS = ("dramatiq", "celery")
NEEDS_PG = ("pg_inproc", "pgqueuer", "procrastinate", "bulk_enqueue")
NOT_BUILT: dict[str, str] = {}
TIMEOUT_S = {"quick": 120, "full": 900}


def run_measure(name: str, quick: bool, env: dict[str, str]) -> dict[str, Any]:
    module, variant, _ = MEASURES[name]
    argv = [sys.executable, "-m", f"bench.{module}"] + (["--quick"] if quick else [])
    argv += ["--variant", variant] if variant else []
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S["quick" if quick else "full"],
            cwd=HERE.parent,
            env={**os.environ, **env},
        )
    except subprocess.TimeoutExpired as exc:
        return _failed(name, f"timed out after {exc.timeout:g}s")
    secs = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            res = json.loads(line.removeprefix(RESULT_PREFIX))
            res["secs"] = round(secs, 1)
            return res
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
    return _failed(name, f"exit status {proc.returncode}: {tail}")


def _failed(name: str, why: str) -> dict[str, Any]:
    why = scrub(why)
    print(f"  {name} failed: {why}", file=sys.stderr)
    return {
        "figures": {k: None for k in MEASURES[name][2]},
        "notes": {k: f"measure failed: {why}" for k in MEASURES[name][2]},
        "params": {},
        "extra": {},
        "cpu": {},
        "failed": True,
    }


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smaller set at small sizes; under two minutes"
    )
    parser.add_argument("--only", nargs="*", choices=list(MEASURES), help="run only these measures")
    parser.add_argument(
        "--reps", type=int, default=0, help="runs of each drain measure (default 2 quick, 3 full)"
    )
    parser.add_argument("--out", default=str(HERE), help="folder for results.json and RESULTS.md")
    args = parser.parse_args()
    names = args.only or (list(QUICK) if args.quick else list(MEASURES))
    reps = args.reps or (2 if args.quick else 3)
    started = datetime.now(UTC)
    load_before = loadavg()
    t0 = time.perf_counter()

    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with ExitStack() as stack:
        redis = pg = None
        try:
            if any(n in NEEDS_REDIS for n in names):
                redis = stack.enter_context(redis_server())
        except Exception as exc:  # the measures that need it fail with this reason
            print(f"bench: no redis-server: {exc}", file=sys.stderr)
        try:
            if any(n in NEEDS_PG for n in names):
                pg = stack.enter_context(pg_server())
        except Exception as exc:
            print(f"bench: no PostgreSQL: {exc}", file=sys.stderr)
        env = infra_env(redis, pg)
        drains = [n for n in DRAINS if n in names]
        for rep in range(reps if drains else 0):
            for name in drains:
                print(f"[{rep + 1}/{reps}] {name} …", file=sys.stderr, flush=True)
                runs[name].append(run_measure(name, args.quick, env))
        for name in names:
            if name in DRAINS:
                continue
            print(f"{name} …", file=sys.stderr, flush=True)
            runs[name].append(run_measure(name, args.quick, env))

    figures: dict[str, float | None] = {}
    notes: dict[str, str] = dict(NOT_BUILT)
    extra: dict[str, Any] = {}
    samples: dict[str, list[float]] = {}
    params: dict[str, Any] = {}
    cpu: dict[str, float] = {}
    for name in names:
        key = MEASURES[name][2][0]
        ok = [r for r in runs[name] if not r.get("failed")]
        best = max(ok, key=lambda r: r["figures"].get(key) or 0) if ok else runs[name][-1]
        figures.update(best["figures"])
        notes.update(best["notes"])
        extra.update(best.get("extra", {}))
        cpu.update(best.get("cpu", {}))
        params[name] = best.get("params", {})
        if name in DRAINS:
            samples[key] = [r["figures"][key] for r in ok if r["figures"].get(key) is not None]
    figures.update({k: None for k in NOT_BUILT})

    doc = {
        "mode": "quick" if args.quick else "full",
        "date": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine(),
        "load_avg_before": load_before,
        "load_avg_after": loadavg(),
        "duration_s": round(time.perf_counter() - t0, 1),
        "reps": reps,
        **{
            k: (None if figures.get(k) is None else round(float(figures[k]), 3)) for k in KEYS if k in figures
        },
        "cpu_s_per_1k_jobs": cpu,
        "ratios": {},
        "samples": samples,
        "secondary": extra,
        "notes": notes,
        "params": params,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc["measured_at"] = {k: doc["date"] for k in KEYS if k in doc}
    if args.only:  # keep the other keys of the last runs, each with the date it was measured
        old = out / "results.json"
        if old.exists():
            prev = json.loads(old.read_text())
            prev_measured = prev.get("measured_at") or {}
            prev_rerun = prev.get("rerun") or {}
            for k in KEYS:
                if k not in doc and k in prev:
                    doc[k] = prev[k]
                    # older files: a figure the previous partial run kept carries the old
                    # marker in its note and dates from the run that file names for the rest
                    kept = "(from an earlier run)" in prev.get("notes", {}).get(k, "")
                    when = prev_measured.get(k) or (
                        prev_rerun.get("rest_from") if kept and prev_rerun else prev.get("date")
                    )
                    doc["measured_at"][k] = when
                    if k in prev.get("notes", {}):
                        doc["notes"][k] = f"{strip_earlier(prev['notes'][k])} {EARLIER} {when})"
            for k, v in prev.get("cpu_s_per_1k_jobs", {}).items():
                doc["cpu_s_per_1k_jobs"].setdefault(k, v)
            for k, v in prev.get("samples", {}).items():
                doc["samples"].setdefault(k, v)
            for k, v in prev.get("secondary", {}).items():
                doc["secondary"].setdefault(k, v)
            for k, v in prev.get("params", {}).items():
                doc["params"].setdefault(k, v)
            doc["rerun"] = {"measures": names}
    doc["ratios"] = ratios(doc)
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "RESULTS.md").write_text(write_markdown(doc))
    print(f"wrote {out / 'results.json'} and {out / 'RESULTS.md'} in {doc['duration_s']}s", file=sys.stderr)
    for k in KEYS:
        if k in doc:
            print(f"  {k:40s} {doc[k]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
