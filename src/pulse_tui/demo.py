"""Demo jobs for a first run: what a new user sees the first time `pulse-tui` starts its own server.

Seeded once per data dir (a marker file remembers it), through the public OperatorService, so it
works the same against any server. Each job shows one thing the console is for:
- a long `demo.sleep` whose progress bar moves for a few minutes;
- a few completed `demo.echo` jobs;
- a failed job (`pulse.fail`) and a job that failed after retries (`demo.flaky`) to retry with `r`/`R`;
- a job waiting (delayed) on `data.import`, the handler two plugins claim (see `:handlers`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc

from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc

MARKER = ".demo-seeded"

DEMO_JOBS: list[dict[str, Any]] = [
    {"handler": "demo.echo", "payload": {"hello": "world"}},
    {"handler": "demo.echo", "payload": {"n": 2}},
    {"handler": "demo.echo", "payload": {"n": 3}},
    {"handler": "pulse.fail", "payload": {"error": "upstream returned 503: rate limited"}, "max_attempts": 1},
    {"handler": "demo.flaky", "payload": {"fail_rate": 1.0}, "max_attempts": 2},
    {"handler": "data.import", "payload": {"source": "s3://bucket/nightly.csv"}, "delay_secs": 3600},
    {"handler": "demo.sleep", "payload": {"seconds": 300, "steps": 300}, "timeout_secs": 900},
]


def seed_demo(address: str, token: str, data_dir: Path, *, timeout: float = 10.0) -> int:
    """Enqueue the demo jobs once per data dir; returns how many were enqueued (0 when seeded before).
    Jobs whose handler this server does not have are skipped (custom configs)."""
    marker = data_dir / MARKER
    if marker.exists():
        return 0
    md = (("authorization", f"Bearer {token}"),)
    n = 0
    with grpc.insecure_channel(address) as channel:
        stub = op_grpc.OperatorServiceStub(channel)
        names = {
            h.name for h in stub.ListHandlers(op.ListHandlersRequest(), metadata=md, timeout=timeout).handlers
        }
        for spec in DEMO_JOBS:
            if spec["handler"] not in names:
                continue
            stub.Enqueue(
                op.EnqueueRequest(
                    handler=spec["handler"],
                    payload=json.dumps(spec["payload"]).encode(),
                    max_attempts=spec.get("max_attempts", 0),
                    timeout_secs=spec.get("timeout_secs", 0),
                    delay_secs=spec.get("delay_secs", 0.0),
                    source="demo",
                ),
                metadata=md,
                timeout=timeout,
            )
            n += 1
    marker.write_text("the demo jobs were enqueued once; delete this file to seed them again\n")
    return n
