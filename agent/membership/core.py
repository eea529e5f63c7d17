"""The pure membership state machine: messages and time in, peer states and messages out.

Nothing here touches a socket or a clock; every method takes ``now`` (seconds, from any
monotonic clock), which is how the unit tests drive it without sleeping.

**Evidence.**  A peer's state follows from its newest *evidence of life*:

- direct: an authenticated, fresh message from the peer itself;
- indirect: another live peer reporting "I heard it ``age`` ms ago" (first-hand only, so
  reports never travel more than one hop and never loop).  Reports keep the views of all
  nodes consistent when a single link is lossy or cut, and never delay crash detection:
  they carry the time the reporter last heard the peer, not the time of the report.

Evidence is dated by when the message was *sent* (``sent_ms`` plus the path's base offset,
see :mod:`ironlb.agent.membership.wire`), so heartbeats that sat in a socket buffer while this
process was starved of CPU do not make a crashed peer look fresh.

**Lanes and verdicts** (docs/decisions/0030-membership.md).  Each heartbeat promises when
the next one follows (``next_ms``); a peer is judged by the promise ``P`` it made us:
``alive`` below ``suspect_after * P`` of silence, ``suspect`` after.  After
``dead_after * P`` this node *votes* the peer dead, and a node on a fast lane tells every
other node (an OBITUARY).  A peer is ``dead`` when it has ``quorum`` votes (capped by how
many live nodes could vote) or, as a backstop, after ``dead_after`` slow periods of total
silence.  A vote lapses when anyone hears the peer well after the voter last did (more than
``dead_after - 1`` fast periods later: one bad link is one vote).  A LEAVE makes
the peer ``left`` at once; only a direct message from a new run revives it.

**Holds.**  No peer is demoted while this node is catching up after a stall of its own
(no :meth:`Table.expire` for ``STALL`` fast periods: a blocked loop, a paused VM), nor
while it seems cut off (:func:`ironlb.agent.membership.rules.cut_off`).

**Acceptance** (each failure increments a counter and is ignored): unknown sender; an
incarnation older than the current one while the peer is live, or one seen before; a
sequence number not above the last accepted one (replay, reordering); an echo that is not
our current incarnation (made before our present run: stale) -- the last one only asks
for a quick reply so the sender learns our incarnation.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from ironlb.agent.membership import rules
from ironlb.agent.membership.rules import (
    ALIVE,
    DEAD,
    LEFT,
    LIVE_STATES,
    RANK,
    SUSPECT,
    UNKNOWN,
    Peer,
    TokenBucket,
)
from ironlb.agent.membership.schedule import Outgoing, Schedule
from ironlb.agent.membership.settings import MembershipSettings
from ironlb.agent.membership.wire import LEAVE, MAX_AGE_MS, OBITUARY, Message, peer_id

__all__ = ["ALIVE", "DEAD", "LEFT", "SUSPECT", "UNKNOWN", "Outgoing", "Peer", "Table", "TokenBucket"]

STALL = 2  # fast periods without an expire() call that count as this node having stalled
EPS = 1e-6  # a deadline this close counts as reached (so float rounding never skips a verdict)
COUNTERS = (
    "received",
    "accepted",
    "unknown_source",
    "unknown_key",
    "bad_mac",
    "malformed",
    "unknown_sender",
    "stale_incarnation",
    "replayed",
    "unconfirmed",
    "leaves_received",
    "obituaries_received",
    "obituaries_sent",
    "refutations",
    "sent",
    "send_errors",
    "receive_errors",
    "rate_limited",
    "stalls",
    "isolations",
    "loop_stalls",
)


class Table(Schedule):
    """Peer states of one node; see the module docstring for the rules (and
    :mod:`ironlb.agent.membership.schedule` for what it sends)."""

    def __init__(self, node: str, incarnation: int, settings: MembershipSettings, now: float) -> None:
        self.node = node
        self.pid = peer_id(node)
        self.incarnation = incarnation
        self.settings = settings
        self.peers: dict[str, Peer] = {}
        self.by_pid: dict[bytes, Peer] = {}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.isolated_since: float | None = None
        self._init_schedule(now)
        self._live: frozenset[str] = frozenset({node})
        self._last_look = now  # the last expire() call (stall detection)
        self._judge_at = -math.inf  # no state can change before then without new messages
        self._dirty = True  # something (peers, obituaries) changed: judge at the next look
        self._slow = settings.slow_period(1)
        self._hold_until = -math.inf
        self._refute_at = -math.inf

    # -- configuration ------------------------------------------------------------------
    def set_peers(
        self, peers: dict[str, tuple[str, int]], now: float, ready: Collection[str] | None = None
    ) -> bool:
        """Replace the peer list (keeping state of peers that stay). True if live changed.

        ``ready``: names of peers whose Node is Ready in Kubernetes (None: assume all are).
        """
        kept = {n: self.peers[n] for n in peers if n in self.peers and n != self.node}
        for name, address in peers.items():
            if name == self.node:
                continue
            peer = kept.get(name)
            if peer is None:  # a new peer gets a heartbeat at once (joining takes one round trip)
                peer = kept[name] = Peer(name, address, peer_id(name), next_send=now)
                self._send_soon(now)
            peer.address = address
            peer.ready = ready is None or name in ready
        self.peers = kept
        self.by_pid = {p.pid: p for p in kept.values()}
        burst = float(max(2 * len(kept), 1))  # a round of obituaries on top of one of heartbeats
        self.bucket.tokens = min(burst, self.bucket.tokens + max(burst - self.bucket.burst, 0.0))
        self.bucket.burst = burst
        self._slow = self.settings.slow_period(self.members())
        self._dirty = True
        changed = self.expire(now)
        self._relane(now)
        return changed

    def members(self) -> int:
        return len(self.peers) + 1

    def slow_period(self) -> float:
        return self._slow

    def promised(self, peer: Peer) -> float:
        """The period ``peer`` promised us (the slow period until it promised anything)."""
        return self.slow_period() if peer.promise is None else max(peer.promise, rules.MIN_PROMISE)

    # -- input ---------------------------------------------------------------------------
    def receive(self, msg: Message, now: float) -> bool:
        """Apply one decoded message. True if the live set changed."""
        peer = self.peers.get(msg.sender)
        if peer is None:
            self.counters["unknown_sender"] += 1
            return False
        if msg.incarnation == 0:
            self.counters["stale_incarnation"] += 1
            return False
        if msg.incarnation != peer.incarnation:
            older_while_live = msg.incarnation < peer.incarnation and peer.state in LIVE_STATES
            if older_while_live or msg.incarnation in peer.seen:
                self.counters["stale_incarnation"] += 1
                return False
            peer.new_run(msg.incarnation)
        if msg.seq <= peer.last_seq:
            self.counters["replayed"] += 1
            return False
        peer.last_seq = msg.seq
        peer.key_id = msg.key_id
        if msg.echo != self.incarnation:
            self.counters["unconfirmed"] += 1
            self._want_reply(peer, now)
            return False
        self.counters["accepted"] += 1
        was_live = peer.state in LIVE_STATES
        touched = [peer]
        if msg.kind == LEAVE:
            self.counters["leaves_received"] += 1
            peer.left_at = now
        else:
            sent = peer.sent_at(msg.sent_ms, now)
            peer.heard = sent if peer.heard is None else max(peer.heard, sent)
            peer.left_at = None  # a direct message in a run that announced LEAVE earlier
            if msg.next_ms:
                peer.promise = msg.next_ms / 1000.0
            if msg.kind == OBITUARY:
                self._take_obituaries(msg, peer, sent, now)
                self._dirty = True
            else:
                touched += self._take_reports(msg, peer, sent)
        changed = self._refresh(touched, now)
        for p in touched:  # a shorter promise (a fast lane) brings deadlines closer
            self._judge_at = min(self._judge_at, self._next_change(p, now))
        if not was_live and peer.state in LIVE_STATES:
            self._want_reply(peer, now)  # it may not know our incarnation yet: confirm us at once
        return changed

    def _want_reply(self, peer: Peer, now: float) -> None:
        if now - peer.last_reply >= self.settings.interval / 2:  # at most two replies per fast period
            peer.last_reply = now
            peer.reply_due = True
            self._send_soon(now)

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

    def _take_obituaries(self, msg: Message, reporter: Peer, sent: float, now: float) -> None:
        """Record the reporter's votes; an obituary naming this node is refuted at once."""
        self.counters["obituaries_received"] += 1
        for pid, age_ms in msg.entries:
            if pid == self.pid:
                if now - self._refute_at >= self.settings.dead_after * self.settings.interval:
                    self._refute_at = now
                    self.counters["refutations"] += 1
                    for peer in self.peers.values():
                        peer.reply_due = True
                    self._send_soon(now)
                continue
            target = self.by_pid.get(pid)
            if target is not None and target is not reporter:
                target.obits[reporter.name] = sent - age_ms / 1000.0

    def _refresh(self, peers: list[Peer], now: float) -> bool:
        """Re-judge ``peers`` after new evidence: only promotions, or LEFT (demotions wait for
        :meth:`expire`, which knows about holds).  True if the live set changed."""
        flipped = False
        for peer in peers:
            state = self.state_of(peer, now)
            if state != peer.state and (RANK[state] <= RANK[peer.state] or state == LEFT):
                flipped |= (state in LIVE_STATES) != (peer.state in LIVE_STATES)
                peer.state = state
                self._dirty = True  # e.g. a held peer heard again ends a hold: judge the rest
        if flipped:
            self._set_live(now)
        return flipped

    # -- time ----------------------------------------------------------------------------
    def votes(self, peer: Peer, now: float) -> int:
        """Valid votes that ``peer`` is dead: ours (it went silent on its lane to us), and
        obituaries nobody has contradicted since (heard it after the voter last did)."""
        evidence = peer.evidence()
        if evidence is None:
            return 0
        # a contradiction is evidence from well after the voter lost the peer: up to (dead_after - 1)
        # fast periods later, the peer may legitimately have been heard on another lane before dying
        slack = (self.settings.dead_after - 1) * self.settings.interval
        heard = peer.heard
        own = int(
            heard is not None
            and now - heard + EPS >= self.settings.dead_after * self.promised(peer)
            and heard + slack >= evidence
        )
        stale = [r for r, stamp in peer.obits.items() if stamp + slack < evidence]
        for reporter in stale:  # heard after the voter lost it: the vote lapsed
            del peer.obits[reporter]
        others = sum(1 for r in peer.obits if (p := self.peers.get(r)) is not None and p.state in LIVE_STATES)
        return own + others

    def quorum(self, peer: Peer) -> int:
        """Votes that make ``peer`` dead: ``settings.quorum``, capped by the nodes that could vote."""
        voters = 1 + sum(1 for p in self.peers.values() if p is not peer and p.state in LIVE_STATES)
        return min(self.settings.quorum, voters)

    def state_of(self, peer: Peer, now: float) -> str:
        """The state ``peer``'s evidence gives at ``now`` (ignoring holds)."""
        if peer.left_at is not None:
            return LEFT
        evidence = peer.evidence()
        if evidence is None:
            return UNKNOWN
        age, promised, s = now - evidence + EPS, self.promised(peer), self.settings
        if age >= s.dead_after * max(promised, self.slow_period()):
            return DEAD  # the backstop: total silence for the slow death window
        if (peer.obits or age >= s.dead_after * promised) and self.votes(peer, now) >= self.quorum(peer):
            return DEAD
        return ALIVE if age < s.suspect_after * promised else SUSPECT

    def expire(self, now: float) -> bool:
        """Look at the peers at ``now``: cheap unless a deadline passed or something changed;
        then recompute every state and queue our obituaries. True if the live set changed."""
        fast = self.settings.interval
        once_per_window = now > self._hold_until + self.settings.dead_after * fast
        if now - self._last_look > STALL * fast and once_per_window:
            # we stalled: read the backlog before judging (at most once per death window, so
            # constant lag on an overloaded host delays a verdict by at most one look)
            self._hold_until = now + fast
            self.counters["stalls"] += 1
        self._last_look = max(self._last_look, now)
        if not self._dirty and now < self._judge_at:
            return False
        self._dirty = False
        stalled = now < self._hold_until
        proposed = {name: self.state_of(peer, now) for name, peer in self.peers.items()}
        live_before = [p for p in self.peers.values() if p.state in LIVE_STATES]
        losing = any(proposed[p.name] == DEAD for p in live_before)
        isolated = (losing or self.isolated_since is not None) and rules.cut_off(
            live_before, ALIVE in proposed.values(), self.settings.isolation_min_peers
        )
        if isolated and self.isolated_since is None:
            self.isolated_since = now
            self.counters["isolations"] += 1
        elif not isolated:
            self.isolated_since = None
        for name, peer in self.peers.items():
            state = proposed[name]
            demoted = peer.state in LIVE_STATES and state not in LIVE_STATES and state != LEFT
            if demoted and stalled:
                continue  # no demotion while catching up (LEAVE still counts)
            if demoted and isolated:
                state = SUSPECT  # keep the last live set: take nothing over
            if peer.state in LIVE_STATES and not (stalled or isolated):
                self._maybe_vote(peer, now)
            peer.state = state
        changed = self._set_live(now)
        nxt = min((self._next_change(p, now) for p in self.peers.values()), default=math.inf)
        self._judge_at = min(nxt, self._hold_until) if stalled else nxt
        return changed

    def _maybe_vote(self, peer: Peer, now: float) -> None:
        """Queue our obituary for a peer that went silent on its fast lane to us (once per silence:
        reports from others may keep it alive here, and must not make us vote again and again)."""
        heard, promised = peer.heard, self.promised(peer)
        if heard is None or promised >= self.slow_period() or peer.voted == heard:
            return  # slow lanes need no obituary: everyone's backstop is as fast as ours
        if now - heard + EPS >= self.settings.dead_after * promised:
            peer.voted = heard
            self._obituaries.append((peer.pid, min(round((now - heard) * 1000), MAX_AGE_MS)))
            self._send_soon(now)

    def _set_live(self, now: float) -> bool:
        live = frozenset([self.node, *(p.name for p in self.peers.values() if p.state in LIVE_STATES)])
        changed, self._live = live != self._live, live
        if changed:
            self._relane(now)
        return changed

    def _next_change(self, peer: Peer, now: float) -> float:
        """The earliest time after ``now`` that ``peer``'s state or our vote on it may change."""
        evidence = peer.evidence()
        if peer.state not in LIVE_STATES or evidence is None:
            return math.inf
        s, promised = self.settings, self.promised(peer)
        times = [
            evidence + s.suspect_after * promised,
            evidence + s.dead_after * promised,
            evidence + s.dead_after * max(promised, self._slow),
        ]
        if peer.heard is not None:
            times.append(peer.heard + s.dead_after * promised)  # our own vote
        return min((t for t in times if t > now), default=math.inf)

    def next_deadline(self, now: float) -> float:
        """The earliest time a peer's state (or our vote) could change without new messages."""
        return now if self._dirty else self._judge_at

    def live(self) -> frozenset[str]:
        return self._live

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
                "promised_ms": None if p.promise is None else round(p.promise * 1000),
                "lane": "fast" if p.fast else "slow",
                "votes": self.votes(p, now) if p.state in LIVE_STATES else None,
                "node_ready": p.ready,
                "key_id": p.key_id,
            }
            for name, p in sorted(self.peers.items())
        }
