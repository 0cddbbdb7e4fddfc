"""Security: token files, secrets kept out of logs and plugin environments, the read-only token,
plugin-token scope, loopback-by-default and TLS end to end. Real server and plugin processes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from conftest import START_TIMEOUT, ServerHandle
from helpers.reliability import DEMO, connect, probe_config, store_snapshot, wait_until

from pulse_tui.cli import ServerProcess
from pulse_tui.protocol import operator_pb2 as op
from pulse_tui.pulse.auth import read_token_file, write_secret_file


def _start(base: Path, config_text: str, *args: str, env: dict | None = None) -> ServerHandle:
    data = base / "data"
    cfg = base / "pulse.toml"
    cfg.write_text(f"[server]\ndata_dir = {json.dumps(str(data))}\n\n{config_text}")
    proc = ServerProcess(
        ["--config", str(cfg), "--listen", "127.0.0.1:0", "--data-dir", str(data), *args], env=env
    )
    address = proc.start(timeout=START_TIMEOUT)
    return ServerHandle(address=address, data_dir=data, process=proc, config_path=cfg)


def test_token_files_0600_atomic(server_factory, tmp_path):
    srv = server_factory()
    for name in ("token", "token.readonly"):
        st_ = (srv.data_dir / name).stat()
        assert stat.S_IMODE(st_.st_mode) == 0o600, oct(st_.st_mode)
        assert len(read_token_file(srv.data_dir / name)) == 64
    assert srv.token != srv.readonly_token
    assert sorted(p.name for p in srv.data_dir.iterdir() if p.name.startswith(".")) == []  # no temp files
    # atomic replacement: a reader racing 300 rewrites never sees a partial, empty or wider file
    path = tmp_path / "secret"
    write_secret_file(path, "a" * 64)
    seen: set[str] = set()
    bad: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                text = path.read_text()
                mode = stat.S_IMODE(path.stat().st_mode)
            except FileNotFoundError:
                bad.append("missing")
                continue
            seen.add(text)
            if text.strip() not in ("a" * 64, "b" * 64) or mode != 0o600:
                bad.append(f"{text!r} {mode:o}")

    t = threading.Thread(target=reader)
    t.start()
    for i in range(300):
        write_secret_file(path, ("a", "b")[i % 2] * 64)
    done.set()
    t.join()
    assert not bad, bad[:5]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_tokens_and_payloads_stay_out_of_logs_and_plugin_env(tmp_path):
    """Debug logging, the admin token also in the server's own environment (PULSE_TOKEN): after
    enqueues, a wrong-token call, read-only calls and plugin jobs, no token appears in the server's
    output or the plugins' output; no payload appears at info level or above; the plugin's
    environment holds no token, and its Initialize token is its own."""
    out = tmp_path / "probe"
    out.mkdir()
    secret_env = {**os.environ, "PULSE_TOKEN": "will-be-replaced", "PULSE_ADMIN_TOKEN_X": "nope"}
    base = tmp_path / "srv"
    base.mkdir()
    # first start creates the tokens; restart with the admin token in the environment
    first = _start(base, "")
    admin = first.token
    first.stop()
    secret_env["PULSE_TOKEN"] = admin
    srv = _start(base, DEMO + probe_config(tmp_path, out), "-v", env=secret_env)
    try:
        c = connect(srv.address, srv.token)
        marker = "PAYLOAD-MARKER-7f3a"
        wrong = "e" * 64
        with pytest.raises(grpc.RpcError):
            c.ops.ListJobs(op.ListJobsRequest(), metadata=(("authorization", f"Bearer {wrong}"),))
        c.queue.ListJobs(
            __import__("pulse_tui.protocol.queue_pb2", fromlist=["x"]).ListJobsRequest(auth_token=wrong)
        )
        c.ops.ListJobs(op.ListJobsRequest(), metadata=srv.readonly_metadata)
        ids = c.enqueue_many("demo.echo", [json.dumps({"m": marker}).encode()] * 5)
        ids += c.enqueue_many("demo.sleep", [json.dumps({"seconds": 0.3, "steps": 3, "m": marker}).encode()])
        ids += c.enqueue_many(
            "demo.flaky", [json.dumps({"fail_rate": 1, "m": marker}).encode()], max_attempts=1
        )
        (other,) = c.enqueue_many("pulse.noop", [b"{}"], delay_secs=3600)
        (scope,) = c.enqueue_many("probe.scope", [json.dumps({"other": other}).encode()])
        wait_until(
            lambda: all(
                c.ops.GetJob(op.GetJobRequest(id=i), metadata=c.md).job.status in ("completed", "failed")
                for i in [*ids, scope]
            ),
            30,
            "jobs to finish",
        )
        scope_detail = c.ops.GetJob(op.GetJobRequest(id=scope), metadata=c.md)
        tails = [c.ops.GetPlugin(op.GetPluginRequest(name=n), metadata=c.md) for n in ("demo", "probe")]
        other_after = c.ops.GetJob(op.GetJobRequest(id=other), metadata=c.md).job
        c.close()
    finally:
        assert srv.stop() == 0
    log = srv.output()
    plugin_token = json.loads((out / "init.json").read_text())["token"]
    env = json.loads((out / "env.json").read_text())
    secrets = {"admin": admin, "readonly": srv.readonly_token, "plugin": plugin_token, "wrong": wrong}
    assert len(plugin_token) >= 32 and plugin_token not in (admin, srv.readonly_token)
    assert " DEBUG " in log  # debug logging was on
    everything = log + "\n".join(line for p in tails for line in p.output_tail)
    for name, value in secrets.items():
        assert value not in everything, f"the {name} token appears in the output"
        assert value not in json.dumps(env), f"the {name} token is in the plugin's environment"
        assert value not in tails[1].description
    assert not [k for k in env if k.startswith("PULSE_") and "TOKEN" in k], sorted(env)
    info_lines = [line for line in log.splitlines() if " DEBUG " not in line]
    assert not [line for line in info_lines if marker in line], "a payload was logged at info level"
    # the plugin token: only its own running job
    result = json.loads(scope_detail.result)
    assert scope_detail.job.status == "completed", scope_detail.job.error
    assert result["update_own"] == [True, ""] and result["get_own"][0] is True
    for key in ("update_other", "cancel_other", "get_other"):
        assert result[key][0] is False and "not running on plugin 'probe'" in result[key][1], (
            key,
            result[key],
        )
    assert result["complete_own"][0] is False and "may not change a job's status" in result["complete_own"][1]
    assert result["list"] == [False, "plugin tokens may not list jobs"]
    # a plugin enqueues children of its own running job only: naming another parent is refused
    assert (
        result["enqueue"][0] is False
        and "is not running on this instance of plugin 'probe'" in result["enqueue"][1]
    )
    assert result["operator_list"].startswith("PERMISSION_DENIED: plugin tokens may only use QueueService")
    assert other_after.status == "queued" and other_after.progress_total == 0
    print("secrets-in-logs", {"log_lines": len(log.splitlines()), "tokens_checked": len(secrets), "found": 0})


def test_read_only_token_can_list_and_watch(server_factory):
    srv = server_factory()
    c = connect(srv.address, srv.token)
    (jid,) = c.enqueue_many("pulse.noop", [b"{}"])
    ro = srv.readonly_metadata
    watch = c.ops.WatchJobs(op.WatchJobsRequest(), metadata=ro)
    assert next(watch).kind == "heartbeat"
    before = store_snapshot(srv.data_dir)
    assert c.ops.GetServerInfo(op.ServerInfoRequest(), metadata=ro).read_only
    assert [j.id for j in c.ops.ListJobs(op.ListJobsRequest(), metadata=ro).jobs] == [jid]
    assert c.ops.GetJob(op.GetJobRequest(id=jid), metadata=ro).job.id == jid
    assert c.ops.CountJobs(op.CountJobsRequest(), metadata=ro).total == 1
    c.ops.ListPlugins(op.ListPluginsRequest(), metadata=ro)
    c.ops.ListHandlers(op.ListHandlersRequest(), metadata=ro)
    mutations = [
        lambda: c.ops.Enqueue(op.EnqueueRequest(handler="pulse.noop"), metadata=ro),
        lambda: c.ops.CancelJobs(op.JobSelector(ids=[jid]), metadata=ro),
        lambda: c.ops.RetryJobs(op.JobSelector(ids=[jid]), metadata=ro),
        lambda: c.ops.CancelJobs(op.JobSelector(filter=op.JobFilter(), dry_run=True), metadata=ro),
        lambda: c.ops.ReloadPlugin(op.PluginNameRequest(name="demo"), metadata=ro),
        lambda: c.ops.SetPluginEnabled(op.SetPluginEnabledRequest(name="demo"), metadata=ro),
        lambda: c.ops.SaveScript(op.SaveScriptRequest(name="x", code="def run(p, c): 1"), metadata=ro),
        lambda: c.ops.DeleteScript(op.DeleteScriptRequest(name="x"), metadata=ro),
    ]
    for m in mutations:
        with pytest.raises(grpc.RpcError) as err:
            m()
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "read-only" in err.value.details()
    (jid2,) = c.enqueue_many("pulse.noop", [b"{}"])  # the watcher (read-only) sees changes
    wait_until(lambda: (e := next(watch)).kind == "upsert" and e.job.id == jid2, 10, "the watch event")
    watch.cancel()
    c.close()
    assert before["scripts"] == store_snapshot(srv.data_dir)["scripts"]


def _serve_once(args: list[str]) -> tuple[int | None, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulse_tui", "serve", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("pulse: listening on "):
            proc.terminate()
            proc.communicate(timeout=30)
            return None, "".join(lines)
    return proc.wait(30), "".join(lines)


def test_non_loopback_needs_tls_or_insecure(tmp_path):
    base = ["--config", str(tmp_path / "none.toml"), "--data-dir", str(tmp_path / "d")]
    (tmp_path / "none.toml").write_text("")
    code, text = _serve_once([*base, "--listen", "0.0.0.0:0"])
    assert code == 2 and "refusing to listen on non-loopback address" in text and "--insecure" in text
    code, text = _serve_once([*base, "--listen", "[::]:0"])
    assert code == 2 and "refusing" in text
    code, text = _serve_once([*base, "--listen", "0.0.0.0:0", "--insecure"])
    assert code is None, text


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("neither the cryptography package nor the openssl CLI is available")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    for ca in ("ca", "other"):
        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.pem",
            "-days",
            "2",
            "-subj",
            f"/CN=pulse-test-{ca}",
        )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    )
    return {n: d / n for n in ("ca.pem", "other.pem", "server.pem", "server.key")}


def test_tls_end_to_end(server_factory, certs):
    """serve --tls-cert/--tls-key: a client trusting the CA works (API and CLI), plaintext and a
    client trusting another CA are refused, and a plugin job (progress over QueueService) runs."""
    srv = server_factory(
        DEMO, ["--tls-cert", str(certs["server.pem"]), "--tls-key", str(certs["server.key"])]
    )
    creds = grpc.ssl_channel_credentials(root_certificates=certs["ca.pem"].read_bytes())
    c = connect(srv.address, srv.token, creds)
    t0 = time.monotonic()
    info = c.ops.GetServerInfo(op.ServerInfoRequest(), metadata=c.md)
    assert not info.read_only
    watch = c.ops.WatchJobs(op.WatchJobsRequest(), metadata=c.md)
    assert next(watch).kind == "heartbeat"
    (jid,) = c.enqueue_many("demo.sleep", [b'{"seconds": 1.0, "steps": 4}'])
    progress = set()
    for e in watch:
        if e.kind == "upsert" and e.job.id == jid:
            if e.job.status == "running":
                progress.add(e.job.progress_current)
            if e.job.status in ("completed", "failed"):
                break
    watch.cancel()
    detail = c.ops.GetJob(op.GetJobRequest(id=jid), metadata=c.md)
    c.close()
    assert detail.job.status == "completed", detail.job.error
    for bad in (
        grpc.insecure_channel(srv.address),
        grpc.secure_channel(srv.address, grpc.ssl_channel_credentials(certs["other.pem"].read_bytes())),
    ):
        with bad, pytest.raises(grpc.RpcError) as err:
            op_grpc_stub(bad).GetServerInfo(op.ServerInfoRequest(), metadata=srv.metadata, timeout=3)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pulse_tui",
            "jobs",
            "list",
            "--json",
            "--connect",
            srv.address,
            "--token-file",
            str(srv.token_file),
            "--tls-ca",
            str(certs["ca.pem"]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert [j["id"] for j in json.loads(r.stdout)["jobs"]] == [jid]
    print("tls", {"round_trip_s": round(time.monotonic() - t0, 2), "progress_seen": sorted(progress)})
    # plugins report progress over the loopback plaintext port a TLS server opens for them
    assert progress - {0}, "a TLS server received no progress from its plugin"


def op_grpc_stub(channel):
    from pulse_tui.protocol import operator_pb2_grpc

    return operator_pb2_grpc.OperatorServiceStub(channel)


# started with a low soft limit on open files (systemd's default for services is 1024), as a
# service would be: the server then raises its own soft limit to the hard one
_LOW_NOFILE = (
    "import os, resource, sys; hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard)); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def test_idle_connections_from_anyone_cannot_take_every_file_descriptor(tmp_path):
    """Anyone who reaches the port can hold TCP connections open without a byte of gRPC (no
    token needed). With the soft limit on open files a service is started with, a few hundred of
    them used every descriptor: the server answered nobody ("not reachable") until they went
    away. The server now raises its soft limit to the hard one (as Go servers do), so such a
    flood costs memory, not the service."""
    import resource
    import socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024 or soft < 512:
        pytest.skip(f"open files limit too low here ({soft}/{hard})")
    data = tmp_path / "data"
    cfg = tmp_path / "pulse.toml"
    cfg.write_text(f"[server]\ndata_dir = {json.dumps(str(data))}\n")
    proc = ServerProcess(["--config", str(cfg), "--listen", "127.0.0.1:0", "--data-dir", str(data)])
    proc.argv[1:1] = ["-c", _LOW_NOFILE]
    srv = ServerHandle(
        address=proc.start(timeout=START_TIMEOUT), data_dir=data, process=proc, config_path=cfg
    )
    idle: list[socket.socket] = []
    try:
        host, port = srv.address.rsplit(":", 1)
        idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(200)]
        c = connect(srv.address, srv.token)
        try:
            got = c.ops.Enqueue(
                op.EnqueueRequest(handler="pulse.noop", payload=b"{}"), metadata=c.md, timeout=10
            )
            assert got.job.id and got.job.handler == "pulse.noop"
        finally:
            c.channel.close()
    finally:
        for s in idle:
            s.close()
        srv.stop()


def test_a_tls_certificate_or_key_that_cannot_be_used_is_named(tmp_path, certs):
    """A --tls-cert that is not a certificate, or a key that is not the certificate's, made gRPC
    log its own error and `serve` report `cannot listen on …: the port is in use`."""
    base = [
        "--config",
        str(tmp_path / "none.toml"),
        "--data-dir",
        str(tmp_path / "d"),
        "--listen",
        "127.0.0.1:0",
    ]
    (tmp_path / "none.toml").write_text("")
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    other_key = certs["server.pem"].parent / "other.key"
    for cert, key in ((tmp_path / "notes.txt", certs["server.key"]), (certs["server.pem"], other_key)):
        code, text = _serve_once([*base, "--tls-cert", str(cert), "--tls-key", str(key)])
        assert code == 2, text
        assert f"--tls-cert {cert} and --tls-key {key} are not a usable certificate and key" in text, text
        assert "port is in use" not in text and "Traceback" not in text
    tls = ["--tls-cert", str(certs["server.pem"]), "--tls-key", str(certs["server.key"])]
    code, text = _serve_once([*base, *tls, "--tls-client-ca", str(tmp_path / "notes.txt")])
    assert code == 2 and f"--tls-client-ca {tmp_path / 'notes.txt'} is not a PEM CA certificate" in text, text
    assert not (tmp_path / "d").exists()  # nothing was written
