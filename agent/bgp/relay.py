"""The API relay ExaBGP runs as its ``process``: its stdin/stdout <-> the agent's socket.

ExaBGP talks to helpers only through a child's stdin and stdout.  This tiny script (the
standard library only, started as ``python -I -S relay.py SOCKET``) connects to the
Unix socket the agent listens on in the session's private directory and copies bytes
both ways.  It never interprets them.

Lifetime: it asks the kernel for SIGTERM when ExaBGP (its parent) dies, and it exits
when either side closes; ExaBGP is started with ``exabgp_api_terminate=true``, so the
relay's exit ends ExaBGP too.  Nothing is left behind whichever side goes first.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask for SIGTERM when the parent dies; exit now if it already has (also used by the launcher)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        sys.exit(0)


def relay(path: str) -> int:
    die_with_parent()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sys.stderr.write(f"ironlb relay: cannot connect to {path}: {exc.strerror}\n")
        return 1
    sel = selectors.DefaultSelector()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    sel.register(stdin, selectors.EVENT_READ, "in")
    sel.register(sock, selectors.EVENT_READ, "sock")
    while True:
        for key, _ in sel.select():
            if key.data == "in":
                data = os.read(stdin, 65536)
                if not data:
                    return 0
                sock.sendall(data)
            else:
                data = sock.recv(1 << 20)
                if not data:
                    return 0
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout, view) :]


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(relay(sys.argv[1]))
