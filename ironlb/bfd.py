"""BFDProfile: how fast a BGP session notices that its peer is gone (RFC 5880/5881/5883).

A ``BFDProfile`` (``ironlb.io/v1alpha1``, cluster-scoped) holds the BFD timers that
MetalLB's profile has; a BGPPeer names one in ``bfdProfile`` and its sessions then run
BFD.  Without BFD a node that loses power or link keeps its routes at the router for the
BGP hold time (3 s at the very least); with the default profile the router drops them
within 3 x 300 ms.

What the speaker (BIRD 2) can do decides what a profile may say, and a profile that
asks for more is refused here, with a reason, rather than silently ignored:

- ``echoMode``: BIRD has no BFD echo function; only ``false`` is accepted.
- ``minimumTtl``: single-hop sessions (RFC 5881) always send and require TTL 255, which
  is stricter than any minimum, so the field is accepted for them.  BIRD checks no TTL on
  multihop sessions (RFC 5883), so a BGPPeer with ``ebgpMultiHop: true`` cannot use a
  profile that sets it (:func:`ironlb.validation.bgp.bfd_references`).

The resource class itself is ``ironlb.model.BFDProfile`` (registered with the other
kinds); this module owns its spec and its rules.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ironlb.fields import Model


class BFDProfileSpec(Model):
    """BFD timers for the BGP sessions of every BGPPeer that names this profile."""

    receiveInterval: int = Field(
        default=300,
        ge=10,
        le=60000,
        description="Milliseconds: the shortest interval between BFD packets this node accepts (10-60000).",
    )
    transmitInterval: int = Field(
        default=300,
        ge=10,
        le=60000,
        description="Milliseconds: the shortest interval at which this node wants to send (10-60000).",
    )
    detectMultiplier: int = Field(
        default=3,
        ge=2,
        le=255,
        description="Packets that may be lost before the session is down: detection takes this many "
        "times the agreed interval (2-255).",
    )
    echoMode: bool = Field(
        default=False, description="BFD echo function; not supported by the speaker, must be false."
    )
    passiveMode: bool = Field(
        default=False, description="Wait for the router to start the BFD session instead of starting it."
    )
    minimumTtl: int | None = Field(
        default=None,
        ge=1,
        le=254,
        description="Multihop only: the lowest TTL accepted on incoming BFD packets (1-254). Single-hop "
        "sessions always require 255; multihop peers cannot use it (the speaker cannot check it).",
    )

    @field_validator("echoMode")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "must be false: the BGP speaker (BIRD 2) implements no BFD echo function; "
                "shorten receiveInterval/transmitInterval for faster detection instead"
            )
        return value

    def detect_ms(self) -> int:
        """Worst-case detection time this node asks of the router, in milliseconds."""
        return self.detectMultiplier * self.transmitInterval
