"""Property-based fuzzing of every request message of OperatorService and QueueService against a
live server (hypothesis). Messages are generated from the protobuf descriptors, so a new field or
RPC is fuzzed without touching this file.

Properties: the server never answers INTERNAL (nor QueueService's "internal server error"), it
keeps answering, and the store holds no garbage: every stored job has a JSON payload, a known
handler and a legal status.

Examples per test: env PULSE_FUZZ_EXAMPLES (default 150; `make fuzz` runs 10,000).
"""

from __future__ import annotations

import json
import os
import time

import grpc
import pytest
from conftest import start_server_process
from google.protobuf import descriptor as d
from google.protobuf import message_factory
from helpers.reliability import BUILTINS, STATUSES, assert_no_garbage, connect
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse_tui.protocol import operator_pb2, queue_pb2

EXAMPLES = int(os.environ.get("PULSE_FUZZ_EXAMPLES", "150"))
SERVICES = [
    operator_pb2.DESCRIPTOR.services_by_name["OperatorService"],
    queue_pb2.DESCRIPTOR.services_by_name["QueueService"],
]
METHODS = [(s, m) for s in SERVICES for m in s.methods]
# Handlers worth hitting: the fast built-ins (pulse.sleep would keep jobs running past the test).
HANDLERS = ["pulse.noop", "pulse.fail", "pulse.sleep.x", "PULSE.NOOP", "pulse/pulse.noop", "demo.echo"]
FD = d.FieldDescriptor

weird_text = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf"]), max_size=40
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | weird_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(weird_text, inner, max_size=4),
    max_leaves=12,
)
payloads = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"", b"{}", b"null", b"\xff", b'{"a": 1', b" " * 10]),
)


def _strings(field: d.FieldDescriptor, known: dict[str, list[str]]) -> st.SearchStrategy[str]:
    name = field.name
    pool = list(STATUSES) if "status" in name else []
    if name in ("handler", "handler_name"):
        pool = HANDLERS
    elif name in ("id", "job_id", "parent_job_id") or name == "ids":
        pool = known["ids"]
    elif name == "auth_token":
        pool = known["tokens"]
    elif name == "name":
        pool = ["demo", "python", "greet", "ok_name", "../x", ""]
    elif name == "code":
        pool = ["def run(payload, ctx):\n    return 1\n", "def run(:", "import os\n"]
    return st.sampled_from(pool) | weird_text if pool else weird_text


def _scalar(field: d.FieldDescriptor, known: dict[str, list[str]]) -> st.SearchStrategy:
    t = field.type
    if t == FD.TYPE_STRING:
        return _strings(field, known)
    if t == FD.TYPE_BYTES:
        return payloads
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return st.integers(-(2**31), 2**31 - 1) | st.integers(-3, 1100)
    if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 1100)
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.floats(width=32 if t == FD.TYPE_FLOAT else 64) | st.floats(-10, 10)
    if t == FD.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values])
    raise AssertionError(f"no strategy for {field.full_name} (type {t})")


@st.composite
def messages(draw, desc: d.Descriptor, known: dict[str, list[str]], depth: int = 0):
    msg = message_factory.GetMessageClass(desc)()
    for field in desc.fields:
        if not draw(st.booleans()):
            continue  # unset (and, for proto3 optional fields, absent)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            k, v = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            entries = draw(st.dictionaries(_scalar(k, known), _scalar(v, known), max_size=3))
            getattr(msg, field.name).update(entries)
        elif field.type == FD.TYPE_MESSAGE:
            if depth > 2:
                continue
            if field.is_repeated:
                for sub in draw(st.lists(messages(field.message_type, known, depth + 1), max_size=2)):
                    getattr(msg, field.name).add().CopyFrom(sub)
            else:
                getattr(msg, field.name).CopyFrom(draw(messages(field.message_type, known, depth + 1)))
        elif field.is_repeated:
            getattr(msg, field.name).extend(draw(st.lists(_scalar(field, known), max_size=4)))
        else:
            setattr(msg, field.name, draw(_scalar(field, known)))
    return msg


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    srv = start_server_process(tmp_path_factory.mktemp("fuzz"))
    c = connect(srv.address, srv.token)
    ids = c.enqueue_many("pulse.noop", [b"{}"] * 3) + c.enqueue_many("pulse.noop", [b"{}"], delay_secs=3600)
    known = {"ids": ids, "tokens": [srv.token] * 4 + [srv.readonly_token, "", "x" * 64]}
    stats = {"calls": 0, "ok": 0, "codes": {}}
    yield srv, c, known, stats
    c.close()
    srv.stop()


