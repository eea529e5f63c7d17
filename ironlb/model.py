"""The IronLB schema: one definition of every object, shared by components, CRDs and agent.

This module owns the *shape* of IronLB's custom resources (``ironlb.io/v1alpha1``):
IPPool, BGPPeer, L2Advertisement, BGPAdvertisement, Community and Tenant.  Each is a
frozen pydantic model whose field names are the camelCase keys users write in YAML; the
CRD generator (``ironlb.crds``) derives the openAPIV3Schema from these same classes, so
the CRD, the Pulumi components and the agent can never disagree about a field.

Single-object rules (an address parses, a timer is in range) live here and in
``ironlb.fields`` (the shared building blocks: selectors, address blocks, BGP endpoints,
interface names, communities) as validators that say what is allowed; the status models
live in ``ironlb.status``.  Both are re-exported here.  Rules that need more than one
object (overlapping pools, unknown references) live in ``ironlb.validation``, which
``ironlb.config.parse`` runs to turn raw documents into one checked Config.

Nothing here imports Pulumi, pyroute2 or a Kubernetes client (import-linter enforces it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ironlb.bfd import BFDProfileSpec

# Re-exported: callers import the schema's building blocks and status models from here.
from ironlb.fields import ALIAS_RE as ALIAS_RE
from ironlb.fields import COMMUNITY_RE as COMMUNITY_RE
from ironlb.fields import DNS1123_LABEL as DNS1123_LABEL
from ironlb.fields import DNS1123_SUBDOMAIN as DNS1123_SUBDOMAIN
from ironlb.fields import LARGE_COMMUNITY_RE as LARGE_COMMUNITY_RE
from ironlb.fields import MAX_ASN as MAX_ASN
from ironlb.fields import AddressBlock as AddressBlock
from ironlb.fields import AliasName as AliasName
from ironlb.fields import CommunityItem as CommunityItem
from ironlb.fields import CommunityLiteral as CommunityLiteral
from ironlb.fields import InterfaceName as InterfaceName
from ironlb.fields import LabelSelector as LabelSelector
from ironlb.fields import LabelSelectorRequirement as LabelSelectorRequirement
from ironlb.fields import Model as Model
from ironlb.fields import ObjectMeta as ObjectMeta
from ironlb.fields import PeerHost as PeerHost
from ironlb.fields import RouterID as RouterID
from ironlb.fields import parse_community as parse_community
from ironlb.status import AdvertisementStatus as AdvertisementStatus
from ironlb.status import BGPPeerStatus as BGPPeerStatus
from ironlb.status import Condition as Condition
from ironlb.status import IPPoolStatus as IPPoolStatus
from ironlb.status import PeerSession as PeerSession
from ironlb.status import TenantStatus as TenantStatus
from ironlb.status import ValidityStatus as ValidityStatus

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
    allowUntenanted: bool = Field(
        default=False,
        description="When Tenants exist, let Services in namespaces that no Tenant lists use this pool "
        "(default false: they get no address, reason NoTenant). Only for pools without a tenant.",
    )


# --- BGPPeer -----------------------------------------------------------------------------


class SecretKeyRef(Model):
    """A key in a Kubernetes Secret (in IronLB's namespace). Secrets are only ever referenced."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    key: str = Field(default="password", min_length=1)


class BGPPeerSpec(Model):
    """A BGP session from matching nodes to a router."""

    myASN: int = Field(ge=1, le=MAX_ASN)
    peerASN: int = Field(ge=1, le=MAX_ASN)
    peerAddress: PeerHost = Field(description="The router's address.")
    peerPort: int = Field(default=179, ge=1, le=65535)
    sourceAddress: PeerHost | None = Field(
        default=None, description="Local address to connect from (the family of peerAddress)."
    )
    routerID: RouterID | None = Field(
        default=None, description="IPv4 router ID (not 0.0.0.0 or 255.255.255.255); defaults to the node's."
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
    gracefulRestartTime: int = Field(
        default=120,
        ge=1,
        le=4095,
        description="With enableGracefulRestart: seconds the router keeps this node's routes after its "
        "speaker vanished (1-4095).",
    )
    bfdProfile: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
        description="Name of a BFDProfile: run BFD on this session (fast failure detection).",
    )
    passwordSecretRef: SecretKeyRef | None = Field(
        default=None, description="MD5 (TCP-MD5) password, by reference to a Secret key."
    )
    nodeSelector: LabelSelector | None = None

    DEFAULT_HOLD: ClassVar[int] = 90

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
    def _source_family(self) -> BGPPeerSpec:
        if self.sourceAddress is not None and (":" in self.sourceAddress) != (":" in self.peerAddress):
            fam = 6 if ":" in self.peerAddress else 4
            raise ValueError(
                f"sourceAddress {self.sourceAddress} is not IPv{fam} like peerAddress {self.peerAddress}; "
                "a session's two ends are of one family"
            )
        return self

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
    interfaces: tuple[InterfaceName, ...] = Field(
        default=(),
        max_length=64,
        description="Interfaces to answer on; empty means the one whose subnet holds the address.",
    )
    garpInterval: float | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="Seconds between periodic gratuitous ARP / unsolicited NA refreshes (1-3600); "
        "off if unset.",
    )


