"""Flood a LAN with malformed ARP and NDP frames (robustness tests; lab namespaces only).

Run inside a lab namespace: ``python -m lab.flood --dev eth0 --count 100000 --vip6 fd77::c8``.
Frames: truncated ARP, wrong hardware/protocol types and lengths, unknown opcodes, random
bytes under the ARP ethertype, and IPv6 NS/NA with valid checksums but garbage bodies
(bad option lengths, truncated targets, multicast targets, random options), addressed to
the VIP's solicited-node group so they reach the agent's raw socket.  Prints
``sent=<n> seconds=<t>``.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import socket
import struct
import time

from agent.l2 import packets as pk


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


if __name__ == "__main__":
    main()
