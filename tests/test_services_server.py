"""`pulse-tui serve` as a process: start-up errors, graceful stop on SIGTERM, restart."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.protocol import operator_pb2_grpc as op_grpc


def serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pulse_tui", "serve", *args], capture_output=True, text=True, timeout=timeout
    )


def test_port_in_use_exits_2(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        r = serve_empty(tmp_path, tmp_path / "new" / "d", listen=f"127.0.0.1:{port}")
    assert r.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in r.stderr and "--listen" in r.stderr
    assert not (tmp_path / "new").exists()  # a failed start leaves no data dir (nor its parents) behind


def test_metrics_port_in_use_exits_2_and_writes_no_tokens(tmp_path):
    """The /metrics address is bound before the tokens are written (a taken metrics port left
    token files behind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        r = serve_empty(tmp_path, tmp_path / "d", "--metrics", f"127.0.0.1:{port}")
    assert r.returncode == 2 and f"cannot serve metrics on 127.0.0.1:{port}" in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()  # bound before the store and the tokens: nothing written


def test_a_failed_start_removes_only_empty_dirs_it_created(tmp_path):
    """A failed start never deletes a file: a dir it created that holds one (another server
    started on it at the same moment, a store file) stays, with its parents."""
    from pulse_tui.pulse.server import DirFootprint

    made = tmp_path / "a" / "b"
    fp = DirFootprint(made)
    made.mkdir(parents=True)
    (made / "pulse.db").write_text("someone's jobs")
    fp.undo()
    assert (made / "pulse.db").read_text() == "someone's jobs"
    (made / "pulse.db").unlink()
    fp.undo()
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "e"
    existing.mkdir()
    fp = DirFootprint(existing)
    fp.undo()
    assert existing.is_dir()


def test_store_urls_serve_names(tmp_path):
    """A SQLite path, sqlite:PATH, sqlite:///ABSOLUTE and postgresql:// URLs name stores; another
    scheme is refused rather than taken for a file name (sqlite:/// was refused for a while)."""
    from pulse_tui.pulse.store import open_store, store_url_problem
    from pulse_tui.pulse.store.sqlite import SQLiteStore

    for url in (
        "jobs.db",
        "sqlite:jobs.db",
        f"sqlite://{tmp_path}/x.db",
        "postgresql://h/db",
        "postgres://h/db",
    ):
        assert store_url_problem(url) == "", url
    for url in ("mysql://db1/pulse", "redis://h:6379/0", "SQLITE3://x", "PostgreSQL://h/db", "SQLITE:///x"):
        assert "expected a SQLite path" in store_url_problem(url), url
    store = open_store(f"sqlite://{tmp_path}/x.db")
    assert isinstance(store, SQLiteStore) and Path(store.path) == tmp_path / "x.db"


def test_store_that_cannot_open_exits_2_and_writes_no_tokens(tmp_path):
    r = serve_empty(tmp_path, tmp_path / "d", "--db", str(tmp_path / "missing" / "pulse.db"))
    assert r.returncode == 2, r.stderr
    assert "error: cannot open the job store" in r.stderr and "does not exist" in r.stderr, r.stderr
    assert not (tmp_path / "d").exists(), list((tmp_path / "d").iterdir())  # nor tokens, nor the dir


def test_a_failed_start_leaves_an_existing_data_dir_as_it_was(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    r = serve_empty(tmp_path, data, "--db", str(tmp_path / "missing" / "pulse.db"))
    assert r.returncode == 2 and "error: cannot open the job store" in r.stderr, r.stderr
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt"]
    assert (data / "notes.txt").read_text() == "mine"


def test_data_dir_not_writable_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = serve_empty(tmp_path, blocker / "sub")
    assert r.returncode == 2 and "error: data dir" in r.stderr and "not writable" in r.stderr


def test_non_loopback_needs_tls_or_insecure(tmp_path):
    r = serve(
        "--config", str(_empty_config(tmp_path)), "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "d")
    )
    assert r.returncode == 2
    assert "refusing to listen on non-loopback address 0.0.0.0:0 without TLS" in r.stderr
    assert "--insecure" in r.stderr


def test_bad_listen_and_config(tmp_path):
    r = serve(
        "--config", str(_empty_config(tmp_path)), "--listen", "nowhere", "--data-dir", str(tmp_path / "d")
    )
    assert r.returncode == 2 and "must be HOST:PORT" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nconcurrency = 'lots'\n")
    r = serve("--config", str(bad), "--listen", "127.0.0.1:0")
    assert r.returncode == 2 and "error:" in r.stderr and "concurrency" in r.stderr


def test_sigterm_drains_and_requeues(server_factory):
    """Short job finishes within the grace period; a long one is re-queued (not failed) and runs
    again after a restart on the same data dir."""
    srv = server_factory(extra_args=["--grace", "1.5"])
    with grpc.insecure_channel(srv.address) as ch:
        ops = op_grpc.OperatorServiceStub(ch)
        md = srv.metadata
        watch = ops.WatchJobs(op.WatchJobsRequest(), metadata=md)
        assert next(watch).kind == "heartbeat"
        short = ops.Enqueue(
            op.EnqueueRequest(handler="pulse.sleep", payload=b'{"seconds": 0.5}'), metadata=md
        ).job
        long = ops.Enqueue(
            op.EnqueueRequest(handler="pulse.sleep", payload=b'{"seconds": 30}'), metadata=md
        ).job
        running: set[str] = set()
        for event in watch:
            if event.kind == "upsert" and event.job.status == "running":
                running.add(event.job.id)
            if running == {short.id, long.id}:
                break
        watch.cancel()
    srv.process.proc.send_signal(signal.SIGTERM)
    assert srv.process.proc.wait(20) == 0, srv.output()
    assert "pulse: stopped" in srv.output()

    srv.restart()  # same data dir and config
    again = srv
    try:
        with grpc.insecure_channel(again.address) as ch:
            ops = op_grpc.OperatorServiceStub(ch)
            d_short = ops.GetJob(op.GetJobRequest(id=short.id), metadata=again.metadata)
            assert d_short.job.status == "completed"
            d_long = ops.GetJob(op.GetJobRequest(id=long.id), metadata=again.metadata)
            assert d_long.job.status in ("queued", "running")
            assert d_long.attempts[0].outcome == "interrupted"
            r = ops.CancelJobs(op.JobSelector(ids=[long.id]), metadata=again.metadata)
            assert list(r.affected_ids) == [long.id]
    finally:
        assert again.stop() == 0


def _empty_config(tmp_path):
    path = tmp_path / "empty.toml"
    path.write_text(f"[server]\ndata_dir = {json.dumps(str(tmp_path / 'd'))}\n")
    return path


def serve_empty(
    tmp_path, data_dir, *args: str, listen: str = "127.0.0.1:0"
) -> subprocess.CompletedProcess[str]:
    """`serve` with an empty config, on `listen`, with `data_dir`, and `args`."""
    return serve(
        "--config", str(_empty_config(tmp_path)), "--listen", listen, "--data-dir", str(data_dir), *args
    )


DEMO_AND_IMPORTER = """
[[plugins]]
name = "demo"
command = ["{python}", "-m", "pulse_tui.plugins.demo"]

[[plugins]]
name = "importer"
command = ["{python}", "-m", "pulse_tui.plugins.importer"]
"""


def test_plugins_through_operator_service(server_factory):
    """Plugins started by the server: listed, their handlers (with conflicts) routed, jobs run
    through them with progress reported over QueueService.UpdateJob, reload works."""
    srv = server_factory(DEMO_AND_IMPORTER)
    md = srv.metadata
    with grpc.insecure_channel(srv.address) as ch:
        ops = op_grpc.OperatorServiceStub(ch)
        plugins = {p.name: p for p in ops.ListPlugins(op.ListPluginsRequest(), metadata=md).plugins}
        assert set(plugins) == {"demo", "importer"}
        assert plugins["demo"].state == "ready" and "demo.sleep" in plugins["demo"].handlers
        conflicts = {
            h.name: h
            for h in ops.ListHandlers(op.ListHandlersRequest(conflicts_only=True), metadata=md).handlers
        }
        assert conflicts["data.import"].conflict == "exact" and conflicts["data.import"].owner == "demo"

        watch = ops.WatchJobs(op.WatchJobsRequest(), metadata=md)
        assert next(watch).kind == "heartbeat"
        job = ops.Enqueue(
            op.EnqueueRequest(handler="demo.sleep", payload=b'{"seconds": 0.8, "steps": 4}'), metadata=md
        ).job
        running_progress = set()
        for event in watch:
            if event.kind != "upsert" or event.job.id != job.id:
                continue
            if event.job.status == "running":
                running_progress.add(event.job.progress_current)
            if event.job.status in ("completed", "failed"):
                break
        watch.cancel()
        assert running_progress - {0}, "no progress arrived from the plugin while the job ran"
        detail = ops.GetJob(op.GetJobRequest(id=job.id), metadata=md)
        assert detail.job.status == "completed", detail.job.error
        assert detail.job.plugin == "demo" and detail.attempts[0].plugin == "demo"

        reloaded = ops.ReloadPlugin(op.PluginNameRequest(name="demo"), metadata=md)
        assert reloaded.plugin.state == "ready" and not reloaded.removed
        assert "data.import" in reloaded.conflicts
        one = ops.GetPlugin(op.GetPluginRequest(name="demo", tail_lines=5), metadata=md)
        assert one.name == "demo" and len(one.output_tail) <= 5
    assert srv.stop() == 0


def test_reload_shows_the_old_instance_draining_over_the_api_and_cli(server_factory, capsys):
    """Issue 13.2: the operator API and `plugins list` show an old instance finishing its jobs."""
    import time

    from pulse_tui.cli import main

    srv = server_factory(DEMO_AND_IMPORTER)
    md = srv.metadata
    with grpc.insecure_channel(srv.address) as ch:
        ops = op_grpc.OperatorServiceStub(ch)
        job = ops.Enqueue(
            op.EnqueueRequest(handler="demo.sleep", payload=b'{"seconds": 3, "steps": 30}', max_attempts=1),
            metadata=md,
        ).job
        deadline = time.monotonic() + 20
        while ops.GetJob(op.GetJobRequest(id=job.id), metadata=md).job.progress_current == 0:
            assert time.monotonic() < deadline, "the job never reported progress"
            time.sleep(0.02)
        reloaded = ops.ReloadPlugin(op.PluginNameRequest(name="demo"), metadata=md)
        assert reloaded.draining_jobs == 1 and reloaded.plugin.draining_instances == 1
        demo = ops.GetPlugin(op.GetPluginRequest(name="demo"), metadata=md)
        assert (demo.draining_instances, demo.draining_jobs, demo.running_jobs) == (1, 1, 1)
        argv = ["--connect", srv.address, "--token-file", str(srv.token_file)]
        assert main(["plugins", "list", *argv]) == 0
        assert "ready; old instance draining (1 job)" in capsys.readouterr().out
        while (done := ops.GetJob(op.GetJobRequest(id=job.id), metadata=md).job).status == "running":
            assert time.monotonic() < deadline + 20, "the job did not finish"
            time.sleep(0.05)
        assert done.status == "completed" and (done.attempts, done.interrupted_attempts) == (1, 0)
        while ops.GetPlugin(op.GetPluginRequest(name="demo"), metadata=md).draining_instances:
            assert time.monotonic() < deadline + 30, "the old instance did not stop"
            time.sleep(0.05)
    assert srv.stop() == 0


def test_sigterm_with_dead_stderr_still_stops(tmp_path):
    """The parent that read the server's stderr died (the pipe's read end is closed): SIGTERM must
    still stop the server within its grace, plugins included. It used to hang until SIGKILL: the
    first shutdown line raised BrokenPipeError past the orderly stop, and cancelling the left-over
    tasks waited forever for a plugin exit nobody watched any more."""
    data_dir = tmp_path / "d"
    config = tmp_path / "pulse.toml"
    config.write_text(
        f'[[plugins]]\nname = "demo"\ncommand = ["{sys.executable}", "-m", "pulse_tui.plugins.demo"]\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulse_tui", "serve", "--config", str(config), "--listen", "127.0.0.1:0"]
        + ["--data-dir", str(data_dir), "--grace", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("pulse: listening on "):
                address = line.removeprefix("pulse: listening on ").strip()
                break
        else:
            raise AssertionError(f"no listen line; exit status {proc.wait()}")
        plugin_pids = [int(pid) for pid in json.loads((data_dir / "plugins.pid").read_text())["groups"]]
        assert plugin_pids
        md = (("authorization", f"Bearer {(data_dir / 'token').read_text().strip()}"),)
        with grpc.insecure_channel(address) as ch:  # a job running at SIGTERM: the stop re-queues it
            ops = op_grpc.OperatorServiceStub(ch)
            watch = ops.WatchJobs(op.WatchJobsRequest(), metadata=md)
            assert next(watch).kind == "heartbeat"
            job = ops.Enqueue(
                op.EnqueueRequest(handler="demo.sleep", payload=b'{"seconds": 60}'), metadata=md
            ).job
            next(e for e in watch if e.kind == "upsert" and e.job.status == "running")
            watch.cancel()
        proc.stderr.close()  # the reader is gone: every write to fd 2 now fails with EPIPE
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        with contextlib.closing(sqlite3.connect(data_dir / "pulse.db")) as db:
            row = db.execute("SELECT status FROM jobs WHERE id=?", (job.id,)).fetchone()
        assert row == ("queued",), "the orderly stop did not run (the job was left running)"
        for pid in plugin_pids:  # the demo plugin (its own process group) went with it
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"plugin process group {pid} outlived the server")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grace", "-1"], "error: --grace must be 0 or more seconds, got -1"),
        (["--db", "mysql://db1/pulse"], "error: --db 'mysql://db1/pulse': expected a SQLite path"),
        (["--metrics", "nonsense"], "error: metrics address 'nonsense' must be HOST:PORT"),
    ],
)
def test_bad_serve_flags_exit_2_and_leave_nothing(tmp_path, args, message):
    """Refused with what was wrong (a negative grace ran, "running jobs get -1s"; a mysql:// URL
    was taken for a SQLite file; a bad metrics address was called the listen address)."""
    r = serve_empty(tmp_path, tmp_path / "d", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not list((tmp_path / "d").glob("token*"))
