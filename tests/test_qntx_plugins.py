"""QNTX plugins run unchanged (issue 17 items 1, 6, 7), with a raw plugin written only against the
wire contract (tests/plugins/qntxraw.py) under a real in-process server:

  * a plugin that never prints QNTX_PLUGIN_PORT=N is found on the `--port N` it was given;
  * what a plugin declares and the server does not serve is in its plugin state, not dropped;
  * an enqueue arriving while the plugin is still starting (server start-up, reload) waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from plugins.harness import script, wait_until

from pulse_tui.cli import main
from pulse_tui.config import Config, PluginConfig
from pulse_tui.protocol import domain_pb2, operator_pb2, operator_pb2_grpc
from pulse_tui.protocol import queue_pb2 as qp
from pulse_tui.protocol import queue_pb2_grpc as qp_grpc
from pulse_tui.pulse import jobs as J
from pulse_tui.pulse.engine import Engine
from pulse_tui.pulse.host import READY, unserved_declarations
from pulse_tui.pulse.server import PulseServer, ServerSettings

RAW = script("qntxraw.py")


def raw_plugin(**env: str) -> PluginConfig:
    return PluginConfig(name="raw", command=RAW, env=env, startup_timeout=20.0, port_wait=0.2)


def make_server(tmp_path: Path, plugin: PluginConfig) -> PulseServer:
    settings = ServerSettings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", grace=2.0, retention_secs=None
    )
    return PulseServer(settings, Config(plugins=[plugin]))


@contextlib.asynccontextmanager
async def serving(srv: PulseServer) -> AsyncIterator[PulseServer]:
    try:
        yield srv
    finally:
        await srv.stop(0)


def metadata(srv: PulseServer) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {admin_token(srv)}"),)


def admin_token(srv: PulseServer) -> str:
    return (srv.settings.data_dir / "token").read_text().strip()


async def wait_status(engine: Engine, job_id: str, statuses: set[str], timeout: float = 15.0) -> J.Job:
    """Follow the engine's event bus (no sleeps) until the job reaches one of `statuses`."""
    with engine.bus.watch() as w:
        job = await engine.get_job(job_id)
        deadline = time.monotonic() + timeout
        while job.status not in statuses:
            left = deadline - time.monotonic()
            assert left > 0, f"job {job_id} stuck in {job.status}, wanted {statuses}"
            batch, _ = await w.next_batch(timeout=left)
            job = next((j for j in batch if j.id == job_id), job)
        return await engine.get_job(job_id)


