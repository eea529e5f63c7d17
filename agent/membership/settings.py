"""Membership settings, the traffic bound, the shared key and peer addresses.

The traffic bound is the one formula every other number follows from.  With ``N`` members
a node sends one heartbeat to each of the other ``N - 1`` every period ``T``::

    T = max(interval, (N - 1) / max_packets_per_second)

so a node sends at most ``max_packets_per_second`` datagrams per second: a token bucket
(rate ``max_packets_per_second``, burst one round, ``N - 1``) enforces it for heartbeats and
quick replies alike, so in any window of ``W`` seconds a node sends at most
``max_packets_per_second * W + N - 1`` datagrams (a graceful stop adds ``leave_repeats *
(N - 1)`` LEAVEs, once).  In steady state it receives as many as it sends.  Suspicion
and death are counted in periods, so detection time scales with ``T``:
``dead after dead_after * T`` without any evidence of life.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from agent.membership.wire import MAX_ENTRIES
from ironlb.errors import ConfigError, Issue

MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class MembershipSettings:
    """How often to talk and when to give up on a silent peer."""

    interval: float = 0.1
    """Heartbeat period in seconds for small clusters (the floor of the adaptive period)."""

    suspect_after: int = 2
    """Periods without any evidence of life before a peer is reported ``suspect`` (still live)."""

    dead_after: int = 4
    """Periods without any evidence of life before a peer is ``dead`` (leaves the live set)."""

    port: int = 7947
    """UDP port every agent listens on (7946 is left to memberlist, so both can run side by side)."""

    max_packets_per_second: int = 200
    """Hard cap on datagrams one node sends per second; the period grows to respect it."""

    leave_repeats: int = 3
    """Copies of the LEAVE message sent to each peer on a graceful stop (UDP may drop one)."""

    join_timeout: float = 0.5
    """``start()`` returns once every known peer answered, or after this many seconds."""

    max_entries: int = 100
    """Observations carried per heartbeat; larger clusters rotate through them."""

    def __post_init__(self) -> None:
        issues: list[Issue] = []

        def bad(name: str, allowed: str) -> None:
            issues.append(Issue("MembershipSettings", "membership", name, getattr(self, name), allowed))

        if not 0.01 <= self.interval <= 60:
            bad("interval", "must be between 0.01 and 60 seconds")
        if not 1 <= self.suspect_after <= 1000:
            bad("suspect_after", "must be between 1 and 1000 periods")
        if not self.suspect_after <= self.dead_after <= 1000:
            bad("dead_after", f"must be between suspect_after ({self.suspect_after}) and 1000 periods")
        if not 1 <= self.port <= 65535:
            bad("port", "must be a port number (1-65535)")
        if not 1 <= self.max_packets_per_second <= 1_000_000:
            bad("max_packets_per_second", "must be between 1 and 1000000")
        if not 1 <= self.leave_repeats <= 10:
            bad("leave_repeats", "must be between 1 and 10")
        if not 0 <= self.join_timeout <= 60:
            bad("join_timeout", "must be between 0 and 60 seconds")
        if not 0 <= self.max_entries <= MAX_ENTRIES:
            bad("max_entries", f"must be between 0 and {MAX_ENTRIES} (one datagram)")
        if issues:
            raise ConfigError(issues)

    def period(self, members: int) -> float:
        """Heartbeat period for a cluster of ``members`` nodes (this one included)."""
        return max(self.interval, max(members - 1, 0) / self.max_packets_per_second)


def load_key(path: str) -> bytes:
    """Read the shared membership key from a (Secret-mounted) file.

    Surrounding whitespace is dropped (``kubectl create secret --from-literal`` and
    editors add newlines).  The key is never logged or put in an error.
    """
    try:
        with open(path, "rb") as f:
            key = f.read().strip()
    except OSError as e:
        raise ConfigError(
            [Issue("File", path, "membership key", None,
                   f"cannot be read ({e.strerror or e}); mount the membership Secret at this path")]
        ) from e
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            [Issue("File", path, "membership key", None,
                   f"holds {len(key)} bytes; at least {MIN_KEY_BYTES} are required "
                   "(e.g. `openssl rand -base64 48`)")]
        )
    return key


def parse_address(node: str, text: str, default_port: int) -> tuple[str, int]:
    """``"10.0.0.1"``, ``"fd00::1"``, ``"10.0.0.1:7000"`` or ``"[fd00::1]:7000"`` -> (ip, port)."""
    host, port = text.strip(), default_port
    try:
        if host.startswith("["):
            inner, _, rest = host[1:].partition("]")
            host = inner
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(text)
                port = int(rest[1:])
        elif host.count(":") == 1:
            host, _, port_text = host.partition(":")
            port = int(port_text)
        ip = ipaddress.ip_address(host)
        if not 1 <= port <= 65535:
            raise ValueError(text)
    except ValueError:
        raise ConfigError(
            [Issue("Node", node, "membership address", text,
                   "must be an IPv4 or IPv6 address, optionally with :port ([v6]:port)")]
        ) from None
    return str(ip), port
