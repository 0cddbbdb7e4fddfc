"""The `pulse-tui` command line against a real server process (commands run in-process via main())."""

from __future__ import annotations

import json

import pytest

from pulse_tui import __version__
from pulse_tui.cli import main


@pytest.fixture
def cli(shared_server, monkeypatch, capsys):
    """Run `pulse-tui ARGS --connect … --token-file …`; returns (exit code, stdout, stderr)."""
    monkeypatch.delenv("PULSE_TOKEN", raising=False)
    monkeypatch.setenv("PULSE_CONFIG", str(shared_server.config_path))

    def run(*args: str, connect: bool = True) -> tuple[int, str, str]:
        extra = (
            ["--connect", shared_server.address, "--token-file", str(shared_server.token_file)]
            if connect
            else []
        )
        code = main([*args, *extra])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_enqueue_wait_then_show(cli):
    code, out, err = cli("jobs", "enqueue", "pulse.sleep", "--payload", '{"seconds":1,"steps":4}', "--wait")
    assert code == 0, err
    assert "status    completed" in out and "progress  4/4" in out
    lines = err.splitlines()
    assert any(line.endswith("running 1/4") for line in lines) and lines[-1].endswith("completed 4/4")
    job_id = out.split()[1]

    code, out, err = cli("jobs", "show", job_id, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["id"] == job_id and doc["handler"] == "pulse.sleep" and doc["status"] == "completed"
    assert doc["progress"] == {"current": 4, "total": 4} and doc["error"] == ""
    assert [a["outcome"] for a in doc["attempts"]] == ["completed"]
    assert doc["result"] == {"slept": 1.0, "steps": 4} and any("slept" in e["message"] for e in doc["logs"])


def test_enqueue_list_cancel_retry_json(cli):
    code, out, _ = cli("jobs", "enqueue", "pulse.noop", "--payload", "{}", "--priority", "5", "--json")
    assert code == 0
    job = json.loads(out)
    assert job["status"] == "queued" and job["priority"] == 5

    code, out, _ = cli(
        "jobs",
        "enqueue",
        "pulse.fail",
        "--payload",
        '{"error":"nope"}',
        "--max-attempts",
        "1",
        "--wait",
        "--json",
    )
    assert code == 1
    failed = json.loads(out)
    assert failed["status"] == "failed" and failed["error"] == "nope"

    code, out, _ = cli("jobs", "list", "--handler", "pulse.fail", "--status", "failed", "--json")
    assert code == 0
    listed = json.loads(out)
    assert failed["id"] in [j["id"] for j in listed["jobs"]]
    assert all(j["status"] == "failed" for j in listed["jobs"])

    code, out, err = cli("jobs", "retry", failed["id"], "--json")
    assert code == 0, err
    assert json.loads(out) == {"affected": [failed["id"]], "failures": []}

    code, out, err = cli("jobs", "cancel", "nope-1", "nope-2")
    assert code == 1 and err.count("error: no job with id") == 2

    code, out, err = cli("jobs", "list")
    assert code == 0 and out.startswith("ID") and "HANDLER" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["jobs", "enqueue", "pulse.slep"],
            "error: unknown handler 'pulse.slep'; did you mean 'pulse.sleep'",
        ),
        (["jobs", "enqueue", "pulse.noop", "--payload", "{x"], "error: --payload is not JSON"),
        (["jobs", "enqueue", "pulse.noop", "--timeout", "-1"], "error: timeout must not be negative"),
        (["jobs", "show", "nope"], "error: no job with id 'nope'"),
        (["jobs", "list", "--status", "done"], "error: unknown status 'done'"),
        (["jobs", "list", "--limit", "-3"], "error: --limit must be between 1 and 1000"),
        (["plugins", "reload", "demo"], "error: no plugin named 'demo'"),
    ],
)
def test_errors_are_one_line(cli, args, message):
    code, out, err = cli(*args)
    assert code != 0 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err