@contextlib.asynccontextmanager
async def gate_held(gate: Path, racing: asyncio.Future) -> AsyncIterator[None]:
    """Open the fifo `gate` for writing: returns once the plugin sits in Metadata reading it (so
    the server is listening and the plugin has not announced its handlers). Leaving the block
    closes it: the plugin answers. If `racing` ends first (start-up failed), it is raised."""
    opener = asyncio.ensure_future(asyncio.to_thread(open, gate, "w"))
    await asyncio.wait({opener, racing}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not opener.done():
        # unblock the thread stuck in open() by opening the reading end ourselves
        fd = os.open(gate, os.O_RDONLY | os.O_NONBLOCK)
        (await opener).close()
        os.close(fd)
        if racing.done():
            racing.result()  # raises why start-up (or the reload) failed
        pytest.fail("the plugin never asked for its gate")
    writer = opener.result()
    try:
        yield
    finally:
        writer.close()


# ---------------------------------------------------------------- item 1: no port line


async def test_plugin_that_prints_no_port_line_runs_jobs(tmp_path):
    async with serving(make_server(tmp_path, raw_plugin(RAW_QUIET="1"))) as srv:
        t0 = time.monotonic()
        await srv.start()
        assert srv.host is not None
        state = srv.host.get("raw")
        assert state.state == READY and state.handlers == ("raw.work",), state.last_error
        port = int(state.endpoint.rpartition(":")[2])
        assert any(f"it answers on --port {port}" in line for line in state.output_tail)
        assert not any(re.match(r"QNTX_PLUGIN_PORT=\d", line) for line in state.output_tail)
        assert time.monotonic() - t0 < 10
        job = await srv.engine.enqueue("raw.work", b'{"n": 7}')
        done = await wait_status(srv.engine, job.id, {J.COMPLETED, J.FAILED})
        assert done.status == J.COMPLETED and done.result == b'{"n": 7}'


async def test_a_late_port_line_wins_over_the_probe(tmp_path):
    """A plugin that listens elsewhere than asked and prints its port late (while the host
    already probes the port it gave) is reached where it says."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    plugin = raw_plugin(RAW_OWN_PORT="1", RAW_LINE_GATE=str(gate))
    plugin.port_wait = 0.0  # probe from the start: the line comes while the probe runs
    srv = make_server(tmp_path, plugin)
    async with serving(srv):
        starting = asyncio.ensure_future(srv.start())
        async with gate_held(gate, starting):
            pass
        await starting
        assert srv.host is not None
        state = srv.host.get("raw")
        assert state.state == READY, state.last_error
        asked, listening = next(
            re.fullmatch(r"asked for port (\d+), listening on (\d+)", line).groups()  # type: ignore[union-attr]
            for line in state.output_tail
            if line.startswith("asked for port")
        )
        assert asked != listening and state.endpoint == f"127.0.0.1:{listening}"
        job = await srv.engine.enqueue("raw.work", b"{}")
        assert (await wait_status(srv.engine, job.id, {J.COMPLETED, J.FAILED})).status == J.COMPLETED


# ---------------------------------------------------------------- item 6: declared, not served


def test_unserved_sentences():
    init = domain_pb2.InitializeResponse(handler_names=["a"])
    assert unserved_declarations(init) == ()
    init.watchers.add(id="w")
    init.embedding_provider = init.vector_search_provider = init.python_provider = True
    init.http_routes.add(method="GET", path="/a")
    assert unserved_declarations(init, glyphs=2) == (
        "declares 1 watcher; this server does not run watchers (it has no attestation store)",
        "declares 1 HTTP route (GET /a); this server does not serve plugin HTTP routes",
        "declares itself an embedding, vector search and Python provider; "
        "this server does not route provider calls",
        "declares 2 glyphs; this server does not show glyphs",
    )


async def test_declarations_not_served_are_in_the_plugin_state(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    monkeypatch.setenv("PULSE_CONFIG", str(empty))
    monkeypatch.delenv("PULSE_TOKEN", raising=False)
    async with serving(make_server(tmp_path, raw_plugin(RAW_DECLARE="1"))) as srv:
        await srv.start()
        assert srv.host is not None and srv.host.get("raw").state == READY
        expected = [
            "declares 2 watchers; this server does not run watchers (it has no attestation store)",
            "declares 3 HTTP routes (GET /status, POST /run, GET /ui); "
            "this server does not serve plugin HTTP routes",
            "declares itself an LLM and search provider; this server does not route provider calls",
            "declares 1 glyph; this server does not show glyphs",
        ]
        async with grpc.aio.insecure_channel(srv.address) as channel:
            stub = operator_pb2_grpc.OperatorServiceStub(channel)
            p = await stub.GetPlugin(operator_pb2.GetPluginRequest(name="raw"), metadata=metadata(srv))
            assert list(p.unserved) == expected
            [workers] = p.config_schema  # QNTX's ConfigFieldSchema constraints come through
            assert (workers.name, workers.min_value, workers.max_value) == ("workers", "1", "64")
            listed = await stub.ListPlugins(operator_pb2.ListPluginsRequest(), metadata=metadata(srv))
            assert list(listed.plugins[0].unserved) == expected
        # and `plugins show` / `plugins list` say it
        conn = ["--connect", srv.address, "--token-file", str(srv.settings.data_dir / "token")]
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["plugins", "show", "raw", *conn]) == 0
        out = capsys.readouterr().out
        assert "handlers  raw.work" in out and "config    workers (number, 1..64) jobs at once" in out
        assert all(f"not served: raw {sentence}" in out for sentence in expected), out
        assert await asyncio.to_thread(main, ["plugins", "list", "--json", *conn]) == 0
        assert json.loads(capsys.readouterr().out)["plugins"][0]["unserved"] == expected
        # the handlers it announced run all the same
        job = await srv.engine.enqueue("raw.work", b"{}")
        assert (await wait_status(srv.engine, job.id, {J.COMPLETED, J.FAILED})).status == J.COMPLETED


# ---------------------------------------------------------------- item 7: enqueue during start-up


async def test_enqueue_while_plugin_starts_waits_for_it(tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    srv = make_server(tmp_path, raw_plugin(RAW_GATE=str(gate)))
    async with serving(srv):
        starting = asyncio.ensure_future(srv.start())
        async with gate_held(gate, starting):
            # the server listens; the plugin sits in Metadata and has announced nothing yet
            assert srv.host is not None and srv.engine.router.resolve("raw.work") is None
            channel = grpc.aio.insecure_channel(srv.address)
            ops = operator_pb2_grpc.OperatorServiceStub(channel)
            queue = qp_grpc.QueueServiceStub(channel)
            md = metadata(srv)
            calls = [
                asyncio.ensure_future(
                    ops.Enqueue(operator_pb2.EnqueueRequest(handler="raw.work", payload=b"1"), metadata=md)
                ),
                asyncio.ensure_future(
                    queue.Enqueue(
                        qp.EnqueueRequest(
                            auth_token=admin_token(srv), job=qp.Job(handler_name="raw.work", payload=b"2")
                        )
                    )
                ),
                asyncio.ensure_future(
                    ops.EnqueueMany(
                        operator_pb2.EnqueueManyRequest(
                            jobs=[
                                operator_pb2.EnqueueRequest(handler="raw.work", payload=b"3"),
                                operator_pb2.EnqueueRequest(handler="raw.work", payload=b"4"),
                            ]
                        ),
                        metadata=md,
                    )
                ),
                asyncio.ensure_future(
                    ops.Enqueue(operator_pb2.EnqueueRequest(handler="raw.nope"), metadata=md)
                ),
            ]
            await wait_until(lambda: srv.host.waiting_enqueues == 4 or any(c.done() for c in calls))
            assert not any(c.done() for c in calls), [c.result() for c in calls if c.done()]
        await starting
        one, two, many, nope = await asyncio.gather(*calls, return_exceptions=True)
        assert not isinstance(one, BaseException) and one.job.handler == "raw.work"
        assert not isinstance(two, BaseException) and two.success and two.job_id, two
        assert not isinstance(many, BaseException) and len(many.ids) == 2
        # a name that stays unknown keeps the clear error
        assert isinstance(nope, grpc.aio.AioRpcError)
        assert nope.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "unknown handler 'raw.nope'" in (nope.details() or "")
        for job_id in (one.job.id, two.job_id, *many.ids):
            assert (await wait_status(srv.engine, job_id, {J.COMPLETED, J.FAILED})).status == J.COMPLETED
        # with every plugin up, an unknown name is refused at once
        t0 = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError, match="unknown handler 'raw.nope'"):
            await ops.Enqueue(operator_pb2.EnqueueRequest(handler="raw.nope"), metadata=md)
        bad = await queue.Enqueue(
            qp.EnqueueRequest(auth_token=admin_token(srv), job=qp.Job(handler_name="raw.nope"))
        )
        assert not bad.success and "unknown handler 'raw.nope'" in bad.error
        assert time.monotonic() - t0 < 2.0 and srv.host.waiting_enqueues == 0
        await channel.close()


async def test_enqueue_during_reload_waits_for_the_new_handlers(tmp_path):
    gate, extra = tmp_path / "gate", tmp_path / "extra"
    os.mkfifo(gate)
    srv = make_server(tmp_path, raw_plugin(RAW_GATE=str(gate), RAW_EXTRA=str(extra)))
    async with serving(srv):
        starting = asyncio.ensure_future(srv.start())
        async with gate_held(gate, starting):
            pass
        await starting
        assert srv.host is not None and srv.host.get("raw").handlers == ("raw.work",)
        extra.write_text("announce raw.extra")
        reload = asyncio.ensure_future(srv.host.reload("raw"))
        async with grpc.aio.insecure_channel(srv.address) as channel:
            ops = operator_pb2_grpc.OperatorServiceStub(channel)
            async with gate_held(gate, reload):
                call = asyncio.ensure_future(
                    ops.Enqueue(operator_pb2.EnqueueRequest(handler="raw.extra"), metadata=metadata(srv))
                )
                await wait_until(lambda: srv.host.waiting_enqueues == 1 or call.done())
                assert not call.done()
            assert (await reload).added == ("raw.extra",)
            job = (await call).job
        assert (await wait_status(srv.engine, job.id, {J.COMPLETED, J.FAILED})).status == J.COMPLETED


async def test_plugins_screen_shows_what_is_not_served(tmp_path):
    from pulse_tui.app import PulseApp
    from pulse_tui.screens.plugins import PluginsScreen
    from tests.test_tui import jump, until

    async with serving(make_server(tmp_path, raw_plugin(RAW_DECLARE="1"))) as srv:
        await srv.start()
        app = PulseApp(srv.address, admin_token(srv))
        async with app.run_test(size=(120, 40)) as pilot:
            await app.wait_connected()
            await jump(pilot, "plugins", PluginsScreen)
            screen = app.screen
            detail = lambda: str(screen.query_one("#plugin-handlers").render())  # noqa: E731
            await until(pilot, lambda: "declares 2 watchers" in detail(), "the unserved declarations")
            text = detail()
            assert "declared, not served by this server" in text
            assert "raw declares 3 HTTP routes (GET /status, POST /run, GET /ui)" in text
            assert "this server does not show glyphs" in text


def test_domain_proto_carries_qntx_plugin_protocol():
    """Field numbers and RPCs of QNTX's plugin/grpc/protocol/domain.proto (as of 2026-08)."""
    d = domain_pb2.DESCRIPTOR

    def numbers(message: str) -> dict[str, int]:
        return {f.name: f.number for f in d.message_types_by_name[message].fields}

    endpoints = ["file_service", "llm", "embedding", "vector_search", "ground", "search", "fetch"]
    assert numbers("InitializeRequest") == {
        "ats_store_endpoint": 1,
        "queue_endpoint": 2,
        "auth_token": 3,
        "config": 4,
        "schedule_endpoint": 5,
        **{f"{name}_endpoint": 6 + i for i, name in enumerate(endpoints)},
    }
    assert numbers("InitializeResponse") == {
        "handler_names": 1,
        "schedules": 2,
        "llm_provider": 3,
        "watchers": 4,
        "vector_search_provider": 5,
        "search_provider": 6,
        "embedding_provider": 7,
        "http_routes": 8,
        "python_provider": 9,
    }
    assert numbers("ConfigFieldSchema") == {
        "type": 1,
        "description": 2,
        "default_value": 3,
        "required": 4,
        "min_value": 5,
        "max_value": 6,
        "pattern": 7,
        "element_type": 8,
    }
    assert numbers("WatcherRegistration") == {
        "id": 1,
        "handler_name": 2,
        "subjects": 3,
        "predicates": 4,
        "contexts": 5,
        "actors": 6,
        "max_fires_per_second": 7,
    }
    assert numbers("RouteInfo") == {"method": 1, "path": 2, "description": 3}
    assert numbers("HTTPRequest") == {"method": 1, "path": 2, "headers": 3, "body": 4}
    assert numbers("HTTPResponse") == {"status_code": 1, "headers": 2, "body": 3}
    assert numbers("HTTPHeader") == {"name": 1, "values": 2}
    assert numbers("WebSocketMessage") == {"type": 1, "data": 2, "headers": 3, "timestamp": 4}
    ws_type = d.message_types_by_name["WebSocketMessage"].enum_types_by_name["Type"]
    assert {v.name: v.number for v in ws_type.values} == {
        "CONNECT": 0,
        "DATA": 1,
        "CLOSE": 2,
        "PING": 3,
        "PONG": 4,
        "ERROR": 5,
    }
    assert numbers("GlyphDefResponse") == {"glyphs": 1}
    assert numbers("GlyphDef") == {
        "symbol": 1,
        "title": 2,
        "label": 3,
        "content_path": 4,
        "css_path": 5,
        "default_width": 6,
        "default_height": 7,
        "module_path": 8,
    }
    assert numbers("ParseAxQueryRequest") == {"query": 1}
    assert numbers("ParseAxQueryResponse") == {"result": 1, "error": 2}
    service = d.services_by_name["DomainPluginService"]
    methods = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    assert methods == {
        "Metadata": ("Empty", "MetadataResponse"),
        "Initialize": ("InitializeRequest", "InitializeResponse"),
        "Shutdown": ("Empty", "Empty"),
        "Health": ("Empty", "HealthResponse"),
        "ConfigSchema": ("Empty", "ConfigSchemaResponse"),
        "ExecuteJob": ("ExecuteJobRequest", "ExecuteJobResponse"),
        "HandleHTTP": ("HTTPRequest", "HTTPResponse"),
        "HandleWebSocket": ("WebSocketMessage", "WebSocketMessage"),
        "RegisterGlyphs": ("Empty", "GlyphDefResponse"),
        "ParseAxQuery": ("ParseAxQueryRequest", "ParseAxQueryResponse"),
    }
    ws = service.methods_by_name["HandleWebSocket"]
    assert ws.client_streaming and ws.server_streaming
