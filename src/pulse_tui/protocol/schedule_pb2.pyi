from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateScheduleRequest(_message.Message):
    __slots__ = ("auth_token", "handler_name", "interval_seconds", "payload", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HANDLER_NAME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    handler_name: str
    interval_seconds: int
    payload: bytes
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, auth_token: _Optional[str] = ..., handler_name: _Optional[str] = ..., interval_seconds: _Optional[int] = ..., payload: _Optional[bytes] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateScheduleResponse(_message.Message):
    __slots__ = ("success", "error", "schedule_id")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    schedule_id: str
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class PauseScheduleRequest(_message.Message):
    __slots__ = ("auth_token", "schedule_id")
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    schedule_id: str
    def __init__(self, auth_token: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class PauseScheduleResponse(_message.Message):
    __slots__ = ("success", "error")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class ResumeScheduleRequest(_message.Message):
    __slots__ = ("auth_token", "schedule_id")
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    schedule_id: str
    def __init__(self, auth_token: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class ResumeScheduleResponse(_message.Message):
    __slots__ = ("success", "error")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("auth_token", "schedule_id")
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    schedule_id: str
    def __init__(self, auth_token: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ("success", "error")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("auth_token", "schedule_id")
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    schedule_id: str
    def __init__(self, auth_token: _Optional[str] = ..., schedule_id: _Optional[str] = ...) -> None: ...

class ScheduledJob(_message.Message):
    __slots__ = ("id", "ats_code", "handler_name", "payload", "source_url", "interval_seconds", "next_run_at", "last_run_at", "last_execution_id", "state", "metadata", "created_at", "updated_at", "created_from_doc")
    ID_FIELD_NUMBER: _ClassVar[int]
    ATS_CODE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FROM_DOC_FIELD_NUMBER: _ClassVar[int]
    id: str
    ats_code: str
    handler_name: str
    payload: bytes
    source_url: str
    interval_seconds: int
    next_run_at: str
    last_run_at: str
    last_execution_id: str
    state: str
    metadata: str
    created_at: str
    updated_at: str
    created_from_doc: str
    def __init__(self, id: _Optional[str] = ..., ats_code: _Optional[str] = ..., handler_name: _Optional[str] = ..., payload: _Optional[bytes] = ..., source_url: _Optional[str] = ..., interval_seconds: _Optional[int] = ..., next_run_at: _Optional[str] = ..., last_run_at: _Optional[str] = ..., last_execution_id: _Optional[str] = ..., state: _Optional[str] = ..., metadata: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., created_from_doc: _Optional[str] = ...) -> None: ...

class GetScheduleResponse(_message.Message):
    __slots__ = ("success", "error", "job")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    job: ScheduledJob
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ..., job: _Optional[_Union[ScheduledJob, _Mapping]] = ...) -> None: ...
