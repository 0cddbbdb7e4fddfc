"""A hostile plugin written with the generated stubs (not the SDK): it announces names it must not
have and sends back replies that break the rules. What ExecuteJob does depends on the handler:

  bad.progress   success, progress -3/-3, cost -5.0
  over.progress  success, progress 500/100, cost 2.5
  binary.result  success, a result that is not JSON (invalid UTF-8 bytes)
  bad.utf8       bytes that do not decode as an ExecuteJobResponse (a string field with bad UTF-8)
  big.error      failure with a 20 MB error and a log entry with a 1 MB message
  ok.echo        success, the payload back

Announced besides: names with `/` (another plugin's and a built-in's qualified routes), a space,
a control character, a bidi override, an empty name; and HOSTILE_MANY extra names
`gen.handler00000`… when that variable is set.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from concurrent import futures

import grpc

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc

NAME = os.environ.get("HOSTILE_NAME", "hostile")
GOOD = ["bad.progress", "over.progress", "binary.result", "bad.utf8", "big.error", "ok.echo"]
BAD = ["demo/demo.echo", "pulse/pulse.noop", "two words", "bell\x07", "evil\u202eoge.", ""]
BIG = 20 * 1024 * 1024


def names() -> list[str]:
    many = int(os.environ.get("HOSTILE_MANY", "0"))
    return GOOD + BAD + [f"gen.handler{i:05d}" for i in range(many)]


SERVER: grpc.Server


class Hostile(domain_pb2_grpc.DomainPluginServiceServicer):
    def Metadata(self, request, context):
        return domain_pb2.MetadataResponse(name=NAME, version="6.6.6", description="breaks the rules")

    def Initialize(self, request, context):
        return domain_pb2.InitializeResponse(handler_names=names())

    def Health(self, request, context):
        return domain_pb2.HealthResponse(healthy=True, message="ok")

    def ConfigSchema(self, request, context):
        return domain_pb2.ConfigSchemaResponse()

    def Shutdown(self, request, context):
        # hostile in what it announces and replies, not in how it stops: it stops once this call
        # has returned (ignoring Shutdown costs every server stop the host's stop timeout)
        threading.Thread(target=SERVER.stop, args=(0.5,), daemon=True).start()
        return domain_pb2.Empty()


def execute(request: domain_pb2.ExecuteJobRequest, context) -> bytes:
    h = request.handler_name
    r = domain_pb2.ExecuteJobResponse(success=True, plugin_version="6.6.6")
    if h == "bad.progress":
        r.progress_current, r.progress_total, r.cost_actual = -3, -3, -5.0
    elif h == "over.progress":
        r.progress_current, r.progress_total, r.cost_actual = 500, 100, 2.5
        r.result = b'{"ok": true}'
    elif h == "binary.result":
        r.result = b"\xff\xfe\x00binary"
    elif h == "bad.utf8":
        # field 1 (success) = true, field 2 (error, a string) = two bytes that are not UTF-8
        return b"\x08\x01\x12\x02\xff\xfe"
    elif h == "big.error":
        r.success = False
        r.error = "E" * BIG
        r.log_entries.add(timestamp="2026-01-01T00:00:00Z", level="info", message="L" * (1024 * 1024))
    else:
        r.result = request.payload
    return r.SerializeToString()


def _serialize(message) -> bytes:
    """Messages as usual; bytes as they are (ExecuteJob sends bytes of its own making)."""
    return message if isinstance(message, bytes) else message.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    global SERVER
    SERVER = server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
    )
    h = Hostile()

    def method(fn, request_type):
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=request_type.FromString, response_serializer=_serialize
        )

    handlers = {
        "Metadata": method(h.Metadata, domain_pb2.Empty),
        "Initialize": method(h.Initialize, domain_pb2.InitializeRequest),
        "Health": method(h.Health, domain_pb2.Empty),
        "ConfigSchema": method(h.ConfigSchema, domain_pb2.Empty),
        "Shutdown": method(h.Shutdown, domain_pb2.Empty),
        "ExecuteJob": method(execute, domain_pb2.ExecuteJobRequest),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("protocol.DomainPluginService", handlers),)
    )
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"QNTX_PLUGIN_PORT={port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
