"""The lab's "who am I" server: accept TCP on every address (VIPs arrive via AnyIP) and
reply with this node's name, so a client can tell which node it reached.

Run: ``python -m lab.vipserver --name node1 --port 8080`` (one dual-stack socket).
"""

from __future__ import annotations

import argparse
import socket


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
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    serve(args.name, args.port)


if __name__ == "__main__":
    main()
