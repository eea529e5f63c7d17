"""The pure membership state machine: messages and time in, peer states out.

Nothing here touches a socket or a clock; every method takes ``now`` (seconds, from any
monotonic clock), which is how the unit tests drive it without sleeping.

A peer's state follows from its newest *evidence of life*:

- direct: an authenticated, fresh message from the peer itself;
- indirect: another live peer reporting "I heard it ``age`` ms ago" (first-hand only, so
  reports never travel more than one hop and never loop).  Indirect evidence keeps the
  views of all nodes consistent when a single link is lossy or cut, and never delays
  crash detection: it carries the time the reporter last heard the peer, not the time of
  the report.

Evidence is dated by when the message was *sent* (its ``sent_ms`` plus the path's base
offset, see :mod:`agent.membership.wire`), so heartbeats that sat in a socket buffer while
this process was starved of CPU do not make a crashed peer look fresh.

``alive`` while the evidence is younger than ``suspect_after`` periods, ``suspect`` (still
live) until ``dead_after`` periods, then ``dead``.  A LEAVE makes the peer ``left`` at once;
only a direct message from a new run revives it.  If this node itself stalled (no
``expire`` call for more than ``STALL`` periods: a blocked event loop, a paused VM), nobody
is demoted for one more period, so the queued heartbeats are read before anyone is judged.

Acceptance rules for a message (each failure increments a counter and is ignored):
unknown sender; an incarnation older than the current one while the peer is live, or one
seen before; a sequence number not above the last accepted one (replay, reordering); an
echo that is not our current incarnation (made before our present run: stale) -- the
last one only asks for a quick reply so the sender learns our incarnation.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any

from agent.membership.settings import MembershipSettings
from agent.membership.wire import LEAVE, MAX_AGE_MS, Message, peer_id

ALIVE, SUSPECT, DEAD, LEFT, UNKNOWN = "alive", "suspect", "dead", "left", "unknown"
LIVE_STATES = frozenset({ALIVE, SUSPECT})
RANK = {ALIVE: 0, SUSPECT: 1, DEAD: 2, LEFT: 2, UNKNOWN: 2}
STALL = 2  # periods without an expire() call that count as this node having stalled
DRIFT = 0.001  # tolerated rate difference between two hosts' monotonic clocks (1000 ppm)
COUNTERS = (
    "received", "accepted", "bad_mac", "malformed", "unknown_sender", "stale_incarnation",
    "replayed", "unconfirmed", "leaves_received", "sent", "send_errors", "rate_limited", "stalls",
)


@dataclass
class Peer:
    """What this node knows about one other node."""

    name: str
    address: tuple[str, int]
    pid: bytes
    incarnation: int = 0  # 0: never heard
    seen: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=8))
    last_seq: int = 0
    heard: float | None = None  # last direct, confirmed message
    indirect: float | None = None  # newest first-hand report from another peer
    left_at: float | None = None
    state: str = UNKNOWN
    last_reply: float = -math.inf
    offset: float | None = None  # base of (our clock - their sent clock), seconds
    offset_at: float = 0.0

    def sent_at(self, sent_ms: int, now: float) -> float:
        """Date a message by when it was sent, on our clock (never later than ``now``)."""
        sample = now - sent_ms / 1000.0
        if self.offset is None:
            self.offset = sample
        else:  # a running minimum that may creep up 1 ms per second (clock drift)
            self.offset = min(sample, self.offset + (now - self.offset_at) * DRIFT)
        self.offset_at = now
        return min(now, sent_ms / 1000.0 + self.offset)


class TokenBucket:
    """At most ``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Table:
    """Peer states of one node; see the module docstring for the rules."""

    def __init__(self, node: str, incarnation: int, settings: MembershipSettings, now: float) -> None:
        self.node = node
        self.incarnation = incarnation
        self.settings = settings
        self.peers: dict[str, Peer] = {}
        self.by_pid: dict[bytes, Peer] = {}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.seq = 0
        self.rotation = 0
        self.bucket = TokenBucket(settings.max_packets_per_second, 1.0, now)
        self._live: frozenset[str] = frozenset({node})
        self._last_expire = now
        self._hold_until = -math.inf

    # -- configuration ------------------------------------------------------------------
    def set_peers(self, peers: dict[str, tuple[str, int]], now: float) -> bool:
        """Replace the peer list (keeping state of peers that stay). True if live changed."""
        kept = {n: self.peers[n] for n in peers if n in self.peers and n != self.node}
        for name, address in peers.items():
            if name == self.node:
                continue
            if name in kept:
                kept[name].address = address
            else:
                kept[name] = Peer(name, address, peer_id(name))
        self.peers = kept
        self.by_pid = {p.pid: p for p in kept.values()}
        self.bucket.burst = float(max(len(kept), 1))  # one round of heartbeats
        return self.expire(now)

    def period(self) -> float:
        return self.settings.period(len(self.peers) + 1)

    # -- input ---------------------------------------------------------------------------
    def receive(self, msg: Message, now: float) -> tuple[bool, bool]:
        """Apply one decoded message. Returns (live set changed, quick reply wanted)."""
        peer = self.peers.get(msg.sender)
        if peer is None:
            self.counters["unknown_sender"] += 1
            return False, False
        if msg.incarnation == 0:
            self.counters["stale_incarnation"] += 1
            return False, False
        if msg.incarnation != peer.incarnation:
            older_while_live = msg.incarnation < peer.incarnation and peer.state in LIVE_STATES
            if older_while_live or msg.incarnation in peer.seen:
                self.counters["stale_incarnation"] += 1
                return False, False
            if peer.incarnation:
                peer.seen.append(peer.incarnation)
            peer.incarnation, peer.last_seq, peer.offset = msg.incarnation, 0, None
        if msg.seq <= peer.last_seq:
            self.counters["replayed"] += 1
            return False, False
        peer.last_seq = msg.seq
        if msg.echo != self.incarnation:
            self.counters["unconfirmed"] += 1
            wanted = now - peer.last_reply >= self.period() / 2
            if wanted:
                peer.last_reply = now
            return False, wanted
        self.counters["accepted"] += 1
        was_live = peer.state in LIVE_STATES
        touched = [peer]
        if msg.kind == LEAVE:
            self.counters["leaves_received"] += 1
            peer.left_at = now
        else:
            sent = peer.sent_at(msg.sent_ms, now)
            peer.heard = sent if peer.heard is None else max(peer.heard, sent)
            if peer.left_at is not None:  # a direct heartbeat in a run that announced LEAVE earlier
                peer.left_at = None
            touched += self._take_reports(msg, peer, sent)
        changed = self._refresh(touched, now)
        # A peer that just (re)appeared may not know our incarnation yet: answer at once
        # so its view confirms us without waiting a period.
        wanted = not was_live and peer.state in LIVE_STATES and now - peer.last_reply >= self.period() / 2
        if wanted:
            peer.last_reply = now
        return changed, wanted

    def _take_reports(self, msg: Message, reporter: Peer, sent: float) -> list[Peer]:
        """Record the reporter's observations; return the peers whose state may improve."""
        improved = []
        for pid, age_ms in msg.entries:
            peer = self.by_pid.get(pid)
            if peer is None or peer is reporter:
                continue
            stamp = sent - age_ms / 1000.0
            if peer.indirect is None or stamp > peer.indirect:
                peer.indirect = stamp
                if peer.state != ALIVE:
                    improved.append(peer)
        return improved

    def _refresh(self, peers: list[Peer], now: float) -> bool:
        """Re-judge ``peers`` after new evidence: only promotions, or LEFT (demotions wait for
        :meth:`expire`, which knows about stalls).  True if the live set changed."""
        flipped = False
        for peer in peers:
            state = self.state_of(peer, now)
            if state != peer.state and (RANK[state] <= RANK[peer.state] or state == LEFT):
                flipped |= (state in LIVE_STATES) != (peer.state in LIVE_STATES)
                peer.state = state
        if not flipped:
            return False
        self._live = frozenset([self.node, *(p.name for p in self.peers.values() if p.state in LIVE_STATES)])
        return True

    # -- time ----------------------------------------------------------------------------
    def state_of(self, peer: Peer, now: float) -> str:
        """The state ``peer``'s evidence gives at ``now`` (ignoring any stall hold)."""
        if peer.left_at is not None:
            return LEFT
        evidence = max((t for t in (peer.heard, peer.indirect) if t is not None), default=None)
        if evidence is None:
            return UNKNOWN
        age = now - evidence
        period = self.period()
        if age < self.settings.suspect_after * period:
            return ALIVE
        if age < self.settings.dead_after * period:
            return SUSPECT
        return DEAD

    def expire(self, now: float) -> bool:
        """Recompute every peer's state at ``now``. True if the live set changed."""
        period = self.period()
        stalled = now - self._last_expire > STALL * period
        if stalled and now > self._hold_until + self.settings.dead_after * period:
            # we stalled: read the backlog before judging (at most once per dead window, so
            # constant lag on an overloaded host delays a verdict by at most one look)
            self._hold_until = now + period
            self.counters["stalls"] += 1
        self._last_expire = max(self._last_expire, now)
        hold = now < self._hold_until
        for peer in self.peers.values():
            state = self.state_of(peer, now)
            if hold and RANK[state] > RANK[peer.state] and peer.state in LIVE_STATES and state != LEFT:
                continue  # no demotion while holding (LEAVE still counts)
            peer.state = state
        live = frozenset([self.node, *(p.name for p in self.peers.values() if p.state in LIVE_STATES)])
        changed, self._live = live != self._live, live
        return changed

    def next_deadline(self, now: float) -> float:
        """The earliest time a live peer's state would change without new messages."""
        period, best = self.period(), math.inf
        for peer in self.peers.values():
            if peer.state not in LIVE_STATES:
                continue
            evidence = max(t for t in (peer.heard, peer.indirect) if t is not None)
            for k in (self.settings.suspect_after, self.settings.dead_after):
                if evidence + k * period > now:
                    best = min(best, evidence + k * period)
        return best

    def live(self) -> frozenset[str]:
        return self._live

    # -- output --------------------------------------------------------------------------
    def message(
        self, kind: int, peer: Peer, now: float, entries: tuple[tuple[bytes, int], ...] = ()
    ) -> Message:
        """The next message to ``peer`` (one sequence number per message, any destination)."""
        self.seq += 1
        sent_ms = max(0, round(now * 1000))
        return Message(kind, self.node, self.incarnation, self.seq, peer.incarnation, entries, sent_ms)

    def entries(self, now: float) -> tuple[tuple[bytes, int], ...]:
        """First-hand observations to piggyback: peers heard directly and still live."""
        horizon = self.settings.dead_after * self.period()
        fresh = [
            (p.pid, round((now - p.heard) * 1000))
            for p in self.peers.values()
            if p.heard is not None and p.left_at is None and now - p.heard < horizon
        ]
        fresh = [(pid, min(age, MAX_AGE_MS)) for pid, age in fresh]
        limit = self.settings.max_entries
        if len(fresh) <= limit:
            return tuple(fresh)
        self.rotation = (self.rotation + limit) % len(fresh)
        rotated = fresh[self.rotation :] + fresh[: self.rotation]
        return tuple(rotated[:limit])

    def status(self, now: float) -> dict[str, Any]:
        def ago(t: float | None) -> float | None:
            return None if t is None else round(now - t, 3)

        return {
            name: {
                "address": list(p.address),
                "state": p.state,
                "incarnation": p.incarnation,
                "heard_s_ago": ago(p.heard),
                "reported_s_ago": ago(p.indirect),
                "left_s_ago": ago(p.left_at),
            }
            for name, p in sorted(self.peers.items())
        }
