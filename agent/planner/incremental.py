"""The incremental planner: ``Planner(node).plan(view)`` equals ``plan(view, node)``, cheaper.

The planner keeps the previous view and every address group's decision, diffs each new
view against the previous one and replans only the groups the difference touches.  Views
are immutable values, and the sources keep unchanged parts identical (the Kubernetes source
memoises each Service's Assignment on its cached object and returns the same Config while
the custom resources are unchanged), so most comparisons are identity checks; equality is
the fallback, so a source that rebuilds everything (manifest files) is still exact.

1. **Services** whose Assignment changed (added, removed, re-addressed, traffic policy...)
   are regrouped (:class:`~ironlb.agent.planner.groups.Grouping`); their old and new groups are
   replanned.
2. **Endpoints** that moved for an ``externalTrafficPolicy: Local`` service replan its group;
   other services ignore endpoints.
3. **Config, nodes or the live set** changed: new contexts are built and each pool in use is
   compared by its signature (:meth:`L2Context.signature <agent.planner.l2.L2Context.signature>`,
   :meth:`BGPContext.signature <agent.planner.bgp.BGPContext.signature>`); the groups of a
   pool whose signature changed are replanned.  A label no selector reads changes nothing.
4. **Outputs** (ownership rows, this node's announcements and routes, unannounced reasons)
   are patched per replanned group in indexes kept sorted, so building the Plan copies the
   output once instead of sorting it.

When a change touches most groups (``full_fraction``; e.g. a node every group may use went
NotReady, which every layer-2 owner election reads), patching buys nothing and the
plan is made from scratch (``stats.full``).  Every ``check_every`` plans (0: never) the
reference plan is computed too; a difference, which would be a bug here, is counted in
``stats.mismatches``, described in ``last_mismatch``, and the reference plan wins.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from itertools import chain, compress
from operator import is_not
from typing import Any, Generic, TypeVar

from ironlb.agent.announcements import BGPRoute, L2Announcement, Ownership, Plan
from ironlb.agent.planner import bgp, l2, reference
from ironlb.agent.planner.groups import Group, Grouping
from ironlb.agent.planner.ranking import Ranking
from ironlb.agent.planner.selection import needs_endpoints
from ironlb.agent.view import ClusterView

K = TypeVar("K", str, tuple[str, str])
V = TypeVar("V")

#: Below this many groups to replan, patching always beats a plan from scratch.
PATCH_ALWAYS = 64
#: How often the daemon's planner also computes the reference plan and compares (in plans):
#: a bounded cost (one full plan per thousand) for a bounded damage if this module has a bug.
CHECK_EVERY = 1000


@dataclass
class PlannerStats:
    plans: int = 0
    full: int = 0  # plans made from scratch: the first, resyncs, and changes touching most groups
    groups_replanned: int = 0  # by incremental plans, in total
    last_replanned: int = 0  # by the last plan (every group when it was made from scratch)
    checks: int = 0  # plans compared with the reference plan
    mismatches: int = 0  # ... that differed (a bug; the reference plan was used)


class _Index(Generic[K, V]):
    """Values kept in key order, patched in place, so the output tuple is one C-level copy.

    A replan first :meth:`retire` s the keys of the groups it replans, then :meth:`put` s
    their new values: a key put again is replaced where it stands, and only keys left
    retired are removed (when the values are next read).
    """

    def __init__(self, items: Mapping[K, V]) -> None:
        self.keys: list[K] = sorted(items)
        self.vals = [items[k] for k in self.keys]
        self._retired: set[K] = set()
        self._copy: tuple[V, ...] | None = None

    def put(self, key: K, value: V) -> None:
        self._retired.discard(key)
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            self.vals[i] = value
        else:
            self.keys.insert(i, key)
            self.vals.insert(i, value)
        self._copy = None

    def retire(self, key: K) -> None:
        self._retired.add(key)

    def values(self) -> tuple[V, ...]:
        if self._retired:
            gone = self._retired
            if len(gone) > PATCH_ALWAYS:
                kept = [(k, v) for k, v in zip(self.keys, self.vals, strict=True) if k not in gone]
                self.keys, self.vals = [k for k, _ in kept], [v for _, v in kept]
            else:
                for key in gone:
                    i = bisect_left(self.keys, key)
                    if i < len(self.keys) and self.keys[i] == key:
                        del self.keys[i], self.vals[i]
            self._retired = set()
            self._copy = None
        if self._copy is None:
            self._copy = tuple(self.vals)
        return self._copy


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Keys added, removed or with a different value; identical values are skipped in C."""
    if new is old:
        return []
    keys = new.keys()
    suspects = list(compress(keys, map(is_not, new.values(), map(old.get, keys))))
    changed = [k for k in suspects if (was := old.get(k)) is None or was != new[k]]
    added = sum(1 for k in suspects if k not in old)
    if len(old) != len(new) - added:
        changed.extend(k for k in old if k not in new)
    return changed


