"""Errors the engine and the stores raise. Each has a gRPC status `code` (coarse, what any gRPC
client understands) and a machine-readable `reason` (`vocab.Reason`), which the operator API sends
as the `pulse-reason` trailing metadata value so a client can tell, say, an unknown handler from a
duplicate id without reading the message."""

from __future__ import annotations

from pulse_tui.vocab import REASON_METADATA_KEY, Reason


class PulseError(Exception):
    code = "INTERNAL"
    reason = Reason.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(PulseError):
    code = "INVALID_ARGUMENT"
    reason = Reason.INVALID_ARGUMENT


class UnknownHandler(ValidationError):
    """No plugin announces the handler a new job names."""

    reason = Reason.UNKNOWN_HANDLER

    def __init__(self, handler: str, message: str) -> None:
        super().__init__(message)
        self.handler = handler


class DuplicateJob(ValidationError):
    """A job with this id already exists (raised by each store from its own unique-violation
    error). The status code stays INVALID_ARGUMENT, as before the reason existed."""

    reason = Reason.DUPLICATE_JOB

    def __init__(self, job_id: str = "") -> None:
        super().__init__(
            f"a job with id {job_id!r} already exists" if job_id else "a job with that id already exists"
        )
        self.job_id = job_id


class DuplicateSchedule(ValidationError):
    reason = Reason.DUPLICATE_SCHEDULE

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"a schedule with id {schedule_id!r} already exists")
        self.schedule_id = schedule_id


class NotFound(PulseError):
    code = "NOT_FOUND"
    reason = Reason.NOT_FOUND


class NotEnabled(NotFound):
    """The server runs without the part a call needs (no scheduler, no handler scripts)."""

    reason = Reason.NOT_ENABLED


class Precondition(PulseError):
    """The thing is in a state that does not allow the action (a finished job cannot be cancelled)."""

    code = "FAILED_PRECONDITION"
    reason = Reason.INVALID_STATE


class Conflict(Precondition):
    """It changed since the caller read it (another writer): reload and try again."""

    reason = Reason.CONFLICT


class Unauthenticated(PulseError):
    code = "UNAUTHENTICATED"
    reason = Reason.UNAUTHENTICATED


class PermissionDenied(PulseError):
    code = "PERMISSION_DENIED"
    reason = Reason.PERMISSION_DENIED


class ReadOnly(PermissionDenied):
    """The read-only token asked for a change."""

    reason = Reason.READ_ONLY


class Unavailable(PulseError):
    code = "UNAVAILABLE"
    reason = Reason.UNAVAILABLE


class StoreFull(PulseError):
    """The job store's disk is full: the write was rolled back, nothing of it was stored."""

    code = "RESOURCE_EXHAUSTED"
    reason = Reason.STORE_FULL


class StoreCorrupt(PulseError):
    """The job store's file is damaged (SQLite reported a malformed database)."""

    code = "DATA_LOSS"
    reason = Reason.STORE_CORRUPT


def reason_trailer(reason: Reason | str) -> tuple[tuple[str, str], ...]:
    """The trailing metadata of a failed operator call: `pulse-reason: <REASON>`."""
    return ((REASON_METADATA_KEY, str(reason)),)
