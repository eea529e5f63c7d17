"""Flood a LAN with malformed ARP and NDP frames (robustness tests; lab namespaces only).

Run inside a lab namespace: ``python -m lab.flood --dev eth0 --count 100000 --vip6 fd77::c8``.
Frames: truncated ARP, wrong hardware/protocol types and lengths, unknown opcodes, random
bytes under the ARP ethertype, and IPv6 NS/NA with valid checksums but garbage bodies
(bad option lengths, truncated targets, multicast targets, random options), addressed to
the VIP's solicited-node group so they reach the agent's raw socket.  Prints
``sent=<n> seconds=<t>``.

``python -m lab.flood udp ...`` floods the membership UDP port instead (see
:data:`UDP_USAGE`): random payloads and badly signed heads, optionally from forged node
addresses.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable

from ironlb.agent.l2 import packets as pk
from lab.netns import Lab


def arp_garbage(rng: random.Random, mac: bytes) -> bytes:
    eth = pk.BROADCAST + mac + struct.pack("!H", pk.ETH_P_ARP)
    kind = rng.randrange(6)
    good = struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, rng.randbytes(4), b"\0" * 6, rng.randbytes(4)
    )
    if kind == 0:
        return eth + good[: rng.randrange(len(good))]  # truncated
    if kind == 1:
        return eth + struct.pack("!HH", rng.randrange(65536), rng.randrange(65536)) + good[4:]  # wrong types
    if kind == 2:
        return eth + good[:4] + bytes((rng.randrange(256), rng.randrange(256))) + good[6:]  # wrong lengths
    if kind == 3:
        return eth + good[:6] + struct.pack("!H", rng.choice((0, 3, 4, 0xFFFF))) + good[8:]  # bad opcode
    if kind == 4:
        return eth + rng.randbytes(rng.randrange(0, 80))  # random bytes
    return rng.randbytes(rng.randrange(0, 100))  # random frame (any ethertype)


def nd_garbage(rng: random.Random, mac: bytes, src: bytes, vip: bytes) -> bytes:
    group = pk.solicited_node(vip)
    kind = rng.randrange(5)
    typ = rng.choice((pk.ND_NS, pk.ND_NA))
    if kind == 0:
        body = bytes((typ, 0, 0, 0)) + rng.randbytes(rng.randrange(0, 24))  # truncated
    elif kind == 1:
        body = bytes((typ, 0, 0, 0)) + b"\0" * 4 + vip + bytes((1, 0)) + rng.randbytes(6)  # option length 0
    elif kind == 2:
        body = bytes((typ, 0, 0, 0)) + b"\0" * 4 + vip + bytes((1, 9)) + rng.randbytes(6)  # option overruns
    elif kind == 3:
        body = bytes((typ, rng.randrange(1, 256), 0, 0)) + b"\0" * 4 + vip  # bad code
    else:
        body = bytes((typ, 0, 0, 0)) + rng.randbytes(rng.randrange(20, 120))  # random body
    pseudo = src + group + struct.pack("!I3xB", len(body), 58)
    body = body[:2] + struct.pack("!H", pk.checksum(pseudo + body[:2] + b"\0\0" + body[4:])) + body[4:]
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(body), 58, 255, src, group)
    return b"\x33\x33" + group[12:] + mac + struct.pack("!H", pk.ETH_P_IPV6) + ip6 + body


def main() -> None:
    if sys.argv[1:2] == ["udp"]:  # the membership UDP flood (below)
        udp_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dev", default="eth0")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--vip6", default="fd77::c8")
    parser.add_argument("--src6", default="fd77::100")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((args.dev, 0))
    mac = sock.getsockname()[4]
    vip, src = ipaddress.ip_address(args.vip6).packed, ipaddress.ip_address(args.src6).packed
    start, sent = time.monotonic(), 0
    for i in range(args.count):
        frame = arp_garbage(rng, mac) if i % 2 else nd_garbage(rng, mac, src, vip)
        if len(frame) < 14:
            frame = frame.ljust(14, b"\0")
        try:
            sock.send(frame)
            sent += 1
        except OSError:
            time.sleep(0.001)  # queue full: back off briefly
    print(f"sent={sent} seconds={time.monotonic() - start:.2f}")


# -- membership UDP flood (hostile-LAN tests of agent.membership) ------------------------------
UDP_USAGE = """python -m lab.flood udp --target IP [--port 7947] [--rate 50000] [--seconds 10]
    [--spoof IP ... --src IP --dev eth0 --dst-mac MAC | --bind IP] [--key-id HEX]