class Planner:
    """Plans for one node, incrementally; ``plan(view)`` is always ``reference.plan(view, node)``."""

    def __init__(self, node: str, *, full_fraction: float = 0.5, check_every: int = 0) -> None:
        self.node = node
        self.full_fraction = full_fraction
        self.check_every = check_every
        self.stats = PlannerStats()
        self.last_mismatch: str | None = None
        self._view: ClusterView | None = None
        self._plan: Plan | None = None
        self._ranking = Ranking()

    def plan(self, view: ClusterView) -> Plan:
        """The plan for ``view``; replans only what changed since the previous call."""
        self.stats.plans += 1
        if self._view is None:
            result = self.resync(view)
        elif view is self._view and self._plan is not None:
            result = self._plan
        else:
            try:
                result = self._incremental(self._view, view)
            except BaseException:  # half-patched state is unusable: the next plan starts over
                self._view = None
                raise
        if self.check_every and self.stats.plans % self.check_every == 0:
            result = self._check(view, result)
        return result

    def _incremental(self, old: ClusterView, view: ClusterView) -> Plan:
        dirty = self._changes(old, view)
        if len(dirty) > PATCH_ALWAYS and len(dirty) > self.full_fraction * len(self._grouping.groups):
            return self.resync(view)
        self._replan(view, dirty)
        self.stats.groups_replanned += len(dirty)
        self.stats.last_replanned = len(dirty)
        return self._output(view)

    def resync(self, view: ClusterView) -> Plan:
        """Forget everything and plan ``view`` from scratch."""
        self.stats.full += 1
        self._view = None  # until this plan is complete
        self._l2_ctx, self._bgp_ctx = (
            l2.L2Context(view, self.node, self._ranking),
            bgp.BGPContext(view, self.node),
        )
        self._sessions = bgp.plan_sessions(view, self.node)
        self._grouping = Grouping()
        self._l2: dict[str, l2.L2Result] = {}
        self._bgp: dict[str, bgp.BGPResult] = {}
        self._missing: dict[str, tuple[str, ...]] = {}  # group -> its unannounced services
        self._unannounced: dict[str, str] = {}
        self._unannounced_copy: dict[str, str] | None = None
        self._pools: dict[str, frozenset[str]] = {}  # group -> pools it uses
        self._pool_sets: dict[frozenset[str], frozenset[str]] = {}
        self._groups_of_pool: dict[str, set[str]] = {}
        self._signatures: dict[str, object] = {}  # pool -> (l2, bgp) signature
        self._parts: dict[str, dict[str, Mapping[str, bgp.Attrs]]] = {}  # prefix -> group -> attrs
        rows: dict[tuple[str, str], Ownership] = {}
        announcements: dict[str, L2Announcement] = {}
        groups = self._grouping.rebuild(view.assignments)
        for g in groups:
            self._index_pools(g, view)
            a, b = self._decide(g, view)
            rows.update(((o.ip, o.mode), o) for o in (*a.owners, *b.owners))
            announcements.update((x.ip, x) for x in a.announcements)
        self._rows = _Index(rows)
        self._announcements = _Index(announcements)
        self._routes: _Index[str, tuple[BGPRoute, ...]] = _Index(
            {p: bgp.routes_for(p, _merged(parts.values())) for p, parts in self._parts.items()}
        )
        self._routes_seen: tuple[tuple[BGPRoute, ...], ...] | None = None
        self._routes_flat: tuple[BGPRoute, ...] = ()
        self.stats.last_replanned = len(groups)
        return self._output(view)

    # --- what changed -----------------------------------------------------------------------

    def _changes(self, old: ClusterView, view: ClusterView) -> set[str]:
        """Keys of the groups to replan (including groups that no longer exist)."""
        dirty: set[str] = set()
        grouping = self._grouping
        nodes_changed = view.nodes is not old.nodes and view.nodes != old.nodes
        context_changed = (
            view.config is not old.config or nodes_changed or view.live_members != old.live_members
        )
        if context_changed:  # before regrouping, so pools new to this view get new signatures
            self._l2_ctx, self._bgp_ctx = (
                l2.L2Context(view, self.node, self._ranking),
                bgp.BGPContext(view, self.node),
            )
            self._sessions = bgp.plan_sessions(view, self.node)
        changed = changed_keys(old.assignments, view.assignments)
        if changed:
            removed, added = grouping.update(view.assignments, changed)
            for key in removed:
                self._unindex_pools(key)
            for key in added:
                self._index_pools(grouping.groups[key], view)
            dirty |= removed | added
        if view.endpoints is not old.endpoints and view.endpoints != old.endpoints:
            for svc in changed_keys(old.endpoints, view.endpoints):
                a = view.assignments.get(svc)
                if a is not None and needs_endpoints(a) and (g := grouping.group_of.get(svc)):
                    dirty.add(g)
        if context_changed:
            for pool, keys in self._groups_of_pool.items():
                signature = self._signature(pool)
                if self._signatures[pool] != signature:
                    self._signatures[pool] = signature
                    dirty |= keys
        return dirty

    def _signature(self, pool: str) -> object:
        return (self._l2_ctx.signature(pool), self._bgp_ctx.signature(pool))

    def _index_pools(self, g: Group, view: ClusterView) -> None:
        pools = frozenset(ip.pool for s in g.services for ip in view.assignments[s].ips)
        pools = self._pools[g.key] = self._pool_sets.setdefault(pools, pools)  # a few distinct sets
        for pool in pools:
            self._groups_of_pool.setdefault(pool, set()).add(g.key)
            if pool not in self._signatures:
                self._signatures[pool] = self._signature(pool)

    def _unindex_pools(self, key: str) -> None:
        for pool in self._pools.pop(key):
            keys = self._groups_of_pool[pool]
            keys.discard(key)
            if not keys:
                del self._groups_of_pool[pool]
                del self._signatures[pool]

    # --- replanning -------------------------------------------------------------------------

    def _replan(self, view: ClusterView, dirty: Iterable[str]) -> None:
        """Withdraw every dirty group's old decision first (addresses and services may move
        between groups), then decide the groups that exist now."""
        dirty = list(dirty)
        prefixes: set[str] = set()
        for key in dirty:
            prefixes.update(self._retract(key))
        groups = self._grouping.groups
        for key in dirty:
            g = groups.get(key)
            if g is None:
                continue
            a, b = self._decide(g, view)
            for o in (*a.owners, *b.owners):
                self._rows.put((o.ip, o.mode), o)
            for x in a.announcements:
                self._announcements.put(x.ip, x)
            prefixes.update(b.prefixes)
        for prefix in prefixes:
            parts = self._parts.get(prefix)
            if parts:
                self._routes.put(prefix, bgp.routes_for(prefix, _merged(parts.values())))
            else:
                self._parts.pop(prefix, None)
                self._routes.retire(prefix)

    def _decide(self, g: Group, view: ClusterView) -> tuple[l2.L2Result, bgp.BGPResult]:
        """Plan group ``g`` and record its decision (the caller indexes rows and announcements)."""
        a = self._l2[g.key] = l2.plan_group(self._l2_ctx, view, g)
        b = self._bgp[g.key] = bgp.plan_group(self._bgp_ctx, view, g)
        for prefix, by_peer in b.prefixes.items():
            self._parts.setdefault(prefix, {})[g.key] = by_peer
        missing = reference.unannounced(view, g, a, b)
        if missing:
            self._missing[g.key] = tuple(missing)
            self._unannounced.update(missing)
            self._unannounced_copy = None
        return a, b

    def _retract(self, key: str) -> Iterable[str]:
        """Withdraw group ``key``'s recorded decision; returns the prefixes it contributed to."""
        a, b = self._l2.pop(key, None), self._bgp.pop(key, None)
        if a is not None:
            for o in a.owners:
                self._rows.retire((o.ip, o.mode))
            for x in a.announcements:
                self._announcements.retire(x.ip)
        if b is not None:
            for o in b.owners:
                self._rows.retire((o.ip, o.mode))
            for prefix in b.prefixes:
                del self._parts[prefix][key]
        for svc in self._missing.pop(key, ()):
            del self._unannounced[svc]
            self._unannounced_copy = None
        return b.prefixes if b is not None else ()

    # --- output -----------------------------------------------------------------------------

    def _output(self, view: ClusterView) -> Plan:
        if self._unannounced_copy is None:
            self._unannounced_copy = dict(self._unannounced)
        self._view = view
        routes = self._routes.values()
        if routes is not self._routes_seen:
            self._routes_seen, self._routes_flat = routes, tuple(chain.from_iterable(routes))
        self._plan = Plan(
            node=self.node,
            l2=self._announcements.values(),
            bgp=self._routes_flat,
            ownership=self._rows.values(),
            unannounced=self._unannounced_copy,
            bgp_sessions=self._sessions,
        )
        return self._plan

    def _check(self, view: ClusterView, result: Plan) -> Plan:
        self.stats.checks += 1
        expected = reference.plan(view, self.node)
        if expected == result:
            return result
        self.stats.mismatches += 1
        self.last_mismatch = "incremental plan differs from the reference in " + ", ".join(
            f.name for f in fields(Plan) if getattr(expected, f.name) != getattr(result, f.name)
        )
        self.resync(view)
        return expected


def _merged(parts: Iterable[Mapping[str, bgp.Attrs]]) -> Mapping[str, bgp.Attrs]:
    """One prefix's attributes: as is from a single group, merged from several (aggregates)."""
    parts = list(parts)
    return parts[0] if len(parts) == 1 else bgp.merge(parts)