def test_tokens_and_connection(cli, shared_server, monkeypatch, tmp_path):
    addr = ["--connect", shared_server.address]
    monkeypatch.setenv("PULSE_TOKEN", shared_server.token)
    code, out, _ = cli("jobs", "list", "--limit", "1", *addr, connect=False)
    assert code == 0
    monkeypatch.setenv("PULSE_TOKEN", "0" * 64)
    code, _, err = cli("jobs", "list", *addr, connect=False)
    assert code == 1 and err.startswith("error: token rejected")
    monkeypatch.delenv("PULSE_TOKEN")
    ro = str(shared_server.data_dir / "token.readonly")
    code, _, err = cli("jobs", "enqueue", "pulse.noop", *addr, "--token-file", ro, connect=False)
    assert code == 1 and "read-only" in err
    empty = tmp_path / "empty.toml"
    empty.write_text(f'[server]\ndata_dir = "{tmp_path / "nothing"}"\n')
    code, _, err = cli("jobs", "list", *addr, "--config", str(empty), connect=False)
    assert code == 1 and err.startswith("error: no token: pass --token-file")
    code, _, err = cli("jobs", "list", "--connect", "127.0.0.1:1", "--token-file", ro, connect=False)
    assert code == 1 and err.startswith("error: server at 127.0.0.1:1 is not reachable")


def test_handlers_plugins_config_version(cli, capsys):
    code, out, _ = cli("handlers", "list", "--json")
    names = {h["name"] for h in json.loads(out)["handlers"]}
    assert code == 0 and {"pulse.noop", "pulse.sleep", "pulse.fail"} <= names
    code, out, _ = cli("handlers", "list", "--conflicts")
    assert code == 0 and out.strip() == "no handlers"
    code, out, _ = cli("plugins", "list", "--json")
    assert code == 0 and json.loads(out) == {"plugins": []}
    code, out, _ = cli("config", "--print-default", connect=False)
    assert code == 0 and "[server]" in out and "listen" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and __version__ in capsys.readouterr().out


