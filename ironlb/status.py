"""Status of IronLB's custom resources: what the controller and the agents write, never input.

Each resource in ``ironlb.model`` names its status model (``Resource.STATUS``); the CRD
generator (``ironlb.crds``) turns these into the status subresource schemas.  Nothing
here is read back as configuration: ``ironlb.config.parse`` ignores status.

Re-exported by ``ironlb.model``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ironlb.fields import Model


class Condition(Model):
    """A Kubernetes-style condition (type Ready / Conflicting / QuotaExceeded ...)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    lastTransitionTime: str | None = Field(default=None, description="RFC 3339 time.")


class IPPoolStatus(Model):
    """Addresses in use and free, per family (free: what allocation can still hand out).

    Counts above 2**53 - 1 (any IPv6 pool of /75 or larger) are written as 2**53 - 1, the
    largest integer JSON carries exactly; ``ironlb plan`` shows exact sizes.
    """

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


class ValidityStatus(Model):
    """Whether the object is valid (condition Valid), as the controller last saw it."""

    conditions: tuple[Condition, ...] = ()
