"""A raw QNTX-protocol plugin (no SDK) that declares schedules in InitializeResponse.

It reads what to declare from $SCHEDULES_FILE at every Initialize (a JSON list of
{"handler_name", "interval_seconds", "enabled_by_default"}), so a test can change the declaration
and reload. It writes the schedule_endpoint and token it was given to $INFO_FILE, so the test can
call ScheduleService as this plugin. Handlers: `tick` (succeeds at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

import grpc

from pulse_tui.protocol import domain_pb2 as d
from pulse_tui.protocol import domain_pb2_grpc as dg

SERVER: grpc.aio.Server


class Plugin(dg.DomainPluginServiceServicer):
    async def Metadata(self, request, context):
        return d.MetadataResponse(name="sched", version="1.0")

    async def Initialize(self, request, context):
        with open(os.environ["INFO_FILE"], "w") as f:
            json.dump({"endpoint": request.schedule_endpoint, "token": request.auth_token}, f)
        with open(os.environ["SCHEDULES_FILE"]) as f:
            declared = json.load(f)
        return d.InitializeResponse(
            handler_names=["tick", "tock"], schedules=[d.ScheduleInfo(**item) for item in declared]
        )

    async def Shutdown(self, request, context):
        # stop once this call has returned, as a well-behaved plugin does (a plugin that ignores
        # Shutdown costs every server stop the host's stop timeout before its SIGTERM)
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(SERVER.stop(0.5)))
        return d.Empty()

    async def Health(self, request, context):
        return d.HealthResponse(healthy=True, message="ok")

    async def ExecuteJob(self, request, context):
        return d.ExecuteJobResponse(success=True, result=b"{}")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    global SERVER
    SERVER = server = grpc.aio.server()
    dg.add_DomainPluginServiceServicer_to_server(Plugin(), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    print(f"QNTX_PLUGIN_PORT={port}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
