#!/usr/bin/env bash
# Regenerate the committed protocol code. Usage: scripts/gen_proto.sh [OUT_DIR]
# OUT_DIR defaults to src (the package lands in OUT_DIR/pulse_tui/protocol).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-src}"
py="${PYTHON:-.venv/bin/python}"
mkdir -p "$out/pulse_tui/protocol"
"$py" -m grpc_tools.protoc -Ipulse_tui/protocol=proto/protocol \
  --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  proto/protocol/domain.proto proto/protocol/queue.proto proto/protocol/schedule.proto
"$py" -m grpc_tools.protoc -Ipulse_tui/protocol=proto/pulse/operator/v1 \
  --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  proto/pulse/operator/v1/operator.proto
"$py" -m grpc_tools.protoc -Ipulse_tui/protocol=proto/pulse/exec/v1 \
  --python_out="$out" --grpc_python_out="$out" --pyi_out="$out" \
  proto/pulse/exec/v1/exec.proto
