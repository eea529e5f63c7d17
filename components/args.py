"""Component inputs: one documented TypedDict per component, and the converters to the schema.

The component args use Pulumi's Python convention (snake_case keys); the schema
(``ironlb.model``) uses the camelCase keys users write in YAML.  The two are the *same
fields*: :func:`to_spec` and :func:`to_args` walk the pydantic model to rename keys, so a
field added to the schema needs no edit here other than its documentation line.  Keys
inside free-form maps (label selectors, community aliases) are user data and are never
renamed.

Every field of the object components is a ``pulumi.Input`` (a plain value or an Output;
the component validates Outputs when they resolve), except the few that decide which
child resources exist and their names (a Tenant's ``namespaces``, ``adopt_namespaces``
and the keys of ``pools``): those are plain, and the package schema marks them ``plain``
so every generated SDK asks for a known value.  No field is an enum or a union (component
providers support neither): closed sets such as a port's protocol are strings that the
schema checks, naming what is allowed (decision 0070).

This module must not use ``from __future__ import annotations``: the component
provider Analyzer reads these annotations at run time to build the package schema.
"""

import types
import typing
from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
from pydantic import BaseModel
from pydantic.alias_generators import to_snake

# --- key renaming ------------------------------------------------------------------------


def _norm(key: str) -> str:
    """Spelling-insensitive key: ``avoid_buggy_ips`` and ``avoidBuggyIPs`` both give ``avoidbuggyips``."""
    return key.replace("_", "").lower()


def _snake(key: str) -> str:
    """Schema key -> args key: the TypedDicts' own spelling (``avoidBuggyIPs`` -> ``avoid_buggy_ips``,
    where pydantic's generator would say ``avoid_buggy_i_ps``), else pydantic's ``to_snake``."""
    return _snake_names().get(_norm(key)) or to_snake(key)


def _snake_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for value in list(globals().values()):
        if isinstance(value, type) and typing.is_typeddict(value):
            names.update({_norm(k): k for k in value.__annotations__})
    return names


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model class inside ``X | None`` / ``tuple[X, ...]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _rename(model: type[BaseModel], value: Any, to_model: bool) -> Any:
    if isinstance(value, (list, tuple)):
        return [_rename(model, v, to_model) for v in value]
    if not isinstance(value, Mapping):
        return value
    fields = {_norm(name): name for name in model.model_fields}
    out: dict[str, Any] = {}
    for key, item in value.items():
        field_name = fields.get(_norm(key)) if to_model else key
        if field_name is None:  # unknown key: keep it so the schema names it in its error
            out[key] = item
            continue
        inner = _model_of(model.model_fields[field_name].annotation)
        out_key = field_name if to_model else _snake(key)
        out[out_key] = _rename(inner, item, to_model) if inner is not None else item
    return out


def to_spec(model: type[BaseModel], args: Mapping[str, Any]) -> dict[str, Any]:
    """Component args (snake_case) -> schema spec dict (camelCase), dropping None values."""
    clean = {k: v for k, v in args.items() if v is not None}
    result: dict[str, Any] = _rename(model, clean, True)
    return result


def to_args(spec: BaseModel) -> dict[str, Any]:
    """A validated schema spec -> component args (snake_case), without defaults or Nones."""
    body = spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    result: dict[str, Any] = _rename(type(spec), body, False)
    return result


# --- shared shapes -----------------------------------------------------------------------


class LabelSelectorRequirementArgs(TypedDict, total=False):
    """One matchExpressions entry of a Kubernetes label selector."""

    key: pulumi.Input[str]
    """Label key."""
    operator: pulumi.Input[str]
    """In, NotIn, Exists or DoesNotExist."""
    values: pulumi.Input[list[pulumi.Input[str]]]
    """Values for In / NotIn."""


