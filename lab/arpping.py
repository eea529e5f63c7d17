"""ARP measurements from inside a lab namespace (bench/l2_scale.py).

``python -m lab.arpping latency DEV N IP_A IP_B``: send N ARP requests for each of two
addresses, interleaved, and print the reply latencies' p50 in microseconds as JSON:
``{"IP_A": p50, "IP_B": p50, "lost": n}``.

``python -m lab.arpping garps DEV PREFIX COUNT TIMEOUT``: print ``ready``, then count
gratuitous ARPs whose address starts with PREFIX until COUNT distinct addresses were seen;
print JSON ``{"seen": n, "span_ms": first-to-last arrival}``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import statistics
import sys
import time

from agent.l2 import packets as pk


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


def main() -> None:
    mode, dev = sys.argv[1], sys.argv[2]
    if mode == "latency":
        print(json.dumps(latency(dev, int(sys.argv[3]), sys.argv[4:])))
    else:
        print(json.dumps(garps(dev, sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))))


if __name__ == "__main__":
    main()
