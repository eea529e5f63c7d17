"""The sending side of the membership state machine: lanes, the tick grid, promises, budget.

Pure like :mod:`ironlb.agent.membership.core` (``now`` is an argument).  :class:`Schedule` is the
half of :class:`~ironlb.agent.membership.core.Table` that decides what goes out and when:

- **lanes**: the next live nodes on the ring (:func:`~ironlb.agent.membership.rules.watchers`) get
  a heartbeat every fast period, everyone else one every slow period;
- **the grid**: every send happens on a tick of the fast period, so a node wakes once per
  tick to send and computes its observations once for all messages of that tick;
- **promises**: each message says when the next regular heartbeat to that peer follows
  (never less than one fast period), and the schedule keeps it;
- **the budget**: every datagram takes a token from the bucket or is not sent.
"""

from __future__ import annotations

import math

from ironlb.agent.membership.rules import LEFT, Peer, TokenBucket, watchers
from ironlb.agent.membership.settings import MembershipSettings
from ironlb.agent.membership.wire import HEARTBEAT, LEAVE, MAX_AGE_MS, MAX_NEXT_MS, OBITUARY, Message

Outgoing = tuple[tuple[str, int], Message]  # (destination address, message)


class Schedule:
    """What goes out, and when; mixed into :class:`~ironlb.agent.membership.core.Table`."""

    node: str
    pid: bytes
    incarnation: int
    settings: MembershipSettings
    peers: dict[str, Peer]
    counters: dict[str, int]

    def _init_schedule(self, now: float) -> None:
        self.seq = 0
        self.rotation = 0
        self.bucket = TokenBucket(self.settings.max_packets_per_second, 1.0, now)
        self._anchor = now  # sends go out on a grid of fast periods from here
        self._obituaries: list[tuple[bytes, int]] = []
        self._send_at = math.inf  # the earliest next_send of any peer (kept by outgoing and _send_soon)

    def slow_period(self) -> float:
        raise NotImplementedError  # the Table's

    def _relane(self, now: float) -> None:
        """Give the next live nodes on the ring a fast lane; the rest a slow one."""
        lanes = self.settings.fast_lanes(len(self.peers) + 1)
        chosen = {p.name for p in watchers(self.pid, self.peers.values(), lanes)}
        for peer in self.peers.values():
            fast = peer.name in chosen
            if fast and not peer.fast:  # keep the old (slower) promise, but no later than the next tick
                peer.next_send = min(peer.next_send, self._tick_after(now))
                self._send_soon(peer.next_send)
            peer.fast = fast

    def _tick_after(self, now: float) -> float:
        """The first tick of the fast grid after ``now`` (every send happens on a tick: one wakeup,
        one set of observations for all of them)."""
        fast = self.settings.interval
        return self._anchor + (math.floor((now - self._anchor) / fast) + 1) * fast

    def _tick_before(self, now: float, when: float) -> float:
        """The last tick at or before ``when``, but after ``now`` (keeps a promise of ``when - now``)."""
        fast = self.settings.interval
        return max(self._tick_after(now), self._anchor + math.floor((when - self._anchor) / fast) * fast)

    def outgoing(self, now: float) -> list[Outgoing]:
        """The messages due at ``now``: heartbeats, quick replies, obituaries (and their
        promises); each takes a token from the bucket, or is counted as rate-limited."""
        out: list[Outgoing] = []
        entries: tuple[tuple[bytes, int], ...] | None = None
        for peer in self.peers.values():
            regular = peer.next_send <= now
            if not (regular or peer.reply_due):
                continue
            if not self.bucket.take(now):
                self.counters["rate_limited"] += 1
                if regular:
                    peer.next_send = self._tick_after(now)
                continue
            if regular and peer.fast:
                peer.next_send = self._tick_after(now)
            elif regular:  # the first slow gap is shortened by the peer's phase, spreading slow lanes
                phase = 1.0 if peer.sends else 0.1 + 0.9 * int.from_bytes(peer.pid[:2], "big") / 65536
                peer.next_send = self._tick_before(now, now + self.slow_period() * phase)
            peer.sends += 1
            peer.reply_due = False
            if entries is None:
                entries = self.entries(now)
            out.append((peer.address, self.message(HEARTBEAT, peer, now, entries)))
        if self._obituaries:  # to everyone; for a slow lane it stands in for the next heartbeat
            obits, self._obituaries = tuple(self._obituaries), []
            for peer in self.peers.values():
                if not peer.incarnation or peer.state == LEFT:
                    continue  # it could not accept it (no echo), or it is gone
                if not self.bucket.take(now):
                    self.counters["rate_limited"] += 1
                    continue
                if not peer.fast:
                    peer.next_send = max(peer.next_send, self._tick_before(now, now + self.slow_period()))
                out.append((peer.address, self.message(OBITUARY, peer, now, obits)))
                self.counters["obituaries_sent"] += 1
        self._send_at = min((p.next_send for p in self.peers.values()), default=math.inf)
        return out

    def next_send(self) -> float:
        """When :meth:`outgoing` next has something to send."""
        return self._send_at

    def _send_soon(self, when: float) -> None:
        self._send_at = min(self._send_at, when)

    def message(
        self, kind: int, peer: Peer, now: float, entries: tuple[tuple[bytes, int], ...] = ()
    ) -> Message:
        """The next message to ``peer`` (one sequence number per message, any destination)."""
        self.seq += 1
        sent_ms = max(0, round(now * 1000))
        # "the next one within P": never less than one fast period, which stays true and keeps
        # a heartbeat sent just before the next tick from setting a hair trigger at the receiver
        wait = max(peer.next_send - now, self.settings.interval)
        promise = 0 if kind == LEAVE else min(math.ceil(wait * 1000), MAX_NEXT_MS)
        return Message(
            kind, self.node, self.incarnation, self.seq, peer.incarnation, entries, sent_ms, promise
        )

    def entries(self, now: float) -> tuple[tuple[bytes, int], ...]:
        """First-hand observations to piggyback: peers heard directly and not yet dead."""
        horizon = self.settings.dead_after * self.slow_period()
        fresh = [
            (p.pid, min(round((now - p.heard) * 1000), MAX_AGE_MS))
            for p in self.peers.values()
            if p.heard is not None and p.left_at is None and now - p.heard < horizon
        ]
        limit = self.settings.max_entries
        if len(fresh) <= limit:
            return tuple(fresh)
        self.rotation = (self.rotation + limit) % len(fresh)
        rotated = fresh[self.rotation :] + fresh[: self.rotation]
        return tuple(rotated[:limit])
