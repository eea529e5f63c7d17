"""Issue 10's hostile tenant against a deployed stack with Tenants (prod): the attacks, run and judged.

The attacker is a tenant as a platform would set one up: a ServiceAccount token with a Role on
Services in its own namespace (create/update/patch/delete, **no** ``services/status``), talking
HTTPS to the API stand-in from the LAN client (:func:`lab.cluster.scenario.tenant_api`).  Its
target is another tenant, the *victim*: its pool, free addresses in it, and a Service of it
holding an address under a sharing key.  Every address is derived from the deployed topology
(:func:`targets`), so the catalogue follows the stack.

:func:`catalogue` lists the attacks (:class:`Attack`): forged controller annotations naming an
address in no pool, the victim's address and the router's; forged pool names; an ingress
record IronLB did not write; status written by the tenant; pinned foreign addresses
(annotation and ``spec.loadBalancerIP``); a sharing-key collision with the victim; and a
namespace no Tenant lists asking for a pool that does not admit it (default deny).
:func:`launch` runs them all at once under one :class:`~lab.cluster.exposure.Watch` and
returns, per attack, what the controller did (ingress, annotations, Warning Events) and what
the client and the routers saw.  :func:`restart_with_forged_claims` kills the controller
leader, forges claims while no controller leads, and judges what the next leader rebuilt.

**Window.**  :data:`WINDOW` = 10 s, from before the first hostile write.  An address a speaker
trusted would be announced within one replan of the write (informer event, plan, a 2 x 20 ms
RFC 5227 probe: issue 10 saw ARP answers within 4 s, BGP routes at once) and again by the
rendered gratuitous-ARP schedule (0-4 s after the first); 10 s covers all of it with more than
2x margin on a loaded CI machine, and the watch captures a one-off announcement between asks.
Records from another writer (ingress IronLB did not write) go on last, once the controller has
answered every attack's Service (about 2 s in; see :func:`launch` for why), and are watched
for the rest of the window.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import netaddr

from ironlb.model import ANN_ALLOCATED_IPS as ANN_ALLOCATED
from ironlb.model import ANN_ALLOCATED_POOL as ANN_FROM
from ironlb.model import ANN_IPS, ANN_POOL, ANN_SHARING
from lab.cluster import checks, scenario
from lab.cluster.api import UserApi
from lab.cluster.deploy import Cluster
from lab.cluster.exposure import Exposure, Watch
from lab.waiting import wait_for

WINDOW = 10.0
MISSING_POOL = "no-such-pool"
ROGUE, CLOSED = "rogue", "platform-closed"  # a namespace no Tenant lists; a pool without allowUntenanted
FORGED, CROSS = "forged", "cross-tenant"  # the benchmark's two figures


@dataclass(frozen=True)
class Targets:
    """Who attacks whom, and the addresses involved (derived from the deployed stack)."""

    attacker: str  # namespace of the attacking tenant
    own_pool: str  # the attacker's pool
    victim_pool: str
    victim: str  # "namespace/name" of the victim Service, holding an address under a sharing key
    victim_ip: str
    victim_key: str
    victim_free4: tuple[str, ...]  # free addresses of the victim's pool
    victim_free6: tuple[str, ...]
    lan_free4: tuple[str, ...]  # LAN addresses in no pool, used by no host
    lan_free6: tuple[str, ...]
    router: tuple[str, str]  # the first router's IPv4 and IPv6 addresses
    closed: tuple[str, ...]  # a free LAN range for the pool ROGUE may not use


def _free_in(ranges: tuple[netaddr.IPRange, ...], held: set[str], family: int, n: int) -> tuple[str, ...]:
    """``n`` unheld addresses of ``family`` from the top of the ranges (the last address skipped)."""
    out: list[str] = []
    for rng in (r for r in ranges if r.version == family):
        for k in range(1, min(rng.size, 64)):
            addr = str(netaddr.IPAddress(rng.last - k, family))
            if addr not in held and len(out) < n:
                out.append(addr)
    return tuple(out)


def targets(cluster: Cluster, attacker: str = "team-a-prod", victim: str = "team-b/api") -> Targets:
    topo, lab = cluster.topology, cluster.the_lab
    addresses = checks.service_addresses(cluster)
    held = {ip for ips in addresses.values() for ip in ips}
    own = next(
        topo.pool_of(ips[0]) for k, ips in sorted(addresses.items()) if k.startswith(f"{attacker}/") and ips
    )
    vns, vname = victim.split("/")
    live = cluster.admin.get("v1", "Service", vname, vns) or {}
    victim_ip = addresses[victim][0]
    victim_pool = topo.pool_of(victim_ip)
    assert own and victim_pool and own != victim_pool, (own, victim_pool)
    numbers = {n for net, n in lab.hosts.values() if net == "lan"}
    lan4: list[str] = []
    lan6: list[str] = []
    for n in range(3, 100):
        v4, v6 = lab.topology.host_address("lan", n, 4), lab.topology.host_address("lan", n, 6)
        if n not in numbers and not topo.pool_of(v4) and not topo.pool_of(v6) and len(lan4) < 6:
            lan4.append(v4)
            lan6.append(v6)
    first, _last = scenario._free_range(cluster, ipaddress.IPv4Address(lab.addr("client")), 5)
    closed = tuple(str(ipaddress.IPv4Address(first) + i) for i in range(5))
    return Targets(
        attacker=attacker,
        own_pool=own,
        victim_pool=victim_pool,
        victim=victim,
        victim_ip=victim_ip,
        victim_key=str(((live.get("metadata") or {}).get("annotations") or {}).get(ANN_SHARING, "")),
        victim_free4=_free_in(topo.pool_ranges[victim_pool], held, 4, 10),
        victim_free6=_free_in(topo.pool_ranges[victim_pool], held, 6, 4),
        lan_free4=tuple(lan4),
        lan_free6=tuple(lan6),
        router=(lab.addr("router", 4), lab.addr("router", 6)),
        closed=closed,
    )


@dataclass(frozen=True)
class Attack:
    """One attack: the Services a tenant creates, what must never be announced, what the controller says."""

    name: str
    kind: str  # FORGED or CROSS
    namespace: str
    services: tuple[dict[str, Any], ...]
    never: tuple[str, ...]  # answered by no node, routed by no router
    reasons: frozenset[str]  # Warning Event reasons the controller must emit (on the attack's Services)
    pool: str | None = None  # the pool the attack's Services may legitimately get addresses from
    status: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # ingress another writer records
    tenant_writes_status: bool = False  # the tenant also PATCHes services/status (must be 403)

    @property
    def id(self) -> str:
        """Its first Service's name (unique in the catalogue)."""
        return str(self.services[0]["metadata"]["name"])


