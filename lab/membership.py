"""Membership processes in the lab: one ``python -m ironlb.agent.membership`` per node.

Each process prints one JSON line per change of its live set, stamped with CLOCK_MONOTONIC
(which every namespace shares), and its status (counters) when it exits; :class:`Members`
starts them and reads both back, so a test or a benchmark can compare the moment it killed
a peer with the moment each survivor noticed.  Used by tests/lab/test_membership_lab.py and
bench/membership.py.

    members = Members(lab, key=KEY)             # every node started and seeing every other
    killed = members.stop("node3", signal.SIGKILL)
    members.wait_live("node1", {"node1", "node2"}, since=killed)   # -> when node1 noticed
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

from lab.netns import Lab
from lab.waiting import wait_for


class Members:
    """One membership process per lab node, and readers for what each one printed.

    ``key`` (and ``next_key``) are written to the files ``key`` and ``next``; a node signs with
    the first of its ``keys`` (names of those files) and accepts the second too.  Unless
    ``join_timeout`` is None, every node is waited for until it sees every other.
    """

    def __init__(
        self,
        lab: Lab,
        *,
        key: str,
        next_key: str | None = None,
        family: int = 4,
        keys: tuple[str, ...] = ("key",),
        join_timeout: float | None = 10,
    ) -> None:
        self.lab = lab
        self.files = {name: lab.workdir / f"membership-{name}" for name in ("key", "next")}
        self.files["key"].write_text(key + "\n")
        if next_key is not None:
            self.files["next"].write_text(next_key + "\n")
        self.peers = [f"--peer={n}={lab.addr(n, family)}" for n in lab.nodes]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.keys = dict.fromkeys(lab.nodes, keys)
        for node in lab.nodes:
            self.start(node)
        if join_timeout is not None:
            for node in lab.nodes:
                self.wait_live(node, set(lab.nodes), since=0.0, timeout=join_timeout)

    def start(self, node: str, keys: tuple[str, ...] | None = None) -> None:
        """Start ``node`` signing with the first of ``keys`` ("key"/"next") and accepting both."""
        self.keys[node] = keys or self.keys[node]
        files = [str(self.files[k]) for k in self.keys[node]]
        argv = [sys.executable, "-m", "ironlb.agent.membership", "--node", node, "--key-file", files[0]]
        if len(files) > 1:
            argv += ["--next-key-file", files[1]]
        self.procs[node] = self.lab.spawn(node, [*argv, *self.peers], name=f"member-{node}")

    def lines(self, node: str) -> list[dict[str, Any]]:
        """Every JSON line ``node``'s current and earlier runs printed (live sets and statuses)."""
        out = []
        for line in self.lab.log(f"member-{node}").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:  # a line still being written
                    pass
        return out

    def live_since(self, node: str, since: float) -> list[tuple[float, set[str]]]:
        """(CLOCK_MONOTONIC time, live set) of every report ``node`` printed at or after ``since``."""
        return [(float(x["t"]), set(x["live"])) for x in self.lines(node) if "live" in x and x["t"] >= since]

    def reports(self, node: str, since: float) -> list[set[str]]:
        return [live for _, live in self.live_since(node, since)]

    def wait_live(self, node: str, expected: set[str], since: float, timeout: float = 5.0) -> float:
        """CLOCK_MONOTONIC time at which ``node`` first reported ``expected`` after ``since``."""
        seen = wait_for(
            f"{node} to report {sorted(expected)} (its reports since then)",
            lambda: self.live_since(node, since),
            lambda reports: any(live == expected for _, live in reports),
            timeout=timeout,
            interval=0.01,
        )
        return next(t for t, live in seen if live == expected)

    def stop(self, node: str, sig: int) -> float:
        """Signal ``node``'s process and wait for it; return when it was signalled (monotonic)."""
        t = time.monotonic()
        self.lab.stop(self.procs[node], sig)
        return t

    def status(self, node: str) -> dict[str, Any]:
        """Stop ``node`` gracefully and return the status it printed on exit."""
        self.lab.stop(self.procs[node], signal.SIGTERM)
        final = [x["status"] for x in self.lines(node) if "status" in x]
        assert final, self.lab.log(f"member-{node}")
        return dict(final[-1])