#: Shortest aggregate per family: IANA's own allocations to the registries are /8 (IPv4) and
#: /12 (IPv6), so no network holds a larger block; shorter covers space nobody owns, and /0
#: is the default route. ADR 0003.
MIN_AGGREGATION = {4: 8, 6: 12}


def _aggregation(value: int, family: int) -> int:
    low, top = MIN_AGGREGATION[family], 32 if family == 4 else 128
    if not low <= value <= top:
        raise ValueError(
            f"must be {low}-{top}: 0 announces a default route, and anything shorter than /{low} "
            f"covers more than the largest IPv{family} block a registry allocates"
        )
    return value


class BGPAdvertisementSpec(Model):
    """Announce addresses from the selected pools to BGP peers."""

    ipPools: tuple[str, ...] = ()
    ipPoolSelector: LabelSelector | None = None
    aggregationLength: int = Field(
        default=32,
        json_schema_extra={"minimum": MIN_AGGREGATION[4], "maximum": 32},
        description=f"Prefix length announced for IPv4 addresses ({MIN_AGGREGATION[4]}-32, default 32).",
    )
    aggregationLengthV6: int = Field(
        default=128,
        json_schema_extra={"minimum": MIN_AGGREGATION[6], "maximum": 128},
        description=f"Prefix length announced for IPv6 addresses ({MIN_AGGREGATION[6]}-128, default 128).",
    )
    localPref: int | None = Field(default=None, ge=0, le=MAX_ASN, description="iBGP local preference.")
    communities: tuple[CommunityItem, ...] = Field(
        default=(), description="'a:b', 'large:a:b:c' or names of Community aliases."
    )
    peers: tuple[str, ...] = Field(default=(), description="BGPPeer names; empty means every peer.")
    nodeSelector: LabelSelector | None = None

    @field_validator("aggregationLength")
    @classmethod
    def _aggregation_v4(cls, value: int) -> int:
        return _aggregation(value, 4)

    @field_validator("aggregationLengthV6")
    @classmethod
    def _aggregation_v6(cls, value: int) -> int:
        return _aggregation(value, 6)


def selects_pool(
    spec: L2AdvertisementSpec | BGPAdvertisementSpec, pool: str, labels: Mapping[str, str] | None
) -> bool:
    """Does an advertisement with ``spec`` announce the addresses of ``pool`` (whose ``labels``
    these are; None: no such pool, so no selector matches it)?  Yes when ``ipPools`` names it,
    when ``ipPoolSelector`` matches its labels, or when the advertisement has neither (every
    pool).  The one statement of this rule: validation, the planner and the lab all ask here."""
    if pool in spec.ipPools:
        return True
    if spec.ipPoolSelector is not None:
        return labels is not None and spec.ipPoolSelector.matches(labels)
    return not spec.ipPools


class CommunitySpec(Model):
    """Named BGP community aliases, usable in BGPAdvertisement.communities."""

    communities: dict[AliasName, CommunityLiteral] = Field(
        min_length=1, max_length=256, description="alias name -> 'a:b' or 'large:a:b:c'"
    )


# --- Tenant ------------------------------------------------------------------------------


class TenantSpec(Model):
    """A tenant: the namespaces it owns, the pools only it may use, and its address quota."""

    namespaces: tuple[Annotated[str, Field(pattern=DNS1123_LABEL, max_length=63)], ...] = ()
    pools: tuple[str, ...] = Field(default=(), description="IPPool names this tenant owns.")
    maxAddresses: int | None = Field(
        default=None, ge=0, description="Quota: most addresses its services may hold at once."
    )


# --- resources ---------------------------------------------------------------------------
# One class per kind, alike on purpose: pydantic and the CRD generator need each kind's
# ``kind`` literal, spec and status model declared.


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
    STATUS = ValidityStatus
    kind: Literal["Community"] = "Community"
    spec: CommunitySpec


class Tenant(Resource):
    KIND = "Tenant"
    PLURAL = "tenants"
    STATUS = TenantStatus
    kind: Literal["Tenant"] = "Tenant"
    spec: TenantSpec


class BFDProfile(Resource):
    KIND = "BFDProfile"
    PLURAL = "bfdprofiles"
    kind: Literal["BFDProfile"] = "BFDProfile"
    spec: BFDProfileSpec  # ironlb.bfd: the fields and their rules


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
_register(BFDProfile)
