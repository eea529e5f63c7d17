"""The IronLB schema: one definition of every object, shared by components, CRDs and agent.

This module owns the *shape* of IronLB's custom resources (``ironlb.io/v1alpha1``):
IPPool, BGPPeer, L2Advertisement, BGPAdvertisement, Community and Tenant.  Each is a
frozen pydantic model whose field names are the camelCase keys users write in YAML; the
CRD generator (``ironlb.crds``) derives the openAPIV3Schema from these same classes, so
the CRD, the Pulumi components and the agent can never disagree about a field.

Single-object rules (an address parses, a timer is in range) live here as validators
that say what is allowed.  Rules that need more than one object (overlapping pools,
unknown references) live in ``ironlb.config``, which turns raw documents into one
checked :class:`ironlb.config.Config`.

Nothing here imports Pulumi, pyroute2 or a Kubernetes client (import-linter enforces it).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ironlb import addresses

API_GROUP = "ironlb.io"
API_VERSION = "v1alpha1"
GROUP_VERSION: Literal["ironlb.io/v1alpha1"] = "ironlb.io/v1alpha1"
#: ``spec.loadBalancerClass`` value IronLB answers for.
LOAD_BALANCER_CLASS = "ironlb.io/ironlb"
#: Node label that excludes a node from announcing (the upstream Kubernetes label).
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

# Service annotations (input) ------------------------------------------------------------
ANN_IPS = "ironlb.io/loadBalancerIPs"  # comma-separated requested addresses
ANN_POOL = "ironlb.io/address-pool"  # name of the pool to allocate from
ANN_SHARING = "ironlb.io/allow-shared-ip"  # sharing key
# Service annotations (output, written by the controller) --------------------------------
ANN_ALLOCATED_POOL = "ironlb.io/ip-allocated-from-pool"
ANN_ALLOCATED_IPS = "ironlb.io/allocated-ips"

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_ASN = 4294967295


class Model(BaseModel):
    """Base for every schema object: frozen, unknown keys rejected, camelCase field names."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# --- building blocks ---------------------------------------------------------------------


class LabelSelectorRequirement(Model):
    """One ``matchExpressions`` entry, as in Kubernetes."""

    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


class LabelSelector(Model):
    """A Kubernetes label selector. An empty selector matches everything."""

    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: tuple[LabelSelectorRequirement, ...] = Field(default=(), max_length=64)

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.matchLabels.items()):
            return False
        return all(req.matches(labels) for req in self.matchExpressions)

    @property
    def is_empty(self) -> bool:
        return not self.matchLabels and not self.matchExpressions


