"""The layer-2 ownership ranking, ``sha256(node + "#" + key)``, and its memo.

Every agent must rank nodes the same way, so the order is fixed: by the SHA-256 digest of
``node#key``, then by name.  The owner of a group is the first eligible node in its key's
ranking.

Ranking every node costs one hash per node, for every group: 50 million hashes at 50,000
groups on 1,000 nodes.  :class:`Ranking` keeps, per key, an exact prefix (the first
:data:`TOP` nodes) of the ranking of the current node set, and keeps it exact as the node
set changes: a removed node leaves the prefix; an added node costs one hash per key and
enters the prefix where it ranks, if it ranks before the prefix's last node.  A prefix
emptied by removals is recomputed.  So a node joining or leaving a large cluster costs one
hash per group, not one per group and node.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Collection, Iterable, Mapping

#: How much of each key's ranking is kept: enough to skip a few ineligible nodes.
TOP = 8
#: Keys remembered; beyond this the memo starts over (about 200 bytes a key).
LIMIT = 1 << 17


def digest(node: str, key: str) -> tuple[bytes, str]:
    """The ranking order of ``node`` for ``key`` (smaller ranks first)."""
    return hashlib.sha256(f"{node}#{key}".encode()).digest(), node


def rank(nodes: Iterable[str], key: str) -> list[str]:
    """Nodes in ownership order for ``key`` (first = owner): sha256(node#key), then name."""
    return sorted(set(nodes), key=lambda n: digest(n, key))


def _top(key: str, nodes: Iterable[str], count: int = TOP) -> tuple[str, ...]:
    return tuple(n for _, n in heapq.nsmallest(count, (digest(n, key) for n in nodes)))


class Ranking:
    """First eligible node of a key's ranking, from exact ranking prefixes kept across node sets."""

    def __init__(self) -> None:
        self._memo: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}  # key -> (node set, prefix)
        self._current: frozenset[str] = frozenset()
        self._encoded: tuple[frozenset[str], list[tuple[bytes, str]]] = (frozenset(), [])
        self._diffs: dict[
            tuple[int, int], tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]
        ] = {}

    def nodes(self, nodes: Collection[str]) -> frozenset[str]:
        """The node set to pass to :meth:`owner`: the same object while the set is unchanged."""
        if self._current != nodes:
            self._current = frozenset(nodes)
        return self._current

    def owner(self, key: str, nodes: frozenset[str], ineligible: Mapping[str, str]) -> str:
        """The first node of ``rank(nodes, key)`` not in ``ineligible`` (one must exist)."""
        eligible = len(nodes) - len(ineligible)
        if 4 * eligible >= len(nodes):  # most nodes eligible: the prefix decides
            for n in self._prefix(key, nodes):
                if n not in ineligible:
                    return n
        return min((n for n in nodes if n not in ineligible), key=lambda n: digest(n, key))

    def _prefix(self, key: str, nodes: frozenset[str]) -> tuple[str, ...]:
        memo = self._memo.get(key)
        if memo is not None and memo[0] is nodes:
            return memo[1]
        prefix: tuple[str, ...] = ()
        if memo is not None:
            added, removed = self._diff(memo[0], nodes)
            if 4 * len(added) <= len(nodes):
                prefix = self._update(key, memo[1], added, removed)
        if not prefix:
            prefix = self._full_prefix(key, nodes)
        if len(self._memo) >= LIMIT:
            self._memo.clear()
        self._memo[key] = (nodes, prefix)
        return prefix

    def _full_prefix(self, key: str, nodes: frozenset[str]) -> tuple[str, ...]:
        """The first :data:`TOP` of the ranking: a hash per node (node names encoded once per set)."""
        if self._encoded[0] is not nodes:
            self._encoded = (nodes, [(n.encode() + b"#", n) for n in nodes])
        suffix = key.encode()
        sha256 = hashlib.sha256
        scored = [(sha256(prefix + suffix).digest(), n) for prefix, n in self._encoded[1]]
        return tuple(n for _, n in heapq.nsmallest(TOP, scored))

    @staticmethod
    def _update(
        key: str, prefix: tuple[str, ...], added: frozenset[str], removed: frozenset[str]
    ) -> tuple[str, ...]:
        """``prefix`` made exact for the new node set (empty: recompute)."""
        kept = [n for n in prefix if n not in removed]
        if not added or not kept:
            return tuple(kept)
        last = digest(kept[-1], key)
        entering = [d for d in (digest(n, key) for n in added) if d < last]
        if not entering:
            return tuple(kept)
        return _top(key, [*kept, *(n for _, n in entering)])

    def _diff(self, old: frozenset[str], new: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
        """(added, removed) between two node sets; computed once per pair, not once per key."""
        pair = (id(old), id(new))
        found = self._diffs.get(pair)
        if found is None or found[0] is not old or found[1] is not new:
            if len(self._diffs) > 8:
                self._diffs.clear()
            found = self._diffs[pair] = (old, new, new - old, old - new)
        return found[2], found[3]


#: The reference plan's memo (the incremental planner keeps its own).
SHARED = Ranking()
