"""The bundled python plugin: scripts in child processes, dynamic python.<name> handlers."""

from __future__ import annotations

import json
import os
import textwrap

import grpc
import pytest
from plugins.harness import module, plugin_process

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc


@pytest.fixture
async def py(tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "hello.py").write_text("def run(payload, ctx):\n    return {'hello': payload.get('name')}\n")
    async with plugin_process(module("pulse_tui.plugins.python")) as (proc, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = domain_pb2_grpc.DomainPluginServiceStub(channel)
            init = await stub.Initialize(domain_pb2.InitializeRequest(config={"scripts_dir": str(scripts)}))
            yield stub, init, scripts


def run_code(code: str, args: object = None, timeout: int | None = None) -> domain_pb2.ExecuteJobRequest:
    payload = {"code": textwrap.dedent(code), "args": args or {}}
    req = domain_pb2.ExecuteJobRequest(
        job_id="j", handler_name="python.script", payload=json.dumps(payload).encode()
    )
    if timeout:
        req.timeout_secs = timeout
    return req


async def test_script_result_progress_logs_and_output(py):
    stub, init, _ = py
    assert set(init.handler_names) == {"python.script", "python.hello"}
    resp = await stub.ExecuteJob(
        run_code(
            """
            def run(payload, ctx):
                for i in range(3):
                    ctx.progress(i + 1, 3)
                ctx.log("warn", "careful", stage="s1")
                print("printed line")
                return {"sum": payload["a"] + payload["b"]}
            """,
            {"a": 2, "b": 3},
        )
    )
    assert resp.success, resp.error
    assert json.loads(resp.result) == {"sum": 5}
    assert (resp.progress_current, resp.progress_total) == (3, 3)
    entries = [(e.level, e.message, e.stage) for e in resp.log_entries]
    assert ("warn", "careful", "s1") in entries and ("info", "printed line", "output") in entries


async def test_async_script(py):
    stub, *_ = py
    resp = await stub.ExecuteJob(
        run_code(
            """
            import asyncio
            async def run(payload, ctx):
                await asyncio.sleep(0.01)
                return "async ok"
            """
        )
    )
    assert resp.success and json.loads(resp.result) == "async ok"


async def test_raising_script_fails_with_traceback(py):
    stub, *_ = py
    resp = await stub.ExecuteJob(run_code("def run(payload, ctx):\n    return 1 / 0\n"))
    assert not resp.success and resp.error == "ZeroDivisionError: division by zero"
    tb = [e.message for e in resp.log_entries if e.stage == "exception"]
    assert tb and "Traceback" in tb[0] and "line 2" in tb[0]
    resp = await stub.ExecuteJob(run_code("x = 1\n"))
    assert not resp.success and "defines no run" in resp.error
    resp = await stub.ExecuteJob(run_code("def run(:\n"))
    assert not resp.success and resp.error.startswith("SyntaxError")


async def test_timeout_kills_script_and_plugin_stays_healthy(py):
    stub, *_ = py
    resp = await stub.ExecuteJob(run_code("import time\ndef run(p, ctx):\n    time.sleep(60)\n", timeout=1))
    assert not resp.success and resp.error.startswith("timeout:"), resp.error
    assert (await stub.Health(domain_pb2.Empty())).healthy
    assert (await stub.ExecuteJob(run_code("def run(p, ctx):\n    return 7\n"))).success


async def test_scripts_dir_reread_at_initialize(py):
    stub, _, scripts = py
    resp = await stub.ExecuteJob(
        domain_pb2.ExecuteJobRequest(job_id="h", handler_name="python.hello", payload=b'{"name": "ann"}')
    )
    assert resp.success and json.loads(resp.result) == {"hello": "ann"}
    (scripts / "added.py").write_text("def run(payload, ctx):\n    return 'added'\n")
    (scripts / "_private.py").write_text("")
    (scripts / "bad name.py").write_text("")
    init = await stub.Initialize(domain_pb2.InitializeRequest(config={"scripts_dir": str(scripts)}))
    assert set(init.handler_names) == {"python.script", "python.hello", "python.added"}
    resp = await stub.ExecuteJob(domain_pb2.ExecuteJobRequest(job_id="a", handler_name="python.added"))
    assert resp.success and json.loads(resp.result) == "added"


async def test_limits_hold_memory_and_file_size(tmp_path):
    """memory_mb and max_file_mb from the plugin's config bound what a script can take."""
    async with plugin_process(module("pulse_tui.plugins.python")) as (proc, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = domain_pb2_grpc.DomainPluginServiceStub(channel)
            await stub.Initialize(
                domain_pb2.InitializeRequest(config={"memory_mb": "512", "max_file_mb": "1"})
            )
            big = await stub.ExecuteJob(
                run_code("def run(payload, ctx):\n    return len(bytearray(1 << 30))\n")
            )
            assert not big.success and big.error.startswith("MemoryError"), big.error
            write = await stub.ExecuteJob(
                run_code(
                    """
                    def run(payload, ctx):
                        with open("big.bin", "wb") as f:
                            f.write(b"x" * (2 << 20))
                    """
                )
            )
            assert not write.success and "File too large" in write.error, write.error
            ok = await stub.ExecuteJob(run_code("def run(payload, ctx):\n    return 1\n"))
            assert ok.success and json.loads(ok.result) == 1  # the plugin stays healthy


@pytest.mark.skipif(os.geteuid() != 0, reason="the script user is used only when the plugin runs as root")
async def test_unknown_script_user_is_a_clear_error(tmp_path):
    async with plugin_process(module("pulse_tui.plugins.python")) as (proc, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = domain_pb2_grpc.DomainPluginServiceStub(channel)
            await stub.Initialize(domain_pb2.InitializeRequest(config={"user": "no-such-user-pulse"}))
            resp = await stub.ExecuteJob(run_code("def run(payload, ctx):\n    return 1\n"))
            assert not resp.success
            assert "script user 'no-such-user-pulse' does not exist" in resp.error, resp.error


async def test_example_script_seeded_only_into_a_new_scripts_dir(tmp_path):
    """Issue 20.10: with example_script the plugin creates a missing scripts dir holding hello.py
    (so `make run` has a saved script without writing into the clone); an existing dir, even an
    empty one whose example was deleted, is left alone."""
    fresh, emptied = tmp_path / "data" / "scripts", tmp_path / "emptied"
    emptied.mkdir()
    async with plugin_process(module("pulse_tui.plugins.python")) as (proc, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = domain_pb2_grpc.DomainPluginServiceStub(channel)
            config = {"scripts_dir": str(fresh), "example_script": "true"}
            init = await stub.Initialize(domain_pb2.InitializeRequest(config=config))
            assert set(init.handler_names) == {"python.script", "python.hello"}
            resp = await stub.ExecuteJob(
                domain_pb2.ExecuteJobRequest(
                    job_id="h", handler_name="python.hello", payload=b'{"name": "ann"}'
                )
            )
            assert resp.success, resp.error
            assert json.loads(resp.result) == {"greeting": "hello, ann"}
            (fresh / "hello.py").unlink()
            init = await stub.Initialize(domain_pb2.InitializeRequest(config=config))
            assert set(init.handler_names) == {"python.script"}  # a deleted example stays deleted
            config = {"scripts_dir": str(emptied), "example_script": "true"}
            init = await stub.Initialize(domain_pb2.InitializeRequest(config=config))
            assert set(init.handler_names) == {"python.script"} and not any(emptied.iterdir())
            # without the key nothing is created
            other = tmp_path / "other"
            await stub.Initialize(domain_pb2.InitializeRequest(config={"scripts_dir": str(other)}))
            assert not other.exists()