class LabelSelectorArgs(TypedDict, total=False):
    """A Kubernetes label selector; empty matches everything."""

    match_labels: pulumi.Input[dict[str, pulumi.Input[str]]]
    """Labels that must all be present with these values."""
    match_expressions: pulumi.Input[list[pulumi.Input[LabelSelectorRequirementArgs]]]
    """Set-based requirements."""


class ServiceAllocationArgs(TypedDict, total=False):
    """Which services a pool serves, and in what order pools are tried."""

    priority: pulumi.Input[int]
    """Lower numbers are tried first (0-1000000)."""
    namespaces: pulumi.Input[list[pulumi.Input[str]]]
    """Namespaces that may use this pool."""
    namespace_selector: pulumi.Input[LabelSelectorArgs]
    """Namespaces, by label, that may use this pool."""
    service_selector: pulumi.Input[LabelSelectorArgs]
    """Services, by label, that may use this pool."""


# --- per component -----------------------------------------------------------------------


class IpPoolArgs(TypedDict, total=False):
    """An IPPool: addresses IronLB may hand to LoadBalancer Services."""

    addresses: pulumi.Input[list[pulumi.Input[str]]]
    """CIDRs (10.0.0.0/24), ranges (10.0.0.10-10.0.0.20) or single addresses; IPv4 and IPv6."""
    auto_assign: pulumi.Input[bool]
    """Hand out addresses to services that name no pool (default true)."""
    avoid_buggy_ips: pulumi.Input[bool]
    """Skip IPv4 addresses ending in .0 and .255."""
    service_allocation: pulumi.Input[ServiceAllocationArgs]
    """Priority and the namespaces/services this pool serves."""
    tenant: pulumi.Input[str]
    """Tenant that owns this pool; only its services may use it."""
    disabled: pulumi.Input[bool]
    """Keep existing allocations but make no new ones."""
    allow_untenanted: pulumi.Input[bool]
    """Let Services in namespaces no Tenant lists use this pool (default false); untenanted pools only."""
    namespace: pulumi.Input[str]
    """Namespace of the IronLB installation (where namespaced custom resources go)."""
    labels: pulumi.Input[dict[str, pulumi.Input[str]]]
    """Labels on the custom resource (for ipPoolSelector)."""


class BgpPeerArgs(TypedDict, total=False):
    """A BGPPeer: a BGP session from matching nodes to a router."""

    my_asn: pulumi.Input[int]
    """The nodes' ASN (1-4294967295)."""
    peer_asn: pulumi.Input[int]
    """The router's ASN (1-4294967295)."""
    peer_address: pulumi.Input[str]
    """The router's address."""
    peer_port: pulumi.Input[int]
    """TCP port (default 179)."""
    source_address: pulumi.Input[str]
    """Local address to connect from."""
    router_id: pulumi.Input[str]
    """IPv4 router ID; defaults to the node's address."""
    hold_time: pulumi.Input[int]
    """Seconds: 0 (no keepalives) or 3-65535."""
    keepalive_time: pulumi.Input[int]
    """Seconds, less than hold_time."""
    connect_time: pulumi.Input[int]
    """Connect retry, seconds."""
    ebgp_multi_hop: pulumi.Input[bool]
    """Allow the router to be more than one hop away."""
    enable_graceful_restart: pulumi.Input[bool]
    """Advertise graceful restart."""
    graceful_restart_time: pulumi.Input[int]
    """With graceful restart: seconds the router keeps a node's routes after its speaker vanished."""
    bfd_profile: pulumi.Input[str]
    """Name of a BfdProfile: run BFD on this session (fast failure detection)."""
    password: pulumi.Input[str]
    """TCP-MD5 password. Pass a Pulumi secret; it is stored only in a Kubernetes Secret."""
    password_secret_name: pulumi.Input[str]
    """Name of the Kubernetes Secret holding the password (default ironlb-bgp-<peer>)."""
    node_selector: pulumi.Input[LabelSelectorArgs]
    """Nodes that open this session; all when unset."""
    namespace: pulumi.Input[str]
    """Namespace of the IronLB installation (the Secret and namespaced resources go there)."""


