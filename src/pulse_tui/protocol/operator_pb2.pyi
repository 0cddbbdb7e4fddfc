from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Job(_message.Message):
    __slots__ = ("id", "seq", "handler", "status", "priority", "progress_current", "progress_total", "attempts", "max_attempts", "retry_count", "error", "created_at", "started_at", "completed_at", "updated_at", "run_at", "timeout_secs", "plugin", "plugin_version", "source", "parent_job_id", "cost_estimate", "cost_actual", "no_handler", "node", "run_attempts", "interrupted_attempts", "schedule_id", "pause_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_CURRENT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECS_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PARENT_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    COST_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    COST_ACTUAL_FIELD_NUMBER: _ClassVar[int]
    NO_HANDLER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    RUN_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    PAUSE_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    seq: int
    handler: str
    status: str
    priority: int
    progress_current: int
    progress_total: int
    attempts: int
    max_attempts: int
    retry_count: int
    error: str
    created_at: float
    started_at: float
    completed_at: float
    updated_at: float
    run_at: float
    timeout_secs: int
    plugin: str
    plugin_version: str
    source: str
    parent_job_id: str
    cost_estimate: float
    cost_actual: float
    no_handler: bool
    node: str
    run_attempts: int
    interrupted_attempts: int
    schedule_id: str
    pause_reason: str
    def __init__(self, id: _Optional[str] = ..., seq: _Optional[int] = ..., handler: _Optional[str] = ..., status: _Optional[str] = ..., priority: _Optional[int] = ..., progress_current: _Optional[int] = ..., progress_total: _Optional[int] = ..., attempts: _Optional[int] = ..., max_attempts: _Optional[int] = ..., retry_count: _Optional[int] = ..., error: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., completed_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., run_at: _Optional[float] = ..., timeout_secs: _Optional[int] = ..., plugin: _Optional[str] = ..., plugin_version: _Optional[str] = ..., source: _Optional[str] = ..., parent_job_id: _Optional[str] = ..., cost_estimate: _Optional[float] = ..., cost_actual: _Optional[float] = ..., no_handler: _Optional[bool] = ..., node: _Optional[str] = ..., run_attempts: _Optional[int] = ..., interrupted_attempts: _Optional[int] = ..., schedule_id: _Optional[str] = ..., pause_reason: _Optional[str] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("number", "started_at", "ended_at", "outcome", "error", "plugin", "plugin_version", "node")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    number: int
    started_at: float
    ended_at: float
    outcome: str
    error: str
    plugin: str
    plugin_version: str
    node: str
    def __init__(self, number: _Optional[int] = ..., started_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., outcome: _Optional[str] = ..., error: _Optional[str] = ..., plugin: _Optional[str] = ..., plugin_version: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("timestamp", "level", "message", "stage", "metadata", "attempt")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    timestamp: str
    level: str
    message: str
    stage: str
    metadata: str
    attempt: int
    def __init__(self, timestamp: _Optional[str] = ..., level: _Optional[str] = ..., message: _Optional[str] = ..., stage: _Optional[str] = ..., metadata: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class JobDetail(_message.Message):
    __slots__ = ("job", "payload", "result", "attempts", "logs")
    JOB_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    job: Job
    payload: bytes
    result: bytes
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    logs: _containers.RepeatedCompositeFieldContainer[LogEntry]
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., payload: _Optional[bytes] = ..., result: _Optional[bytes] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., logs: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ...) -> None: ...

class JobFilter(_message.Message):
    __slots__ = ("statuses", "handler", "text", "handler_glob", "payload", "error", "parent_job_id")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    HANDLER_GLOB_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PARENT_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[str]
    handler: str
    text: str
    handler_glob: str
    payload: str
    error: str
    parent_job_id: str
    def __init__(self, statuses: _Optional[_Iterable[str]] = ..., handler: _Optional[str] = ..., text: _Optional[str] = ..., handler_glob: _Optional[str] = ..., payload: _Optional[str] = ..., error: _Optional[str] = ..., parent_job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("filter", "limit", "after_seq", "oldest_first", "offset", "sort_by")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    filter: JobFilter
    limit: int
    after_seq: int
    oldest_first: bool
    offset: int
    sort_by: str
    def __init__(self, filter: _Optional[_Union[JobFilter, _Mapping]] = ..., limit: _Optional[int] = ..., after_seq: _Optional[int] = ..., oldest_first: _Optional[bool] = ..., offset: _Optional[int] = ..., sort_by: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "has_more", "next_after_seq")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    has_more: bool
    next_after_seq: int
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., has_more: _Optional[bool] = ..., next_after_seq: _Optional[int] = ...) -> None: ...

class CountJobsRequest(_message.Message):
    __slots__ = ("filter", "cap")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    filter: JobFilter
    cap: int
    def __init__(self, filter: _Optional[_Union[JobFilter, _Mapping]] = ..., cap: _Optional[int] = ...) -> None: ...

class CountJobsResponse(_message.Message):
    __slots__ = ("by_status", "capped", "cap", "total")
    class ByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    CAPPED_FIELD_NUMBER: _ClassVar[int]
    CAP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    by_status: _containers.ScalarMap[str, int]
    capped: bool
    cap: int
    total: int
    def __init__(self, by_status: _Optional[_Mapping[str, int]] = ..., capped: _Optional[bool] = ..., cap: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class EnqueueRequest(_message.Message):
    __slots__ = ("handler", "payload", "max_attempts", "timeout_secs", "priority", "source", "delay_secs", "parent_job_id", "cost_estimate", "id")
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECS_FIELD_NUMBER: _ClassVar[int]
    PARENT_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    COST_ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    handler: str
    payload: bytes
    max_attempts: int
    timeout_secs: int
    priority: int
    source: str
    delay_secs: float
    parent_job_id: str
    cost_estimate: float
    id: str
    def __init__(self, handler: _Optional[str] = ..., payload: _Optional[bytes] = ..., max_attempts: _Optional[int] = ..., timeout_secs: _Optional[int] = ..., priority: _Optional[int] = ..., source: _Optional[str] = ..., delay_secs: _Optional[float] = ..., parent_job_id: _Optional[str] = ..., cost_estimate: _Optional[float] = ..., id: _Optional[str] = ...) -> None: ...

class EnqueueResponse(_message.Message):
    __slots__ = ("job", "existed")
    JOB_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    job: Job
    existed: bool
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., existed: _Optional[bool] = ...) -> None: ...

class EnqueueManyRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[EnqueueRequest]
    def __init__(self, jobs: _Optional[_Iterable[_Union[EnqueueRequest, _Mapping]]] = ...) -> None: ...

class EnqueueManyResponse(_message.Message):
    __slots__ = ("ids", "existed")
    IDS_FIELD_NUMBER: _ClassVar[int]
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    existed: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., existed: _Optional[_Iterable[bool]] = ...) -> None: ...

class JobSelector(_message.Message):
    __slots__ = ("ids", "filter", "limit", "dry_run")
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: JobFilter
    limit: int
    dry_run: bool
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[JobFilter, _Mapping]] = ..., limit: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ActionFailure(_message.Message):
    __slots__ = ("id", "error", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    error: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., error: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class BulkResponse(_message.Message):
    __slots__ = ("affected_ids", "failures", "matched", "truncated")
    AFFECTED_IDS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    affected_ids: _containers.RepeatedScalarFieldContainer[str]
    failures: _containers.RepeatedCompositeFieldContainer[ActionFailure]
    matched: int
    truncated: bool
    def __init__(self, affected_ids: _Optional[_Iterable[str]] = ..., failures: _Optional[_Iterable[_Union[ActionFailure, _Mapping]]] = ..., matched: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class WatchJobsRequest(_message.Message):
    __slots__ = ("filter", "batched", "view", "view_ids", "view_from_seq")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_IDS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    filter: JobFilter
    batched: bool
    view: bool
    view_ids: _containers.RepeatedScalarFieldContainer[str]
    view_from_seq: int
    def __init__(self, filter: _Optional[_Union[JobFilter, _Mapping]] = ..., batched: _Optional[bool] = ..., view: _Optional[bool] = ..., view_ids: _Optional[_Iterable[str]] = ..., view_from_seq: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("kind", "job", "server_time", "jobs", "others", "view_token", "others_from_seq", "counts")
    class OthersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    OTHERS_FIELD_NUMBER: _ClassVar[int]
    VIEW_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OTHERS_FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    job: Job
    server_time: float
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    others: _containers.ScalarMap[str, int]
    view_token: str
    others_from_seq: int
    counts: CountJobsResponse
    def __init__(self, kind: _Optional[str] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., server_time: _Optional[float] = ..., jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., others: _Optional[_Mapping[str, int]] = ..., view_token: _Optional[str] = ..., others_from_seq: _Optional[int] = ..., counts: _Optional[_Union[CountJobsResponse, _Mapping]] = ...) -> None: ...

class ConfigField(_message.Message):
    __slots__ = ("name", "type", "description", "default_value", "required", "min_value", "max_value", "pattern", "element_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    description: str
    default_value: str
    required: bool
    min_value: str
    max_value: str
    pattern: str
    element_type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., default_value: _Optional[str] = ..., required: _Optional[bool] = ..., min_value: _Optional[str] = ..., max_value: _Optional[str] = ..., pattern: _Optional[str] = ..., element_type: _Optional[str] = ...) -> None: ...

class Plugin(_message.Message):
    __slots__ = ("name", "state", "healthy", "health_message", "version", "description", "pid", "endpoint", "started_at", "restarts", "handlers", "last_error", "enabled", "output_tail", "config_schema", "next_restart_at", "running_jobs", "refused_handlers", "draining_jobs", "draining_instances", "unserved")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    HEALTH_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TAIL_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    NEXT_RESTART_AT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOBS_FIELD_NUMBER: _ClassVar[int]
    REFUSED_HANDLERS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_JOBS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    UNSERVED_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    healthy: bool
    health_message: str
    version: str
    description: str
    pid: int
    endpoint: str
    started_at: float
    restarts: int
    handlers: _containers.RepeatedScalarFieldContainer[str]
    last_error: str
    enabled: bool
    output_tail: _containers.RepeatedScalarFieldContainer[str]
    config_schema: _containers.RepeatedCompositeFieldContainer[ConfigField]
    next_restart_at: float
    running_jobs: int
    refused_handlers: _containers.RepeatedScalarFieldContainer[str]
    draining_jobs: int
    draining_instances: int
    unserved: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., healthy: _Optional[bool] = ..., health_message: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., pid: _Optional[int] = ..., endpoint: _Optional[str] = ..., started_at: _Optional[float] = ..., restarts: _Optional[int] = ..., handlers: _Optional[_Iterable[str]] = ..., last_error: _Optional[str] = ..., enabled: _Optional[bool] = ..., output_tail: _Optional[_Iterable[str]] = ..., config_schema: _Optional[_Iterable[_Union[ConfigField, _Mapping]]] = ..., next_restart_at: _Optional[float] = ..., running_jobs: _Optional[int] = ..., refused_handlers: _Optional[_Iterable[str]] = ..., draining_jobs: _Optional[int] = ..., draining_instances: _Optional[int] = ..., unserved: _Optional[_Iterable[str]] = ...) -> None: ...

class ListPluginsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPluginsResponse(_message.Message):
    __slots__ = ("plugins",)
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    plugins: _containers.RepeatedCompositeFieldContainer[Plugin]
    def __init__(self, plugins: _Optional[_Iterable[_Union[Plugin, _Mapping]]] = ...) -> None: ...

class GetPluginRequest(_message.Message):
    __slots__ = ("name", "tail_lines")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    name: str
    tail_lines: int
    def __init__(self, name: _Optional[str] = ..., tail_lines: _Optional[int] = ...) -> None: ...

class PluginNameRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ReloadPluginResponse(_message.Message):
    __slots__ = ("plugin", "added", "removed", "conflicts", "drained_jobs", "draining_jobs")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    DRAINED_JOBS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_JOBS_FIELD_NUMBER: _ClassVar[int]
    plugin: Plugin
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    conflicts: _containers.RepeatedScalarFieldContainer[str]
    drained_jobs: int
    draining_jobs: int
    def __init__(self, plugin: _Optional[_Union[Plugin, _Mapping]] = ..., added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., conflicts: _Optional[_Iterable[str]] = ..., drained_jobs: _Optional[int] = ..., draining_jobs: _Optional[int] = ...) -> None: ...

class SetPluginEnabledRequest(_message.Message):
    __slots__ = ("name", "enabled")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    name: str
    enabled: bool
    def __init__(self, name: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class Handler(_message.Message):
    __slots__ = ("name", "owner", "claimants", "conflict", "explanation", "builtin", "pinned", "qualified", "queued", "running", "failed", "paused", "pause_reason", "paused_at", "paused_jobs", "changed_jobs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CLAIMANTS_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    QUALIFIED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    PAUSE_REASON_FIELD_NUMBER: _ClassVar[int]
    PAUSED_AT_FIELD_NUMBER: _ClassVar[int]
    PAUSED_JOBS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_JOBS_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    claimants: _containers.RepeatedScalarFieldContainer[str]
    conflict: str
    explanation: str
    builtin: bool
    pinned: bool
    qualified: _containers.RepeatedScalarFieldContainer[str]
    queued: int
    running: int
    failed: int
    paused: bool
    pause_reason: str
    paused_at: float
    paused_jobs: int
    changed_jobs: int
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., claimants: _Optional[_Iterable[str]] = ..., conflict: _Optional[str] = ..., explanation: _Optional[str] = ..., builtin: _Optional[bool] = ..., pinned: _Optional[bool] = ..., qualified: _Optional[_Iterable[str]] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., failed: _Optional[int] = ..., paused: _Optional[bool] = ..., pause_reason: _Optional[str] = ..., paused_at: _Optional[float] = ..., paused_jobs: _Optional[int] = ..., changed_jobs: _Optional[int] = ...) -> None: ...

class HandlerNameRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListHandlersRequest(_message.Message):
    __slots__ = ("conflicts_only",)
    CONFLICTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    conflicts_only: bool
    def __init__(self, conflicts_only: _Optional[bool] = ...) -> None: ...

class ListHandlersResponse(_message.Message):
    __slots__ = ("handlers",)
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    handlers: _containers.RepeatedCompositeFieldContainer[Handler]
    def __init__(self, handlers: _Optional[_Iterable[_Union[Handler, _Mapping]]] = ...) -> None: ...

class Script(_message.Message):
    __slots__ = ("name", "code", "version", "modified_at", "handler", "live")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_AT_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    code: str
    version: str
    modified_at: float
    handler: str
    live: bool
    def __init__(self, name: _Optional[str] = ..., code: _Optional[str] = ..., version: _Optional[str] = ..., modified_at: _Optional[float] = ..., handler: _Optional[str] = ..., live: _Optional[bool] = ...) -> None: ...

class ListScriptsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListScriptsResponse(_message.Message):
    __slots__ = ("scripts",)
    SCRIPTS_FIELD_NUMBER: _ClassVar[int]
    scripts: _containers.RepeatedCompositeFieldContainer[Script]
    def __init__(self, scripts: _Optional[_Iterable[_Union[Script, _Mapping]]] = ...) -> None: ...

class GetScriptRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SaveScriptRequest(_message.Message):
    __slots__ = ("name", "code", "base_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    code: str
    base_version: str
    def __init__(self, name: _Optional[str] = ..., code: _Optional[str] = ..., base_version: _Optional[str] = ...) -> None: ...

class SaveScriptResponse(_message.Message):
    __slots__ = ("saved", "script", "error", "error_line", "error_column", "live", "reload_message")
    SAVED_FIELD_NUMBER: _ClassVar[int]
    SCRIPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_LINE_FIELD_NUMBER: _ClassVar[int]
    ERROR_COLUMN_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    RELOAD_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    saved: bool
    script: Script
    error: str
    error_line: int
    error_column: int
    live: bool
    reload_message: str
    def __init__(self, saved: _Optional[bool] = ..., script: _Optional[_Union[Script, _Mapping]] = ..., error: _Optional[str] = ..., error_line: _Optional[int] = ..., error_column: _Optional[int] = ..., live: _Optional[bool] = ..., reload_message: _Optional[str] = ...) -> None: ...

class DeleteScriptRequest(_message.Message):
    __slots__ = ("name", "base_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    base_version: str
    def __init__(self, name: _Optional[str] = ..., base_version: _Optional[str] = ...) -> None: ...

class DeleteScriptResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "listen", "store", "started_at", "read_only", "node", "counts", "running", "concurrency", "jobs_per_s", "builtin_handlers", "store_condition", "budgets", "spend_today", "spend_this_month")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LISTEN_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    JOBS_PER_S_FIELD_NUMBER: _ClassVar[int]
    BUILTIN_HANDLERS_FIELD_NUMBER: _ClassVar[int]
    STORE_CONDITION_FIELD_NUMBER: _ClassVar[int]
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    SPEND_TODAY_FIELD_NUMBER: _ClassVar[int]
    SPEND_THIS_MONTH_FIELD_NUMBER: _ClassVar[int]
    version: str
    listen: str
    store: str
    started_at: float
    read_only: bool
    node: str
    counts: _containers.ScalarMap[str, int]
    running: int
    concurrency: int
    jobs_per_s: float
    builtin_handlers: _containers.RepeatedScalarFieldContainer[str]
    store_condition: str
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    spend_today: float
    spend_this_month: float
    def __init__(self, version: _Optional[str] = ..., listen: _Optional[str] = ..., store: _Optional[str] = ..., started_at: _Optional[float] = ..., read_only: _Optional[bool] = ..., node: _Optional[str] = ..., counts: _Optional[_Mapping[str, int]] = ..., running: _Optional[int] = ..., concurrency: _Optional[int] = ..., jobs_per_s: _Optional[float] = ..., builtin_handlers: _Optional[_Iterable[str]] = ..., store_condition: _Optional[str] = ..., budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ..., spend_today: _Optional[float] = ..., spend_this_month: _Optional[float] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("scope", "period", "limit", "spent", "remaining", "reached", "jobs")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    REACHED_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    scope: str
    period: str
    limit: float
    spent: float
    remaining: float
    reached: bool
    jobs: int
    def __init__(self, scope: _Optional[str] = ..., period: _Optional[str] = ..., limit: _Optional[float] = ..., spent: _Optional[float] = ..., remaining: _Optional[float] = ..., reached: _Optional[bool] = ..., jobs: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("handler", "window_secs", "step_secs")
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECS_FIELD_NUMBER: _ClassVar[int]
    STEP_SECS_FIELD_NUMBER: _ClassVar[int]
    handler: str
    window_secs: int
    step_secs: int
    def __init__(self, handler: _Optional[str] = ..., window_secs: _Optional[int] = ..., step_secs: _Optional[int] = ...) -> None: ...

class StatsPoint(_message.Message):
    __slots__ = ("ts", "enqueued", "started", "finished", "completed", "failed", "run_p50", "run_p95", "wait_p95")
    class FinishedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TS_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RUN_P50_FIELD_NUMBER: _ClassVar[int]
    RUN_P95_FIELD_NUMBER: _ClassVar[int]
    WAIT_P95_FIELD_NUMBER: _ClassVar[int]
    ts: float
    enqueued: int
    started: int
    finished: _containers.ScalarMap[str, int]
    completed: int
    failed: int
    run_p50: float
    run_p95: float
    wait_p95: float
    def __init__(self, ts: _Optional[float] = ..., enqueued: _Optional[int] = ..., started: _Optional[int] = ..., finished: _Optional[_Mapping[str, int]] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., run_p50: _Optional[float] = ..., run_p95: _Optional[float] = ..., wait_p95: _Optional[float] = ...) -> None: ...

class StatsSummary(_message.Message):
    __slots__ = ("enqueued", "started", "finished", "completed", "failed", "per_min", "error_pct", "run_p50", "run_p95", "run_p99", "wait_p50", "wait_p95", "run_sum", "wait_sum", "bounds", "run_counts", "wait_counts")
    class FinishedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ENQUEUED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PER_MIN_FIELD_NUMBER: _ClassVar[int]
    ERROR_PCT_FIELD_NUMBER: _ClassVar[int]
    RUN_P50_FIELD_NUMBER: _ClassVar[int]
    RUN_P95_FIELD_NUMBER: _ClassVar[int]
    RUN_P99_FIELD_NUMBER: _ClassVar[int]
    WAIT_P50_FIELD_NUMBER: _ClassVar[int]
    WAIT_P95_FIELD_NUMBER: _ClassVar[int]
    RUN_SUM_FIELD_NUMBER: _ClassVar[int]
    WAIT_SUM_FIELD_NUMBER: _ClassVar[int]
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNTS_FIELD_NUMBER: _ClassVar[int]
    WAIT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    enqueued: int
    started: int
    finished: _containers.ScalarMap[str, int]
    completed: int
    failed: int
    per_min: float
    error_pct: float
    run_p50: float
    run_p95: float
    run_p99: float
    wait_p50: float
    wait_p95: float
    run_sum: float
    wait_sum: float
    bounds: _containers.RepeatedScalarFieldContainer[float]
    run_counts: _containers.RepeatedScalarFieldContainer[int]
    wait_counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, enqueued: _Optional[int] = ..., started: _Optional[int] = ..., finished: _Optional[_Mapping[str, int]] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., per_min: _Optional[float] = ..., error_pct: _Optional[float] = ..., run_p50: _Optional[float] = ..., run_p95: _Optional[float] = ..., run_p99: _Optional[float] = ..., wait_p50: _Optional[float] = ..., wait_p95: _Optional[float] = ..., run_sum: _Optional[float] = ..., wait_sum: _Optional[float] = ..., bounds: _Optional[_Iterable[float]] = ..., run_counts: _Optional[_Iterable[int]] = ..., wait_counts: _Optional[_Iterable[int]] = ...) -> None: ...

class StatsSeries(_message.Message):
    __slots__ = ("handler", "points", "summary")
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    handler: str
    points: _containers.RepeatedCompositeFieldContainer[StatsPoint]
    summary: StatsSummary
    def __init__(self, handler: _Optional[str] = ..., points: _Optional[_Iterable[_Union[StatsPoint, _Mapping]]] = ..., summary: _Optional[_Union[StatsSummary, _Mapping]] = ...) -> None: ...

class HandlerGauges(_message.Message):
    __slots__ = ("handler", "queued", "due", "running", "paused", "oldest_due_age_secs")
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    DUE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    OLDEST_DUE_AGE_SECS_FIELD_NUMBER: _ClassVar[int]
    handler: str
    queued: int
    due: int
    running: int
    paused: int
    oldest_due_age_secs: float
    def __init__(self, handler: _Optional[str] = ..., queued: _Optional[int] = ..., due: _Optional[int] = ..., running: _Optional[int] = ..., paused: _Optional[int] = ..., oldest_due_age_secs: _Optional[float] = ...) -> None: ...

class PluginGauge(_message.Message):
    __slots__ = ("name", "up", "restarts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UP_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    up: bool
    restarts: int
    def __init__(self, name: _Optional[str] = ..., up: _Optional[bool] = ..., restarts: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("server_time", "window_secs", "step_secs", "total", "handlers", "gauges", "plugins", "sampled_at", "enabled")
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECS_FIELD_NUMBER: _ClassVar[int]
    STEP_SECS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    HANDLERS_FIELD_NUMBER: _ClassVar[int]
    GAUGES_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_AT_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    server_time: float
    window_secs: int
    step_secs: int
    total: StatsSeries
    handlers: _containers.RepeatedCompositeFieldContainer[StatsSeries]
    gauges: _containers.RepeatedCompositeFieldContainer[HandlerGauges]
    plugins: _containers.RepeatedCompositeFieldContainer[PluginGauge]
    sampled_at: float
    enabled: bool
    def __init__(self, server_time: _Optional[float] = ..., window_secs: _Optional[int] = ..., step_secs: _Optional[int] = ..., total: _Optional[_Union[StatsSeries, _Mapping]] = ..., handlers: _Optional[_Iterable[_Union[StatsSeries, _Mapping]]] = ..., gauges: _Optional[_Iterable[_Union[HandlerGauges, _Mapping]]] = ..., plugins: _Optional[_Iterable[_Union[PluginGauge, _Mapping]]] = ..., sampled_at: _Optional[float] = ..., enabled: _Optional[bool] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("id", "handler", "payload", "interval_secs", "cron", "timezone", "state", "overlap", "jitter_secs", "next_run_at", "last_run_at", "last_execution_id", "last_job_id", "last_status", "run_count", "owner", "metadata", "description", "cadence", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECS_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    JITTER_SECS_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_COUNT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CADENCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    handler: str
    payload: bytes
    interval_secs: int
    cron: str
    timezone: str
    state: str
    overlap: str
    jitter_secs: int
    next_run_at: float
    last_run_at: float
    last_execution_id: str
    last_job_id: str
    last_status: str
    run_count: int
    owner: str
    metadata: str
    description: str
    cadence: str
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., handler: _Optional[str] = ..., payload: _Optional[bytes] = ..., interval_secs: _Optional[int] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., state: _Optional[str] = ..., overlap: _Optional[str] = ..., jitter_secs: _Optional[int] = ..., next_run_at: _Optional[float] = ..., last_run_at: _Optional[float] = ..., last_execution_id: _Optional[str] = ..., last_job_id: _Optional[str] = ..., last_status: _Optional[str] = ..., run_count: _Optional[int] = ..., owner: _Optional[str] = ..., metadata: _Optional[str] = ..., description: _Optional[str] = ..., cadence: _Optional[str] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("id", "schedule_id", "job_id", "status", "started_at", "completed_at", "duration_ms", "error", "note", "seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    id: str
    schedule_id: str
    job_id: str
    status: str
    started_at: float
    completed_at: float
    duration_ms: int
    error: str
    note: str
    seq: int
    def __init__(self, id: _Optional[str] = ..., schedule_id: _Optional[str] = ..., job_id: _Optional[str] = ..., status: _Optional[str] = ..., started_at: _Optional[float] = ..., completed_at: _Optional[float] = ..., duration_ms: _Optional[int] = ..., error: _Optional[str] = ..., note: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("states", "owner", "handler", "limit")
    STATES_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[str]
    owner: str
    handler: str
    limit: int
    def __init__(self, states: _Optional[_Iterable[str]] = ..., owner: _Optional[str] = ..., handler: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("id", "executions_limit", "executions_before_seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_BEFORE_SEQ_FIELD_NUMBER: _ClassVar[int]
    id: str
    executions_limit: int
    executions_before_seq: int
    def __init__(self, id: _Optional[str] = ..., executions_limit: _Optional[int] = ..., executions_before_seq: _Optional[int] = ...) -> None: ...

class ScheduleDetail(_message.Message):
    __slots__ = ("schedule", "executions", "next_runs")
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUNS_FIELD_NUMBER: _ClassVar[int]
    schedule: Schedule
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    next_runs: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, schedule: _Optional[_Union[Schedule, _Mapping]] = ..., executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ..., next_runs: _Optional[_Iterable[float]] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("handler", "payload", "interval_secs", "cron", "timezone", "overlap", "jitter_secs", "paused", "run_at_once", "metadata", "description")
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECS_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    JITTER_SECS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_ONCE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    handler: str
    payload: bytes
    interval_secs: int
    cron: str
    timezone: str
    overlap: str
    jitter_secs: int
    paused: bool
    run_at_once: bool
    metadata: str
    description: str
    def __init__(self, handler: _Optional[str] = ..., payload: _Optional[bytes] = ..., interval_secs: _Optional[int] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., overlap: _Optional[str] = ..., jitter_secs: _Optional[int] = ..., paused: _Optional[bool] = ..., run_at_once: _Optional[bool] = ..., metadata: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class UpdateScheduleRequest(_message.Message):
    __slots__ = ("id", "handler", "payload", "interval_secs", "cron", "timezone", "overlap", "jitter_secs", "description")
    ID_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECS_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    JITTER_SECS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    handler: str
    payload: bytes
    interval_secs: int
    cron: str
    timezone: str
    overlap: str
    jitter_secs: int
    description: str
    def __init__(self, id: _Optional[str] = ..., handler: _Optional[str] = ..., payload: _Optional[bytes] = ..., interval_secs: _Optional[int] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., overlap: _Optional[str] = ..., jitter_secs: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class ScheduleIdRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RunScheduleResponse(_message.Message):
    __slots__ = ("execution", "schedule")
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    schedule: Schedule
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ...) -> None: ...

class SetWatchViewRequest(_message.Message):
    __slots__ = ("view_token", "ids", "from_seq")
    VIEW_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    view_token: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    from_seq: int
    def __init__(self, view_token: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., from_seq: _Optional[int] = ...) -> None: ...

class SetWatchViewResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchSchedulesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ScheduleEvent(_message.Message):
    __slots__ = ("kind", "schedule", "server_time")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    schedule: Schedule
    server_time: float
    def __init__(self, kind: _Optional[str] = ..., schedule: _Optional[_Union[Schedule, _Mapping]] = ..., server_time: _Optional[float] = ...) -> None: ...
