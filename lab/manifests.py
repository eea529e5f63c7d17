"""The Kubernetes and IronLB documents tests, the lab and the benchmarks build: one builder each.

Each builder returns a plain document (``dict``), exactly what a user would ``kubectl apply``
or an informer would list, so it can go to the schema (``ironlb.config.parse``), to the view
builders, into a manifest directory for the lab's agents, or into the lab API server.  The
defaults make a document that IronLB serves; every field a test cares about is a parameter.

- IronLB's custom resources: :func:`resource` (any kind), :func:`pool`, :func:`tenant`,
  :func:`l2_advertisement`, :func:`bgp_advertisement`, :func:`bgp_peer`, :func:`bfd_profile`;
- Kubernetes objects: :func:`namespace`, :func:`service`, :func:`node`, :func:`endpoint_slice`;
- bound to a lab (its addresses, its router): :func:`nodes`, :func:`router_peer`,
  :func:`lab_service` (a Service as the standalone agents of :mod:`lab.agents` read it).

``tests`` imports these; ``lab`` and ``bench`` may not import ``tests``, so they live here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ironlb.model import ANN_IPS, ANN_SHARING, GROUP_VERSION, LOAD_BALANCER_CLASS
from lab.netns import VIP_PORT, Lab
from lab.routers import NODE_ASN, ROUTER_ASN

Doc = dict[str, Any]

#: The lab LAN's pool ranges (inside the AnyIP ranges every lab node accepts).
POOL_V4 = "10.77.0.200-10.77.0.250"
POOL_V6 = "fd77::c8-fd77::fa"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


# --- IronLB's custom resources -------------------------------------------------------------------


def resource(
    kind: str,
    name: str,
    spec: Mapping[str, Any] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    **fields: Any,
) -> Doc:
    """An IronLB custom resource (cluster-scoped): ``kind`` named ``name``, its spec ``spec``
    and ``fields`` (``resource("Community", "dc1", communities={...})``)."""
    meta: Doc = {"name": name}
    if labels is not None:
        meta["labels"] = dict(labels)
    return {"apiVersion": GROUP_VERSION, "kind": kind, "metadata": meta, "spec": {**(spec or {}), **fields}}


def pool(name: str = "lan", *addresses: str, labels: Mapping[str, str] | None = None, **spec: Any) -> Doc:
    """An IPPool of ``addresses`` (none given: the lab LAN's :data:`POOL_V4` and :data:`POOL_V6`)."""
    return resource(
        "IPPool", name, {"addresses": list(addresses or (POOL_V4, POOL_V6)), **spec}, labels=labels
    )


def tenant(
    name: str,
    namespaces: Sequence[str] | None = None,
    pools: Sequence[str] | None = None,
    quota: int | None = None,
    **spec: Any,
) -> Doc:
    """A Tenant owning ``namespaces`` and ``pools`` (each left out when None), at most ``quota`` addresses."""
    body = dict(spec)
    if namespaces is not None:
        body["namespaces"] = list(namespaces)
    if pools is not None:
        body["pools"] = list(pools)
    if quota is not None:
        body["maxAddresses"] = quota
    return resource("Tenant", name, body)


def l2_advertisement(name: str = "lan", **spec: Any) -> Doc:
    return resource("L2Advertisement", name, spec)


def bgp_advertisement(name: str = "tor", **spec: Any) -> Doc:
    return resource("BGPAdvertisement", name, spec)


def bgp_peer(
    name: str = "tor", *, my_asn: int = 64513, peer_asn: int = 64512, address: str = "10.0.0.1", **spec: Any
) -> Doc:
    """A BGPPeer: ``myASN``, ``peerASN``, ``peerAddress`` (by default a node's eBGP session to a
    top-of-rack router at 10.0.0.1) and any other ``spec`` fields (which win)."""
    return resource("BGPPeer", name, {"myASN": my_asn, "peerASN": peer_asn, "peerAddress": address, **spec})


def bfd_profile(name: str = "fast", **spec: Any) -> Doc:
    """A BFDProfile; 100 ms intervals unless ``spec`` says otherwise."""
    return resource("BFDProfile", name, {"receiveInterval": 100, "transmitInterval": 100, **spec})


# --- Kubernetes objects --------------------------------------------------------------------------


def namespace(name: str, **labels: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def service(
    name: str,
    namespace: str | None = "default",
    *ingress: str,
    ip: str | Iterable[str] | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    sharing: str | None = None,
    cls: str | None = LOAD_BALANCER_CLASS,
    type_: str = "LoadBalancer",
    port: int = 80,
    etp: str | None = None,
    families: Sequence[str] | None = None,
    selector: Mapping[str, str] | None = None,
    created: str | None = None,
    **spec: Any,
) -> Doc:
    """A Service of ``type_`` with one TCP ``port``, IronLB's loadBalancerClass (``cls``).

    - ``namespace`` None leaves it out (a document as a file source reads it);
    - ``ingress``: addresses in ``status.loadBalancer.ingress`` (what the controller recorded);
    - ``ip``: requested addresses (the ``ironlb.io/loadBalancerIPs`` annotation); ``sharing``:
      the ``ironlb.io/allow-shared-ip`` key; ``annotations``: any others; ``labels``;
    - ``etp``: externalTrafficPolicy; ``families``: ipFamilies, with the ipFamilyPolicy they
      imply (RequireDualStack for two); ``selector``; ``created``: its creationTimestamp;
    - ``spec``: any other spec fields (they win over the above).
    """
    meta: Doc = {"name": name, "annotations": dict(annotations or {})}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels is not None:
        meta["labels"] = dict(labels)
    if created is not None:
        meta["creationTimestamp"] = created
    ips = [ip] if isinstance(ip, str) else list(ip or ())
    if ips:
        meta["annotations"][ANN_IPS] = ",".join(ips)
    if sharing is not None:
        meta["annotations"][ANN_SHARING] = sharing
    body: Doc = {"type": type_}
    if etp is not None:
        body["externalTrafficPolicy"] = etp
    if selector is not None:
        body["selector"] = dict(selector)
    body["ports"] = [{"port": port, "protocol": "TCP"}]
    if families is not None:
        body["ipFamilies"] = list(families)
        body["ipFamilyPolicy"] = "RequireDualStack" if len(families) > 1 else "SingleStack"
    if cls is not None:
        body["loadBalancerClass"] = cls
    doc: Doc = {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {**body, **spec}}
    if ingress:
        doc["status"] = {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}
    return doc


def node(
    name: str,
    *addresses: str,
    ready: bool | None = True,
    labels: Mapping[str, str] | None = None,
    conditions: Sequence[Mapping[str, str]] | None = None,
) -> Doc:
    """A Node with InternalIP ``addresses`` and a Ready condition (``ready`` None: no
    conditions at all; ``conditions``: exactly these)."""
    status: Doc = {}
    if conditions is not None:
        status["conditions"] = [dict(c) for c in conditions]
    elif ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    status["addresses"] = [{"type": "InternalIP", "address": a} for a in addresses]
    meta: Doc = {"name": name}
    if labels is not None:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta, "status": status}


def endpoint_slice(
    service_name: str,
    *on_nodes: str,
    namespace: str | None = "default",
    name: str | None = None,
    ready: bool = True,
    endpoints: Sequence[Any] | None = None,
) -> Doc:
    """An EndpointSlice of Service ``service_name``: one endpoint on each of ``on_nodes``
    (``endpoints``: exactly these instead)."""
    meta: Doc = {"name": name or f"{service_name}-eps", "labels": {SERVICE_NAME_LABEL: service_name}}
    if namespace is not None:
        meta["namespace"] = namespace
    rows = (
        list(endpoints)
        if endpoints is not None
        else [{"addresses": ["10.244.0.1"], "nodeName": n, "conditions": {"ready": ready}} for n in on_nodes]
    )
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": "IPv4",
        "endpoints": rows,
    }


