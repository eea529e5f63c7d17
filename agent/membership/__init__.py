"""Membership and failure detection: which agents are alive, within about a tenth of a second.

Signed UDP heartbeats on fast lanes (each node to a few watchers) and slow lanes (to
everyone else, within a hard per-node packet budget), obituaries from watchers, one-hop
indirect evidence, a graceful LEAVE, a source filter and a grab-all guard for a hostile
LAN, and key rotation without a split.  The design, the figures and the split-brain
behaviour are in docs/decisions/0030-membership.md.

- :mod:`ironlb.agent.membership.settings` -- settings, the traffic bound, the key files, addresses;
- :mod:`ironlb.agent.membership.wire` -- the signed datagram format and the keyring;
- :mod:`ironlb.agent.membership.rules` -- one peer's record and the small pure rules;
- :mod:`ironlb.agent.membership.core` -- the pure state machine (time is an argument): verdicts;
- :mod:`ironlb.agent.membership.schedule` -- its sending half: lanes, the tick grid, promises;
- :mod:`ironlb.agent.membership.node` -- the UDP shell (its own thread), :class:`Membership`.
"""

from ironlb.agent.membership.node import Membership
from ironlb.agent.membership.settings import MembershipSettings, load_key, load_keys
from ironlb.agent.membership.wire import Keyring

__all__ = ["Keyring", "Membership", "MembershipSettings", "load_key", "load_keys"]