def _svc(name: str, ns: str, ann: Mapping[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    doc = scenario.service(name, ns, annotations=ann)
    doc["spec"].update(spec)
    return doc


def catalogue(t: Targets) -> list[Attack]:
    """Every attack of issue 10's hostile-tenant list, against ``t``."""
    a, v4, v6, l4, l6 = t.attacker, t.victim_free4, t.victim_free6, t.lan_free4, t.lan_free6
    own = {ANN_FROM: t.own_pool}
    missing = {ANN_POOL: MISSING_POOL}
    return [
        Attack("forged annotations: an address in no pool", FORGED, a,
               (_svc("forged-no-pool", a, {ANN_ALLOCATED: f"{l4[0]},{l6[0]}", **own}),),
               (l4[0], l6[0]), frozenset({"RecordRewritten"}), pool=t.own_pool),
        Attack("forged annotations: another tenant's address", CROSS, a,
               (_svc("forged-foreign", a, {ANN_ALLOCATED: f"{v4[0]},{v6[0]}", **own}),),
               (v4[0], v6[0]), frozenset({"RecordRewritten"}), pool=t.own_pool),
        Attack("forged annotations: the router's address", FORGED, a,
               (_svc("forged-router", a, {ANN_ALLOCATED: ",".join(t.router), **own}),),
               t.router, frozenset({"RecordRewritten"}), pool=t.own_pool),
        Attack("forged pool names: a missing pool, another tenant's pool as the allocation's", CROSS, a,
               (_svc("forged-pools", a, {**missing, ANN_FROM: t.victim_pool,
                                         ANN_ALLOCATED: f"{v4[1]},{v6[1]},{t.victim_ip}"}),),
               (v4[1], v6[1]), frozenset({"NoPool", "RecordRewritten"})),
        Attack("an ingress record IronLB did not write: another tenant's address, one in no pool", FORGED, a,
               (_svc("foreign-status", a, missing),), (v4[2], l4[1]),
               frozenset({"NoPool", "AddressRejected"}), status={"foreign-status": (v4[2], l4[1])}),
        Attack("status written by the tenant: in its create body, and a PATCH of services/status", FORGED, a,
               ({**_svc("own-status", a, missing), "status": {"loadBalancer": {"ingress": [{"ip": v4[3]}]}}},
                ),
               (v4[3],), frozenset({"NoPool"}), tenant_writes_status=True),
        Attack("a pinned foreign address (annotation)", CROSS, a,
               (_svc("pin-annotation", a, {ANN_IPS: v4[4]}),), (v4[4],), frozenset({"Forbidden"})),
        Attack("a pinned foreign address (spec.loadBalancerIP)", CROSS, a,
               (_svc("pin-spec", a, loadBalancerIP=v4[5]),), (v4[5],), frozenset({"Forbidden"})),
        Attack("a pinned address another tenant's Service holds", CROSS, a,
               (_svc("pin-held", a, {ANN_IPS: t.victim_ip}),), (), frozenset({"Forbidden"})),
        Attack("a sharing-key collision with another tenant's Service", CROSS, a,
               (_svc("share-pinned", a, {ANN_SHARING: t.victim_key, ANN_IPS: t.victim_ip}),
                _svc("share-key", a, {ANN_SHARING: t.victim_key})),
               (), frozenset({"Forbidden"}), pool=t.own_pool),
        Attack("a namespace no Tenant lists (default deny)", CROSS, ROGUE,
               (_svc("closed-pool", ROGUE, {ANN_POOL: CLOSED}),
                _svc("closed-pin", ROGUE, {ANN_IPS: t.closed[1]}),
                _svc("tenant-pool", ROGUE, {ANN_POOL: t.own_pool})),
               (t.closed[0], t.closed[1]), frozenset({"NoTenant", "Forbidden"})),
    ]  # fmt: skip


def prepare_platform(cluster: Cluster, t: Targets) -> None:
    """As the platform (admin): namespace ROGUE, listed in no Tenant, and pool CLOSED (no tenant,
    ``allowUntenanted`` left at its default) with its own L2Advertisement.  Idempotent."""
    admin, group = cluster.admin, "ironlb.io/v1alpha1"
    if admin.get("v1", "Namespace", ROGUE) is None:
        admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ROGUE}})
    if admin.get(group, "IPPool", CLOSED) is None:
        pool = {"addresses": [f"{t.closed[0]}-{t.closed[-1]}"]}
        admin.create({"apiVersion": group, "kind": "IPPool", "metadata": {"name": CLOSED}, "spec": pool})
        advert = {"ipPools": [CLOSED], "interfaces": [cluster.the_lab.dev("node1")]}
        admin.create(
            {"apiVersion": group, "kind": "L2Advertisement", "metadata": {"name": CLOSED}, "spec": advert}
        )


