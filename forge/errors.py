"""Typed errors of the service and the HTTP status each maps to.

Raised anywhere in the service (ingress, manager, playground); the ingress turns
them into the contract's error shape. They cross Ray actor boundaries, so each
keeps its constructor arguments picklable.
"""

from __future__ import annotations

from typing import Any


class ForgeError(Exception):
    """Base of every error a client may see; `detail` is safe to show."""

    status_code: int = 500
    error: str = "Internal server error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    def __reduce__(self):
        return (_rebuild, (type(self), self.detail, self.extra))

    def to_body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, "status_code": self.status_code, **self.extra}


def _rebuild(cls: type[ForgeError], detail: str, extra: dict[str, Any]) -> ForgeError:
    return cls(detail, extra=extra)


class BadRequest(ForgeError):
    status_code = 400
    error = "Bad request"


class Unauthorized(ForgeError):
    status_code = 401
    error = "Unauthorized"


class NotFound(ForgeError):
    status_code = 404
    error = "Not found"


class Conflict(ForgeError):
    status_code = 409
    error = "Conflict"


class PayloadTooLarge(ForgeError):
    status_code = 413
    error = "Payload too large"


class ServiceUnavailable(ForgeError):
    status_code = 503
    error = "Service unavailable"


def one_line(error: BaseException) -> str:
    """One line a user can act on, without a stack trace."""
    cause: BaseException = error
    while getattr(cause, "cause", None) is not None and cause is not getattr(cause, "cause"):
        cause = cause.cause  # RayTaskError wraps the worker's exception
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    text = lines[-1] if lines else type(cause).__name__
    return text[:300]
