"""A client built only from proto/protocol/queue.proto (as QNTX's would be) works against Pulse.

The proto is compiled in the test under its own module name and the client runs in a separate
interpreter that never imports pulse_tui, so nothing of ours can leak into it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import grpc
    from qntxcompat import queue_pb2 as q, queue_pb2_grpc as qg

    address, token = sys.argv[1], sys.argv[2]
    out = {}
    with grpc.insecure_channel(address) as ch:
        stub = qg.QueueServiceStub(ch)
        r = stub.Enqueue(q.EnqueueRequest(auth_token=token, job=q.Job(
            handler_name="pulse.sleep", payload=b'{"seconds": 0.2, "steps": 2}', source="qntx")))
        out["enqueue"] = [r.success, r.error, r.job_id]
        job_id = r.job_id
        deadline = time.monotonic() + 15
        while True:  # a QNTX client polls; so does this one
            g = stub.GetJob(q.GetJobRequest(auth_token=token, job_id=job_id))
            if g.job.status in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        out["get"] = [g.success, g.job.status, g.job.handler_name, g.job.progress.current,
                      g.job.progress.total, g.job.created_at, g.job.completed_at]
        l = stub.ListJobs(q.ListJobsRequest(auth_token=token, status="completed", limit=10))
        out["list"] = [l.success, [j.id for j in l.jobs]]
        r2 = stub.Enqueue(q.EnqueueRequest(auth_token=token, job=q.Job(
            handler_name="pulse.sleep", payload=b'{"seconds": 30}')))
        u = stub.UpdateJob(q.UpdateJobRequest(auth_token=token, job=q.Job(id=r2.job_id, status="cancelled")))
        g2 = stub.GetJob(q.GetJobRequest(auth_token=token, job_id=r2.job_id))
        out["update"] = [u.success, u.error, g2.job.status]
        bad = stub.Enqueue(q.EnqueueRequest(auth_token="wrong", job=q.Job(handler_name="pulse.noop")))
        out["bad_token"] = [bad.success, bad.error]
    assert not any(m.startswith("pulse_tui") for m in sys.modules), "the QNTX client imported pulse_tui"
    print(json.dumps(out))
    """
)


def test_qntx_queue_client(server, tmp_path):
    pkg = tmp_path / "qntxcompat"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-Iqntxcompat={ROOT / 'proto' / 'protocol'}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / "proto" / "protocol" / "queue.proto"),
        ],
        check=True,
        timeout=60,
    )
    (tmp_path / "client.py").write_text(CLIENT)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, str(tmp_path / "client.py"), server.address, server.token],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ok, error, job_id = out["enqueue"]
    assert ok and not error and job_id
    success, status, handler, current, total, created, completed = out["get"]
    assert success and status == "completed" and handler == "pulse.sleep"
    assert (current, total) == (2, 2) and created > 0 and completed >= created
    assert out["list"][0] and job_id in out["list"][1]
    assert out["update"] == [True, "", "cancelled"]
    assert out["bad_token"][0] is False and "invalid auth token" in out["bad_token"][1]
