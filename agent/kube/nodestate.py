"""NodeState: the speaker's report on itself, and the controller's reading of all of them.

Speaker side (every node): :func:`speaker_status` turns the applied plan and the shells'
``status()`` into this node's NodeState status (``ironlb.nodestate``): the addresses it
announces (state, why, for which Services), its BGP sessions, the foreign hosts found on
the LAN holding one of its addresses (from the layer-2 shell's ``conflict_details``: address,
MAC, interface, ``refused`` or ``defending``, since when; the claim count and last-seen time
move with every foreign packet, so they are only in ``/status``, never in the NodeState).
:class:`NodeStateReporter` compares it with what it last wrote and writes only a
difference, batched for ``debounce`` seconds: no timestamps that move by themselves, so an
idle cluster makes no writes at all.  A restarted speaker first reads its object back and
writes nothing if it still holds.  A new conflict is also a Warning Event on the Services
using the address.

Controller side: :func:`published_rows` answers "who announces each address" for every
Service from all NodeStates, and :func:`peer_statuses` sums BGP sessions per BGPPeer.
A NodeState whose Node is gone or not Ready is ignored (its speaker cannot be trusted to
have withdrawn); for a layer-2 address claimed by two nodes during a takeover, the most
recent claim wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ironlb.agent.announcements import Plan
from ironlb.agent.kube.client import NODE_STATES, SERVICES, Conflict, KubeClient, KubeError, NotFound
from ironlb.agent.kube.informer import Caches
from ironlb.agent.kube.writers import Writer

log = logging.getLogger(__name__)

ANNOUNCING = "announcing"
#: Rows per list in one NodeState (~200 bytes each): the object stays far below the API
#: server's 1.5 MB limit; beyond it the lowest addresses are listed and ``omitted`` counts the rest.
MAX_ROWS = 4000


def _time(epoch: Any) -> str | None:
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
        return None
    return datetime.fromtimestamp(float(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def speaker_status(plan: Plan | None, statuses: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """This node's NodeState status (deterministic: equal inputs give equal output)."""
    l2: dict[str, Mapping[str, Any]] = {}
    sessions: dict[str, Mapping[str, Any]] = {}
    details: list[Mapping[str, Any]] = []
    for status in statuses.values():
        addresses = status.get("addresses")
        if isinstance(addresses, Mapping):
            l2.update({str(ip): e for ip, e in addresses.items() if isinstance(e, Mapping)})
        found_conflicts = status.get("conflict_details")
        if isinstance(found_conflicts, list):
            details.extend(c for c in found_conflicts if isinstance(c, Mapping))
        found = status.get("sessions")
        if isinstance(found, Mapping):
            sessions.update({str(n): s for n, s in found.items() if isinstance(s, Mapping)})
    reasons = {(o.ip, o.mode): o.reason for o in (plan.ownership if plan else ())}
    rows: list[dict[str, Any]] = []
    for ann in plan.l2 if plan else ():
        entry = l2.get(ann.ip, {})
        rows.append(
            {
                "ip": ann.ip,
                "mode": "layer2",
                "state": str(entry.get("state") or "pending"),
                "reason": reasons.get((ann.ip, "layer2"), ""),
                "services": list(ann.services),
                "since": _time(entry.get("since")),
            }
        )
    for route in plan.bgp if plan else ():
        ip = route.prefix.split("/", 1)[0]
        up = any(str((sessions.get(p) or {}).get("state", "")).lower() == "established" for p in route.peers)
        rows.append(
            {
                "ip": ip if reasons.get((ip, "bgp")) is not None else route.prefix,
                "mode": "bgp",
                "state": ANNOUNCING if up else "no-session",
                "reason": reasons.get((ip, "bgp"), f"aggregate {route.prefix}"),
                "services": list(route.services),
                "since": None,
            }
        )
    rows.sort(key=lambda r: (r["ip"], r["mode"]))
    conflicts = sorted(
        (
            {
                "ip": str(c.get("ip", "")),
                "mac": str(c.get("mac", "")),
                "interface": str(c.get("interface", "")),
                "state": str(c.get("state", "")),
                "since": _time(c.get("first_seen")),
            }
            for c in details
        ),
        key=lambda c: (c["ip"], c["interface"]),
    )
    session_rows: list[dict[str, Any]] = [
        {
            "peer": name,
            "state": str(s.get("state", "")),
            "prefixes": int(s.get("prefixes_sent") or 0),
            "error": str(s.get("last_error") or "")[:1024],
        }
        for name, s in sorted(sessions.items())
    ]
    return {
        "announcements": rows[:MAX_ROWS],
        "omitted": max(0, len(rows) - MAX_ROWS),
        "sessions": session_rows,
        "conflicts": conflicts[:MAX_ROWS],
        "announcing": sum(1 for r in rows if r["state"] == ANNOUNCING),
        "sessionsEstablished": sum(1 for s in session_rows if str(s["state"]).lower() == "established"),
        "conflictCount": len(conflicts),
    }


