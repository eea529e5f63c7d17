"""Pure pieces of the membership state machine: one peer's record and the small rules.

Everything here is a value or a function of values (time is an argument), so the rules
read -- and are tested -- on their own:

- :class:`Peer`: what this node knows about one other node, and how it dates evidence;
- :class:`TokenBucket`: the hard packet cap;
- :func:`watchers`: whom a node gives a fast lane (the next live nodes on a hash ring);
- :func:`cut_off`: the grab-all guard -- losing every peer at once while Kubernetes still
  reports their Nodes Ready means *this* node is cut off, not the last one standing.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

ALIVE, SUSPECT, DEAD, LEFT, UNKNOWN = "alive", "suspect", "dead", "left", "unknown"
LIVE_STATES = frozenset({ALIVE, SUSPECT})
RANK = {ALIVE: 0, SUSPECT: 1, DEAD: 2, LEFT: 2, UNKNOWN: 2}
DRIFT = 0.001  # tolerated rate difference between two hosts' monotonic clocks (1000 ppm)
MIN_PROMISE = 0.005  # a peer's promise is never taken as shorter than 5 ms


@dataclass
class Peer:
    """What this node knows about one other node (receiving side) and owes it (sending side)."""

    name: str
    address: tuple[str, int]
    pid: bytes
    # -- receiving: evidence of life ---------------------------------------------------------
    incarnation: int = 0  # 0: never heard
    seen: collections.deque[int] = field(default_factory=lambda: collections.deque(maxlen=8))
    last_seq: int = 0
    heard: float | None = None  # last direct, confirmed message (dated by when it was sent)
    indirect: float | None = None  # newest first-hand report from another peer
    left_at: float | None = None
    promise: float | None = None  # its next heartbeat to us follows within this many seconds
    key_id: int = 0  # the key its last accepted message was signed with
    offset: float | None = None  # base of (our clock - their sent clock), seconds
    offset_at: float = 0.0
    obits: dict[str, float] = field(default_factory=dict)  # reporter -> when it last heard this peer
    voted: float | None = None  # the evidence stamp our own obituary was about (one per silence)
    ready: bool = True  # Kubernetes reports its Node Ready
    state: str = UNKNOWN
    # -- sending: what we owe it -----------------------------------------------------------------
    fast: bool = False  # it watches us: heartbeats every fast period
    next_send: float = -math.inf  # our next regular heartbeat to it is due then
    reply_due: bool = False  # send it one extra heartbeat now (join, refutation)
    sends: int = 0  # heartbeats sent to it
    last_reply: float = -math.inf

    def evidence(self) -> float | None:
        """The newest evidence of life, direct or reported."""
        if self.heard is None:
            return self.indirect
        if self.indirect is None:
            return self.heard
        return max(self.heard, self.indirect)

    def sent_at(self, sent_ms: int, now: float) -> float:
        """Date a message by when it was sent, on our clock (never later than ``now``)."""
        sample = now - sent_ms / 1000.0
        if self.offset is None:
            self.offset = sample
        else:  # a running minimum that may creep up 1 ms per second (clock drift)
            self.offset = min(sample, self.offset + (now - self.offset_at) * DRIFT)
        self.offset_at = now
        return min(now, sent_ms / 1000.0 + self.offset)

    def new_run(self, incarnation: int) -> None:
        """The peer restarted: forget what belonged to its previous run."""
        if self.incarnation:
            self.seen.append(self.incarnation)
        self.incarnation, self.last_seq, self.offset = incarnation, 0, None
        self.obits.clear()
        self.voted = None


class TokenBucket:
    """At most ``rate`` tokens per second, holding at most ``burst``."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(now - self.stamp, 0.0) * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def watchers(me: bytes, peers: Iterable[Peer], count: int) -> list[Peer]:
    """The ``count`` peers that follow ``me`` on the ring of peer ids: live ones first, then
    never-heard ones (a starting cluster); dead and departed peers are skipped.

    Every node picks its own watchers from its own view; receivers need not agree, because
    each judges a peer by the promise in its heartbeats, not by this list.
    """
    ring = sorted(peers, key=lambda p: p.pid)
    after = [p for p in ring if p.pid > me] + [p for p in ring if p.pid < me]
    live = [p for p in after if p.state in LIVE_STATES]
    fresh = [p for p in after if p.state == UNKNOWN]
    return (live + fresh)[: max(count, 0)]


def cut_off(live_before: Sequence[Peer], any_alive: bool, min_peers: int) -> bool:
    """True when losing ``live_before`` means this node is probably cut off.

    ``live_before``: the peers in the live set before this judgement; ``any_alive``: some
    peer still has fresh evidence.  When nobody is heard any more, at least ``min_peers``
    peers go at once, and Kubernetes still reports any of their Nodes Ready (so their
    kubelets reach the API server), one node losing its link is far likelier than all the
    others dying together: keep the last live set, so this node keeps what it owns and
    takes nothing.  The hold ends when any peer is heard again, or when every held peer's
    Node has gone NotReady (then Kubernetes agrees the rest of the cluster is gone).
    """
    if min_peers <= 0 or any_alive or len(live_before) < min_peers:
        return False
    return any(p.ready for p in live_before)
