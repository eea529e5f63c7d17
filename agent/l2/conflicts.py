"""Address conflicts on the LAN: the pure rules (no sockets, no clock; time is an argument).

Another host *claims* one of our addresses when a packet from a MAC that is not one of
this node's says it has or wants the address: an ARP packet with the address as sender,
an NA for it, an NS sourced from it, or -- while we probe -- an ARP probe / DAD NS for it.
No MAC is ever remembered as "trusted": a packet tells us nothing about who sent it, so
this module decides from *behaviour* over time (decision 0021, 0023):

- **Probe** (before every first announcement on this node, takeovers included): probe
  rounds run until one round passes with no claim -> announce.  A claimant still answering
  when the hand-over grace (``handover_grace``) has run out -> refuse: the address is held
  by someone else.  The grace is what lets the previous owner, a peer still answering
  for a few milliseconds after it replanned, hand over without being taken for a foreign
  host; a real host answers every probe and so is refused.
- **Refused** addresses are probed again after :func:`retry_delay` (1 s, doubling up to
  ``conflict_retry``), so an address freed by its holder is taken back quickly.
- **Defence** while announcing (RFC 5227 section 2.4 (c), a well-known stable address):
  we keep the address, answer a claim with one announcement at most every
  :data:`DEFEND_INTERVAL`, and report the conflict (state ``defending``) until no claim
  has been seen for ``clear_after`` seconds.

:class:`Guard` holds one address's bookkeeping; :class:`Conflict` is the record that
``status()`` publishes (``ip, interface, mac, first_seen, last_seen, state, claims``).
Every table here is bounded by the number of addresses, whatever the LAN sends.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum
from typing import Any

#: RFC 5227 DEFEND_INTERVAL: at most one defensive announcement per address this often.
DEFEND_INTERVAL = 10.0
#: First wait before a refused address is probed again (then doubling up to conflict_retry).
RETRY_FIRST = 1.0
#: Random spread of retry waits (+-), so two nodes that disagree do not retry in lockstep.
RETRY_JITTER = 0.1

REFUSED, DEFENDING = "refused", "defending"


class Verdict(Enum):
    """What a finished probe round means for the address."""

    ANNOUNCE = "announce"  # nobody claimed it during the round
    REFUSE = "refuse"  # still claimed when the hand-over grace ran out
    AGAIN = "again"  # claimed, but the previous owner may still be handing over: probe again


@dataclass
class Conflict:
    """A foreign host claiming one of our addresses (the published record)."""

    ip: str
    interface: str
    mac: str
    first_seen: float  # wall clock (Unix seconds)
    last_seen: float  # wall clock
    state: str  # REFUSED (we do not announce it) or DEFENDING (we announce and defend it)
    claims: int = 1
    last_claim: float = 0.0  # monotonic, for clearing
    next_probe: float | None = None  # wall clock of the next probe (refused only)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ip": self.ip,
            "interface": self.interface,
            "mac": self.mac,
            "first_seen": round(self.first_seen, 3),
            "last_seen": round(self.last_seen, 3),
            "state": self.state,
            "claims": self.claims,
            "next_probe": None if self.next_probe is None else round(self.next_probe, 3),
        }


@dataclass(frozen=True)
class Claim:
    """One claim seen during a probe round."""

    interface: str
    mac: str
    kind: str  # "arp", "probe", "na", "ns"


class Guard:
    """Conflict bookkeeping for one address."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.conflict: Conflict | None = None
        self.round_claim: Claim | None = None  # the last claim seen in the current probe round
        self.deadline = 0.0  # monotonic end of the hand-over grace of the current probe
        self.last_defence: float | None = None
        self.attempts = 0  # probes that ended refused, in a row

    # --- probing ----------------------------------------------------------------------------

    def start_probe(self, now: float, grace: float) -> None:
        """A probe begins; claims may persist for ``grace`` seconds before the address is refused."""
        self.deadline = now + grace
        self.round_claim = None

    def claimed_while_probing(self, claim: Claim) -> None:
        self.round_claim = claim

    def end_round(self, now: float, wall: float) -> Verdict:
        """A probe round ended (the listening window is over): announce, refuse or probe again."""
        claim, self.round_claim = self.round_claim, None
        if claim is None:
            self.conflict, self.attempts = None, 0
            return Verdict.ANNOUNCE
        if now < self.deadline:
            return Verdict.AGAIN
        self._record(claim, wall, now, REFUSED)
        self.attempts += 1
        return Verdict.REFUSE

    # --- announcing -------------------------------------------------------------------------

    def claimed_while_announcing(self, claim: Claim, now: float, wall: float) -> tuple[bool, bool]:
        """A claim against an address we announce: (defend now?, the record is new or changed state?)."""
        changed = self._record(claim, wall, now, DEFENDING)
        if self.last_defence is not None and now - self.last_defence < DEFEND_INTERVAL:
            return False, changed
        self.last_defence = now
        return True, changed

    def clear_if_quiet(self, now: float, quiet: float) -> bool:
        """Forget a ``defending`` conflict once no claim was seen for ``quiet`` seconds."""
        c = self.conflict
        if c is not None and c.state == DEFENDING and now - c.last_claim >= quiet:
            self.conflict = None
            return True
        return False

    # --- records ----------------------------------------------------------------------------

    def _record(self, claim: Claim, wall: float, now: float, state: str) -> bool:
        c = self.conflict
        if c is None:
            self.conflict = Conflict(self.ip, claim.interface, claim.mac, wall, wall, state, 1, now)
            return True
        changed = c.state != state
        c.interface, c.mac, c.last_seen, c.state, c.last_claim = claim.interface, claim.mac, wall, state, now
        c.claims += 1
        if changed:
            c.next_probe = None
        return changed


def retry_delay(attempts: int, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before a refused address is probed again: 1 s, 2 s, 4 s ... up to ``cap``, +-10 %."""
    base = min(cap, RETRY_FIRST * 2.0 ** max(0, min(attempts - 1, 20)))
    spread = float((rng or random).uniform(-RETRY_JITTER, RETRY_JITTER))
    return max(0.0, base * (1 + spread))
