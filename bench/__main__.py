"""`python -m bench [--quick] [--only NAME ...]`: run every measure, each in its own process, and
write bench/results.json and bench/RESULTS.md.

The drain measures (huey, in-process, plugin) run interleaved `reps` times and the best run of
each is kept: the machine may be shared, and the best of several runs is the least disturbed one.
Every sample is listed in RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULT_PREFIX, machine, scrub
from bench.report import KEYS, write_markdown

HERE = Path(__file__).resolve().parent

# measure module -> the keys it fills (a failed measure records them as null, with the reason)
MEASURES: dict[str, tuple[str, ...]] = {
    "peer_huey": ("peer_huey_drain_jobs_per_s",),
    "inproc_drain": ("inproc_drain_jobs_per_s",),
    "plugin_drain": ("plugin_drain_jobs_per_s",),
    "enqueue": ("enqueue_jobs_per_s",),
    "latency": ("latency_enqueue_to_start_p50_ms", "latency_enqueue_to_start_p99_ms"),
    "live_progress": ("live_progress_lag_p95_ms",),
    "server_rss": ("server_rss_growth_pct_200k",),
    "tui": ("tui_first_paint_s_1m", "tui_keypress_p95_ms_1m", "tui_rss_mb_1m"),
    "pg_nodes": ("pg_one_node_jobs_per_s", "pg_two_nodes_jobs_per_s", "pg_two_vs_one_ratio"),
    "metrics_cost": ("metrics_drain_overhead_pct", "metrics_scrape_ms_1k_handlers"),
}
DRAINS = ("peer_huey", "inproc_drain", "plugin_drain")  # higher is better; best of `reps`
TIMEOUT_S = {"quick": 120, "full": 900}


def run_measure(name: str, quick: bool) -> dict[str, Any]:
    argv = [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S["quick" if quick else "full"],
            cwd=HERE.parent,
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
        "figures": {k: None for k in MEASURES[name]},
        "notes": {k: f"measure failed: {why}" for k in MEASURES[name]},
        "params": {},
        "extra": {},
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
    parser.add_argument("--quick", action="store_true", help="small sizes; the whole run under a minute")
    parser.add_argument("--only", nargs="*", choices=list(MEASURES), help="run only these measures")
    parser.add_argument(
        "--reps", type=int, default=0, help="runs of each drain measure (default 2 quick, 3 full)"
    )
    parser.add_argument("--out", default=str(HERE), help="folder for results.json and RESULTS.md")
    args = parser.parse_args()
    names = args.only or list(MEASURES)
    reps = args.reps or (2 if args.quick else 3)
    started = datetime.now(UTC)
    load_before = loadavg()
    t0 = time.perf_counter()

    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    drains = [n for n in DRAINS if n in names]
    for rep in range(reps if drains else 0):
        for name in drains:
            print(f"[{rep + 1}/{reps}] {name} …", file=sys.stderr, flush=True)
            runs[name].append(run_measure(name, args.quick))
    for name in names:
        if name in DRAINS:
            continue
        print(f"{name} …", file=sys.stderr, flush=True)
        runs[name].append(run_measure(name, args.quick))

    figures: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    extra: dict[str, Any] = {}
    samples: dict[str, list[float]] = {}
    params: dict[str, Any] = {}
    for name in names:
        ok = [r for r in runs[name] if not r.get("failed")]
        best = max(ok, key=lambda r: next(iter(r["figures"].values())) or 0) if ok else runs[name][-1]
        figures.update(best["figures"])
        notes.update(best["notes"])
        extra.update(best.get("extra", {}))
        params[name] = best.get("params", {})
        if name in DRAINS:
            key = MEASURES[name][0]
            samples[key] = [r["figures"][key] for r in ok if r["figures"].get(key) is not None]

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
        "ratios": {},
        "samples": samples,
        "secondary": extra,
        "notes": notes,
        "params": params,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.only:  # keep the other keys of the last full/quick run
        old = out / "results.json"
        if old.exists():
            prev = json.loads(old.read_text())
            for k in KEYS:
                if k not in doc and k in prev:
                    doc[k] = prev[k]
                    if k in prev.get("notes", {}):
                        doc["notes"][k] = prev["notes"][k] + " (from an earlier run)"
    peer = doc.get("peer_huey_drain_jobs_per_s")
    if peer:
        for k in ("inproc_drain_jobs_per_s", "plugin_drain_jobs_per_s"):
            if doc.get(k):
                doc["ratios"][f"{k.removesuffix('_jobs_per_s')}_vs_peer"] = round(doc[k] / peer, 2)
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
