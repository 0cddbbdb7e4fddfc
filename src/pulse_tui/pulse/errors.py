"""Errors the engine raises; services map each `code` to a gRPC status code."""

from __future__ import annotations


class PulseError(Exception):
    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(PulseError):
    code = "INVALID_ARGUMENT"


class NotFound(PulseError):
    code = "NOT_FOUND"


class Precondition(PulseError):
    code = "FAILED_PRECONDITION"


class Unauthenticated(PulseError):
    code = "UNAUTHENTICATED"


class PermissionDenied(PulseError):
    code = "PERMISSION_DENIED"


class Unavailable(PulseError):
    code = "UNAVAILABLE"


class StoreFull(PulseError):
    """The job store's disk is full: the write was rolled back, nothing of it was stored."""

    code = "RESOURCE_EXHAUSTED"


class StoreCorrupt(PulseError):
    """The job store's file is damaged (SQLite reported a malformed database)."""

    code = "DATA_LOSS"
