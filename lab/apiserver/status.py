"""The API server's error answers: ``metav1.Status`` bodies, built as the real server words them.

The core raises :class:`ApiError`; the HTTP layer turns it into the Status reply.  Each
constructor below mirrors one of the apiserver's ``k8s.io/apimachinery/pkg/api/errors``
helpers (NewNotFound, NewForbidden, NewConflict, NewInvalid, ...), so clients that parse
``reason``/``details`` see what they would see in production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One field-level problem of a 422 (``details.causes[]``)."""

    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, ...
    message: str

    def body(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class ApiError(Exception):
    """An answer other than success: HTTP ``code`` with a Status body."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    causes: list[Cause] = field(default_factory=list)
    conflict: str = ""  # for 409: what kind of conflict (see the report's ``conflicts``)
    unsupported: bool = False  # the stand-in cannot serve it (the real server would): reported

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def body(self) -> dict[str, Any]:
        details = dict(self.details)
        if self.causes:
            details["causes"] = [c.body() for c in self.causes]
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            out["details"] = details
        return out


def qualified(resource: str, group: str) -> str:
    """``services`` or ``ippools.ironlb.io``: how the server names a resource in messages."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind}
    if name:
        out["name"] = name
    if group:
        out["group"] = group
    return out


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{qualified(resource, group)} "{name}" not found', _details(name, group, resource)
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        _details(name, group, resource),
        conflict="already-exists",
    )


def conflict(resource: str, group: str, name: str, why: str, kind: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        _details(name, group, resource),
        conflict=kind,
    )


def stale(resource: str, group: str, name: str) -> ApiError:
    why = "the object has been modified; please apply your changes to the latest version and try again"
    return conflict(resource, group, name, why, "stale-resource-version")


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422, worded as ``Kind.group "name" is invalid: field: message[, ...]``."""
    qualified_kind = f"{kind}.{group}" if group else kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {summary}',
        _details(name, group, kind),
        causes=list(causes),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(message: str, resource: str, group: str, name: str) -> ApiError:
    return ApiError(403, "Forbidden", message, _details(name, group, resource))


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    message = (
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{', '.join(accepted)}"
    )
    if content_type:
        message = f"{message} (got {content_type})"
    return ApiError(415, "UnsupportedMediaType", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def page_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")
