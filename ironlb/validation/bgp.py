"""Rules about BGP and advertisements: ASNs, router IDs, references, aggregation lengths."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import netaddr

from ironlb.checked import Config
from ironlb.errors import Issue
from ironlb.model import BGPAdvertisement, L2Advertisement

#: ASNs that are reserved or documentation-only (RFC 7607, 6793, 5398, 7300, 4893).
RESERVED_ASNS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "reserved (RFC 7607)"),
    (23456, 23456, "AS_TRANS (RFC 6793)"),
    (64496, 64511, "reserved for documentation (RFC 5398)"),
    (65535, 65535, "reserved (RFC 7300)"),
    (65536, 65551, "reserved for documentation (RFC 5398)"),
    (65552, 131071, "reserved (IANA)"),
    (4294967295, 4294967295, "reserved (RFC 7300)"),
)


def reserved_asns(config: Config) -> Iterable[Issue]:
    for name, peer in sorted(config.peers.items()):
        for field in ("myASN", "peerASN"):
            asn = getattr(peer.spec, field)
            for low, high, why in RESERVED_ASNS:
                if low <= asn <= high:
                    yield Issue(
                        "BGPPeer",
                        name,
                        field,
                        asn,
                        f"is {why}; use a private ASN (64512-65534 or 4200000000-4294967294) or one you own",
                        warning=True,
                    )


def router_ids(config: Config) -> Iterable[Issue]:
    """A router ID must not be a peer's address, nor be shared by peers selecting other nodes."""
    peer_addresses = {p.spec.peerAddress: n for n, p in config.peers.items()}
    by_id: dict[str, list[str]] = defaultdict(list)
    for name, peer in sorted(config.peers.items()):
        rid = peer.spec.routerID
        if rid is None:
            continue
        if rid in peer_addresses:
            yield Issue(
                "BGPPeer",
                name,
                "routerID",
                rid,
                f'equals the peerAddress of BGPPeer "{peer_addresses[rid]}"; the router would see '
                "its own identifier and refuse the session",
            )
        by_id[rid].append(name)
    for rid, names in by_id.items():
        first = config.peers[names[0]]
        for other in names[1:]:
            peer = config.peers[other]
            if peer.spec.nodeSelector != first.spec.nodeSelector or peer.spec.myASN != first.spec.myASN:
                yield Issue(
                    "BGPPeer",
                    other,
                    "routerID",
                    rid,
                    f'is also the routerID of BGPPeer "{names[0]}" for other nodes or another myASN; '
                    "each BGP speaker needs its own router ID (leave routerID unset to use the node's)",
                )


def advertisement_references(config: Config) -> Iterable[Issue]:
    """Advertisements name existing pools, peers and community aliases; selectors match something."""
    adverts: list[tuple[str, str, L2Advertisement | BGPAdvertisement]] = [
        *(("L2Advertisement", n, a) for n, a in sorted(config.l2_advertisements.items())),
        *(("BGPAdvertisement", n, a) for n, a in sorted(config.bgp_advertisements.items())),
    ]
    pools = ", ".join(sorted(config.pools)) or "none defined"
    for kind, name, adv in adverts:
        for i, pname in enumerate(adv.spec.ipPools):
            if pname not in config.pools:
                yield Issue(
                    kind, name, f"ipPools[{i}]", pname, f'no IPPool named "{pname}" (known pools: {pools})'
                )
        sel = adv.spec.ipPoolSelector
        if sel is not None and not any(
            sel.matches(dict(p.pool.metadata.labels)) for p in config.pools.values()
        ):
            yield Issue(
                kind,
                name,
                "ipPoolSelector",
                None,
                "matches no IPPool's labels, so it announces nothing",
                warning=True,
            )
    for name, adv in sorted(config.bgp_advertisements.items()):
        peers = ", ".join(sorted(config.peers)) or "none defined"
        for i, pname in enumerate(adv.spec.peers):
            if pname not in config.peers:
                yield Issue(
                    "BGPAdvertisement",
                    name,
                    f"peers[{i}]",
                    pname,
                    f'no BGPPeer named "{pname}" (known peers: {peers})',
                )
        for i, community in enumerate(adv.spec.communities):
            if (
                community[:1].isalpha()
                and not community.startswith("large:")
                and community not in config.communities
            ):
                aliases = ", ".join(sorted(config.communities)) or "none defined"
                yield Issue(
                    "BGPAdvertisement",
                    name,
                    f"communities[{i}]",
                    community,
                    f"is not a literal community and no Community defines this alias (aliases: {aliases})",
                )


def aggregation_lengths(config: Config) -> Iterable[Issue]:
    """An aggregate must stay inside the pool its address came from (never cover other pools).

    For every pool an advertisement selects, the aggregation length of each family must be
    at least the prefix length of the most specific CIDR the pool's entries break into
    (``10.0.0.0/24`` allows 24-32; ``10.0.0.10-10.0.0.20`` only 31-32).
    """
    for name, adv in sorted(config.bgp_advertisements.items()):
        for family, field, length in (
            (4, "aggregationLength", adv.spec.aggregationLength),
            (6, "aggregationLengthV6", adv.spec.aggregationLengthV6),
        ):
            top = 32 if family == 4 else 128
            if length == top:
                continue
            for pool in config.selected_pools(adv):
                info = config.pools[pool]
                worst = _most_specific(info.pool.spec.addresses, info.ranges, family)
                if worst is not None and worst[0] > length:
                    prefix, text = worst
                    use = f"{prefix}-{top}" if prefix < top else str(top)
                    yield Issue(
                        "BGPAdvertisement",
                        name,
                        field,
                        length,
                        f'is shorter than /{prefix}, the most specific block of IPPool "{pool}" '
                        f'("{text}"): its aggregate would announce addresses outside the pool; use {use}',
                    )
                    break


def _most_specific(
    texts: Iterable[str], ranges: Iterable[netaddr.IPRange], family: int
) -> tuple[int, str] | None:
    """(longest prefix among the CIDRs the entries of ``family`` break into, that entry's text)."""
    worst: tuple[int, str] | None = None
    for text, block in zip(texts, ranges, strict=True):
        if block.version != family:
            continue
        longest = max(c.prefixlen for c in block.cidrs())
        if worst is None or longest > worst[0]:
            worst = (longest, text)
    return worst


def bfd_references(config: Config) -> Iterable[Issue]:
    """A BGPPeer's ``bfdProfile`` must exist, and fit the session (no minimumTtl on multihop)."""
    for name, peer in sorted(config.peers.items()):
        ref = peer.spec.bfdProfile
        if ref is None:
            continue
        profile = config.bfd_profiles.get(ref)
        if profile is None:
            known = ", ".join(sorted(config.bfd_profiles)) or "none defined"
            yield Issue("BGPPeer", name, "bfdProfile", ref, f"names no BFDProfile (known: {known})")
        elif peer.spec.ebgpMultiHop and profile.spec.minimumTtl is not None:
            yield Issue(
                "BGPPeer",
                name,
                "bfdProfile",
                ref,
                f"sets minimumTtl {profile.spec.minimumTtl}, which the speaker cannot enforce on "
                "multihop BFD (ebgpMultiHop: true); use a profile without minimumTtl for this peer",
            )
