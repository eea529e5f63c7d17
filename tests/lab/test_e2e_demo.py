"""``ironlb demo --once`` as a new user runs it: real agents, BIRD, a client, torn down after.

Judged from the printed table: the dev stack's layer-2 service is owned by one node and
the client reaches it over TCP; its BGP service is routed by BIRD to the nodes that have
endpoints (externalTrafficPolicy Local: node1 and node2) and the client reaches it too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.timeout(150)]
ROOT = Path(__file__).resolve().parents[2]


def test_demo_once_prints_a_table_where_the_client_reaches_every_address() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ironlb_cli.main", "demo", "--once", "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=140,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("default/")]
    web = next(r for r in rows if r[1] == "10.77.0.200")
    dns = next(r for r in rows if r[1] == "10.78.0.53")
    assert web[2] == "layer2" and web[3] in {"node1", "node2", "node3"}
    assert f"(answered by {web[3]})" in " ".join(web), "the client reaches the layer-2 owner"
    web6 = next(r for r in rows if r[1] == "fd77::200")
    assert web6[3] == web[3], "all of a service's addresses have one layer-2 owner"
    assert f"(answered by {web6[3]})" in " ".join(web6), "the client reaches the IPv6 address too"
    assert dns[2] == "bgp" and " ".join(dns[3:5]).startswith("node1, node2"), dns
    assert "ok (answered by node" in " ".join(dns)
    assert "lab torn down" in done.stderr
