"""BfdProfile: the component for a BFDProfile, BFD timers that BgpPeers name in ``bfd_profile``.

Follows :mod:`ironlb.components.resources`: the args are validated through the shared schema
*before* registering (so ``echo_mode: true`` or a 5 ms interval fails ``pulumi preview``
with the schema's message), then one ``ironlb.io/v1alpha1`` BFDProfile is emitted as the
only child.  Pass the agent's CRDs in ``opts.depends_on``.

No ``from __future__ import annotations`` here: the Analyzer reads the annotations.
"""

from typing import TypedDict

import pulumi

from ironlb import model
from ironlb.bfd import BFDProfileSpec
from ironlb.components.args import to_spec
from ironlb.components.base import DEFAULT_NAMESPACE, child_resource, token, validate


class BfdProfileArgs(TypedDict, total=False):
    """BFD timers for the sessions of every BgpPeer that names this profile."""

    receive_interval: int
    """Milliseconds: the shortest interval between BFD packets this node accepts (10-60000, default 300)."""
    transmit_interval: int
    """Milliseconds: the shortest interval at which this node wants to send (10-60000, default 300)."""
    detect_multiplier: int
    """Packets that may be lost before the session is declared down (2-255, default 3)."""
    echo_mode: bool
    """BFD echo function; the speaker has none, so only false is accepted."""
    passive_mode: bool
    """Wait for the router to start the BFD session."""
    minimum_ttl: int
    """Lowest TTL accepted on incoming packets (1-254); not usable by multihop peers."""
    namespace: str
    """Namespace of the IronLB installation."""


class BfdProfile(pulumi.ComponentResource):
    """A BFDProfile: how fast BGP sessions that use it notice a dead peer."""

    profile_name: pulumi.Output[str]
    """The BFDProfile's metadata.name (what a BgpPeer's bfd_profile names)."""
    detect_ms: pulumi.Output[int]
    """Worst-case detection time this node asks of the router: multiplier x transmit interval."""

    def __init__(self, name: str, args: BfdProfileArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        spec = {k: v for k, v in dict(args).items() if k != "namespace"}
        res = validate(model.BFDProfile, name, to_spec(BFDProfileSpec, spec))
        super().__init__(token("BfdProfile"), name, {}, opts)
        self.resource = res
        self.cr = child_resource(
            self, name, model.BFDProfile, res, args.get("namespace", DEFAULT_NAMESPACE), opts
        )
        self.profile_name = pulumi.Output.from_input(res.name)
        self.detect_ms = pulumi.Output.from_input(res.spec.detect_ms())
        self.register_outputs({"profile_name": self.profile_name, "detect_ms": self.detect_ms})
