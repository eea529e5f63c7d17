"""ExaBGP's text API, both ways (pure): batched commands out, acks and state events in.

Out: routes with equal attributes (next hop, communities, local preference) and family
go out as ``announce attributes <attrs> nlri P1 P2 ...`` with up to ``batch`` prefixes
per line.  ExaBGP builds one UPDATE per attribute set (``group-updates``), so 10,000
/32s become a handful of UPDATEs instead of 10,000.  Withdrawals only need the prefix.

In: with ``api.ack`` ExaBGP answers every command line with ``done`` or ``error``; with
``neighbor-changes`` and the JSON encoder it reports sessions as
``{"type": "state", "neighbor": {"state": "up" | "down" | "connected", ...}}``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, order=True)
class Route:
    """One prefix as sent to one peer."""

    prefix: str
    next_hop: str
    communities: tuple[str, ...] = ()  # "a:b" or "large:a:b:c"
    local_pref: int | None = None

    @property
    def family(self) -> int:
        return 6 if ":" in self.prefix else 4


def _attributes(route: Route) -> str:
    parts = [f"next-hop {route.next_hop}"]
    if route.local_pref is not None:
        parts.append(f"local-preference {route.local_pref}")
    standard = [c for c in route.communities if not c.startswith("large:")]
    large = [c.removeprefix("large:") for c in route.communities if c.startswith("large:")]
    if standard:
        parts.append(f"community [ {' '.join(standard)} ]")
    if large:
        parts.append(f"large-community [ {' '.join(large)} ]")
    return " ".join(parts)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def announce_commands(routes: Iterable[Route], batch: int = 500) -> list[str]:
    """Command lines announcing ``routes``, grouped by attributes (in the given order), ``batch`` each."""
    groups: dict[tuple[int, str], list[str]] = defaultdict(list)
    attrs: dict[tuple[str, tuple[str, ...], int | None], str] = {}  # memo: most routes share attributes
    for route in routes:
        key = (route.next_hop, route.communities, route.local_pref)
        if key not in attrs:
            attrs[key] = _attributes(route)
        groups[(route.family, attrs[key])].append(route.prefix)
    return [
        f"announce attributes {attrs} nlri {' '.join(chunk)}"
        for (_, attrs), prefixes in sorted(groups.items())
        for chunk in _chunks(prefixes, batch)
    ]


def withdraw_commands(routes: Iterable[Route], batch: int = 500) -> list[str]:
    """Command lines withdrawing ``routes`` (only prefix and family matter)."""
    groups: dict[tuple[int, str], list[str]] = defaultdict(list)
    for route in routes:
        groups[(route.family, route.next_hop)].append(route.prefix)
    return [
        f"withdraw attributes next-hop {nh} nlri {' '.join(chunk)}"
        for (_, nh), prefixes in sorted(groups.items())
        for chunk in _chunks(prefixes, batch)
    ]


EventKind = Literal["ack", "state", "notification", "other"]


@dataclass(frozen=True)
class Event:
    """One line ExaBGP wrote to the API."""

    kind: EventKind
    ok: bool = True  # ack: done (True) or error (False)
    state: str = ""  # state: up, down, connected
    reason: str = ""  # down reason / notification text


def parse_line(line: str) -> Event:
    """Classify one API line; never raises (unknown lines are ``other``)."""
    text = line.strip()
    if text in ("done", "error"):
        return Event("ack", ok=text == "done")
    try:
        msg = json.loads(text)
    except ValueError:
        return Event("other", reason=text[:200])
    if not isinstance(msg, dict):
        return Event("other")
    neighbor = msg.get("neighbor") if isinstance(msg.get("neighbor"), dict) else {}
    assert isinstance(neighbor, dict)
    if msg.get("type") == "state":
        return Event("state", state=str(neighbor.get("state", "")), reason=str(neighbor.get("reason", "")))
    if msg.get("type") == "notification":
        note = neighbor.get("notification") or msg.get("notification") or {}
        return Event(
            "notification", reason=json.dumps(note)[:200] if note else str(msg.get("notification", ""))
        )
    return Event("other")
