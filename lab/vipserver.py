"""The lab's "who am I" server: accept TCP on every address (VIPs arrive via AnyIP) and
reply with this node's name, so a client can tell which node it reached.

Run: ``python -m lab.vipserver --name node1 --port 8080 [--port 443 ...]`` (one dual-stack
socket per port, each served by its own thread).
"""

from __future__ import annotations

import argparse
import socket
import threading


def serve(name: str, port: int) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.listen(512)
    reply = (name + "\n").encode()
    while True:
        conn, _ = sock.accept()
        try:
            conn.sendall(reply)
        except OSError:
            pass
        finally:
            conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, action="append", help="TCP port (repeatable; default 8080)")
    args = parser.parse_args()
    ports = args.port or [8080]
    for port in ports[1:]:
        threading.Thread(target=serve, args=(args.name, port), daemon=True).start()
    serve(args.name, ports[0])


if __name__ == "__main__":
    main()
