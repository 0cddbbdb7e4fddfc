"""A raw plugin endpoint written without the SDK: it answers Metadata and Health only, so
ConfigSchema (like every other RPC) returns UNIMPLEMENTED."""

import argparse
import asyncio

import grpc

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc


class Raw(domain_pb2_grpc.DomainPluginServiceServicer):
    async def Metadata(self, request, context):
        return domain_pb2.MetadataResponse(name="rawcheck", version="0.1.0", description="no schema")

    async def Health(self, request, context):
        return domain_pb2.HealthResponse(healthy=True, message="ok")


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