def test_json_errors_source_parent_and_a_closed_pipe(cli, shared_server):
    import subprocess
    import sys

    code, out, err = cli("jobs", "show", "nosuchjob", "--json")
    assert code != 0 and out == ""
    doc = json.loads(err)  # one JSON document, not plain text
    assert "nosuchjob" in doc["error"] and doc["reason"] == "NOT_FOUND"

    code, out, err = cli("jobs", "enqueue", "pulse.noop", "--json")
    job_id = json.loads(out)["id"]
    code, out, err = cli("jobs", "show", job_id, "--json")
    doc = json.loads(out)
    assert doc["source"] == "pulse-tui cli" and "parent_job_id" in doc
    code, out, err = cli("jobs", "show", job_id)
    assert "source    pulse-tui cli" in out
    code, out, err = cli("jobs", "list")
    assert "SOURCE" in out.splitlines()[0] and "PARENT" in out.splitlines()[0]
    code, out, err = cli("jobs", "list", "--json")
    assert all("source" in j and "parent_job_id" in j for j in json.loads(out)["jobs"])

    for _ in range(250):  # more than a pipe buffer (64 KiB) of JSON
        cli("jobs", "enqueue", "pulse.noop", "--payload", '{"pad": "%s"}' % ("x" * 200))
    args = ["jobs", "list", "--json", "--limit", "1000", "--connect", shared_server.address]
    args += ["--token-file", str(shared_server.token_file)]
    # `| head -c 1`: the reader goes away after one byte; no BrokenPipeError traceback
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulse_tui", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.read(1) == b"{"
    proc.stdout.close()
    _, err_bytes = proc.communicate(timeout=30)
    assert b"Traceback" not in err_bytes and b"BrokenPipe" not in err_bytes, err_bytes.decode()
    assert proc.returncode == 0


def test_jobs_delete_by_id_and_by_filter_with_dry_run(cli, shared_server, monkeypatch, capsys):
    ids = [json.loads(cli("jobs", "enqueue", "pulse.noop", "--wait", "--json")[1])["id"] for _ in range(3)]
    code, out, err = cli("jobs", "enqueue", "pulse.sleep", "--payload", '{"seconds": 1}', "--json")
    queued = json.loads(out)["id"]
    code, out, err = cli("jobs", "delete", ids[0], queued)
    assert code == 1 and "deleted 1 job(s)" in out and "only finished jobs can be deleted" in err
    code, out, err = cli("jobs", "show", ids[0], "--json")
    assert code != 0 and "no job" in json.loads(err)["error"]
    code, out, err = cli("jobs", "delete", "--status", "running")
    assert code == 2 and "only finished jobs" in err
    code, out, err = cli("jobs", "delete", "--handler", "pulse.no", "--status", "completed")
    assert code == 0 and "would delete" in out and "--yes" in out  # asks first, deletes nothing
    n = int(out.split()[2].rstrip("+"))
    assert n >= 2
    code, out, err = cli(
        "jobs", "delete", "--handler", "pulse.no", "--status", "completed", "--yes", "--json"
    )
    assert code == 0 and ids[1] in json.loads(out)["deleted"] and ids[2] in json.loads(out)["deleted"]
    # a read-only token is refused by the server
    ro = shared_server.data_dir / "token.readonly"
    code = main(["jobs", "delete", queued, "--connect", shared_server.address, "--token-file", str(ro)])
    out, err = capsys.readouterr()
    assert code != 0 and "delete jobs" in err


def test_plugins_list_against_a_bare_plugin_shows_its_metadata(capsys):
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "pulse_tui.plugins.demo", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split("=", 1)[1])
        code = main(["plugins", "list", "--connect", f"127.0.0.1:{port}"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "bare plugin endpoint" in out and "health    healthy" in out and "handlers  unknown" in out
        code = main(["plugins", "list", "--json", "--connect", f"127.0.0.1:{port}"])
        out, err = capsys.readouterr()
        doc = json.loads(out)
        assert code == 0 and doc["name"] == "demo" and doc["healthy"] is True and doc["handlers"] is None
    finally:
        proc.terminate()
        proc.wait(10)


def test_att_shows_charged_attempts_and_interruptions_apart():
    """Issue 13.3: `1/3 +2↺` — one charged attempt of three, two uncharged interruptions."""
    from pulse_tui.cli import attempts_label
    from pulse_tui.protocol import operator_pb2
    from pulse_tui.widgets import fmt

    cases = [
        (operator_pb2.Job(attempts=3, run_attempts=1, max_attempts=3, interrupted_attempts=2), "1/3 +2↺"),
        (operator_pb2.Job(attempts=2, run_attempts=2, max_attempts=3), "2/3"),
        (operator_pb2.Job(attempts=5, run_attempts=1, max_attempts=3, retry_count=1), "1/3"),
        (operator_pb2.Job(attempts=1, max_attempts=3), "1/3"),  # an older server: no run_attempts
    ]
    for job, label in cases:
        assert attempts_label(job) == label and fmt.attempts_label(job) == label


def test_schedules_commands(cli):
    code, out, err = cli(
        "schedules", "create", "pulse.noop", "--cron", "0 3 * * *", "--tz", "Europe/Paris", "--json"
    )
    assert code == 0, err
    s = json.loads(out)
    assert s["cadence"] == "0 3 * * * Europe/Paris" and s["state"] == "active" and s["owner"] == "operator"
    sid = s["id"]
    code, out, err = cli("schedules", "list")
    assert code == 0 and sid in out and "0 3 * * * Europe/Paris" in out
    code, out, err = cli("schedules", "pause", sid)
    assert code == 0 and out.strip() == f"{sid}: paused"
    code, out, err = cli("schedules", "run", sid, "--json")
    assert code == 0, err
    run = json.loads(out)["results"][0]
    assert run["run"]["job_id"] and run["schedule"]["next_run_at"] == s["next_run_at"]  # cadence unchanged
    code, out, err = cli("schedules", "show", sid, "--json")
    doc = json.loads(out)
    assert (
        code == 0 and doc["state"] == "paused" and [e["id"] for e in doc["executions"]] == [run["run"]["id"]]
    )
    code, out, err = cli("schedules", "show", sid)
    assert "run now by operator" in out and "next runs: -" in out
    code, out, err = cli("schedules", "update", sid, "--every", "90m", "--payload", '{"v": 2}', "--json")
    assert code == 0, err
    upd = json.loads(out)
    assert upd["cadence"] == "every 1h30m" and upd["cron"] is None and upd["payload"] == {"v": 2}
    code, out, err = cli("schedules", "update", sid)
    assert code == 1 and "nothing to change" in err
    code, out, err = cli("schedules", "resume", sid, "--json")
    assert code == 0 and json.loads(out)["results"][0]["schedule"]["state"] == "active"
    code, out, err = cli("schedules", "delete", sid, "nope")
    assert code == 1 and f"{sid}: deleted" in out and "nope: no schedule with id 'nope'" in err
    code, out, _ = cli("schedules", "list", "--state", "deleted", "--json")
    assert sid in [x["id"] for x in json.loads(out)["schedules"]]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--every", "soon"), "interval 'soon' is not a duration"),
        (("--cron", "* *"), "must have 5 fields"),
        # the field and what it takes, not CronSim's bare "Bad minute"
        (("--cron", "61 * * * *"), "not valid: its minute field '61' (0-59)"),
        (("--cron", "0 3 31 2 *"), "its day-of-month field '31' (1-31, a day the month has)"),
        (("--cron", "0 3 * * *", "--tz", "Mars/Base"), "unknown time zone 'Mars/Base'"),
        (("--every", "5m", "--tz", "UTC"), "--tz only applies to --cron"),
        (("--every", "5m", "--payload", "{x"), "--payload is not JSON"),
    ],
)
def test_schedules_create_bad_input_is_one_line(cli, args, message):
    code, out, err = cli("schedules", "create", "pulse.noop", *args)
    assert code == 1 and message in err and err.count("\n") == 1