# --- bound to a lab ------------------------------------------------------------------------------


def nodes(lab: Lab, labels: Mapping[str, Mapping[str, str]] | None = None) -> list[Doc]:
    """A Node for every lab node (InternalIP = its LAN IPv4 and IPv6 address), Ready."""
    return [node(n, lab.addr(n, 4), lab.addr(n, 6), labels=(labels or {}).get(n, {})) for n in lab.nodes]


def router_peer(lab: Lab, name: str = "tor", hold: int = 9, **spec: Any) -> Doc:
    """A BGPPeer from the nodes (NODE_ASN) to the lab router (ROUTER_ASN), 1 s connect retry."""
    return bgp_peer(
        name,
        my_asn=NODE_ASN,
        peer_asn=ROUTER_ASN,
        address=lab.addr("router"),
        **{"holdTime": hold, "connectTime": 1, **spec},
    )


def lab_service(
    name: str,
    ip: str | Iterable[str] | None = None,
    *,
    namespace: str = "default",
    etp: str = "Cluster",
    families: Sequence[str] = ("IPv4",),
    port: int = VIP_PORT,
) -> Doc:
    """A Service as the lab's standalone agents read it from their manifest directory: no
    loadBalancerClass (they serve classless Services), the vipserver's port, explicit families."""
    return service(
        name, namespace, ip=ip, cls=None, port=port, etp=etp, families=families, selector={"app": name}
    )
