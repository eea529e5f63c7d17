"""Membership settings, the traffic bound, the shared keys and peer addresses.

Every node sends heartbeats on two kinds of lane (docs/decisions/0030-membership.md):

- a **fast lane** to its ``watchers`` (the next few live nodes on a hash ring), one
  heartbeat every ``interval``; a watcher votes a silent peer dead after ``dead_after``
  fast periods and tells everyone (an obituary), so the whole cluster learns of a crash
  in about ``dead_after * interval`` whatever its size;
- a **slow lane** to everyone else, as often as the rest of the packet budget allows::

      T_slow = max(interval, (N - 1 - W) / (HEADROOM * max_packets_per_second - W / interval))

  with ``N`` members and ``W = min(watchers, N - 1)`` fast lanes.  It carries the
  first-hand reports that keep views consistent across a bad link, and is the backstop:
  a peer nobody votes dead is still dead after ``dead_after * T_slow`` of total silence.

So a node plans at most ``HEADROOM * max_packets_per_second`` heartbeats a second; the
rest is for quick replies and obituaries, and a token bucket (rate
``max_packets_per_second``, burst two rounds, ``2(N - 1)``) enforces the hard cap for all of
them: in any window of ``W`` seconds a node sends at most ``max_packets_per_second * W +
2(N - 1)`` datagrams (a graceful stop adds ``leave_repeats * (N - 1)`` LEAVEs, once).  Up to
``watchers + 1`` members every lane is fast.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from ironlb.agent.membership.wire import MAX_ENTRIES, Keyring, key_id
from ironlb.errors import ConfigError, Issue

MIN_KEY_BYTES = 32
#: Share of the packet budget that planned heartbeats may use; the rest is for replies and obituaries.
HEADROOM = 0.9


@dataclass(frozen=True)
class MembershipSettings:
    """How often to talk and when to give up on a silent peer."""

    interval: float = 0.025
    """Fast-lane heartbeat period in seconds: how often a node heartbeats its watchers."""

    watchers: int = 3
    """How many nodes watch each node on a fast lane (and vote on its death)."""

    quorum: int = 2
    """Votes that make a peer dead before the slow backstop (capped by the live nodes that could vote)."""

    suspect_after: int = 2
    """Promised periods without any evidence of life before a peer is ``suspect`` (still live)."""

    dead_after: int = 4
    """Promised periods without any evidence of life before a node votes a peer dead."""

    port: int = 7947
    """UDP port every agent listens on (7946 is left to memberlist, so both can run side by side)."""

    max_packets_per_second: int = 200
    """Hard cap on datagrams one node sends per second; the slow lanes stretch to respect it."""

    leave_repeats: int = 3
    """Copies of the LEAVE message sent to each peer on a graceful stop (UDP may drop one)."""

    join_timeout: float = 0.5
    """``start()`` returns once every known peer answered, or after this many seconds."""

    max_entries: int = 100
    """Observations carried per heartbeat; larger clusters rotate through them."""

    isolation_min_peers: int = 2
    """Losing at least this many peers at once, none left and their Nodes Ready, means *we* are
    cut off: keep the last live set instead of taking over everything (0: never)."""

    receive_buffer: int = 4 << 20
    """SO_RCVBUF of each membership socket in bytes (see node.py for the sizing)."""

    max_loop_lag: float = 2.0
    """Stop heartbeating (so peers take over) while the agent's event loop has not run for this long."""

    def __post_init__(self) -> None:
        issues: list[Issue] = []

        def bad(name: str, allowed: str) -> None:
            issues.append(Issue("MembershipSettings", "membership", name, getattr(self, name), allowed))

        if not 0.005 <= self.interval <= 60:
            bad("interval", "must be between 0.005 and 60 seconds")
        fast_rate = self.watchers / self.interval if self.interval > 0 else math.inf
        if not 1 <= self.watchers <= 16:
            bad("watchers", "must be between 1 and 16")
        elif fast_rate >= HEADROOM * self.max_packets_per_second:
            bad(
                "watchers",
                f"with interval {self.interval} s must leave room in max_packets_per_second "
                f"({self.max_packets_per_second}): watchers / interval < "
                f"{HEADROOM * self.max_packets_per_second:g}",
            )
        if not 1 <= self.quorum <= self.watchers + 1:
            bad("quorum", f"must be between 1 and watchers + 1 ({self.watchers + 1})")
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
        if not 0 <= self.isolation_min_peers <= 1000:
            bad("isolation_min_peers", "must be between 0 (off) and 1000")
        if not 64 << 10 <= self.receive_buffer <= 256 << 20:
            bad("receive_buffer", "must be between 65536 and 268435456 bytes")
        if not 0.1 <= self.max_loop_lag <= 3600:
            bad("max_loop_lag", "must be between 0.1 and 3600 seconds")
        if issues:
            raise ConfigError(issues)

    def fast_lanes(self, members: int) -> int:
        """Fast lanes a node keeps in a cluster of ``members`` nodes (this one included)."""
        return max(0, min(self.watchers, members - 1))

    def slow_period(self, members: int) -> float:
        """Slow-lane heartbeat period for a cluster of ``members`` nodes (this one included)."""
        fast = self.fast_lanes(members)
        rest = max(members - 1 - fast, 0)
        if rest == 0:
            return self.interval
        spare = HEADROOM * self.max_packets_per_second - fast / self.interval
        return max(self.interval, rest / spare)

    def planned_rate(self, members: int) -> float:
        """Heartbeats per second one node plans to send (at most HEADROOM x the cap)."""
        fast = self.fast_lanes(members)
        rest = max(members - 1 - fast, 0)
        return fast / self.interval + rest / self.slow_period(members)


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
            [
                Issue(
                    "File",
                    path,
                    "membership key",
                    None,
                    f"cannot be read ({e.strerror or e}); mount the membership Secret at this path",
                )
            ]
        ) from e
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            [
                Issue(
                    "File",
                    path,
                    "membership key",
                    None,
                    f"holds {len(key)} bytes; at least {MIN_KEY_BYTES} are required "
                    "(e.g. `openssl rand -base64 48`)",
                )
            ]
        )
    return key


def load_keys(key_file: str, next_key_file: str | None = None) -> Keyring:
    """The keyring: sign with ``key_file``'s key; during a rotation also accept ``next_key_file``'s.

    See docs/decisions/0030-membership.md for the rotation steps.  Both files are checked
    as :func:`load_key` does; two different keys with the same key id are refused.
    """
    key = load_key(key_file)
    also = load_key(next_key_file) if next_key_file else None
    if also is not None and also != key and key_id(also) == key_id(key):
        raise ConfigError(
            [
                Issue(
                    "File",
                    next_key_file or "",
                    "membership next key",
                    None,
                    "has the same key id as the current key (a 1 in 4 billion chance); generate another",
                )
            ]
        )
    return Keyring(key, also)


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
            [
                Issue(
                    "Node",
                    node,
                    "membership address",
                    text,
                    "must be an IPv4 or IPv6 address, optionally with :port ([v6]:port)",
                )
            ]
        ) from None
    return str(ip), port
