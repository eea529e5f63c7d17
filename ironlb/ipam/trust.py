"""The trust check: which of the addresses recorded for a Service the config really allows.

A Service's addresses are read back from ``status.loadBalancer.ingress``, which only the
controller can write; annotations are tenant-writable and never trusted.  Even status is
re-checked against the config before anything is announced or rebuilt from it, the way
MetalLB's speaker does: the config may have changed since, and a bug or a stale write
must not put an address on the wire that no pool allows.  Agents (before announcing) and
the controller (when it rebuilds after a restart) call the same :class:`TrustCheck`.

An address passes when, in this order:

1. it parses as an address;
2. a pool holds it (``NoPool``);
3. the Service may use that pool: the same :func:`~ironlb.ipam.rules.pool_refusal` the
   allocator applies (``OtherTenant``, ``NoTenant``, ``Forbidden``);
4. the pool would ever hand it out (``Reserved``: the IPv6 subnet-router anycast);
5. no Service accepted before it holds it, unless the two may share it
   (``Conflict``): the caller passes what it has accepted so far, so precedence is the
   caller's order, and a forged claim can never displace an accepted Service;
6. it is of a family the Service requests, and the first of its family (``WrongFamily``).

What the tenant wrote (annotations, labels, the requested pool) only ever narrows what
passes: the requested pool and pinned addresses are *not* required to match, because a
mismatch is not a security problem (the controller will move the address), while the
pool's tenant and serviceAllocation always are.

Built once per Config (an index of pool spans, and a cache of pool verdicts per namespace
and labels), :meth:`TrustCheck.check` costs a parse, a bisect and a few dict lookups per
address: the hot path for 10k Services never re-reads the whole config.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ironlb import addresses
from ironlb.checked import Config
from ironlb.ipam.rules import Refusal, can_share, pool_refusal
from ironlb.ipam.space import PoolIndex, never_handed_out
from ironlb.service import AssignedIP, Assignment, ServiceRequest

#: canonical address text -> the assignments already accepted that hold it.
Accepted = Mapping[str, Collection[Assignment]]
_NONE: Accepted = MappingProxyType({})


@dataclass(frozen=True)
class Rejected:
    """One recorded address that did not pass, with a reason word and a sentence."""

    ip: str
    #: Invalid, NotOurs, NoPool, OtherTenant, NoTenant, Forbidden, Reserved, Conflict or WrongFamily
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.ip} {self.message}"


@dataclass(frozen=True)
class Verdict:
    """What passed (each address with its pool, in recorded order) and what did not."""

    service: str
    accepted: tuple[AssignedIP, ...]
    rejected: tuple[Rejected, ...]

    def assignment(self, request: ServiceRequest) -> Assignment | None:
        """The accepted addresses as the Service's Assignment (None when nothing passed)."""
        return Assignment.for_request(request, self.accepted) if self.accepted else None


class TrustCheck:
    """Re-checks recorded addresses against one Config (build one per Config, reuse it)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._index = PoolIndex(config.pools)
        self._verdicts: dict[tuple[str, str, tuple[tuple[str, str], ...]], Refusal | None] = {}

    def check(self, request: ServiceRequest, recorded: Iterable[str], accepted: Accepted = _NONE) -> Verdict:
        """Which of ``recorded`` (address texts from status) ``request``'s Service may hold.

        ``accepted``: addresses already accepted for other Services (canonical text ->
        their assignments); an address held there is refused unless the two may share it.
        """
        good: list[AssignedIP] = []
        bad: list[Rejected] = []
        seen: set[str] = set()
        wanted = request.wanted_families()
        for text in recorded:
            try:
                addr = addresses.parse_ip(str(text))
            except ValueError:
                bad.append(Rejected(str(text).strip(), "Invalid", "is not an IP address"))
                continue
            ip = str(addr)
            if ip in seen:
                continue
            seen.add(ip)
            if request.foreign:
                bad.append(
                    Rejected(ip, "NotOurs", f'belongs to loadBalancerClass "{request.load_balancer_class}"')
                )
                continue
            family, value = addr.version, int(addr)
            problem = self._problem(request, ip, family, value, accepted)
            if isinstance(problem, Rejected):
                bad.append(problem)
            elif family not in wanted:
                bad.append(
                    Rejected(ip, "WrongFamily", f"is IPv{family}, a family the Service does not request")
                )
            elif any(a.family == family for a in good):
                bad.append(
                    Rejected(
                        ip, "WrongFamily", f"is a second IPv{family} address; a Service holds one per family"
                    )
                )
            else:
                good.append(AssignedIP(ip, problem))
        return Verdict(request.key, tuple(good), tuple(bad))

    def check_all(self, items: Iterable[tuple[ServiceRequest, Iterable[str]]]) -> dict[str, Verdict]:
        """Check every (request, recorded) pair; earlier pairs take precedence over later ones."""
        accepted: dict[str, list[Assignment]] = {}
        out: dict[str, Verdict] = {}
        for request, recorded in items:
            verdict = self.check(request, recorded, accepted)
            out[request.key] = verdict
            held = verdict.assignment(request)
            if held is not None:
                for ip in held.addresses:
                    accepted.setdefault(ip, []).append(held)
        return out

    def _problem(
        self, request: ServiceRequest, ip: str, family: int, value: int, accepted: Accepted
    ) -> Rejected | str:
        """The Rejected for one parsed address, or the name of the pool that allows it."""
        pool = self._index.pool_at(family, value)
        if pool is None:
            return Rejected(ip, "NoPool", "is in no IPPool")
        refusal = self._refusal(request, pool)
        if refusal is not None:
            return Rejected(
                ip, refusal.reason, f'is in IPPool "{pool}", which this Service may not use: {refusal}'
            )
        reserved = never_handed_out(self._config.pools[pool], family, value)
        if reserved is not None:
            return Rejected(ip, "Reserved", reserved)
        for other in accepted.get(ip, ()):
            if other.service == request.key:
                continue
            why = can_share(request, other)
            if why is not None:
                return Rejected(
                    ip, "Conflict", f'is held by Service "{other.service}" and cannot be shared: {why}'
                )
        return pool

    def _refusal(self, request: ServiceRequest, pool: str) -> Refusal | None:
        info = self._config.pools[pool]
        by_labels = info.pool.spec.serviceAllocation.serviceSelector is not None
        key = (pool, request.namespace, tuple(sorted(request.labels.items())) if by_labels else ())
        if key not in self._verdicts:
            self._verdicts[key] = pool_refusal(self._config, request, info)
        return self._verdicts[key]