@dataclass
class Outcome:
    """What became of one attack."""

    attack: Attack
    ingress: dict[str, list[str]]  # service -> status.loadBalancer.ingress
    annotations: dict[str, dict[str, str]]  # service -> its allocation annotations
    warnings: dict[str, set[str]]  # service -> reasons of its Warning Events
    exposure: Exposure
    status_patch: int | None = None  # HTTP status of the tenant's PATCH to services/status

    def problems(self, pool_of: Callable[[str], str | None]) -> list[str]:
        """Everything wrong, in words (empty: the attack got nothing, as it should)."""
        out = [f"{ip} {how}" for ip, how in self.exposure.exposed(self.attack.never).items()]
        for svc, ips in self.ingress.items():
            if bad := [ip for ip in ips if self.attack.pool is None or pool_of(ip) != self.attack.pool]:
                out.append(f"{svc} was given {bad} (allowed: {self.attack.pool or 'nothing'})")
            ann, ips_set = self.annotations[svc], set(ips)
            recorded = set(filter(None, ann.get(ANN_ALLOCATED, "").split(",")))
            if recorded != ips_set or (ann.get(ANN_FROM) or None) != (self.attack.pool if ips else None):
                out.append(f"{svc}: annotations {ann} are not what IronLB assigned ({ips or 'nothing'})")
        if missing := self.attack.reasons - set().union(*self.warnings.values()):
            out.append(f"no Warning Event with reason {sorted(missing)} (got {self.warnings})")
        if self.attack.tenant_writes_status and self.status_patch != 403:
            out.append(f"the tenant's PATCH of services/status answered {self.status_patch}, not 403")
        return out


