"""Load: N demo.echo jobs through the demo plugin with a WatchJobs client attached and reading.
Server and plugin memory (RSS) and open file descriptors stay flat after warm-up (<= 10 %
growth), no job fails or is lost. `make test` runs 5,000 jobs; PULSE_SOAK=full runs 200,000."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from helpers.reliability import SOAK_FULL, connect, demo_config, fd_count, rss_kb, wait_drained

from pulse_tui.protocol import operator_pb2 as op


def _soak(server_factory, n: int, rounds: int = 10) -> dict:
    srv = server_factory(demo_config())
    c = connect(srv.address, srv.token)
    pid = srv.process.proc.pid
    plugin_pid = c.plugin("demo").pid
    events = {"upserts": 0, "resyncs": 0}
    watch = c.ops.WatchJobs(op.WatchJobsRequest(), metadata=c.md)
    assert next(watch).kind == "heartbeat"

    def read() -> None:
        try:
            for e in watch:
                if e.kind == "upsert":
                    events["upserts"] += 1
                elif e.kind == "resync":
                    events["resyncs"] += 1
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    per_round = n // rounds
    samples = []
    t0 = time.monotonic()
    for r in range(rounds):
        c.enqueue_many("demo.echo", (b'{"i": %d}' % i for i in range(per_round)))
        wait_drained(c, per_round * (r + 1), 600)
        samples.append((rss_kb(pid), fd_count(pid), rss_kb(plugin_pid), fd_count(plugin_pid)))
    took = time.monotonic() - t0
    counts = c.counts()
    watch.cancel()
    reader.join(10)
    c.close()
    assert srv.stop() == 0
    warm = samples[rounds // 4]  # after warm-up (a quarter of the jobs)
    peak = [max(s[i] for s in samples[rounds // 4 :]) for i in range(4)]
    figures = {
        "jobs": n,
        "took_s": round(took, 1),
        "jobs_per_s": round(n / took),
        "server_rss_kb": (warm[0], peak[0], samples[-1][0]),
        "server_fds": (warm[1], peak[1]),
        "plugin_rss_kb": (warm[2], peak[2]),
        "plugin_fds": (warm[3], peak[3]),
        "watch_events": dict(events),
        "counts": {k: v for k, v in counts.items() if v},
    }
    print("soak", figures)
    assert counts["completed"] == per_round * rounds and counts["failed"] == 0, counts
    assert events["upserts"] > 0
    for i, what in enumerate(("server RSS", "server fds", "plugin RSS", "plugin fds")):
        slack = 2 if "fds" in what else 0  # a gRPC connection may come and go
        assert peak[i] <= warm[i] * 1.10 + slack, (what, warm[i], peak[i], samples)
    return figures


def test_soak_short(server_factory):
    _soak(server_factory, 5000)


@pytest.mark.slow
@pytest.mark.skipif(not SOAK_FULL, reason="full size runs under PULSE_SOAK=full (make soak)")
@pytest.mark.timeout(1800)
def test_soak_full(server_factory):
    _soak(server_factory, 200_000, rounds=20)
