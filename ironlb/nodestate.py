"""NodeState: what one node's speaker reports about itself (``ironlb.io/v1alpha1``, cluster-scoped).

One object per node, named after the node, written only by that node's speaker, and only
when something changed (no heartbeats: the steady state costs no API writes).  Its status
says what the node announces (address, mode, state, why, for which Services), its BGP
sessions, and the foreign hosts found holding one of our addresses on the LAN.  The
controller reads every NodeState to publish, per Service, who announces each address
(annotation ``ironlb.io/announcements`` and condition ``ironlb.io/Announced``) and to sum
BGP sessions into each BGPPeer's status; ``kubectl get nodestates`` shows conflicts
cluster-wide, not only on the node that saw them.

NodeState is not configuration: it is not in :data:`ironlb.model.RESOURCE_KINDS` (``parse``
never reads it), only its CRD is installed with the others (``ironlb.crds``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ironlb.model import Condition, Model, Resource


class NodeStateSpec(Model):
    """Nothing to configure: the object's name is the node's name; the speaker fills in status."""


class AnnouncedAddress(Model):
    """One address this node announces, or is about to."""

    ip: str = Field(max_length=45)
    mode: Literal["layer2", "bgp"]
    state: str = Field(
        default="", max_length=32, description="announcing, probing, conflict, no-interface ..."
    )
    reason: str = Field(default="", max_length=1024, description="Why this node (the planner's reason).")
    services: tuple[str, ...] = Field(default=(), description="namespace/name of the Services using it.")
    since: str | None = Field(default=None, description="RFC 3339 time of the last state change.")


class SessionState(Model):
    """One BGP session from this node."""

    peer: str = Field(description="BGPPeer name.")
    state: str = Field(default="", max_length=32)
    prefixes: int = Field(default=0, ge=0, description="Prefixes announced on the session.")
    error: str = Field(
        default="", max_length=1024, description="Why the session is not running, if it is not."
    )


class AddressConflict(Model):
    """A foreign host answering for one of our addresses (RFC 5227 conflict)."""

    ip: str = Field(max_length=45)
    mac: str = Field(default="", max_length=17, description="The foreign host's MAC address.")
    interface: str = Field(default="", max_length=15)
    state: str = Field(
        default="",
        max_length=16,
        description="refused (this node does not announce the address) or defending (it keeps it, RFC 5227).",
    )
    since: str | None = Field(default=None, description="RFC 3339 time it was first seen.")


class NodeStateStatus(Model):
    """This node's announcements, BGP sessions and address conflicts."""

    announcements: tuple[AnnouncedAddress, ...] = ()
    sessions: tuple[SessionState, ...] = ()
    conflicts: tuple[AddressConflict, ...] = ()
    omitted: int = Field(default=0, ge=0, description="Announcements left out of the list (size limit).")
    announcing: int = Field(default=0, ge=0, description="Addresses in state announcing.")
    sessionsEstablished: int = Field(default=0, ge=0)
    conflictCount: int = Field(default=0, ge=0)
    conditions: tuple[Condition, ...] = ()


class NodeState(Resource):
    KIND = "NodeState"
    PLURAL = "nodestates"
    STATUS = NodeStateStatus
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ilbnode",)
    kind: Literal["NodeState"] = "NodeState"
    spec: NodeStateSpec = Field(default_factory=NodeStateSpec)


#: Kinds the agents report on (CRDs installed, never parsed as configuration).
REPORT_KINDS: tuple[type[Resource], ...] = (NodeState,)
