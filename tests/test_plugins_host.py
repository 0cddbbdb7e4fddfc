"""PluginHost + PluginProxyHandler with real plugin processes (no engine: jobs run via the proxy)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import pytest
from plugins.harness import module, plugin_process, queue_recorder, script, wait_until

from pulse_tui.config import PluginConfig
from pulse_tui.pulse import jobs
from pulse_tui.pulse.errors import NotFound, Precondition
from pulse_tui.pulse.handlers import HandlerError, HandlerResult, Interrupted, JobContext
from pulse_tui.pulse.host import BACKOFF, DISABLED, READY, STOPPED, PluginHost, plugin_env
from pulse_tui.pulse.registry import Registry

DEMO = module("pulse_tui.plugins.demo")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps orphans here)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def plugin(name: str, command: list[str] | None = None, **kw) -> PluginConfig:
    return PluginConfig(name=name, command=command or [], **kw)


class Harness:
    def __init__(self, host: PluginHost, registry: Registry, recorder) -> None:
        self.host, self.registry, self.recorder = host, registry, recorder
        self.routes_changed = 0

    async def run(
        self, handler: str, payload: object = None, *, timeout: float | None = 30.0, job_id: str = "j"
    ):
        h = self.registry.resolve(handler)
        assert h is not None, f"{handler} not routable"
        return await h.run(context(job_id, handler, payload, timeout))

    async def ready(self, name: str, timeout: float = 15.0, **match):
        return await self.host.wait_for(
            name, lambda s: s.state == READY and all(getattr(s, k) == v for k, v in match.items()), timeout
        )


def context(job_id: str, handler: str, payload: object, timeout: float | None) -> JobContext:
    job = jobs.Job(
        id=job_id, handler=handler, payload=json.dumps(payload or {}).encode(), status=jobs.RUNNING
    )
    return JobContext(job, 1, timeout, lambda c, t: None, lambda e: None, lambda c: None)


@pytest.fixture
async def make_host() -> AsyncIterator:
    hosts: list[PluginHost] = []
    async with queue_recorder() as (recorder, endpoint):

        async def make(*configs: PluginConfig, pins=None, start=True, **kw) -> Harness:
            registry = Registry([c.name for c in configs], pins or {})
            opts = dict(
                health_interval=0.2, backoff_base=0.1, backoff_cap=0.8, grace_secs=5.0, unavailable_wait=10.0
            )
            opts.update(kw)
            host = PluginHost(
                list(configs), registry, queue_endpoint=endpoint, token_for=lambda n: f"token-{n}", **opts
            )
            h = Harness(host, registry, recorder)
            host.on_routes_changed = lambda: setattr(h, "routes_changed", h.routes_changed + 1)
            hosts.append(host)
            if start:
                await host.start()
            return h

        yield make
        for host in hosts:
            await host.stop()


async def test_demo_announces_runs_and_reports_progress(make_host):
    h = await make_host(plugin("demo", DEMO, startup_timeout=15))
    state = h.host.get("demo")
    assert state.state == READY and state.healthy and state.pid > 0 and state.version == "1.0.0"
    assert set(state.handlers) == {
        "demo.echo",
        "demo.sleep",
        "demo.flaky",
        "demo.crash",
        "data.import",
        "data.batch-import",
    }
    assert h.routes_changed >= 1 and "demo/demo.echo" in h.registry.routable()
    assert any("QNTX_PLUGIN_PORT=" in line for line in state.output_tail)

    res = await h.run("demo.echo", {"x": 1})
    assert (
        isinstance(res, HandlerResult)
        and json.loads(res.result) == {"x": 1}
        and res.plugin_version == "1.0.0"
    )

    res = await h.run("demo.sleep", {"seconds": 0.6, "steps": 6}, job_id="sleepy")
    assert (res.progress_current, res.progress_total) == (6, 6)
    assert [(e.job_id, e.level, e.stage) for e in res.logs] == [("sleepy", "info", "sleep")]
    # progress also went out of band with the token received at Initialize
    await wait_until(lambda: any(u.job.id == "sleepy" for u in h.recorder.updates), event=h.recorder.changed)
    upd = next(u for u in h.recorder.updates if u.job.id == "sleepy")
    assert upd.auth_token == "token-demo" and upd.job.progress.total == 6


async def test_failures_map_to_handler_errors(make_host):
    h = await make_host(plugin("testplug", script("sdkplugin.py")))
    with pytest.raises(HandlerError) as info:
        await h.run("t.boom")
    assert info.value.outcome == jobs.OUTCOME_FAILED and info.value.message == "RuntimeError: kaboom"
    assert info.value.result is not None and any(e.stage == "exception" for e in info.value.result.logs)
    # hangs in ExecuteJob: the deadline ends it as a timeout
    t0 = time.monotonic()
    with pytest.raises(HandlerError) as info:
        await h.run("t.wait", {"marker": os.devnull}, timeout=1.0)
    assert info.value.outcome == jobs.OUTCOME_TIMEOUT and time.monotonic() - t0 < 5
    assert h.host.get("testplug").state == READY


async def test_cancel_propagates_to_plugin(make_host, tmp_path):
    h = await make_host(plugin("testplug", script("sdkplugin.py")))
    marker = tmp_path / "m"
    task = asyncio.create_task(h.run("t.wait", {"marker": str(marker)}))
    await wait_until(lambda: marker.exists() and marker.read_text() == "started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: marker.read_text().startswith("cancelled"))
    assert marker.read_text() == "cancelled=True"


@pytest.mark.parametrize(
    ("config", "error"),
    [
        (
            plugin("silent", script("silent.py"), startup_timeout=0.5),
            "plugin silent did not print QNTX_PLUGIN_PORT=N within 0.5s nor answer Metadata on the port "
            "it was given (--port ",
        ),
        (
            plugin("garbage", script("garbage.py")),
            "plugin garbage printed a malformed port line 'QNTX_PLUGIN_PORT=notaport'",
        ),
        (
            plugin("testplug", script("sdkplugin.py"), env={"TEST_PLUGIN_NAME": "impostor"}),
            "reports name 'impostor', expected 'testplug'",
        ),
        (
            plugin("exits", script("exits.py")),
            "plugin exits exited with code 3 before printing QNTX_PLUGIN_PORT=N (last output: 'fatal: cannot open frobnicator')",
        ),
        (plugin("nothere", ["/nonexistent/plugin-binary"]), "cannot start /nonexistent/plugin-binary"),
    ],
)
async def test_start_failures_have_clear_state_and_error(make_host, config, error):
    h = await make_host(config)
    state = await h.host.wait_for(config.name, lambda s: s.state == BACKOFF, 10)
    assert error in state.last_error, state.last_error
    assert state.pid == 0 and not state.healthy and state.next_restart_at > 0
    assert not h.registry.plugin_handlers(config.name)


async def test_crash_loop_backs_off_exponentially(make_host):
    h = await make_host(plugin("exits", script("exits.py")), backoff_base=0.05, backoff_cap=10)
    delays = []
    for restarts in range(1, 4):
        s = await h.host.wait_for(
            "exits", lambda s, r=restarts: s.state == BACKOFF and s.restarts >= r - 1, 10
        )
        delays.append(s.next_restart_at - time.time())
        await h.host.wait_for("exits", lambda s, r=restarts: s.restarts >= r, 10)
    assert delays[0] < delays[1] < delays[2], delays


async def test_sigkill_mid_job_restarts_and_old_handler_reaches_new_instance(make_host):
    h = await make_host(plugin("demo", DEMO))
    old = h.host.get("demo")
    handler = h.registry.resolve("demo.sleep")
    task = asyncio.create_task(handler.run(context("k", "demo.sleep", {"seconds": 30, "steps": 30}, 60)))
    await wait_until(lambda: h.recorder.updates, event=h.recorder.changed)  # the job is running
    os.kill(old.pid, signal.SIGKILL)
    with pytest.raises(Interrupted) as info:
        await task
    # a crash the job was caught in: an uncharged interruption, counted as a crash
    assert info.value.outcome == jobs.OUTCOME_INTERRUPTED and info.value.retryable and info.value.crashed
    assert "killed by SIGKILL" in info.value.message
    new = await h.ready("demo", restarts=1)
    assert new.pid != old.pid and "killed by SIGKILL" in new.last_error
    # a handler object resolved before the crash still works: its lease finds the new instance
    res = await handler.run(context("k2", "demo.sleep", {"seconds": 0.05, "steps": 1}, 30))
    assert json.loads(res.result)["pid"] == new.pid


async def test_plugin_exiting_while_its_child_holds_its_pipes_is_seen_at_once(make_host, tmp_path):
    """The plugin exits mid-job leaving a child that holds its stdout/stderr open: the host sees
    the process exit itself (not the pipes' EOF), so the job is interrupted as a crash, the plugin
    is restarted, and the child (in the plugin's process group) is killed, all well before the
    stop timeout."""
    pid_path = tmp_path / "child.pid"
    cfg = plugin("raw", script("qntxraw.py"), env={"RAW_ORPHAN": str(pid_path)})
    h = await make_host(cfg, stop_timeout=30.0)
    first = await h.ready("raw")
    t0 = time.monotonic()
    with pytest.raises(Interrupted) as info:
        await h.run("raw.work", {})
    assert info.value.crashed and "exited with code 5" in info.value.message, info.value.message
    state = await h.ready("raw", restarts=1, timeout=20)
    assert state.pid != first.pid and "exited with code 5" in state.last_error
    child = int(pid_path.read_text())
    await wait_until(lambda: not _running(child), timeout=10)  # the leftover child was killed
    elapsed = time.monotonic() - t0
    assert elapsed < 10, elapsed  # not the 30 s stop timeout, nor the child's 600 s


async def test_demo_crash_handler_kills_process(make_host):
    h = await make_host(plugin("demo", DEMO))
    with pytest.raises(Interrupted) as info:
        await h.run("demo.crash", {"after": 0.1})
    assert info.value.outcome == jobs.OUTCOME_INTERRUPTED and info.value.crashed
    state = await h.ready("demo", restarts=1)
    assert "exited with code 17" in state.last_error


async def test_reload_drains_in_flight_and_reports_diff(make_host, tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    h = await make_host(
        plugin("demo", DEMO),
        plugin("python", module("pulse_tui.plugins.python"), config={"scripts_dir": str(scripts)}),
    )
    old_pid = h.host.get("demo").pid
    tasks = [
        asyncio.create_task(h.run("demo.sleep", {"seconds": 1.0, "steps": 2}, job_id=f"r{i}"))
        for i in range(20)
    ]
    await wait_until(lambda: len({u.job.id for u in h.recorder.updates}) == 20, event=h.recorder.changed)
    result = await h.host.reload("demo")
    # the reload returns at once: the old instance keeps its 20 calls and drains in the background
    assert result.drained + result.draining == 20 and result.added == () and result.removed == ()
    assert result.plugin.pid != old_pid and result.plugin.state == READY
    if result.draining:
        state = h.host.get("demo")
        assert state.draining_instances == 1 and "draining" in state.state_text
    # new work goes to the new instance at once, while the old one still drains
    fresh = json.loads((await h.run("demo.sleep", {"seconds": 0, "steps": 1}, job_id="new")).result)
    assert fresh["pid"] == result.plugin.pid
    pids = {json.loads(r.result)["pid"] for r in await asyncio.gather(*tasks)}
    assert pids == {old_pid}  # every in-flight job finished on the old instance
    state = await h.host.wait_for("demo", lambda s: s.draining_instances == 0, 10)
    assert state.state_text == READY
    await wait_until(lambda: not _alive(old_pid))  # the drained old instance was shut down

    (scripts / "fresh.py").write_text("def run(payload, ctx):\n    return 'fresh'\n")
    result = await h.host.reload("python")
    assert result.added == ("python.fresh",) and result.drained == 0
    assert json.loads((await h.run("python.fresh")).result) == "fresh"
    (scripts / "fresh.py").unlink()
    assert (await h.host.reload("python")).removed == ("python.fresh",)


async def test_reload_reports_conflicts_and_failed_reload_keeps_old(make_host, tmp_path):
    h = await make_host(
        plugin("demo", DEMO),
        plugin("importer", module("pulse_tui.plugins.importer")),
    )
    info = h.registry.info("data.import")
    assert info.owner == "demo" and info.claimants == ("demo", "importer") and info.conflict == "exact"
    result = await h.host.reload("importer")
    assert result.conflicts == ("data.import",) and any("data.batch_import" in w for w in result.warnings)
    # a reload whose new instance cannot start leaves the old one serving
    h.host._plugin("importer").cfg.command = script("exits.py")
    with pytest.raises(Precondition, match="the old instance keeps running"):
        await h.host.reload("importer")
    assert h.host.get("importer").state == READY
    assert (await h.run("importer/data.import", {"records": [1, 2]})).result


async def test_disable_enable_and_stop(make_host):
    h = await make_host(plugin("demo", DEMO), plugin("off", DEMO, enabled=False))
    assert h.host.get("off").state == DISABLED and not h.registry.plugin_handlers("off")
    pid = h.host.get("demo").pid
    state = await h.host.set_enabled("demo", False)
    assert state.state == DISABLED and not state.enabled and h.registry.resolve("demo.echo") is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the process is gone (reaped)
    with pytest.raises(Precondition, match="disabled"):
        await h.host.reload("demo")
    state = await h.host.set_enabled("demo", True)
    assert state.state == READY and h.registry.resolve("demo.echo") is not None
    with pytest.raises(NotFound):
        h.host.get("nope")
    await h.host.stop()
    assert h.host.get("demo").state == STOPPED


async def test_endpoint_plugin(make_host):
    async with plugin_process(script("sdkplugin.py")) as (proc, port):
        h = await make_host(
            PluginConfig(name="testplug", endpoint=f"127.0.0.1:{port}", config={"greeting": "yo"})
        )
        state = h.host.get("testplug")
        assert state.state == READY and state.pid == 0 and state.endpoint == f"127.0.0.1:{port}"
        assert {f.name for f in state.config_schema} == {"greeting", "extra_handlers"}
        assert json.loads((await h.run("t.greet", {"name": "x"})).result) == "yo, x"
        proc.kill()
        await proc.wait()
        state = await h.host.wait_for("testplug", lambda s: s.state == BACKOFF, 10)
        assert "stopped answering" in state.last_error


def test_token_never_in_plugin_env(monkeypatch):
    monkeypatch.setenv("PULSE_ADMIN_TOKEN", "secret")
    monkeypatch.setenv("PULSE_CONFIG", "x")
    env = plugin_env({"A": "1"})
    assert "PULSE_ADMIN_TOKEN" not in env and env["PULSE_CONFIG"] == "x" and env["A"] == "1"


async def test_job_cut_off_by_disable_is_interrupted_not_cancelled(make_host, tmp_path):
    """Closing an instance under a running call must look like an interruption to the engine
    (re-run, not charged, not a crash), never like a cancellation of the job's task."""
    h = await make_host(plugin("testplug", script("sdkplugin.py")), grace_secs=0.1)
    marker = tmp_path / "m"
    task = asyncio.create_task(h.run("t.wait", {"marker": str(marker)}))
    await wait_until(lambda: marker.exists() and marker.read_text() == "started")
    await h.host.set_enabled("testplug", False)
    with pytest.raises(Interrupted) as info:
        await task
    assert info.value.outcome == jobs.OUTCOME_INTERRUPTED and info.value.retryable
    assert not info.value.crashed


async def test_demo_toml_shows_conflicts_out_of_the_box(tmp_path):
    from pathlib import Path

    from pulse_tui.config import load_file

    config = load_file(
        Path(__file__).resolve().parent.parent / "examples" / "demo.toml", data_dir=str(tmp_path)
    )
    registry = Registry([p.name for p in config.plugins], config.handlers)
    host = PluginHost(config, registry)
    await host.start()
    try:
        assert [s.state for s in host.list()] == [READY, READY, READY]
        conflicts = {i.name: (i.conflict, i.claimants) for i in registry.handlers() if i.conflict}
        assert conflicts == {
            "data.import": ("exact", ("demo", "importer")),
            "data.batch-import": ("near", ("demo",)),
            "data.batch_import": ("near", ("importer",)),
        }
        assert "python.hello" in registry.routable()
        # the example script was seeded into the data dir on this first run (issue 20.10)
        assert (tmp_path / "scripts" / "hello.py").is_file()
    finally:
        await host.stop()


SILENT_WITH_CHILD = r"""
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stubborn plugin: only SIGKILL stops it
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"])
with open(sys.argv[1], "a") as f:
    f.write(f"{os.getpid()} {child.pid}\n")
print("starting up, never printing a port", flush=True)
time.sleep(3600)
"""


async def test_plugin_that_never_prints_its_port_leaves_no_process(make_host, tmp_path):
    """Issue 18.13: each instance the host gives up on is killed with its whole process group
    (children included, SIGTERM ignored), restart after restart and at stop."""
    src, pids_file = tmp_path / "silent_child.py", tmp_path / "pids"
    src.write_text(SILENT_WITH_CHILD)
    h = await make_host(
        plugin("silent", [sys.executable, str(src), str(pids_file)], startup_timeout=0.5),
        stop_timeout=0.5,
    )
    lines = lambda: pids_file.read_text().splitlines() if pids_file.exists() else []  # noqa: E731
    await wait_until(lambda: len(lines()) >= 3, 30)  # started three times: given up on at least twice
    given_up = [int(p) for line in lines()[:2] for p in line.split()]
    await wait_until(lambda: not any(_alive(p) for p in given_up), 10)
    await h.host.stop()
    pids = [int(p) for line in lines() for p in line.split()]
    try:
        await wait_until(lambda: not any(_alive(p) for p in pids), 10)
    except TimeoutError:
        raise AssertionError([(p, open(f"/proc/{p}/stat").read()) for p in pids if _alive(p)]) from None


async def test_plugins_get_the_parent_death_signal(make_host, tmp_path):
    """Issue 18.13: every plugin process the host starts is SIGKILLed by the kernel when the
    server dies (set before the plugin's exec, so it holds for plugins not built with our SDK)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    out = tmp_path / "pdeathsig"
    code = (
        "import ctypes, sys, time; r = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(r), 0, 0, 0);"
        "open(sys.argv[1], 'w').write(str(r.value)); time.sleep(3600)"
    )
    h = await make_host(
        plugin("probe", [sys.executable, "-c", code, str(out)], startup_timeout=0.5), start=False
    )
    await h.host.start()  # it never prints a port: the host gives up, but it ran first
    await wait_until(lambda: out.exists() and out.read_text() != "", 10)
    assert int(out.read_text()) == signal.SIGKILL  # PR_GET_PDEATHSIG, read by the plugin itself
