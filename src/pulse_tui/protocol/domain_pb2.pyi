from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MetadataResponse(_message.Message):
    __slots__ = ("name", "version", "qntx_version", "description", "author", "license")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    QNTX_VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    qntx_version: str
    description: str
    author: str
    license: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., qntx_version: _Optional[str] = ..., description: _Optional[str] = ..., author: _Optional[str] = ..., license: _Optional[str] = ...) -> None: ...

class InitializeRequest(_message.Message):
    __slots__ = ("ats_store_endpoint", "queue_endpoint", "auth_token", "config", "schedule_endpoint")
    class ConfigEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ATS_STORE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ats_store_endpoint: str
    queue_endpoint: str
    auth_token: str
    config: _containers.ScalarMap[str, str]
    schedule_endpoint: str
    def __init__(self, ats_store_endpoint: _Optional[str] = ..., queue_endpoint: _Optional[str] = ..., auth_token: _Optional[str] = ..., config: _Optional[_Mapping[str, str]] = ..., schedule_endpoint: _Optional[str] = ...) -> None: ...

class InitializeResponse(_message.Message):
    __slots__ = ("handler_names", "schedules")
    HANDLER_NAMES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    handler_names: _containers.RepeatedScalarFieldContainer[str]
    schedules: _containers.RepeatedCompositeFieldContainer[ScheduleInfo]
    def __init__(self, handler_names: _Optional[_Iterable[str]] = ..., schedules: _Optional[_Iterable[_Union[ScheduleInfo, _Mapping]]] = ...) -> None: ...

class ScheduleInfo(_message.Message):
    __slots__ = ("handler_name", "interval_seconds", "enabled_by_default", "description", "ats_code")
    HANDLER_NAME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_BY_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ATS_CODE_FIELD_NUMBER: _ClassVar[int]
    handler_name: str
    interval_seconds: int
    enabled_by_default: bool
    description: str
    ats_code: str
    def __init__(self, handler_name: _Optional[str] = ..., interval_seconds: _Optional[int] = ..., enabled_by_default: _Optional[bool] = ..., description: _Optional[str] = ..., ats_code: _Optional[str] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("healthy", "message", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    message: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, healthy: _Optional[bool] = ..., message: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ConfigFieldSchema(_message.Message):
    __slots__ = ("type", "description", "default_value", "required")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    type: str
    description: str
    default_value: str
    required: bool
    def __init__(self, type: _Optional[str] = ..., description: _Optional[str] = ..., default_value: _Optional[str] = ..., required: _Optional[bool] = ...) -> None: ...

class ConfigSchemaResponse(_message.Message):
    __slots__ = ("fields",)
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ConfigFieldSchema
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ConfigFieldSchema, _Mapping]] = ...) -> None: ...
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.MessageMap[str, ConfigFieldSchema]
    def __init__(self, fields: _Optional[_Mapping[str, ConfigFieldSchema]] = ...) -> None: ...

class ExecuteJobRequest(_message.Message):
    __slots__ = ("job_id", "handler_name", "payload", "timeout_secs")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    handler_name: str
    payload: bytes
    timeout_secs: int
    def __init__(self, job_id: _Optional[str] = ..., handler_name: _Optional[str] = ..., payload: _Optional[bytes] = ..., timeout_secs: _Optional[int] = ...) -> None: ...

class JobLogEntry(_message.Message):
    __slots__ = ("timestamp", "level", "message", "stage", "metadata")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    timestamp: str
    level: str
    message: str
    stage: str
    metadata: str
    def __init__(self, timestamp: _Optional[str] = ..., level: _Optional[str] = ..., message: _Optional[str] = ..., stage: _Optional[str] = ..., metadata: _Optional[str] = ...) -> None: ...

class ExecuteJobResponse(_message.Message):
    __slots__ = ("success", "error", "result", "progress_current", "progress_total", "cost_actual", "log_entries", "plugin_version")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_CURRENT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    COST_ACTUAL_FIELD_NUMBER: _ClassVar[int]
    LOG_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    result: bytes
    progress_current: int
    progress_total: int
    cost_actual: float
    log_entries: _containers.RepeatedCompositeFieldContainer[JobLogEntry]
    plugin_version: str
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ..., result: _Optional[bytes] = ..., progress_current: _Optional[int] = ..., progress_total: _Optional[int] = ..., cost_actual: _Optional[float] = ..., log_entries: _Optional[_Iterable[_Union[JobLogEntry, _Mapping]]] = ..., plugin_version: _Optional[str] = ...) -> None: ...
