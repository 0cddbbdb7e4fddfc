"""Generated gRPC code (committed; `make proto` regenerates, a test checks for drift).

Wire packages: `protocol` (QNTX-compatible plugin + queue protocol) and
`pulse.operator.v1` (Pulse's OperatorService).
"""