class NodeStateReporter:
    """Keeps this node's NodeState equal to :func:`speaker_status`, writing only differences."""

    def __init__(
        self,
        client: KubeClient,
        node: str,
        caches: Caches,
        *,
        debounce: float = 0.2,
        retry: float = 2.0,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.client, self.node, self.caches = client, node, caches
        self.debounce, self.retry = debounce, retry
        self.on_error = on_error
        self.events = Writer(client, node, component="ironlb-speaker")
        self.wanted: dict[str, Any] | None = None
        self.written: dict[str, Any] | None = None
        self.writes = 0
        self._exists = False
        self._conflicts: set[str] = set()
        self._dirty = asyncio.Event()

    def observe(self, plan: Plan | None, statuses: Mapping[str, Mapping[str, Any]]) -> None:
        """On every tick (on the loop): note a new wanted status; cheap when nothing changed."""
        if plan is None:
            return
        wanted = speaker_status(plan, statuses)
        if wanted != self.wanted:
            self.wanted = wanted
            self._dirty.set()

    async def run(self) -> None:
        """Write whenever the wanted status differs from the written one (until cancelled)."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.debounce)
            self._dirty.clear()
            try:
                await self.sync()
            except KubeError as exc:
                self.on_error()
                log.warning("cannot write NodeState %s: %s; retrying in %.0f s", self.node, exc, self.retry)
                await asyncio.sleep(self.retry)
                self._dirty.set()

    async def sync(self) -> None:
        wanted = self.wanted
        if wanted is None:
            return
        if not self._exists:
            await self._ensure()
        if wanted != self.written:
            await self.client.patch(NODE_STATES, self.node, None, {"status": wanted}, status=True)
            self.written = wanted
            self.writes += 1
        await self._conflict_events(wanted)

    async def _ensure(self) -> None:
        """Create our NodeState if missing, owned by our Node (deleted with it); read back its status."""
        try:
            current = await self.client.get(NODE_STATES, self.node)
        except NotFound:
            meta: dict[str, Any] = {"name": self.node, "labels": {"app.kubernetes.io/part-of": "ironlb"}}
            uid = ((self.caches.get("nodes", self.node) or {}).get("metadata") or {}).get("uid")
            if uid:
                meta["ownerReferences"] = [
                    {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": uid}
                ]
            with contextlib.suppress(Conflict):  # created meanwhile: fine
                await self.client.create(NODE_STATES, {"metadata": meta, "spec": {}})
            current = {}
        self._exists = True
        status = current.get("status")
        self.written = (
            {k: status.get(k) for k in (self.wanted or {})} if isinstance(status, Mapping) else None
        )

    async def _conflict_events(self, wanted: Mapping[str, Any]) -> None:
        now = {c["ip"]: c for c in wanted.get("conflicts") or ()}
        for ip in sorted(set(now) - self._conflicts):
            c = now[ip]
            services: list[str] = next((r["services"] for r in wanted["announcements"] if r["ip"] == ip), [])
            done = (
                "keeps announcing it and defends it (RFC 5227)"
                if c.get("state") == "defending"
                else "does not announce it"
            )
            message = (
                f"{ip} is in use by another host on the LAN (MAC {c['mac'] or 'unknown'} on "
                f"{c['interface'] or '?'}); node {self.node} {done}"
            )
            for key in services:
                doc = self.caches.get("services", key)
                if doc is not None:
                    await self.events.event(SERVICES, doc, "AddressConflict", message, warning=True)
        self._conflicts = set(now)


# --- the controller's reading of every NodeState ---------------------------------------------


def _fresh(nodestates: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """node name -> status, for NodeStates whose Node exists and is Ready."""
    out: dict[str, Any] = {}
    for doc in nodestates:
        name = str((doc.get("metadata") or {}).get("name") or "")
        node = nodes.get(name)
        if node is None:
            continue
        conds = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
        if conds.get("Ready", "True") != "True":
            continue
        status = doc.get("status")
        if isinstance(status, Mapping):
            out[name] = status
    return out


def published_rows(
    nodestates: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Service key -> rows ``{ip, mode, nodes, reason}`` (+ ``conflicts``): who announces, and why."""
    claims: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = {}
    services: dict[tuple[str, str], set[str]] = {}
    conflicts: dict[str, list[dict[str, str]]] = {}
    for node, status in sorted(_fresh(nodestates, nodes).items()):
        for claim in status.get("announcements") or ():
            key = (str(claim.get("ip")), str(claim.get("mode")))
            claims.setdefault(key, []).append((node, claim))
            services.setdefault(key, set()).update(str(s) for s in claim.get("services") or ())
        for c in status.get("conflicts") or ():
            conflicts.setdefault(str(c.get("ip")), []).append({"node": node, "mac": str(c.get("mac", ""))})
    out: dict[str, list[dict[str, Any]]] = {}
    for (ip, mode), found in sorted(claims.items()):
        announcing = [(n, r) for n, r in found if r.get("state") == ANNOUNCING]
        if mode == "layer2" and len(announcing) > 1:  # a takeover in flight: the newest claim holds
            announcing = [max(announcing, key=lambda nr: (str(nr[1].get("since") or ""), nr[0]))]
        if announcing:
            reason = str(announcing[0][1].get("reason") or "")
        else:
            reason = "; ".join(f"{n}: {r.get('state')}" for n, r in found) + " (not announced yet)"
        row: dict[str, Any] = {"ip": ip, "mode": mode, "nodes": [n for n, _ in announcing], "reason": reason}
        if ip in conflicts:
            row["conflicts"] = conflicts[ip]
        for svc in sorted(services[(ip, mode)]):
            out.setdefault(svc, []).append(row)
    return out


def peer_statuses(
    nodestates: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """BGPPeer name -> its status: sessions per node and a summary ``state``."""
    sessions: dict[str, list[dict[str, Any]]] = {}
    for node, status in sorted(_fresh(nodestates, nodes).items()):
        for s in status.get("sessions") or ():
            state = str(s.get("state") or "")
            known = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established")
            shown = next((k for k in known if k.lower() == state.lower()), "Unknown")
            sessions.setdefault(str(s.get("peer")), []).append(
                {"node": node, "state": shown, "prefixes": int(s.get("prefixes") or 0)}
            )
    out: dict[str, dict[str, Any]] = {}
    for peer, rows in sessions.items():
        up = sum(1 for r in rows if r["state"] == "Established")
        out[peer] = {
            "state": "Established" if up == len(rows) else f"{up}/{len(rows)} Established",
            "sessions": rows,
        }
    return out
