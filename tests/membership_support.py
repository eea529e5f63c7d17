"""A simulated network of membership :class:`~ironlb.agent.membership.core.Table` objects.

Signed datagrams move between tables through the real wire codec, instantly, on a fake
clock that jumps from one due event (a heartbeat, a deadline) to the next; links can be
cut one way or both, nodes can crash.  No sockets, no sleeps: the scenarios in
tests/test_membership_*.py read like the spec.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from ironlb.agent.membership.core import Table
from ironlb.agent.membership.settings import MembershipSettings
from ironlb.agent.membership.wire import HEARTBEAT, Keyring, Malformed, decode, encode

KEY = b"k" * 32
S = MembershipSettings()


class Sim:
    """Tables for ``names`` on a fake clock, with cut (directed) links and crashed nodes."""

    def __init__(
        self, names: Iterable[str], settings: MembershipSettings = S, keys: dict[str, Keyring] | None = None
    ) -> None:
        self.names = list(names)
        self.settings = settings
        self.now = 100.0
        self.addr = {n: (f"10.0.{i // 250}.{i % 250 + 1}", 7947) for i, n in enumerate(self.names)}
        self.by_addr = {a: n for n, a in self.addr.items()}
        self.keys = {n: (keys or {}).get(n, Keyring(KEY)) for n in self.names}
        self.tables = {n: Table(n, 1000 + i, settings, self.now) for i, n in enumerate(self.names)}
        self.down: set[tuple[str, str]] = set()
        self.crashed: set[str] = set()
        self.sent = dict.fromkeys(self.names, 0)
        self.refused: dict[str, int] = dict.fromkeys(self.names, 0)
        self.history: dict[str, list[tuple[float, frozenset[str]]]] = {n: [] for n in self.names}
        for t in self.tables.values():
            t.set_peers(dict(self.addr), self.now)

    # -- the network ---------------------------------------------------------------------
    def deliver(self, src: str, dst: str, data: bytes) -> None:
        if dst in self.crashed or (src, dst) in self.down:
            return
        try:
            msg = decode(data, self.keys[dst])
        except Malformed:
            self.refused[dst] += 1
            return
        self.tables[dst].receive(msg, self.now)

    def send(self, src: str, dst: str, kind: int = HEARTBEAT) -> bytes:
        """A message from ``src`` to ``dst`` built by hand (outside the schedule)."""
        table = self.tables[src]
        entries = table.entries(self.now) if kind == HEARTBEAT else ()
        return encode(table.message(kind, table.peers[dst], self.now, entries), self.keys[src])

    def restart(self, name: str, incarnation: int, keys: Keyring | None = None) -> None:
        """``name`` comes back as a new run (optionally with another keyring)."""
        self.crashed.discard(name)
        if keys is not None:
            self.keys[name] = keys
        self.tables[name] = Table(name, incarnation, self.settings, self.now)
        self.tables[name].set_peers(dict(self.addr), self.now)
        self.history[name] = []  # a new run starts its own history

    # -- time ----------------------------------------------------------------------------
    def step(self) -> None:
        """Every running table judges, then sends what is due; deliveries are instant."""
        for name, table in self.tables.items():
            if name in self.crashed:
                continue
            table.expire(self.now)
            for address, msg in table.outgoing(self.now):
                self.sent[name] += 1
                self.deliver(name, self.by_addr[address], encode(msg, self.keys[name]))
        for name, table in self.tables.items():
            history = self.history[name]
            if name not in self.crashed and (not history or history[-1][1] != table.live()):
                history.append((self.now, table.live()))

    def run(self, seconds: float, max_step: float = 0.005, min_step: float = 0.0005) -> None:
        """Advance ``seconds``, jumping to the next due event (``min_step``..``max_step`` at a time;
        large clusters use a coarser ``min_step`` to keep the simulation quick)."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            due = min(
                min(t.next_send(), t.next_deadline(self.now))
                for n, t in self.tables.items()
                if n not in self.crashed
            )
            self.now = min(end, max(due, self.now + min_step), self.now + max_step)
            self.step()

    def until(
        self,
        predicate: Callable[[], bool],
        limit: float = 10.0,
        max_step: float = 0.005,
        min_step: float = 0.0005,
    ) -> float:
        """Run until ``predicate()`` holds; return the simulated seconds it took.  (The simulated
        clock's own wait: :mod:`lab.waiting` waits on the wall clock.)  A failure shows every
        table's live set, the last state the predicate saw."""
        start = self.now
        while not predicate():
            if self.now - start > limit:
                live = {n: sorted(self.live(n)) for n in self.names if n not in self.crashed}
                raise AssertionError(f"not reached within {limit} simulated seconds; live sets: {live}")
            self.run(min_step, max_step, min_step)
        return self.now - start

    # -- views ---------------------------------------------------------------------------
    def live(self, node: str) -> set[str]:
        return set(self.tables[node].live())

    def cut(self, a: Iterable[str], b: Iterable[str]) -> None:
        """Cut every link between the groups ``a`` and ``b``, both ways."""
        a, b = list(a), list(b)
        self.down |= {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}

    def lost_since(self, node: str, since: float) -> set[str]:
        """Peers ``node`` dropped from its live set at any moment after ``since`` (a new run's
        own start, with nobody heard yet, is not a loss)."""
        lost: set[str] = set()
        history = self.history[node]
        for (_, before), (t, after) in itertools.pairwise(history):
            if t > since:
                lost |= set(before) - set(after)
        return lost