class L2AdvertisementArgs(TypedDict, total=False):
    """Announce addresses from the selected pools by answering ARP / NDP on the LAN."""

    ip_pools: pulumi.Input[list[pulumi.Input[str]]]
    """Pool names; empty with no selector means all pools."""
    ip_pool_selector: pulumi.Input[LabelSelectorArgs]
    """Pools, by label."""
    node_selector: pulumi.Input[LabelSelectorArgs]
    """Nodes that may announce."""
    interfaces: pulumi.Input[list[pulumi.Input[str]]]
    """Interfaces to answer on; empty means the one whose subnet holds the address."""
    garp_interval: pulumi.Input[float]
    """Seconds between periodic gratuitous ARP / unsolicited NA refreshes (1-3600)."""
    namespace: pulumi.Input[str]
    """Namespace of the IronLB installation."""


class BgpAdvertisementArgs(TypedDict, total=False):
    """Announce addresses from the selected pools to BGP peers."""

    ip_pools: pulumi.Input[list[pulumi.Input[str]]]
    """Pool names; empty with no selector means all pools."""
    ip_pool_selector: pulumi.Input[LabelSelectorArgs]
    """Pools, by label."""
    aggregation_length: pulumi.Input[int]
    """IPv4 prefix length announced (default 32)."""
    aggregation_length_v6: pulumi.Input[int]
    """IPv6 prefix length announced (default 128)."""
    local_pref: pulumi.Input[int]
    """iBGP local preference."""
    communities: pulumi.Input[list[pulumi.Input[str]]]
    """'a:b', 'large:a:b:c' or names of Community aliases."""
    peers: pulumi.Input[list[pulumi.Input[str]]]
    """BGPPeer names; empty means every peer."""
    node_selector: pulumi.Input[LabelSelectorArgs]
    """Nodes that may announce."""
    namespace: pulumi.Input[str]
    """Namespace of the IronLB installation."""


class TenantArgs(TypedDict, total=False):
    """A tenant: the namespaces it owns, the pools only it may use, and its quota."""

    namespaces: list[str]
    """Namespaces this tenant owns."""
    adopt_namespaces: list[str]
    """Of those, namespaces that already exist: labelled, never created or deleted."""
    pools: dict[str, IpPoolArgs]
    """Pools this tenant owns, by pool name (their tenant field is set for you)."""
    granted_pools: pulumi.Input[list[pulumi.Input[str]]]
    """Further pools, defined elsewhere, that this tenant owns."""
    max_addresses: pulumi.Input[int]
    """IronLB quota: most addresses the tenant's services may hold at once."""
    max_load_balancer_services: pulumi.Input[int]
    """Kubernetes ResourceQuota services.loadbalancers per namespace."""
    namespace: pulumi.Input[str]
    """Namespace of the IronLB installation."""


class ServicePortArgs(TypedDict, total=False):
    """One port of a LoadBalancer Service."""

    port: pulumi.Input[int]
    """Port number (1-65535)."""
    protocol: pulumi.Input[str]
    """TCP, UDP or SCTP (default TCP)."""
    name: pulumi.Input[str]
    """Port name (required by Kubernetes when there is more than one port)."""
    target_port: pulumi.Input[int]
    """Container port (default: port)."""


