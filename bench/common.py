"""Shared plumbing for the measures: result protocol, machine facts, percentiles, child processes.

Every measure module exposes `run(quick: bool) -> Result` and ends with
`if __name__ == "__main__": main(run)`, so it runs alone (`python -m bench.inproc_drain --quick`)
and under the runner (`python -m bench`), which starts each measure in its own process and reads
the last stdout line (prefixed with RESULT_PREFIX) as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "


@dataclass
class Result:
    """What one measure found. `figures` values are numbers or None (with a note saying why)."""

    figures: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # key -> how it was measured / why it is null
    params: dict[str, Any] = field(default_factory=dict)  # N, concurrency, mode, …
    extra: dict[str, Any] = field(default_factory=dict)  # secondary figures shown in RESULTS.md
    cpu: dict[str, float] = field(default_factory=dict)  # system -> CPU seconds per 1,000 jobs

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def main(run: Callable[..., Result]) -> None:
    """Entry point of a measure module run alone (`--variant V` for modules with variants)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (the whole suite under a minute)")
    parser.add_argument("--variant", help="which variant of the measure (modules that have several)")
    args = parser.parse_args()
    res = run(args.quick, variant=args.variant) if args.variant else run(args.quick)
    for k, v in res.figures.items():
        note = f"  ({res.notes[k]})" if k in res.notes else ""
        print(f"{k} = {fmt_num(v)}{note}", file=sys.stderr)
    for k, v in res.extra.items():
        print(f"  {k} = {v}", file=sys.stderr)
    for k, v in res.cpu.items():
        print(f"  cpu s/1k jobs {k} = {v}", file=sys.stderr)
    print(RESULT_PREFIX + res.to_json(), flush=True)


def fmt_num(v: float | None) -> str:
    if v is None:
        return "null"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    if not values:
        raise ValueError("no samples")
    s = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(s)))
    return s[min(rank, len(s)) - 1]


def rss_mb(pid: int | None = None) -> float:
    """Resident set size in MB from /proc/<pid>/status (VmRSS)."""
    path = f"/proc/{pid}/status" if pid else "/proc/self/status"
    with open(path) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = None
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    versions = {}
    for dist in ("grpcio", "textual", "huey", "protobuf", "dramatiq", "celery", "pgqueuer", "procrastinate"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        **versions,
    }


def scrub(text: str) -> str:
    """No machine paths in the results: the interpreter, the checkout and home become names."""
    for path, name in (
        (sys.executable, "python"),
        (str(Path(__file__).resolve().parent.parent), "<repo>"),
        (tempfile.gettempdir(), "<tmp>"),
        (os.path.expanduser("~"), "~"),
    ):
        if path and path not in ("/", "~"):
            text = text.replace(path, name)
    return text


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"pulse-bench-{prefix}-") as d:
        yield Path(d)


# ---------------------------------------------------------------- child processes


class Child:
    """A subprocess whose stdout and stderr are read by threads; `wait_line(regex)` waits for a
    line to appear on either stream and returns the match."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        full_env = dict(os.environ)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        if env:
            full_env.update(env)
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                if len(self.lines) > 2000:
                    del self.lines[:1000]
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{' '.join(self.argv[:4])} exited with {self.proc.returncode}:\n" + self.tail()
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no line matching {pattern!r} within {timeout}s:\n" + self.tail())
                self._cond.wait(min(left, 0.5))

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def python_child(args: list[str], **kw: Any) -> Child:
    return Child([sys.executable, *args], **kw)
