"""Entry point of the speaker child process: ExaBGP, tuned for IronLB, dying with its parent.

The agent never runs the ``exabgp`` console script; it runs
``python -m agent.bgp.launcher server CONF``, which

- asks the kernel to SIGTERM this process when the agent dies (``PR_SET_PDEATHSIG``),
  so a crashed or SIGKILLed agent never leaves a speaker announcing routes;
- caps ExaBGP's reconnect back-off (1 s growing to 60 s) at the peer's ``connectTime``
  (``IRONLB_CONNECT_RETRY`` seconds), so a restarted router gets its sessions back fast;
- removes the session's private directory when ExaBGP ends (the agent may be gone);
- skips ExaBGP's per-route ``deepcopy`` in ``Neighbor.remove_self`` when the route has
  an explicit next hop.  IronLB always sends explicit next hops and runs one neighbour
  per process, so nothing shares the change objects.  That copy was 60% of the cost of
  an announcement: 10k routes took 2.7 s with it (see docs/decisions/0040-bgp-speaker.md).

The patches are applied only to the ExaBGP version they were written against
(``PATCHED_VERSION``); any other version runs unpatched, only slower.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import time
from typing import Any

from agent.bgp.relay import die_with_parent

PATCHED_VERSION = "5.0.15"


def _patch() -> None:
    # importlib keeps type checkers out of ExaBGP's (untyped, large) source tree
    version = importlib.import_module("exabgp.version").version
    if version != PATCHED_VERSION:
        return

    neighbor_cls: Any = importlib.import_module("exabgp.bgp.neighbor").Neighbor
    original = neighbor_cls.remove_self

    def remove_self(self: Any, change: Any) -> Any:
        if not change.nlri.nexthop.SELF:
            return change
        return original(self, change)

    neighbor_cls.remove_self = remove_self

    limit = int(os.environ.get("IRONLB_ASYNC_LIMIT", "0") or 0)
    if limit > 0:
        importlib.import_module("exabgp.reactor.asynchronous").ASYNC.LIMIT = limit

    cap = int(os.environ.get("IRONLB_CONNECT_RETRY", "0") or 0)
    if cap > 0:
        delay_cls: Any = importlib.import_module("exabgp.reactor.delay").Delay

        def increase(self: Any) -> None:
            self._time = time.time() + self._next
            self._next = min(int(1 + self._next * 1.2), cap)

        delay_cls.increase = increase


def main() -> int:
    die_with_parent()
    _patch()
    exabgp_main = importlib.import_module("exabgp.application.main").main
    sys.argv[0] = "exabgp"
    conf = sys.argv[-1]
    try:
        return int(exabgp_main() or 0)
    finally:
        _remove_private_dir(conf)


def _remove_private_dir(conf: str) -> None:
    """Remove the speaker's private directory when the agent could not (it died first)."""
    directory = os.path.dirname(os.path.abspath(conf))
    if os.path.basename(directory).startswith("ironlb-bgp-"):
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
