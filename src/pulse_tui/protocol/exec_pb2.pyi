from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("max_in_flight", "version")
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    max_in_flight: int
    version: int
    def __init__(self, max_in_flight: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class BatchJob(_message.Message):
    __slots__ = ("job_id", "handler_name", "payload", "timeout_secs", "call_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECS_FIELD_NUMBER: _ClassVar[int]
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    handler_name: str
    payload: bytes
    timeout_secs: int
    call_id: int
    def __init__(self, job_id: _Optional[str] = ..., handler_name: _Optional[str] = ..., payload: _Optional[bytes] = ..., timeout_secs: _Optional[int] = ..., call_id: _Optional[int] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("jobs", "cancel_call_ids")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_CALL_IDS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[BatchJob]
    cancel_call_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, jobs: _Optional[_Iterable[_Union[BatchJob, _Mapping]]] = ..., cancel_call_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("call_id", "response")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    response: bytes
    def __init__(self, call_id: _Optional[int] = ..., response: _Optional[bytes] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BatchResult, _Mapping]]] = ...) -> None: ...
