"""A client built only from QNTX's ScheduleService wire contract works against Pulse.

The contract below is written from the wire facts (package, service, RPC and field numbers), not
copied from proto/: it is compiled in a temp dir and driven from a separate interpreter that never
imports pulse_tui. It creates an every-2 s schedule, sees runs, pauses (no runs while paused),
resumes, gets it (RFC3339 times, state) and deletes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime

CONTRACT = """
syntax = "proto3";
package protocol;
message CreateScheduleRequest { string auth_token = 1; string handler_name = 2; int32 interval_seconds = 3;
  bytes payload = 4; map<string, string> metadata = 5; }
message CreateScheduleResponse { bool success = 1; string error = 2; string schedule_id = 3; }
message ScheduleIdRequest { string auth_token = 1; string schedule_id = 2; }
message Result { bool success = 1; string error = 2; }
message ScheduledJob { string id = 1; string ats_code = 2; string handler_name = 3; bytes payload = 4;
  string source_url = 5; int32 interval_seconds = 6; string next_run_at = 7; string last_run_at = 8;
  string last_execution_id = 9; string state = 10; string metadata = 11; string created_at = 12;
  string updated_at = 13; string created_from_doc = 14; }
message GetScheduleResponse { bool success = 1; string error = 2; ScheduledJob job = 3; }
service ScheduleService {
  rpc CreateSchedule(CreateScheduleRequest) returns (CreateScheduleResponse);
  rpc PauseSchedule(ScheduleIdRequest) returns (Result);
  rpc ResumeSchedule(ScheduleIdRequest) returns (Result);
  rpc DeleteSchedule(ScheduleIdRequest) returns (Result);
  rpc GetSchedule(ScheduleIdRequest) returns (GetScheduleResponse);
}
"""

CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import grpc
    import schedule_pb2 as s, schedule_pb2_grpc as sg

    address, token, ro_token = sys.argv[1], sys.argv[2], sys.argv[3]
    out = {}

    def get(stub, sid):
        return stub.GetSchedule(s.ScheduleIdRequest(auth_token=token, schedule_id=sid))

    def wait_runs(stub, sid, n, timeout=20.0):
        # a QNTX client polls GetSchedule; each new last_execution_id is one more run
        seen, last = [], ""
        deadline = time.monotonic() + timeout
        while len(seen) < n and time.monotonic() < deadline:
            g = get(stub, sid)
            if g.job.last_execution_id and g.job.last_execution_id != last:
                last = g.job.last_execution_id
                seen.append(last)
            time.sleep(0.1)
        return seen

    with grpc.insecure_channel(address) as ch:
        stub = sg.ScheduleServiceStub(ch)
        c = stub.CreateSchedule(s.CreateScheduleRequest(auth_token=token, handler_name="pulse.noop",
            interval_seconds=1, payload=b'{"from": "qntx"}', metadata={"team": "ops"}))
        out["create"] = [c.success, c.error, c.schedule_id]
        sid = c.schedule_id
        out["runs"] = wait_runs(stub, sid, 2)
        p = stub.PauseSchedule(s.ScheduleIdRequest(auth_token=token, schedule_id=sid))
        before = get(stub, sid).job
        time.sleep(2.5)  # observing a bounded window (2.5 intervals): no run may happen while paused
        after = get(stub, sid).job
        out["paused"] = [p.success, before.state, before.last_execution_id, after.last_execution_id]
        r = stub.ResumeSchedule(s.ScheduleIdRequest(auth_token=token, schedule_id=sid))
        resumed_runs = wait_runs(stub, sid, 2)
        out["resumed"] = [r.success, resumed_runs]
        g = get(stub, sid)
        j = g.job
        out["get"] = [g.success, j.id, j.handler_name, j.interval_seconds, j.state, j.next_run_at,
                      j.last_run_at, j.created_at, j.updated_at, j.metadata, j.payload.decode()]
        ro = stub.PauseSchedule(s.ScheduleIdRequest(auth_token=ro_token, schedule_id=sid))
        ro_get = stub.GetSchedule(s.ScheduleIdRequest(auth_token=ro_token, schedule_id=sid))
        out["readonly"] = [ro.success, ro.error, ro_get.success]
        d = stub.DeleteSchedule(s.ScheduleIdRequest(auth_token=token, schedule_id=sid))
        out["delete"] = [d.success, get(stub, sid).job.state]
        bad = stub.CreateSchedule(s.CreateScheduleRequest(auth_token=token, handler_name="no.such",
            interval_seconds=2))
        out["bad"] = [bad.success, bad.error]
        missing = get(stub, "nope")
        out["missing"] = [missing.success, missing.error]
    assert not any(m.startswith("pulse_tui") for m in sys.modules), "the QNTX client imported pulse_tui"
    print(json.dumps(out))
    """
)


def rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_qntx_schedule_client(server, tmp_path):
    (tmp_path / "schedule.proto").write_text(CONTRACT)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{tmp_path}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(tmp_path / "schedule.proto"),
        ],
        check=True,
        timeout=60,
    )
    (tmp_path / "client.py").write_text(CLIENT)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, str(tmp_path / "client.py"), server.address, server.token, server.readonly_token],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    ok, error, sid = out["create"]
    assert ok and not error and sid
    assert len(out["runs"]) == 2
    paused_ok, state, before, after = out["paused"]
    assert paused_ok and state == "paused" and before == after  # no run while paused
    assert out["resumed"][0] and len(out["resumed"][1]) == 2 and out["resumed"][1][-1] != before
    ok, gid, handler, interval, state, next_run, last_run, created, updated, metadata, payload = out["get"]
    assert ok and gid == sid and handler == "pulse.noop" and interval == 1 and state == "active"
    assert rfc3339(next_run) > rfc3339(last_run) >= rfc3339(created) and rfc3339(updated) >= rfc3339(created)
    assert json.loads(metadata) == {"team": "ops"} and json.loads(payload) == {"from": "qntx"}
    ro_ok, ro_error, ro_get_ok = out["readonly"]
    assert not ro_ok and "read-only token may not pause" in ro_error and ro_get_ok
    assert out["delete"] == [True, "deleted"]
    assert out["bad"][0] is False and "unknown handler 'no.such'" in out["bad"][1]
    assert out["missing"][0] is False and "no schedule with id 'nope'" in out["missing"][1]
