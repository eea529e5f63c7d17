"""ARP/NDP tools run inside a lab namespace: measurements, and the hostile host's packets.

``python -m lab.arpping latency DEV N IP_A IP_B``: send N ARP requests for each of two
addresses, interleaved, and print JSON ``{"IP_A": p50_us, "IP_B": p50_us, "lost": n,
"IP_A_p99": us, "IP_A_max": us, ...}`` (bench/l2_scale.py, decision 0021's probe window).

``python -m lab.arpping garps DEV PREFIX COUNT TIMEOUT``: print ``ready``, then count
gratuitous ARPs whose address starts with PREFIX until COUNT distinct addresses were seen;
print JSON ``{"seen": n, "span_ms": first-to-last arrival}``.

``python -m lab.arpping claim DEV IP [--count N] [--interval S] [--mac MAC]``: claim IP as a
foreign host would: gratuitous ARP (both forms) for IPv4, an unsolicited NA (override
flag, to ff02::1, sourced from IP) for IPv6; from DEV's MAC unless ``--mac`` is given.
From a test: :func:`claim_from` runs it in a lab host, and :func:`hold` gives a lab host an
address (its kernel then answers for it, as a misconfigured host's would).

``python -m lab.arpping spoof DEV COUNT --sender IP [--sender IP ...] [--dst MAC] [--target IP]``:
COUNT ARP requests (for ``--target``, default 10.77.0.1) whose sender address is one of
the ``--sender`` addresses (e.g. the other nodes') and whose sender MAC is random -- the
attack that used to fill the agent's peer-MAC table.  The Ethernet source stays DEV's own
MAC (a random one per frame would fill the lab bridge's forwarding table, which is the
switch's problem, not the agent's).
Prints ``sent=<n> seconds=<t> first_mac=<the first random MAC>``.

``python -m lab.arpping watch DEV SECONDS IP [IP ...] [--interval S]``: for SECONDS, ask
who has each IP every S seconds (an ARP request for IPv4, a Neighbour Solicitation to the
solicited-node group for IPv6) and capture every frame on DEV that says one of them is at
some MAC: ARP requests and replies (gratuitous ones included) whose sender address is the
IP, and NAs whose target is the IP.  Prints ``ready`` once capturing, then one JSON line
``{IP: {MAC: [first seen, last seen (s after ready), frames]}}``: what "answered or
announced" each address, actively asked and passively heard, over the whole window.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from ironlb.agent.l2 import packets as pk

if TYPE_CHECKING:
    from lab.netns import Lab


def _sock(dev: str) -> tuple[socket.socket, bytes]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(pk.ETH_P_ARP))
    sock.bind((dev, pk.ETH_P_ARP))
    return sock, sock.getsockname()[4]


def latency(dev: str, n: int, ips: list[str]) -> dict[str, float]:
    sock, mac = _sock(dev)
    src = pk.ip_bytes("10.78.255.254")
    samples: dict[str, list[float]] = {ip: [] for ip in ips}
    lost = 0
    for i in range(n * len(ips)):
        ip = ips[i % len(ips)]
        target = pk.ip_bytes(ip)
        sock.settimeout(0.5)
        start = time.perf_counter()
        sock.send(pk.arp_request(mac, src, target))
        while True:
            try:
                data = sock.recv(256)
            except TimeoutError:
                lost += 1
                break
            arp = pk.parse_arp_frame(data)
            if arp is not None and arp.op == pk.ARP_REPLY and arp.spa == target and arp.tha == mac:
                samples[ip].append((time.perf_counter() - start) * 1e6)
                break
        time.sleep(0.002)
    out: dict[str, float] = {ip: statistics.median(v) if v else -1.0 for ip, v in samples.items()}
    for ip, v in samples.items():
        ordered = sorted(v) or [-1.0]
        out[f"{ip}_p99"] = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        out[f"{ip}_max"] = ordered[-1]
    out["lost"] = lost
    return out


def garps(dev: str, prefix: str, count: int, timeout: float) -> dict[str, float]:
    sock, _ = _sock(dev)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.settimeout(0.2)
    seen: set[bytes] = set()
    first = last = 0.0
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        try:
            data = sock.recv(256)
        except TimeoutError:
            continue
        arp = pk.parse_arp_frame(data)
        if arp is None or arp.spa != arp.tpa or not str(ipaddress.ip_address(arp.spa)).startswith(prefix):
            continue
        now = time.monotonic()
        if not seen:
            first = now
        if arp.spa not in seen:
            seen.add(arp.spa)
            last = now
    return {"seen": len(seen), "span_ms": (last - first) * 1000}


def claim(dev: str, ip: str, count: int, interval: float, mac_text: str | None) -> None:
    """Say ``ip`` is at our MAC (or ``mac_text``), ``count`` times."""
    addr = ipaddress.ip_address(ip)
    for i in range(count):
        if i:
            time.sleep(interval)
        if addr.version == 4:
            sock, own = _sock(dev)
            mac = pk.mac_bytes(mac_text) if mac_text else own
            frames = (pk.garp_request(mac, addr.packed), pk.garp_reply(mac, addr.packed))
            for frame in frames:
                sock.send(frame[:6] + own + frame[12:])  # Ethernet source: the device's own MAC
            sock.close()
        else:
            _claim6(dev, addr.packed, mac_text)


def _claim6(dev: str, target: bytes, mac_text: str | None) -> None:
    ifindex = socket.if_nametoindex(dev)
    if mac_text is None:
        with open(f"/sys/class/net/{dev}/address") as f:
            mac_text = f.read().strip()
    body = pk.neighbor_advert(pk.mac_bytes(mac_text), target, pk.NA_OVERRIDE)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND: source the NA from target
        pktinfo = target + struct.pack("@I", ifindex)
        sock.sendmsg(
            [body], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0, (pk.ALL_NODES, 0, 0, ifindex)
        )
    finally:
        sock.close()


def _unicast(mac: bytes) -> bytes:
    return bytes((mac[0] & 0xFE,)) + mac[1:]


def spoof(
    dev: str, count: int, senders: list[str], dst_mac: str | None, seed: int, target_ip: str = "10.77.0.1"
) -> str:
    rng = random.Random(seed)
    sock, own = _sock(dev)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    dst = pk.mac_bytes(dst_mac) if dst_mac else pk.BROADCAST
    spas = [pk.ip_bytes(s) for s in senders]
    target = pk.ip_bytes(target_ip)
    head = dst + own + struct.pack("!H", pk.ETH_P_ARP) + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
    macs = [_unicast(rng.randbytes(6)) for _ in range(min(count, 65536))]
    first = macs[0]
    start, sent = time.monotonic(), 0
    for i in range(count):
        sha = macs[i] if i < len(macs) else _unicast(rng.randbytes(6))
        frame = head + sha + spas[i % len(spas)] + pk.ZERO_MAC + target
        while True:
            try:
                sock.send(frame)
                sent += 1
                break
            except OSError:
                time.sleep(0.0005)  # queue full: back off briefly, then send it
    return f"sent={sent} seconds={time.monotonic() - start:.2f} first_mac={pk.mac_text(first)}"


ETH_P_ALL = 0x0003


def _ns_body(target: bytes, mac: bytes) -> bytes:
    """A Neighbour Solicitation for ``target`` with our source link-layer option (checksum: kernel)."""
    return struct.pack("!BBH4x16s", pk.ND_NS, 0, 0, target) + bytes((1, 1)) + mac


def _claimed(frame: bytes, watched: set[bytes]) -> tuple[bytes, bytes] | None:
    """(address, MAC) when ``frame`` says a watched address is at some MAC, else None."""
    arp = pk.parse_arp_frame(frame)
    if arp is not None:
        return (arp.spa, arp.sha) if arp.spa in watched else None
    if len(frame) < 14 + 40 + 24 or frame[12:14] != b"\x86\xdd" or frame[14 + 6] != 58:
        return None
    nd = pk.parse_nd(frame[54:])
    if nd is None or nd.type != pk.ND_NA or nd.target not in watched:
        return None
    return nd.target, nd.lladdr or frame[6:12]


def watch(dev: str, seconds: float, ips: list[str], interval: float) -> dict[str, dict[str, list[float]]]:
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.bind((dev, ETH_P_ALL))
    cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    cap.settimeout(0.02)
    arp, own = _sock(dev)
    ifindex = socket.if_nametoindex(dev)
    nd = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    nd.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    nd.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
    own_v4 = next((a for a in _addresses(dev) if ":" not in a), "0.0.0.0")
    packed = {ipaddress.ip_address(ip).packed: ip for ip in ips}
    seen: dict[str, dict[str, list[float]]] = {ip: {} for ip in ips}
    print("ready", flush=True)
    start = time.monotonic()
    next_ask = start
    while (now := time.monotonic()) - start < seconds:
        if now >= next_ask:
            next_ask = now + interval
            for raw in packed:
                if len(raw) == 4:
                    arp.send(pk.arp_request(own, pk.ip_bytes(own_v4), raw))
                else:
                    group = pk.ip_text(pk.solicited_node(raw))
                    with contextlib.suppress(OSError):
                        nd.sendto(_ns_body(raw, own), (group, 0, 0, ifindex))
        try:
            frame = cap.recv(2048)
        except TimeoutError:
            continue
        found = _claimed(frame, set(packed))
        if found is not None and found[1] != own:
            at = round(time.monotonic() - start, 3)
            row = seen[packed[found[0]]].setdefault(pk.mac_text(found[1]), [at, at, 0])
            row[1:] = [at, row[2] + 1]
    return seen


def _addresses(dev: str) -> list[str]:
    """``dev``'s addresses (``ip -j addr``), IPv4 first."""
    out = subprocess.run(["ip", "-j", "addr", "show", "dev", dev], capture_output=True, text=True, check=True)
    found = [a["local"] for link in json.loads(out.stdout) for a in link.get("addr_info", [])]
    return sorted(found, key=lambda a: ":" in a)


