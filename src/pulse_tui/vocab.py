"""The words server, client, CLI and console share: job statuses, endpoint modes, capabilities,
pause reasons and error reasons.

Dependency-free on purpose: the console imports it without importing the server. Every member is
a `StrEnum`, so it compares equal to (and serialises as) the exact wire string.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUSES: tuple[JobStatus, ...] = tuple(JobStatus)  # in the order the console's tabs show them
# a set, for membership; to list them in order, filter STATUSES
FINISHED: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class PauseReason(StrEnum):
    """Why a job is `paused`."""

    USER_REQUESTED = "user_requested"  # an operator paused it
    BUDGET_EXCEEDED = "budget_exceeded"  # its handler ran out of budget
    HANDLER_PAUSED = "handler_paused"  # its handler is paused


class EndpointMode(StrEnum):
    """What the endpoint the console or CLI is attached to speaks (`PulseClient.probe`)."""

    OPERATOR = "operator"  # a Pulse server: pulse.operator.v1.OperatorService, everything works
    COMPAT = "compat"  # only protocol.QueueService (QNTX and friends): jobs by polling
    PLUGIN = "plugin"  # a bare plugin endpoint (protocol.DomainPluginService): metadata and health


class Capability(StrEnum):
    """What an endpoint can do; screens ask `PulseClient.can(Capability.X)` and say what is not
    available instead of calling and failing."""

    JOBS = "jobs"
    WATCH = "watch"
    DETAIL = "detail"
    COUNTS = "counts"
    ENQUEUE = "enqueue"
    ENQUEUE_MANY = "enqueue-many"
    CANCEL = "cancel"
    RETRY = "retry"
    PAUSE = "pause"  # pause / resume jobs (QueueService.UpdateJob can, so compat mode too)
    PAUSE_HANDLERS = "pause-handlers"  # pause / resume a whole handler
    BULK = "bulk"
    DELETE = "delete"
    PLUGINS = "plugins"
    HANDLERS = "handlers"
    SCHEDULES = "schedules"
    SCRIPTS = "scripts"
    STATS = "stats"
    PLUGIN_ENDPOINT = "plugin-endpoint"


CAPABILITIES: dict[EndpointMode, frozenset[Capability]] = {
    EndpointMode.OPERATOR: frozenset(Capability) - {Capability.PLUGIN_ENDPOINT},
    EndpointMode.COMPAT: frozenset(
        {
            Capability.JOBS,
            Capability.DETAIL,
            Capability.COUNTS,
            Capability.ENQUEUE,
            Capability.CANCEL,
            Capability.RETRY,
            Capability.PAUSE,
        }
    ),
    EndpointMode.PLUGIN: frozenset({Capability.PLUGIN_ENDPOINT}),
}


class Reason(StrEnum):
    """Why an operator call failed, machine-readable: the server sends it as the `pulse-reason`
    trailing metadata value of a failed call (next to the gRPC status code, which stays coarse),
    and `ClientError.reason` reads it back. The client sets the last three itself."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"  # a request field is wrong; the message says which
    UNKNOWN_HANDLER = "UNKNOWN_HANDLER"  # no plugin announces the handler an enqueue names
    DUPLICATE_JOB = "DUPLICATE_JOB"  # a job with that id already exists
    DUPLICATE_SCHEDULE = "DUPLICATE_SCHEDULE"  # a schedule with that id (or declaration) exists
    NOT_FOUND = "NOT_FOUND"  # no job / schedule / plugin / script with that name
    NOT_ENABLED = "NOT_ENABLED"  # the server runs without that part (scheduler, handler scripts)
    INVALID_STATE = "INVALID_STATE"  # the thing is in a state that does not allow the action
    CONFLICT = "CONFLICT"  # it changed since it was read (another writer); reload and try again
    UNAUTHENTICATED = "UNAUTHENTICATED"  # no token, or not one the server knows
    READ_ONLY = "READ_ONLY"  # the read-only token may not change anything
    PERMISSION_DENIED = "PERMISSION_DENIED"  # this token may not do that (e.g. a plugin's token)
    STORE_FULL = "STORE_FULL"  # the job store's disk is full; nothing was stored
    STORE_CORRUPT = "STORE_CORRUPT"  # the job store's file is damaged
    UNAVAILABLE = "UNAVAILABLE"  # the server is up but cannot do it now (store locked, closing)
    INTERNAL = "INTERNAL"  # a bug; the server log has the traceback
    # set by the client, never sent by a server:
    UNREACHABLE = "UNREACHABLE"  # no answer from the endpoint (transport failure, not a server reply)
    UNSUPPORTED = "UNSUPPORTED"  # the endpoint does not offer this (its mode, or an older server)
    UNKNOWN = "UNKNOWN"  # the endpoint gave no reason (compat mode, a plugin, an older server)


REASON_METADATA_KEY = "pulse-reason"