class ObjectMeta(Model):
    """The part of Kubernetes metadata IronLB reads. Unknown metadata keys are tolerated."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# --- IPPool ------------------------------------------------------------------------------


class ServiceAllocation(Model):
    """Which services a pool serves, and in what order pools are tried."""

    priority: int = Field(
        default=0, ge=0, le=1_000_000, description="Lower numbers are tried first (0-1000000)."
    )
    namespaces: tuple[str, ...] = Field(default=(), description="Namespaces that may use this pool.")
    namespaceSelector: LabelSelector | None = Field(
        default=None, description="Namespaces, by label, that may use this pool."
    )
    serviceSelector: LabelSelector | None = Field(
        default=None, description="Services, by label, that may use this pool."
    )

    @property
    def has_selectors(self) -> bool:
        return bool(self.namespaces) or self.namespaceSelector is not None or self.serviceSelector is not None


def _check_block(text: str) -> str:
    addresses.parse_block(text)  # raises ValueError naming what is allowed
    return text


#: One pool entry: a CIDR, an ``a-b`` range or a single address.
AddressBlock = Annotated[
    str,
    AfterValidator(_check_block),
    # schema-only: a cheap shape check for the CRD (the validator above is the real rule)
    Field(json_schema_extra={"pattern": r"^[0-9a-fA-F:.]+(/[0-9]{1,3}|-[0-9a-fA-F:.]+)?$", "maxLength": 100}),
]
#: An IPv4 or IPv6 address in the CRD schema (shape only; the validators parse it).
_IP_SHAPE: dict[str, Any] = {"pattern": r"^[0-9a-fA-F:.]+$", "maxLength": 45}


class IPPoolSpec(Model):
    """Addresses IronLB may hand to LoadBalancer Services."""

    addresses: tuple[AddressBlock, ...] = Field(
        min_length=1,
        max_length=256,
        description="CIDRs (10.0.0.0/24), ranges (10.0.0.10-10.0.0.20) or single addresses; IPv4 and IPv6.",
    )
    autoAssign: bool = Field(default=True, description="Hand out addresses to services that name no pool.")
    avoidBuggyIPs: bool = Field(default=False, description="Skip IPv4 addresses ending in .0 and .255.")
    serviceAllocation: ServiceAllocation = Field(default_factory=ServiceAllocation)
    tenant: str | None = Field(
        default=None, description="Tenant that owns this pool; only its services use it."
    )
    disabled: bool = Field(default=False, description="Keep existing allocations but make no new ones.")


# --- BGPPeer -----------------------------------------------------------------------------


class SecretKeyRef(Model):
    """A key in a Kubernetes Secret (in IronLB's namespace). Secrets are only ever referenced."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    key: str = Field(default="password", min_length=1)


class BGPPeerSpec(Model):
    """A BGP session from matching nodes to a router."""

    myASN: int = Field(ge=1, le=MAX_ASN)
    peerASN: int = Field(ge=1, le=MAX_ASN)
    peerAddress: str = Field(json_schema_extra=_IP_SHAPE, description="The router's address.")
    peerPort: int = Field(default=179, ge=1, le=65535)
    sourceAddress: str | None = Field(
        default=None, json_schema_extra=_IP_SHAPE, description="Local address to connect from."
    )
    routerID: str | None = Field(
        default=None,
        json_schema_extra={"pattern": r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$"},
        description="IPv4 router ID; defaults to the node's address.",
    )
    holdTime: int | None = Field(
        default=None,
        json_schema_extra={"minimum": 0, "maximum": 65535},
        description="Seconds: 0 (no keepalives) or 3-65535; default 90, or 3 x keepaliveTime.",
    )
    keepaliveTime: int | None = Field(
        default=None,
        json_schema_extra={"minimum": 0, "maximum": 21845},
        description="Seconds, less than holdTime; default holdTime / 3.",
    )
    connectTime: int = Field(default=5, ge=1, le=65535, description="Connect retry, seconds.")
    ebgpMultiHop: bool = False
    enableGracefulRestart: bool = False
    passwordSecretRef: SecretKeyRef | None = Field(
        default=None, description="MD5 (TCP-MD5) password, by reference to a Secret key."
    )
    nodeSelector: LabelSelector | None = None

    DEFAULT_HOLD: ClassVar[int] = 90

    @field_validator("peerAddress")
    @classmethod
    def _peer_address(cls, value: str) -> str:
        return addresses.parse_host(value)

    @field_validator("sourceAddress")
    @classmethod
    def _source_address(cls, value: str | None) -> str | None:
        return None if value is None else addresses.parse_host(value)

    @field_validator("routerID")
    @classmethod
    def _router_id(cls, value: str | None) -> str | None:
        return None if value is None else addresses.parse_host(value, family=4)

    @field_validator("holdTime")
    @classmethod
    def _hold(cls, value: int | None) -> int | None:
        if value is not None and value != 0 and not 3 <= value <= 65535:
            raise ValueError("must be 0 or 3-65535 seconds")
        return value

    @field_validator("keepaliveTime")
    @classmethod
    def _keepalive(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= 21845:
            raise ValueError("must be 0-21845 seconds")
        return value

    @model_validator(mode="after")
    def _timers(self) -> BGPPeerSpec:
        hold, keepalive = self.effective_timers()
        if hold != 0 and keepalive >= hold:
            raise ValueError(f"keepaliveTime {keepalive} must be less than holdTime {hold}")
        if hold == 0 and keepalive != 0:
            raise ValueError(f"keepaliveTime {keepalive} must be 0 when holdTime is 0")
        return self

    def effective_timers(self) -> tuple[int, int]:
        """(hold, keepalive) in seconds; derives one from the other (x3 / ÷3) when only one is set."""
        if self.holdTime is None and self.keepaliveTime is None:
            return self.DEFAULT_HOLD, self.DEFAULT_HOLD // 3
        if self.holdTime is None:
            assert self.keepaliveTime is not None
            return self.keepaliveTime * 3, self.keepaliveTime
        if self.keepaliveTime is None:
            return self.holdTime, self.holdTime // 3
        return self.holdTime, self.keepaliveTime


# --- advertisements ----------------------------------------------------------------------


class L2AdvertisementSpec(Model):
    """Announce addresses from the selected pools by answering ARP / NDP on the LAN."""

    ipPools: tuple[str, ...] = Field(default=(), description="Pool names; empty with no selector means all.")
    ipPoolSelector: LabelSelector | None = None
    nodeSelector: LabelSelector | None = None
    interfaces: tuple[str, ...] = Field(
        default=(), description="Interfaces to answer on; empty means the one whose subnet holds the address."
    )
    garpInterval: float | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Seconds between periodic gratuitous ARP / unsolicited NA refreshes (1-3600); "
        "off if unset.",
    )


COMMUNITY_RE = re.compile(r"^\d+:\d+$")
LARGE_COMMUNITY_RE = re.compile(r"^(large:)?\d+:\d+:\d+$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9-]*$")


def parse_community(text: str) -> str:
    """Check one literal community; return it normalised ('a:b' or 'large:a:b:c')."""
    if COMMUNITY_RE.match(text):
        a, b = (int(x) for x in text.split(":"))
        if a > 65535 or b > 65535:
            raise ValueError(f"standard community {text!r} must be a:b with each part 0-65535")
        return f"{a}:{b}"
    if LARGE_COMMUNITY_RE.match(text):
        parts = [int(x) for x in text.removeprefix("large:").split(":")]
        if any(p > MAX_ASN for p in parts):
            raise ValueError(f"large community {text!r} must be a:b:c with each part 0-{MAX_ASN}")
        return "large:" + ":".join(str(p) for p in parts)
    raise ValueError(
        f"community {text!r} must be 'a:b' (0-65535 each), 'large:a:b:c' (0-{MAX_ASN} each) "
        "or the name of a Community alias"
    )


def _check_community_item(text: str) -> str:
    if not ALIAS_RE.match(text):
        parse_community(text)
    return text


#: One community: a literal ('a:b', 'large:a:b:c') or the name of a Community alias.
CommunityItem = Annotated[str, AfterValidator(_check_community_item)]


def _check_literal(text: str) -> str:
    parse_community(text)
    return text


AliasName = Annotated[str, Field(pattern=ALIAS_RE.pattern, max_length=63)]
CommunityLiteral = Annotated[str, AfterValidator(_check_literal)]


class BGPAdvertisementSpec(Model):
    """Announce addresses from the selected pools to BGP peers."""

    ipPools: tuple[str, ...] = ()
    ipPoolSelector: LabelSelector | None = None
    aggregationLength: int = Field(default=32, ge=0, le=32)
    aggregationLengthV6: int = Field(default=128, ge=0, le=128)
    localPref: int | None = Field(default=None, ge=0, le=MAX_ASN, description="iBGP local preference.")
    communities: tuple[CommunityItem, ...] = Field(
        default=(), description="'a:b', 'large:a:b:c' or names of Community aliases."
    )
    peers: tuple[str, ...] = Field(default=(), description="BGPPeer names; empty means every peer.")
    nodeSelector: LabelSelector | None = None


class CommunitySpec(Model):
    """Named BGP community aliases, usable in BGPAdvertisement.communities."""

    communities: dict[AliasName, CommunityLiteral] = Field(
        min_length=1,
        max_length=256, description="alias name -> 'a:b' or 'large:a:b:c'"
    )


# --- Tenant ------------------------------------------------------------------------------


class TenantSpec(Model):
    """A tenant: the namespaces it owns, the pools only it may use, and its address quota."""

    namespaces: tuple[Annotated[str, Field(pattern=DNS1123_LABEL, max_length=63)], ...] = ()
    pools: tuple[str, ...] = Field(default=(), description="IPPool names this tenant owns.")
    maxAddresses: int | None = Field(
        default=None, ge=0, description="Quota: most addresses its services may hold at once."
    )


# --- status (written by the controller / agents; never read as input) -----------------------


class Condition(Model):
    """A Kubernetes-style condition (type Ready / Conflicting / QuotaExceeded ...)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    lastTransitionTime: str | None = Field(default=None, description="RFC 3339 time.")


class IPPoolStatus(Model):
    """Addresses in use and free, per family."""

    assignedIPv4: int = Field(default=0, ge=0)
    availableIPv4: int = Field(default=0, ge=0)
    assignedIPv6: int = Field(default=0, ge=0)
    availableIPv6: int = Field(default=0, ge=0)
    conditions: tuple[Condition, ...] = ()


class PeerSession(Model):
    """One node's session to the peer."""

    node: str
    state: Literal["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "Unknown"]
    prefixes: int = Field(default=0, ge=0, description="Prefixes announced on this session.")


class BGPPeerStatus(Model):
    """Session state summed over nodes, and per node."""

    state: str = Field(default="", description="Established on every node, or e.g. '2/3 Established'.")
    sessions: tuple[PeerSession, ...] = ()
    conditions: tuple[Condition, ...] = ()


class TenantStatus(Model):
    """Addresses the tenant's services hold against its quota."""

    used: int = Field(default=0, ge=0)
    quota: int | None = Field(default=None, ge=0)
    conditions: tuple[Condition, ...] = ()


class AdvertisementStatus(Model):
    """How many addresses the advertisement currently selects."""

    addresses: int = Field(default=0, ge=0)
    conditions: tuple[Condition, ...] = ()


# --- resources ---------------------------------------------------------------------------


class Resource(Model):
    """A custom resource document: apiVersion, kind, metadata, spec (status is ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    #: The status model the controller writes (None: no status subresource).
    STATUS: ClassVar[type[Model] | None] = None
    apiVersion: Literal["ironlb.io/v1alpha1"] = GROUP_VERSION
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @classmethod
    def build(cls, name: str, spec: dict[str, Any] | Model, **meta: Any) -> Any:
        """Build a resource in code (components, tests): ``IPPool.build("a", {...})``."""
        body = spec.model_dump(exclude_none=True) if isinstance(spec, Model) else spec
        return cls.model_validate({"kind": cls.KIND, "metadata": {"name": name, **meta}, "spec": body})

    def to_manifest(self) -> dict[str, Any]:
        """The document as Kubernetes takes it (defaults omitted, no Nones)."""
        return self.model_dump(mode="json", exclude_none=True, exclude_defaults=False)


class IPPool(Resource):
    KIND = "IPPool"
    PLURAL = "ippools"
    STATUS = IPPoolStatus
    kind: Literal["IPPool"] = "IPPool"
    spec: IPPoolSpec


class BGPPeer(Resource):
    KIND = "BGPPeer"
    PLURAL = "bgppeers"
    STATUS = BGPPeerStatus
    kind: Literal["BGPPeer"] = "BGPPeer"
    spec: BGPPeerSpec


class L2Advertisement(Resource):
    KIND = "L2Advertisement"
    PLURAL = "l2advertisements"
    STATUS = AdvertisementStatus
    kind: Literal["L2Advertisement"] = "L2Advertisement"
    spec: L2AdvertisementSpec


class BGPAdvertisement(Resource):
    KIND = "BGPAdvertisement"
    PLURAL = "bgpadvertisements"
    STATUS = AdvertisementStatus
    kind: Literal["BGPAdvertisement"] = "BGPAdvertisement"
    spec: BGPAdvertisementSpec


class Community(Resource):
    KIND = "Community"
    PLURAL = "communities"
    kind: Literal["Community"] = "Community"
    spec: CommunitySpec


class Tenant(Resource):
    KIND = "Tenant"
    PLURAL = "tenants"
    STATUS = TenantStatus
    kind: Literal["Tenant"] = "Tenant"
    spec: TenantSpec


#: Every custom resource kind, by ``kind``.
# Registered one call at a time on purpose: any expression that mixes the six classes (a
# dict literal, a tuple, a comprehension) makes mypy 2.4 compute their join, which takes
# minutes and gigabytes of memory.
RESOURCE_KINDS: dict[str, type[Resource]] = {}


def _register(cls: type[Resource]) -> None:
    RESOURCE_KINDS[cls.KIND] = cls


_register(IPPool)
_register(BGPPeer)
_register(L2Advertisement)
_register(BGPAdvertisement)
_register(Community)
_register(Tenant)