def hold(lab: Lab, host: str, ip: str, add: bool = True, dev: str = "eth0") -> None:
    """Give lab host ``host`` the address ``ip`` (or take it away, which is idempotent), as a
    misconfigured host would have it: the host's kernel then answers for it."""
    v6 = ":" in ip
    argv = [
        "ip",
        *(["-6"] if v6 else []),
        "addr",
        "add" if add else "del",
        f"{ip}/{64 if v6 else 24}",
        "dev",
        dev,
    ]
    lab.run(host, *argv, *(["nodad"] if v6 and add else []), check=add)


def claim_from(lab: Lab, host: str, ip: str, mac: str | None = None) -> None:
    """Run :func:`claim` once in lab host ``host``'s namespace (from its MAC, or ``mac``)."""
    extra = ["--mac", mac] if mac else []
    lab.run(host, sys.executable, "-m", "lab.arpping", "claim", "eth0", ip, *extra, timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("latency")
    p.add_argument("dev")
    p.add_argument("n", type=int)
    p.add_argument("ips", nargs="+")
    p = sub.add_parser("garps")
    p.add_argument("dev")
    p.add_argument("prefix")
    p.add_argument("count", type=int)
    p.add_argument("timeout", type=float)
    p = sub.add_parser("claim")
    p.add_argument("dev")
    p.add_argument("ip")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.2)
    p.add_argument("--mac")
    p = sub.add_parser("spoof")
    p.add_argument("dev")
    p.add_argument("count", type=int)
    p.add_argument("--sender", action="append", required=True)
    p.add_argument("--dst")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--target", default="10.77.0.1", help="the address the requests ask for")
    p = sub.add_parser("watch")
    p.add_argument("dev")
    p.add_argument("seconds", type=float)
    p.add_argument("ips", nargs="+")
    p.add_argument("--interval", type=float, default=0.25)
    args = parser.parse_args()
    if args.mode == "latency":
        print(json.dumps(latency(args.dev, args.n, args.ips)))
    elif args.mode == "garps":
        print(json.dumps(garps(args.dev, args.prefix, args.count, args.timeout)))
    elif args.mode == "claim":
        claim(args.dev, args.ip, args.count, args.interval, args.mac)
    elif args.mode == "watch":
        print(json.dumps(watch(args.dev, args.seconds, args.ips, args.interval)), flush=True)
    else:
        print(spoof(args.dev, args.count, args.sender, args.dst, args.seed, args.target), flush=True)


if __name__ == "__main__":
    main()
