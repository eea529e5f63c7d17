"""First code of the speaker child: die with the agent, then become BIRD.

The agent starts ``python -I -S launcher.py AGENT_PID bird ARGS...`` (the standard library
only, nothing of ours imported).  It asks the kernel to SIGKILL this process when its
parent dies (``PR_SET_PDEATHSIG``; the setting survives ``execve`` of an ordinary binary),
checks that the parent is still the agent (it may have died before the request took
effect), then ``execvp``\\ s BIRD in its place.

Why SIGKILL and not SIGTERM: on SIGTERM BIRD shuts down cleanly, sending every peer a
Cease -- which withdraws even graceful-restart sessions.  A killed BIRD only has its TCP
connections closed by the kernel: routers drop the paths of sessions without graceful
restart at once, and keep those with graceful restart for the restart time, which is what
an agent crash should look like.  An orderly stop goes through the control socket instead
(``graceful restart`` / ``down``), see :mod:`ironlb.agent.bgp.speaker`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    if len(argv) < 3 or not argv[1].isdigit():
        sys.stderr.write("usage: launcher.py AGENT_PID PROGRAM [ARGS...]\n")
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        sys.stderr.write(f"launcher: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}\n")
        return 1
    if os.getppid() != int(argv[1]):  # the agent died before the request took effect
        return 0
    try:
        os.execvp(argv[2], argv[2:])
    except OSError as exc:
        sys.stderr.write(f"launcher: cannot run {argv[2]}: {exc.strerror}\n")
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv))