def test_schedules_create_unknown_handler(cli):
    code, _, err = cli("schedules", "create", "no.such", "--every", "5m")
    assert code == 1 and "unknown handler 'no.such'" in err


def test_children_ids_and_cost_estimates(cli):
    """--id (idempotent), --parent and --cost-estimate at enqueue; jobs list --parent; jobs show
    counts the children and shows the estimate beside the actual cost."""
    code, out, err = cli(
        "jobs", "enqueue", "pulse.noop", "--id", "cli-parent-1", "--cost-estimate", "2.5", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["id"] == "cli-parent-1" and doc["cost_estimate"] == 2.5
    code, out, err = cli("jobs", "enqueue", "pulse.noop", "--id", "cli-parent-1", "--cost-estimate", "2.5")
    assert (code, out.strip()) == (0, "cli-parent-1")  # the same enqueue again: that job
    code, out, err = cli("jobs", "enqueue", "pulse.noop", "--id", "cli-parent-1", "--payload", '{"x": 1}')
    assert code != 0 and "already exists with a different payload" in err
    for _ in range(2):
        code, out, err = cli("jobs", "enqueue", "pulse.noop", "--parent", "cli-parent-1")
        assert code == 0, err
    code, out, err = cli("jobs", "list", "--parent", "cli-parent-1", "--json")
    kids = json.loads(out)["jobs"]
    assert len(kids) == 2 and {k["parent_job_id"] for k in kids} == {"cli-parent-1"}
    code, out, err = cli("jobs", "show", "cli-parent-1", "--json")
    doc = json.loads(out)
    assert sum(doc["children"].values()) == 2 and doc["cost_estimate"] == 2.5
    code, out, err = cli("jobs", "show", "cli-parent-1")
    assert "children  2 (" in out and "(estimate 2.5)" in out


def test_jobs_and_handlers_pause_resume_json(cli, shared_server, capsys, tmp_path):
    spec = tmp_path / "jobs.jsonl"
    spec.write_text('{"handler": "pulse.noop", "delay_secs": 3600}\n')  # delayed: stays queued
    code, out, err = cli("jobs", "enqueue", "--from", str(spec), "--json")
    assert code == 0, err
    [job_id] = json.loads(out)["ids"]
    code, out, err = cli("jobs", "pause", job_id, "--json")
    assert code == 0 and json.loads(out) == {"affected": [job_id], "failures": []}, err
    code, out, err = cli("jobs", "show", job_id, "--json")
    assert json.loads(out)["status"] == "paused" and json.loads(out)["pause_reason"] == "user_requested"
    code, out, err = cli("jobs", "show", job_id)
    assert "status    paused (user requested)" in out
    code, out, err = cli("jobs", "pause", job_id)
    assert code == 1 and "already paused" in err
    code, out, err = cli("jobs", "resume", job_id)
    assert code == 0 and f"{job_id}: resumed" in out
    try:
        code, out, err = cli("handlers", "pause", "pulse.noop", "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["name"] == "pulse.noop" and doc["paused"] and doc["pause_reason"] == "user_requested"
        assert doc["paused_jobs"] >= 1  # the delayed job is held too
        code, out, err = cli("jobs", "show", job_id, "--json")
        assert json.loads(out)["pause_reason"] == "handler_paused"
        code, out, err = cli("handlers", "list")
        assert "paused (" in out and "PAUSED" in out
        code, out, err = cli("handlers", "pause", "nope.nothing")
        assert code != 0 and "no handler named 'nope.nothing'" in err
        # a read-only token is refused by the server
        ro = shared_server.data_dir / "token.readonly"
        for args in (["handlers", "resume", "pulse.noop"], ["jobs", "resume", job_id]):
            code = main([*args, "--connect", shared_server.address, "--token-file", str(ro)])
            out, err = capsys.readouterr()
            assert code != 0 and "read-only" in err
    finally:
        code, out, err = cli("handlers", "resume", "pulse.noop", "--json")
    assert code == 0 and not json.loads(out)["paused"], err
    code, out, err = cli("jobs", "show", job_id, "--json")
    assert json.loads(out)["status"] == "queued" and json.loads(out)["pause_reason"] is None
    cli("jobs", "cancel", job_id)


def test_jobs_pause_resume_all_matching_a_filter(cli, tmp_path):
    """jobs pause|resume select like the console's alt+p / alt+u: every queued (pause) or paused
    (resume) job matching --handler / --parent, up to --limit, with --dry-run and --json."""
    spec = tmp_path / "jobs.jsonl"
    spec.write_text('{"handler": "pulse.noop", "id": "cli-pr-top", "delay_secs": 3600}\n')
    assert cli("jobs", "enqueue", "--from", str(spec))[0] == 0
    kid = {"handler": "pulse.noop", "parent_job_id": "cli-pr-top", "delay_secs": 3600}
    spec.write_text(json.dumps(kid) + "\n" + json.dumps(kid) + "\n" + json.dumps(kid) + "\n")
    code, out, err = cli("jobs", "enqueue", "--from", str(spec), "--json")
    assert code == 0, err
    kids = json.loads(out)["ids"]
    try:
        code, out, err = cli("jobs", "pause", "--parent", "cli-pr-top", "--dry-run", "--json")
        doc = json.loads(out)
        assert code == 0 and sorted(doc["affected"]) == sorted(kids) and doc["dry_run"], err
        code, out, err = cli("jobs", "list", "--parent", "cli-pr-top", "--status", "paused", "--json")
        assert json.loads(out)["jobs"] == []  # a dry run changes nothing
        code, out, err = cli("jobs", "pause", "--parent", "cli-pr-top", "--handler", "pulse.*")
        assert (code, out.strip()) == (0, "3 queued job(s) paused"), err
        code, out, err = cli("jobs", "show", "cli-pr-top", "--json")
        assert json.loads(out)["status"] == "queued"  # not a child: not selected
        code, out, err = cli("jobs", "resume", "--parent", "cli-pr-top", "--limit", "2", "--json")
        doc = json.loads(out)
        assert code == 0 and len(doc["affected"]) == 2 and doc["truncated"] and not doc["dry_run"], err
        code, out, err = cli("jobs", "resume", "--parent", "cli-pr-top", "--status", "paused")
        assert (code, out.strip()) == (0, "1 paused job(s) resumed"), err
        code, out, err = cli("jobs", "resume", "--handler", "no.such.handler")
        assert (code, out.strip()) == (0, "0 paused job(s) resumed"), err
        code, out, err = cli("jobs", "pause", kids[0], "--handler", "pulse.noop")
        assert code == 2 and "give job ids or --handler/--parent/--status, not both" in err
        code, out, err = cli("jobs", "pause")
        assert code == 2 and "nothing selected" in err
    finally:
        cli("jobs", "cancel", "cli-pr-top", *kids)


def test_server_stop_finds_and_stops_the_server_a_console_kept(tmp_path, capsys):
    """A console (a process of its own, gone once it started the server, as after `k`) leaves its
    embedded server running; `server status` finds it from the data dir and `server stop` stops it
    (SIGTERM, then waits for it to exit). The server wrote its own log to the end."""
    import os
    import subprocess
    import sys

    from pulse_tui.cli import _serve_alive

    data_dir = tmp_path / "data"
    config_path = tmp_path / "pulse.toml"
    config_path.write_text(f'[server]\ndata_dir = {json.dumps(str(data_dir))}\nlisten = "127.0.0.1:0"\n')
    console = (
        "import argparse, sys\n"
        "from pulse_tui.cli import _start_embedded, load_config\n"
        "child = _start_embedded(argparse.Namespace(config=sys.argv[1]), load_config(sys.argv[1]))\n"
        "print(child.proc.pid)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", console, str(config_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout)
    try:
        assert main(["server", "status", "--json", "--config", str(config_path)]) == 0
        assert json.loads(capsys.readouterr().out)["pid"] == pid
        assert main(["server", "stop", "--config", str(config_path)]) == 0
        said = capsys.readouterr().out
        assert f"(pid {pid})" in said and "stopped the server at 127.0.0.1:" in said
        assert not _serve_alive(pid)  # gone (or a zombie: here PID 1 may not reap it)
        assert not (data_dir / "server.json").exists()
        assert "pulse: stopped" in (data_dir / "server.log").read_text()  # an orderly stop, logged
        assert main(["server", "stop", "--config", str(config_path)]) == 1
        assert "no server started by the console is running" in capsys.readouterr().err
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def test_an_unknown_theme_is_refused_before_the_console_starts(monkeypatch, tmp_path, capsys):
    """`--theme` (or `[tui] theme`) naming no theme is an error at once: no console, no server
    started for it (the data dir stays empty), not a notice inside a console that then runs."""
    data = tmp_path / "data"
    config = tmp_path / "pulse.toml"
    config.write_text(f'[server]\ndata_dir = "{data}"\nlisten = "127.0.0.1:1"\n')
    monkeypatch.setenv("PULSE_CONFIG", str(config))
    assert main(["--theme", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --theme: unknown theme 'bogus'; one of ") and "nord" in err, err
    config.write_text(config.read_text() + '\n[tui]\ntheme = "no-such"\n')
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("error: [tui] theme: unknown theme 'no-such'")
    assert not data.exists()


@pytest.mark.parametrize("address", ["nonsense", "db1:", ":7878", "db1:99999"])
def test_connect_that_is_not_host_port_is_a_usage_error(address, capsys):
    """Said as such, at once, not tried as an address and reported as a server not running."""
    with pytest.raises(SystemExit) as exit_:
        main(["jobs", "list", "--connect", address])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --connect: expected HOST:PORT (e.g. 127.0.0.1:7878), got {address!r}" in err, err
    assert "not reachable" not in err


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "enqueue", "pulse.noop", "--priority", "99999999999"],
        ["jobs", "enqueue", "pulse.noop", "--max-attempts", "-99999999999"],
        ["jobs", "enqueue", "pulse.noop", "--timeout", "99999999999999999999"],
        ["schedules", "update", "s1", "--jitter", "99999999999"],
        ["plugins", "show", "demo", "--tail", "99999999999"],
    ],
)
def test_an_integer_the_protocol_cannot_carry_is_a_usage_error(args, capsys):
    """Out of the protocol's int32/int64 range it was a ValueError traceback from protobuf."""
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--connect", "127.0.0.1:1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {args[-2]}: {args[-1]} is out of range (" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    "args",
    [
        ("jobs", "show", "nope-1"),
        ("jobs", "cancel", "nope-1"),
        ("jobs", "retry", "nope-1"),
        ("jobs", "pause", "nope-1"),
        ("jobs", "resume", "nope-1"),
        ("jobs", "delete", "nope-1"),
        ("jobs", "pause", "nope-1", "--dry-run"),
        ("jobs", "delete", "nope-1", "--dry-run"),
        ("schedules", "show", "nope-1"),
        ("schedules", "pause", "nope-1"),
        ("schedules", "resume", "nope-1"),
        ("schedules", "run", "nope-1"),
        ("schedules", "delete", "nope-1"),
        ("schedules", "update", "nope-1", "--every", "5m"),
    ],
    ids=" ".join,
)
def test_a_missing_id_is_only_an_error_naming_it(cli, args):
    """A by-id command given an id that does not exist says so on stderr, naming the id, and
    nothing on stdout: `jobs delete` printed "deleted 0 job(s)" before the error."""
    code, out, err = cli(*args)
    assert code == 1 and out == "", out
    assert err.startswith("error: ") and "'nope-1'" in err and err.count("\n") == 1, err


def test_what_a_job_says_cannot_drive_the_terminal(cli):
    """A job's error, logs and result come from plugins and from whoever enqueued (pulse.fail
    takes its error from the payload). They were printed as they were, so `jobs show` sent a
    job's escape sequences (colours, the window title, OSC 52 clipboard writes) and bidi
    overrides to the operator's terminal. Text output now writes each such character as its
    escape; --json was always escaped."""
    evil = "\x1b]52;c;ZWNobyBoaQ==\x07 \x1b[2J\rspoof \u202eevil \x9b"
    payload = json.dumps({"error": evil})
    code, out, err = cli(
        "jobs", "enqueue", "pulse.fail", "--max-attempts", "1", "--payload", payload, "--wait"
    )
    assert code == 1
    job_id = out.split()[1]
    for text in (out, err, cli("jobs", "show", job_id)[1]):
        assert not any(c in text for c in "\x1b\x07\r\u202e\x9b"), repr(text)
        assert "\\x1b]52;c;ZWNobyBoaQ==\\x07 \\x1b[2J\\rspoof \\u202eevil \\x9b" in text, text
    code, out, _ = cli("jobs", "show", job_id, "--json")
    assert code == 0 and json.loads(out)["error"] == evil