def _plausible(request) -> None:
    """Keep only the handler and payload of an enqueue request (other fields at their defaults)."""
    target = (
        request.job
        if request.DESCRIPTOR.name == "EnqueueRequest" and hasattr(request, "auth_token")
        else request
    )
    for f in target.DESCRIPTOR.fields:
        if f.name not in ("handler", "handler_name", "payload"):
            target.ClearField(f.name)


def _metadata(draw, srv) -> tuple:
    choice = draw(st.sampled_from(["admin"] * 6 + ["readonly", "wrong", "none"]))
    token = {"admin": srv.token, "readonly": srv.readonly_token, "wrong": "f" * 64}.get(choice)
    return (("authorization", f"Bearer {token}"),) if token else ()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(data=st.data())
def test_fuzz_every_request_message(live, data):
    srv, c, known, stats = live
    service, method = data.draw(st.sampled_from(METHODS), label="method")
    request = data.draw(messages(method.input_type, known), label="request")
    if method.name == "Enqueue" and data.draw(st.booleans(), label="plausible"):
        _plausible(request)  # else nearly every random enqueue fails validation: reach the store too
    md = _metadata(data.draw, srv)
    path = f"/{service.full_name}/{method.name}"
    response_cls = message_factory.GetMessageClass(method.output_type)
    stats["calls"] += 1
    try:
        if method.server_streaming:
            call = c.channel.unary_stream(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_cls.FromString,
            )(request, metadata=md, timeout=10)
            first = next(call)  # WatchJobs: the registration heartbeat
            call.cancel()
            assert first.kind == "heartbeat"
            response = first
        else:
            response = c.channel.unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_cls.FromString,
            )(request, metadata=md, timeout=10)
    except grpc.RpcError as exc:
        code = exc.code()
        stats["codes"][code.name] = stats["codes"].get(code.name, 0) + 1
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (path, request, exc.details())
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, (path, request)
        return
    stats["ok"] += 1
    if service.name == "QueueService":
        assert "internal server error" not in response.error, (path, request, response.error)


def test_fuzz_left_no_garbage(live):
    """Runs after the fuzz test (file order): the server is up and the store is clean."""
    srv, c, known, stats = live
    assert srv.process.proc.poll() is None
    info = c.ops.GetServerInfo(operator_pb2.ServerInfoRequest(), metadata=c.md, timeout=5)
    n = assert_no_garbage(srv.data_dir, [*BUILTINS, *(f"pulse/{h}" for h in BUILTINS)])  # bare + qualified
    assert sum(info.counts.values()) == n
    assert "Traceback" not in srv.output(), srv.output()[-3000:]
    print("fuzz", {"examples": EXAMPLES, **stats, "jobs_stored": n})


def test_corrupt_wire_bytes_do_not_hurt_the_server(live):
    """Random bytes as request bodies (not valid protobuf): the server answers each call with an
    error or a default-message answer, never INTERNAL, and stays up."""
    srv, c, known, stats = live
    rnd = __import__("random").Random(7)
    blobs = [b"\x0a\xff\xfe", b"\xff\xff\xff", b"\x0a\x05ab"] + [
        rnd.randbytes(rnd.randrange(1, 40)) for _ in range(60)
    ]
    codes: dict[str, int] = {}
    for service, method in METHODS:
        path = f"/{service.full_name}/{method.name}"
        for blob in blobs[:10]:
            try:
                if method.server_streaming:
                    call = c.channel.unary_stream(path)(blob, metadata=c.md, timeout=5)
                    next(call)
                    call.cancel()
                else:
                    c.channel.unary_unary(path)(blob, metadata=c.md, timeout=5)
                codes["OK"] = codes.get("OK", 0) + 1
            except grpc.RpcError as exc:
                codes[exc.code().name] = codes.get(exc.code().name, 0) + 1
                assert exc.code() != grpc.StatusCode.INTERNAL
    t0 = time.monotonic()
    c.ops.GetServerInfo(operator_pb2.ServerInfoRequest(), metadata=c.md, timeout=5)
    assert time.monotonic() - t0 < 1 and srv.process.proc.poll() is None
    print("corrupt-wire", codes)


def test_corrupt_wire_bytes_get_invalid_argument(live):
    srv, c, known, stats = live
    with pytest.raises(grpc.RpcError) as err:
        c.channel.unary_unary("/pulse.operator.v1.OperatorService/Enqueue")(
            b"\x0a\xff\xfe", metadata=c.md, timeout=5
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # also for a streaming method, and the server logs no traceback for it
    with pytest.raises(grpc.RpcError) as err:
        call = c.channel.unary_stream("/pulse.operator.v1.OperatorService/WatchJobs")(
            b"\x0a\xff\xfe", metadata=c.md, timeout=5
        )
        list(call)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Traceback" not in srv.output()