def _read(cluster: Cluster, namespace: str, name: str) -> tuple[list[str], dict[str, str], set[str]]:
    live = cluster.admin.get("v1", "Service", name, namespace) or {}
    ann = (live.get("metadata") or {}).get("annotations") or {}
    allocation = {k: str(v) for k, v in ann.items() if k in (ANN_ALLOCATED, ANN_FROM)}
    warnings = {r for typ, r, _m in scenario.events(cluster, namespace, name) if typ == "Warning"}
    return scenario.ingress(cluster, name, namespace), allocation, warnings


def _answered(cluster: Cluster, namespace: str, name: str) -> bool:
    live = cluster.admin.get("v1", "Service", name, namespace) or {}
    conditions = (live.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "ironlb.io/AddressAllocated" for c in conditions)


def _warned(cluster: Cluster, namespace: str, name: str, reason: str) -> bool:
    return reason in _read(cluster, namespace, name)[2]


def _patch_status(api: UserApi, namespace: str, name: str, ip: str) -> int:
    path = api.paths.path("v1", "Service", namespace, name, "status")
    status, _ = api.request("PATCH", path, {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}, MERGE)
    return status


MERGE = "application/merge-patch+json"


def launch(
    cluster: Cluster, attacks: list[Attack], window: float = WINDOW, controls: Iterable[str] = ()
) -> dict[str, Outcome]:
    """Run every attack at once, each as its namespace's tenant; watch their addresses (and
    ``controls``, addresses that are announced, to show the watch sees them) for ``window`` s;
    judge each attack.  Keyed by :attr:`Attack.id`."""
    tenants = {
        ns: scenario.tenant_api(cluster, ns, account="attacker") for ns in {a.namespace for a in attacks}
    }
    watch = Watch(cluster, {*controls, *(ip for a in attacks for ip in a.never)}, window)
    patched: dict[str, int] = {}
    for attack in attacks:
        as_tenant = tenants[attack.namespace]
        for doc in attack.services:
            as_tenant(functools.partial(UserApi.create, obj=doc))
        if attack.tenant_writes_status:
            name, ns, ip = attack.services[0]["metadata"]["name"], attack.namespace, attack.never[0]
            patched[attack.name] = as_tenant(functools.partial(_patch_status, namespace=ns, name=name, ip=ip))
    # Records from another writer go on Services the controller has answered, once it is quiet:
    # one written while a controller pass is under way is replaced unseen (the pass compares
    # the Service as cached now with the view from its start), so it would not be reported.
    for attack in attacks:
        for doc in attack.services:
            name = doc["metadata"]["name"]
            wait_for(
                f"the controller to answer {name}",
                functools.partial(_answered, cluster, attack.namespace, name),
                timeout=30,
                interval=scenario.POLL,
            )
    time.sleep(1.0)
    for attack in attacks:
        for name, ips in attack.status.items():
            body = {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}
            cluster.admin.patch("v1", "Service", name, body, attack.namespace, sub="status")
    exposure = watch.result()
    out = {}
    for attack in attacks:
        names = [d["metadata"]["name"] for d in attack.services]

        def reasons(a: Attack = attack, n: list[str] = names) -> bool:
            return a.reasons <= set().union(*(_read(cluster, a.namespace, x)[2] for x in n))

        with contextlib.suppress(AssertionError):  # a missing one is in Outcome.problems
            wait_for(
                f"the Warning Events {sorted(attack.reasons)} for {attack.name!r}",
                reasons,
                timeout=30,
                interval=scenario.POLL,
            )
        rows = {n: _read(cluster, attack.namespace, n) for n in names}
        out[attack.id] = Outcome(
            attack,
            ingress={n: r[0] for n, r in rows.items()},
            annotations={n: r[1] for n, r in rows.items()},
            warnings={n: r[2] for n, r in rows.items()},
            exposure=exposure,
            status_patch=patched.get(attack.name),
        )
    return out


