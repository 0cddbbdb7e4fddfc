"""A raw plugin written without the SDK that serves only QNTX's DomainPluginService (as a QNTX
plugin does): BatchExecService is UNIMPLEMENTED, so the host must call ExecuteJob per job."""

import argparse
import asyncio

import grpc

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc


class Raw(domain_pb2_grpc.DomainPluginServiceServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Metadata(self, request, context):
        return domain_pb2.MetadataResponse(name="unaryplug", version="0.2.0")

    async def Initialize(self, request, context):
        return domain_pb2.InitializeResponse(handler_names=["u.echo"])

    async def Health(self, request, context):
        return domain_pb2.HealthResponse(healthy=True, message="ok")

    async def ExecuteJob(self, request, context):
        self.calls += 1
        return domain_pb2.ExecuteJobResponse(
            success=True, result=request.payload, plugin_version=f"0.2.0+call{self.calls}"
        )


async def main(port: int) -> None:
    server = grpc.aio.server()
    domain_pb2_grpc.add_DomainPluginServiceServicer_to_server(Raw(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"QNTX_PLUGIN_PORT={bound}", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