Sends ``--rate`` datagrams per second to the membership port for ``--seconds``: half random
payloads (0-1400 bytes), half well-formed membership heads with a wrong HMAC tag (the key
id copied from ``--key-id``, as an attacker sniffing the LAN would, so the receiver must
compute an HMAC to refuse them).  Sources: ``--spoof`` addresses (raw Ethernet frames
with forged IPv4 sources, root; ``--dst-mac`` is the target's MAC), else ``--bind`` (a
local address, e.g. a peer's loopback address in tests), else the host's own address.
Prints one JSON line: {"sent": n, "seconds": t, "pps": r, "errors": e}."""


def udp_payloads(rng: random.Random, count: int, key_id: int | None) -> list[bytes]:
    """``count`` datagram payloads: random bytes, and membership heads with a bad tag."""
    out = []
    for i in range(count):
        if i % 2:
            out.append(rng.randbytes(rng.randrange(0, 1400)))
            continue
        kid = key_id if key_id is not None else rng.getrandbits(32)
        name = b"node%d" % rng.randrange(1, 4)
        head = struct.pack("!2sBBIB", b"IL", 2, 1, kid, len(name)) + name
        nums = struct.pack("!QQQQHH", rng.getrandbits(63), rng.getrandbits(32), 0, 0, 25, 0)
        out.append(head + nums + rng.randbytes(32))  # a tag that cannot match
    return out


def spoofed_frame(src_mac: bytes, dst_mac: bytes, src: str, dst: str, port: int, payload: bytes) -> bytes:
    """An Ethernet frame carrying one UDP datagram from a forged IPv4 source."""
    udp = struct.pack("!HHHH", port, port, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(udp),
        0,
        0x4000,
        64,
        17,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    ip = ip[:10] + struct.pack("!H", pk.checksum(ip)) + ip[12:]
    return dst_mac + src_mac + struct.pack("!H", 0x0800) + ip + udp


def udp_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m lab.flood udp", usage=UDP_USAGE)
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, default=7947)
    parser.add_argument("--rate", type=float, default=50_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--spoof", action="append", default=[], help="forged source IPv4 (repeat)")
    parser.add_argument("--dev", default="eth0")
    parser.add_argument("--dst-mac", help="the target's MAC (with --spoof)")
    parser.add_argument("--bind", help="a local source address")
    parser.add_argument("--src", help="with --spoof: our own address, the source of the random payloads")
    parser.add_argument("--key-id", help="the cluster's key id (hex), as sniffed from the LAN")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    payloads = udp_payloads(rng, 4096, int(args.key_id, 16) if args.key_id else None)
    send: Callable[[int], None]
    if args.spoof:
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        raw.bind((args.dev, 0))
        own, dst_mac = raw.getsockname()[4], bytes.fromhex((args.dst_mac or "ff" * 6).replace(":", ""))
        frames = []
        for i, p in enumerate(payloads):  # odd ones (random bytes) come from --src, our own address
            src = args.spoof[i // 2 % len(args.spoof)] if i % 2 == 0 else args.src or args.spoof[0]
            frames.append(spoofed_frame(own, dst_mac, src, args.target, args.port, p))

        def send(i: int) -> None:
            raw.send(frames[i % len(frames)])
    else:
        udp = socket.socket(socket.AF_INET6 if ":" in args.target else socket.AF_INET, socket.SOCK_DGRAM)
        if args.bind:
            udp.bind((args.bind, 0))
        dest = (args.target, args.port)

        def send(i: int) -> None:
            udp.sendto(payloads[i % len(payloads)], dest)

    start = time.monotonic()
    sent = errors = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= args.seconds:
            break
        due = int(elapsed * args.rate) - sent - errors
        for _ in range(min(due, 2000)):
            try:
                send(sent + errors)
                sent += 1
            except OSError:  # a full queue (ENOBUFS) or the target's ICMP: count and go on
                errors += 1
        if due <= 0:
            time.sleep(0.0005)
    seconds = time.monotonic() - start
    rate = round(sent / seconds)
    print(json.dumps({"sent": sent, "seconds": round(seconds, 3), "pps": rate, "errors": errors}))


def udp_flood_argv(target: str, *, port: int, rate: int, seconds: float, key_id: int) -> list[str]:
    """The command line of a ``udp`` flood at ``target``'s membership ``port``, forging heads
    signed as key ``key_id`` (add ``--bind``/``--spoof`` and the raw-socket options after it)."""
    return [
        sys.executable,
        "-m",
        "lab.flood",
        "udp",
        "--target",
        target,
        "--port",
        str(port),
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--key-id",
        f"{key_id:08x}",
    ]


def start_membership_flood(
    lab: Lab,
    target: str,
    *,
    key_id: int,
    seconds: float,
    rate: int = 50_000,
    name: str = "flood",
    source: str = "client",
    port: int = 7947,
) -> subprocess.Popen[bytes]:
    """From LAN host ``source``: flood ``target``'s membership port (random bytes from the
    source's own address, badly signed heads with ``key_id`` forged from every other node)."""
    argv = udp_flood_argv(lab.addr(target), port=port, rate=rate, seconds=seconds, key_id=key_id)
    argv += ["--dev", "eth0", "--dst-mac", lab.mac(target), "--src", lab.addr(source)]
    argv += [a for n in lab.nodes if n != target for a in ("--spoof", lab.addr(n))]
    return lab.spawn(source, argv, name=name)


def flood_result(lab: Lab, name: str = "flood") -> dict[str, float]:
    """The JSON line a finished ``udp`` flood printed."""
    return dict(json.loads(lab.log(name).strip().splitlines()[-1]))


def udp_drops(lab: Lab, host: str) -> int:
    """UDP datagrams the kernel of ``host`` dropped for want of socket receive buffer."""
    rows = [
        line.split()
        for line in lab.run(host, "cat", "/proc/net/snmp").stdout.splitlines()
        if line.startswith("Udp:")
    ]
    return int(rows[1][rows[0].index("RcvbufErrors")])


if __name__ == "__main__":
    main()