def withdraw(cluster: Cluster, attacks: list[Attack]) -> None:
    """Delete every Service the attacks created (as admin); the platform objects stay."""
    for attack in attacks:
        for doc in attack.services:
            name = doc["metadata"]["name"]
            if cluster.admin.get("v1", "Service", name, attack.namespace) is not None:
                cluster.admin.delete("v1", "Service", name, attack.namespace)


def intact(cluster: Cluster, t: Targets, before: Mapping[str, list[str]]) -> list[str]:
    """Every rendered Service keeps its addresses; the victim's is routed via every node by every router."""
    now = checks.service_addresses(cluster)
    out = [f"{k}: {v} -> {now.get(k)}" for k, v in before.items() if now.get(k) != v]
    if not scenario.routed_by_all(cluster, t.victim_ip)():
        out.append(
            f"{t.victim_ip} is not routed via every node: {scenario.bgp_next_hops(cluster, t.victim_ip)}"
        )
    return out


@dataclass
class Restart:
    old: str
    new: str
    seconds: float  # kill -> another controller holds the Lease
    exposure: Exposure  # the forged claims' fresh addresses, watched through the restart
    moved: list[str]  # rendered Services whose addresses moved; the victim's routes lost
    usurped: list[str]  # forged records the next leader kept, or did not report
    given: int  # addresses the forging Services hold after the rebuild

    @property
    def problems(self) -> list[str]:
        return [f"{ip} {how}" for ip, how in self.exposure.exposed().items()] + self.moved + self.usurped


def restart_with_forged_claims(
    cluster: Cluster, t: Targets, before: Mapping[str, list[str]], window: float = WINDOW
) -> Restart:
    """SIGKILL the controller leader, kept down for ``window`` s so the standby takes the Lease, and
    while no controller leads forge claims to held addresses: a tenant's Service whose allocation
    annotations name every rendered Service's addresses and free ones of the victim's pool, and a
    Service in the victim's own namespace whose ingress (written by another writer) claims the
    victim's address without its sharing key and one in no pool.  The next leader rebuilds from
    what the speakers trust: nothing may move, and no forged claim may be announced or honoured."""
    tenant = scenario.tenant_api(cluster, t.attacker, account="usurper")
    held = sorted({ip for ips in before.values() for ip in ips})
    vns = t.victim.split("/")[0]
    fresh = (t.victim_free4[6], t.victim_free6[2], t.lan_free4[2], t.lan_free6[2])
    old = wait_for(
        "a controller to hold the Lease", lambda: checks.leader(cluster), timeout=30, interval=scenario.POLL
    )
    watch = Watch(cluster, fresh, window + 5)
    cluster.kill_pod(old, down_for=window)
    killed = time.monotonic()
    claims = {
        **{ANN_POOL: MISSING_POOL, ANN_FROM: t.victim_pool},
        ANN_ALLOCATED: ",".join([*held, *fresh[:2]]),
    }
    tenant(lambda api: api.create(_svc("usurper", t.attacker, claims)))
    cluster.admin.create(_svc("usurper", vns, {ANN_POOL: MISSING_POOL}))
    body = {"status": {"loadBalancer": {"ingress": [{"ip": t.victim_ip}, {"ip": fresh[2]}]}}}
    cluster.admin.patch("v1", "Service", "usurper", body, vns, sub="status")

    def successor() -> str | None:
        now = checks.leader(cluster)
        return now if now not in (None, old) else None

    new = wait_for("another controller to hold the Lease", successor, timeout=30, interval=scenario.POLL)
    seconds = time.monotonic() - killed
    exposure = watch.result()
    moved = intact(cluster, t, before)
    usurped, given = [], 0
    for ns, reason in ((t.attacker, "RecordRewritten"), (vns, "AddressRejected")):
        with contextlib.suppress(AssertionError):  # judged below
            wait_for(
                f"{ns}/usurper's {reason} Event",
                functools.partial(_warned, cluster, ns, "usurper", reason),
                timeout=30,
                interval=scenario.POLL,
            )
        ingress, ann, warnings = _read(cluster, ns, "usurper")
        given += len(ingress)
        if ingress or ann or reason not in warnings:
            usurped.append(
                f"{ns}/usurper: ingress {ingress}, annotations {ann}, Warning Events {sorted(warnings)}"
            )
        cluster.admin.delete("v1", "Service", "usurper", ns)
    return Restart(old, new, seconds, exposure, moved, usurped, given)
