"""Membership and failure detection: which agents are alive, within a fraction of a second.

A direct UDP heartbeat mesh with one-hop indirect evidence, HMAC-SHA256 authenticated,
with a graceful LEAVE and a hard per-node packet budget.  The design, the figures and the
split-brain behaviour are in docs/decisions/0030-membership.md.

- :mod:`agent.membership.settings` -- settings, the traffic bound, the key file, addresses;
- :mod:`agent.membership.wire` -- the signed datagram format;
- :mod:`agent.membership.core` -- the pure state machine (time is an argument);
- :mod:`agent.membership.node` -- the asyncio UDP shell, :class:`Membership`.
"""

from agent.membership.node import Membership
from agent.membership.settings import MembershipSettings, load_key

__all__ = ["Membership", "MembershipSettings", "load_key"]
