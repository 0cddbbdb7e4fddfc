"""A raw QNTX-protocol plugin (no SDK, only the generated stubs) that enqueues child jobs.

Handler `kids.run`, payload (JSON):
  {"spawn": [{"handler": ..., "payload": {...}, "parent_job_id": ..., "id": ...}, ...],
   "then": "ok" | "fail" | "hold"}
While it runs it enqueues each `spawn` entry through the server's QueueService (the
queue_endpoint and auth_token it got at Initialize) with Job.parent_job_id = the job it runs
(unless the entry says otherwise), then succeeds, fails, or holds until the server cancels the
call. Its result is {"ids": [...], "errors": [...]}: one entry per spawn, the
job id or "" and the error or "".
"""

from __future__ import annotations

import argparse
import asyncio
import json

import grpc

from pulse_tui.protocol import domain_pb2 as d
from pulse_tui.protocol import domain_pb2_grpc as dg
from pulse_tui.protocol import queue_pb2 as q
from pulse_tui.protocol import queue_pb2_grpc as qg


class Plugin(dg.DomainPluginServiceServicer):
    def __init__(self) -> None:
        self.endpoint = ""
        self.token = ""
        self.stop = asyncio.Event()

    async def Metadata(self, request, context):
        return d.MetadataResponse(name="kids", version="1.0")

    async def Initialize(self, request, context):
        self.endpoint, self.token = request.queue_endpoint, request.auth_token
        return d.InitializeResponse(handler_names=["kids.run"])

    async def Shutdown(self, request, context):
        self.stop.set()
        return d.Empty()

    async def Health(self, request, context):
        return d.HealthResponse(healthy=True, message="ok")

    async def ExecuteJob(self, request, context):
        spec = json.loads(request.payload or b"{}")
        ids, errors = [], []
        async with grpc.aio.insecure_channel(self.endpoint) as ch:
            queue = qg.QueueServiceStub(ch)
            for child in spec.get("spawn", []):
                resp = await queue.Enqueue(
                    q.EnqueueRequest(
                        auth_token=self.token,
                        job=q.Job(
                            id=child.get("id", ""),
                            handler_name=child["handler"],
                            payload=json.dumps(child.get("payload", {})).encode(),
                            # as QNTX's plugins do: the job it runs (a test may send another, or none)
                            parent_job_id=child.get("parent_job_id", request.job_id),
                        ),
                    )
                )
                ids.append(resp.job_id if resp.success else "")
                errors.append(resp.error)
        result = json.dumps({"ids": ids, "errors": errors}).encode()
        then = spec.get("then", "ok")
        if then == "hold":
            await asyncio.Event().wait()  # until the server cancels the call
        if then == "fail":
            return d.ExecuteJobResponse(success=False, error="failed on purpose", result=result)
        return d.ExecuteJobResponse(success=True, result=result)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    server = grpc.aio.server()
    plugin = Plugin()
    dg.add_DomainPluginServiceServicer_to_server(plugin, server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    print(f"QNTX_PLUGIN_PORT={port}", flush=True)
    await plugin.stop.wait()
    await server.stop(0.5)


if __name__ == "__main__":
    asyncio.run(main())
