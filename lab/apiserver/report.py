"""The record of what happened: every violation, and every request, with timestamps.

:class:`Recorder` keeps the violations (401, 403, pruned and ignored fields, 409, 422,
unsupported requests) and one entry per request (time, user, verb, group, resource,
subresource, status code).  :meth:`Recorder.report` builds the JSON the admin endpoint
serves; its shape is documented in the package docstring and is the contract with the lab
harness and the benchmarks (``since`` filters by time, so a benchmark can take
steady-state figures after its warm-up).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

KINDS = ("unauthorized", "forbidden", "pruned", "conflicts", "invalid", "ignored", "unsupported", "errors")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Call:
    """Who asked for what (the request's identity, for every record)."""

    user: str
    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def fields(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "verb": self.verb,
            "group": self.group,
            "resource": self.resource,
            "subresource": self.subresource,
            "namespace": self.namespace,
            "name": self.name,
        }


class Recorder:
    def __init__(self, max_requests: int = 500_000) -> None:
        self.violations: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
        self._requests: deque[tuple[float, Call, int]] = deque(maxlen=max_requests)
        self._unsupported_seen: set[str] = set()

    def add(self, category: str, **fields: Any) -> None:
        self.violations[category].append({"time": round(time.time(), 3), **fields})

    def call(self, category: str, call: Call, **extra: Any) -> None:
        self.add(category, **call.fields(), **extra)

    def fields_dropped(self, category: str, call: Call, object_kind: str, paths: list[str]) -> None:
        for path in paths:
            self.call(category, call, kind=object_kind, path=path)

    def unsupported_once(self, call: Call, message: str) -> None:
        """An unsupported feature (e.g. a CEL rule), reported once per message."""
        if message not in self._unsupported_seen:
            self._unsupported_seen.add(message)
            self.add("unsupported", user=call.user, verb=call.verb, path=call.resource, message=message)

    def request(self, call: Call, code: int) -> None:
        self._requests.append((time.time(), call, code))

    def report(self, resource_version: int, since: float = 0.0) -> dict[str, Any]:
        violations = {k: [v for v in vs if v["time"] >= since] for k, vs in self.violations.items()}
        groups: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        count = 0
        for when, call, code in list(self._requests):
            if when < since:
                continue
            count += 1
            key = (call.user, call.verb, call.group, call.resource, call.subresource)
            entry = groups.get(key)
            if entry is None:
                entry = groups[key] = {
                    "user": call.user,
                    "verb": call.verb,
                    "group": call.group,
                    "resource": call.resource,
                    "subresource": call.subresource,
                    "write": call.verb in WRITE_VERBS,
                    "count": 0,
                    "codes": {},
                    "times": [],
                }
            entry["count"] += 1
            entry["codes"][str(code)] = entry["codes"].get(str(code), 0) + 1
            entry["times"].append(round(when, 3))
        counts = {k: len(v) for k, v in violations.items()}
        counts["requests"] = count
        return {
            "resourceVersion": str(resource_version),
            "since": since,
            "counts": counts,
            "violations": violations,
            "requests": sorted(groups.values(), key=lambda e: (e["user"], e["verb"], e["resource"])),
        }
