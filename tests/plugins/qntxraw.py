"""A plugin written only against QNTX's wire contract (generated stubs, no SDK), as a QNTX plugin
author would write it. Its handler `raw.work` returns the payload. Behaviour from the environment:

  RAW_QUIET=1      never print QNTX_PLUGIN_PORT=N (listen on --port N and say nothing)
  RAW_GATE=PATH    each process answers its first Metadata only after reading PATH (a fifo the test
                   opens for writing: the open tells the test the call arrived, closing it lets the
                   plugin answer)
  RAW_OWN_PORT=1   ignore --port N: listen on a port of its own choosing (and say so)
  RAW_LINE_GATE=PATH  print the port line only after reading PATH (a fifo, as RAW_GATE)
  RAW_EXTRA=PATH   when PATH exists at Initialize, also announce `raw.extra`
  RAW_DECLARE=1    declare what QNTX core serves and this server does not: 2 watchers, 3 HTTP
                   routes, LLM and search providers, and 1 glyph from RegisterGlyphs; and a
                   config field `workers` (a number, 1..64) from ConfigSchema
  RAW_ORPHAN=PATH  ExecuteJob starts a long-lived child that inherits stdout and stderr, writes its
                   pid to PATH, and exits with code 5 (the child keeps the pipes open)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from concurrent import futures

import grpc

from pulse_tui.protocol import domain_pb2, domain_pb2_grpc

GATE = os.environ.get("RAW_GATE", "")
EXTRA = os.environ.get("RAW_EXTRA", "")
SERVER: list[grpc.Server] = []
DECLARE = os.environ.get("RAW_DECLARE") == "1"
ORPHAN = os.environ.get("RAW_ORPHAN", "")


class Raw(domain_pb2_grpc.DomainPluginServiceServicer):
    def __init__(self) -> None:
        self.gate_lock = threading.Lock()
        self.gate_open = not GATE

    def Metadata(self, request, context):
        with self.gate_lock:
            if not self.gate_open:
                with open(GATE) as gate:  # blocks until the test opens it for writing
                    gate.read()  # until the test closes it
                self.gate_open = True
        return domain_pb2.MetadataResponse(name="raw", version="0.1.0", description="wire contract only")

    def Initialize(self, request, context):
        names = ["raw.work"]
        if EXTRA and os.path.exists(EXTRA):
            names.append("raw.extra")
        resp = domain_pb2.InitializeResponse(handler_names=names)
        if DECLARE:
            resp.watchers.add(id="w1", handler_name="raw.work", predicates=["is"])
            resp.watchers.add(id="w2", handler_name="raw.work", subjects=["x"])
            resp.http_routes.add(method="GET", path="/status")
            resp.http_routes.add(method="POST", path="/run")
            resp.http_routes.add(method="GET", path="/ui")
            resp.llm_provider = True
            resp.search_provider = True
        return resp

    def ConfigSchema(self, request, context):
        if not DECLARE:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "no schema")
        field = domain_pb2.ConfigFieldSchema(
            type="number", description="jobs at once", default_value="4", min_value="1", max_value="64"
        )
        return domain_pb2.ConfigSchemaResponse(fields={"workers": field})

    def RegisterGlyphs(self, request, context):
        if not DECLARE:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "no glyphs")
        return domain_pb2.GlyphDefResponse(glyphs=[domain_pb2.GlyphDef(symbol="⚗", title="Raw")])

    def Health(self, request, context):
        return domain_pb2.HealthResponse(healthy=True, message="ok")

    def Shutdown(self, request, context):
        threading.Thread(target=lambda: SERVER[0].stop(0.5)).start()  # exit once this reply is out
        return domain_pb2.Empty()

    def ExecuteJob(self, request, context):
        if ORPHAN:
            child = subprocess.Popen(["sleep", "600"])  # inherits our stdout/stderr pipes
            with open(ORPHAN + ".tmp", "w") as f:
                f.write(str(child.pid))
            os.replace(ORPHAN + ".tmp", ORPHAN)
            sys.stdout.flush()
            os._exit(5)
        return domain_pb2.ExecuteJobResponse(success=True, result=request.payload, plugin_version="0.1.0")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    SERVER.append(server)
    domain_pb2_grpc.add_DomainPluginServiceServicer_to_server(Raw(), server)
    own = os.environ.get("RAW_OWN_PORT") == "1"
    port = server.add_insecure_port(f"127.0.0.1:{0 if own else args.port}")
    server.start()
    print(f"asked for port {args.port}, listening on {port}", flush=True)
    line_gate = os.environ.get("RAW_LINE_GATE")
    if line_gate:
        with open(line_gate) as gate:
            gate.read()
    if os.environ.get("RAW_QUIET") != "1":
        print(f"QNTX_PLUGIN_PORT={port}", flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
