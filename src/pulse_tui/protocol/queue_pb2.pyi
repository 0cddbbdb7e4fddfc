from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Progress(_message.Message):
    __slots__ = ("current", "total")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    current: int
    total: int
    def __init__(self, current: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class PulseState(_message.Message):
    __slots__ = ("calls_this_minute", "calls_remaining", "spend_today", "spend_this_month", "budget_remaining", "is_paused", "pause_reason")
    CALLS_THIS_MINUTE_FIELD_NUMBER: _ClassVar[int]
    CALLS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    SPEND_TODAY_FIELD_NUMBER: _ClassVar[int]
    SPEND_THIS_MONTH_FIELD_NUMBER: _ClassVar[int]
    BUDGET_REMAINING_FIELD_NUMBER: _ClassVar[int]
    IS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    PAUSE_REASON_FIELD_NUMBER: _ClassVar[int]
    calls_this_minute: int
    calls_remaining: int
    spend_today: float
    spend_this_month: float
    budget_remaining: float
    is_paused: bool
    pause_reason: str
    def __init__(self, calls_this_minute: _Optional[int] = ..., calls_remaining: _Optional[int] = ..., spend_today: _Optional[float] = ..., spend_this_month: _Optional[float] = ..., budget_remaining: _Optional[float] = ..., is_paused: _Optional[bool] = ..., pause_reason: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "handler_name", "payload", "source", "status", "progress", "cost_estimate", "cost_actual", "pulse_state", "error", "parent_job_id", "retry_count", "created_at", "started_at", "completed_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_NAME_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COST_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    COST_ACTUAL_FIELD_NUMBER: _ClassVar[int]
    PULSE_STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PARENT_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    handler_name: str
    payload: bytes
    source: str
    status: str
    progress: Progress
    cost_estimate: float
    cost_actual: float
    pulse_state: PulseState
    error: str
    parent_job_id: str
    retry_count: int
    created_at: int
    started_at: int
    completed_at: int
    def __init__(self, id: _Optional[str] = ..., handler_name: _Optional[str] = ..., payload: _Optional[bytes] = ..., source: _Optional[str] = ..., status: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., cost_estimate: _Optional[float] = ..., cost_actual: _Optional[float] = ..., pulse_state: _Optional[_Union[PulseState, _Mapping]] = ..., error: _Optional[str] = ..., parent_job_id: _Optional[str] = ..., retry_count: _Optional[int] = ..., created_at: _Optional[int] = ..., started_at: _Optional[int] = ..., completed_at: _Optional[int] = ...) -> None: ...

class EnqueueRequest(_message.Message):
    __slots__ = ("auth_token", "job")
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    job: Job
    def __init__(self, auth_token: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class EnqueueResponse(_message.Message):
    __slots__ = ("success", "error", "job_id")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    job_id: str
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("auth_token", "job_id")
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    job_id: str
    def __init__(self, auth_token: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("success", "error", "job")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    job: Job
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class UpdateJobRequest(_message.Message):
    __slots__ = ("auth_token", "job")
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    job: Job
    def __init__(self, auth_token: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class UpdateJobResponse(_message.Message):
    __slots__ = ("success", "error")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("auth_token", "status", "limit")
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    status: str
    limit: int
    def __init__(self, auth_token: _Optional[str] = ..., status: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("success", "error", "jobs")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    error: str
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, success: _Optional[bool] = ..., error: _Optional[str] = ..., jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...
