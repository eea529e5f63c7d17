"""Errors, grouped by what the caller should do about them.

- :class:`ConfigError` -- the user's configuration is wrong; retrying is useless until
  they edit it.  It carries *every* :class:`Issue` found, not just the first, and each
  issue names the object, the field, the bad value and what is allowed.
- :class:`AllocationError` -- this one service cannot get an address now (pool full,
  quota reached, forbidden pool).  Other services are unaffected; the caller records the
  reason (an Event, a plan line) and tries again when the cluster changes.

Errors from outside libraries are wrapped into these, with the original chained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One problem with one object: ``Kind "name": field "value": what is allowed``."""

    kind: str
    name: str
    field: str
    value: Any
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f'{self.kind} "{self.name}"'
        if self.field:
            where += f": {self.field}"
        if self.value is not None and self.value != "":
            where += f" {_quote(self.value)}"
        return f"{where}: {self.message}"


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (int, float, bool)):
        return f'"{value}"'
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class IronLBError(Exception):
    """Base of every error IronLB raises on purpose."""


class ConfigError(IronLBError):
    """The configuration is invalid. Fix the listed objects; retrying will not help."""

    def __init__(self, issues: list[Issue]):
        self.issues = [i for i in issues if not i.warning]
        self.warnings = [i for i in issues if i.warning]
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid configuration")


class AllocationError(IronLBError):
    """This service cannot be given an address now; others are unaffected.

    ``reason`` is a short machine-readable word (``PoolExhausted``, ``QuotaExceeded``,
    ``Forbidden``, ``NoTenant`` (the namespace belongs to no Tenant and no pool admits
    it), ``NoPool``, ``Conflict``, ``Invalid``) used as an Event reason; the message is
    the sentence a user reads.
    """

    def __init__(self, service: str, reason: str, message: str):
        self.service = service
        self.reason = reason
        self.message = message
        super().__init__(f'Service "{service}": {message}')
