"""Building blocks of the IronLB schema: the types every resource model is made of.

``ironlb.model`` defines the resources; this module owns the pieces they share and the
single-value rules behind them: the frozen :class:`Model` base, Kubernetes label
selectors and metadata, pool address blocks (which refuse special-purpose ranges,
:mod:`ironlb.addresses`), BGP endpoint addresses, Linux interface names and BGP
communities.  Each validator raises ``ValueError`` with a sentence saying what is
allowed; ``ironlb.config`` prefixes it with the object, the field and the value.

Everything here is re-exported by ``ironlb.model``, the module callers import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ironlb import addresses

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

    def matches(self, labels: Mapping[str, str]) -> bool:
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

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.matchLabels.items()):
            return False
        return all(req.matches(labels) for req in self.matchExpressions)


class ObjectMeta(Model):
    """The part of Kubernetes metadata IronLB reads. Unknown metadata keys are tolerated."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    name: str = Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# --- addresses -------------------------------------------------------------------------


def _check_block(text: str) -> str:
    block = addresses.parse_block(text)  # raises ValueError naming what is allowed
    problem = addresses.block_problem(block)
    if problem is not None:
        raise ValueError(problem)
    return text


#: One pool entry: a CIDR, an ``a-b`` range or a single address.
AddressBlock = Annotated[
    str,
    AfterValidator(_check_block),
    # schema-only: a cheap shape check for the CRD (the validator above is the real rule)
    Field(json_schema_extra={"pattern": r"^[0-9a-fA-F:.]+(/[0-9]{1,3}|-[0-9a-fA-F:.]+)?$", "maxLength": 100}),
]
#: An IPv4 or IPv6 address in the CRD schema (shape only; the validators parse it).
IP_SHAPE: dict[str, Any] = {"pattern": r"^[0-9a-fA-F:.]+$", "maxLength": 45}


def _check_peer_host(text: str) -> str:
    host = addresses.parse_host(text)
    problem = addresses.peer_host_problem(host)
    if problem is not None:
        raise ValueError(problem)
    return host


#: A BGP endpoint: a unicast IPv4 or IPv6 address, returned in canonical form.
PeerHost = Annotated[str, AfterValidator(_check_peer_host), Field(json_schema_extra=IP_SHAPE)]


def _check_router_id(text: str) -> str:
    rid = addresses.parse_host(text, family=4)
    if rid in ("0.0.0.0", "255.255.255.255"):
        raise ValueError(
            "must be a non-zero IPv4 address other than 255.255.255.255 (RFC 6286); "
            "leave routerID unset to use the node's address"
        )
    return rid


#: A BGP identifier (RFC 6286): a dotted IPv4 address, neither 0.0.0.0 nor 255.255.255.255.
RouterID = Annotated[
    str,
    AfterValidator(_check_router_id),
    Field(json_schema_extra={"pattern": r"^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$"}),
]


# --- interface names ---------------------------------------------------------------------

#: Linux's IFNAMSIZ is 16 bytes with the terminating NUL.
IFNAME_MAX = 15


def check_interface_name(name: str) -> str:
    """A name Linux accepts for a network interface (the kernel's ``dev_valid_name``)."""
    if not name:
        problem = "must not be empty"
    elif len(name.encode()) > IFNAME_MAX:
        problem = f"is {len(name.encode())} bytes long; Linux allows at most {IFNAME_MAX}"
    elif name in (".", ".."):
        problem = "is a path component, not an interface name"
    elif any(c in "/:" or c.isspace() or ord(c) < 32 for c in name):
        problem = "contains '/', ':', whitespace or a control character"
    else:
        return name
    return _bad_interface(problem)


def _bad_interface(problem: str) -> str:
    raise ValueError(
        f"{problem}; an interface name is 1-{IFNAME_MAX} bytes without '/', ':' or whitespace, "
        "and not '.' or '..' (eth0, bond0, ens1f0.100)"
    )


#: A Linux interface name, as ``ip link`` shows it.
InterfaceName = Annotated[
    str,
    AfterValidator(check_interface_name),
    Field(json_schema_extra={"pattern": r"^[^/:\s]+$", "minLength": 1, "maxLength": IFNAME_MAX}),
]


# --- communities -----------------------------------------------------------------------


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