class LoadBalancerServiceArgs(TypedDict, total=False):
    """A Service of type LoadBalancer served by IronLB."""

    namespace: pulumi.Input[str]
    """Namespace of the Service."""
    service_name: pulumi.Input[str]
    """metadata.name (default: the component name)."""
    ports: pulumi.Input[list[pulumi.Input[ServicePortArgs]]]
    """Ports to expose."""
    selector: pulumi.Input[dict[str, pulumi.Input[str]]]
    """Pods behind the Service."""
    pool: pulumi.Input[str]
    """Pool to allocate from."""
    ips: pulumi.Input[list[pulumi.Input[str]]]
    """Addresses to pin."""
    sharing_key: pulumi.Input[str]
    """Services with the same key may share an address when their ports differ."""
    external_traffic_policy: pulumi.Input[str]
    """Cluster or Local."""
    ip_family_policy: pulumi.Input[str]
    """SingleStack, PreferDualStack or RequireDualStack."""
    ip_families: pulumi.Input[list[pulumi.Input[str]]]
    """IPv4 and/or IPv6, in preference order."""
    labels: pulumi.Input[dict[str, pulumi.Input[str]]]
    """Labels on the Service."""
    annotations: pulumi.Input[dict[str, pulumi.Input[str]]]
    """Further annotations on the Service."""


class TolerationArgs(TypedDict, total=False):
    """A Kubernetes toleration."""

    key: str
    """Taint key."""
    operator: str
    """Exists or Equal."""
    value: str
    """Taint value (with Equal)."""
    effect: str
    """NoSchedule, PreferNoSchedule or NoExecute."""


class NodeAgentArgs(TypedDict, total=False):
    """IronLB on a cluster: namespace, CRDs, RBAC, settings, the speaker DaemonSet and the controller."""

    namespace: str
    """Namespace to install into (default ironlb-system)."""
    create_namespace: bool
    """Create the namespace (default true); false adopts an existing one."""
    install_crds: bool
    """Install the ironlb.io CRDs (default true)."""
    image: str
    """Image of both roles (default ghcr.io/ironlb/agent:<version>)."""
    version: str
    """Image tag, used when image is unset (default 0.1.0)."""
    node_selector: dict[str, str]
    """Nodes that run the speaker."""
    tolerations: list[TolerationArgs]
    """Tolerations of both roles (default: control-plane NoSchedule)."""
    cpu_request: str
    """Speaker CPU request (default 50m)."""
    memory_request: str
    """Speaker memory request (default 64Mi)."""
    cpu_limit: str
    """Speaker CPU limit (default 500m)."""
    memory_limit: str
    """Speaker memory limit (default 256Mi)."""
    controller_replicas: int
    """Controller replicas; one leads through a Lease, the others stand by warm (default 2)."""
    metrics_port: int
    """Prometheus /metrics port of both roles; 0 turns it off (default 7948; MetalLB uses 7472)."""
    metrics_address: str
    """Where /metrics listens: 'podIP' (the node's address for the speaker) or an IP (default podIP)."""
    health_port: int
    """/healthz and /readyz port the kubelet probes (default 7949)."""
    status_endpoint: bool
    """Serve the /status table on 127.0.0.1:7950 in each pod (default false: it lists every tenant)."""
    membership_port: int
    """Speaker-to-speaker membership port, UDP (default 7947; MetalLB's memberlist uses 7946)."""
    log_level: str
    """debug, info, warning or error (default info)."""
    log_format: str
    """json (default) or text."""
    claim_classless: bool
    """Also serve LoadBalancer Services that set no loadBalancerClass (default false)."""
    membership_key: pulumi.Input[str]
    """Shared key (at least 32 bytes) that authenticates membership messages. Pass a Pulumi secret."""
    membership_next_key: pulumi.Input[str]
    """During a key rotation: the next key, accepted alongside the current one. Pass a Pulumi secret."""
    membership_key_version: str
    """Bump on every key change (rotation step): it enters the speaker's rollout hash (default "1")."""
    bgp_password_secrets: list[str]
    """BGP password Secrets in the namespace, as "name/key" ("name" means key password); each is
    mounted at /etc/ironlb/secrets/<name>/<key>."""
    service_monitor: bool
    """Add a prometheus-operator ServiceMonitor and a headless metrics Service per role (default false)."""
    service_monitor_labels: dict[str, str]
    """Labels on the ServiceMonitor, e.g. {"release": "kube-prometheus-stack"} so Prometheus selects it."""
