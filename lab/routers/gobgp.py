"""GoBGP 3 as a lab router, and as a reference announcer in ``bench/bgp.py``.

``gobgpd`` runs with its gRPC API on the namespace's own 127.0.0.1:50051 (and pprof off),
so instances in different namespaces never collide; ``gobgp ... -j`` reads it back.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

from lab.netns import Lab
from lab.routers.common import ROUTER_ASN, BgpPath, Neighbor
from lab.waiting import wait_for


class GoBGP:
    """gobgpd in ``host``'s namespace; API on the namespace's own 127.0.0.1:50051."""

    API = ["-u", "127.0.0.1", "-p", "50051"]

    def __init__(
        self,
        lab: Lab,
        neighbors: Sequence[Neighbor],
        *,
        host: str = "router",
        asn: int = ROUTER_ASN,
        router_id: str | None = None,
        name: str = "gobgp",
    ) -> None:
        self.lab, self.host, self.asn, self.name = lab, host, asn, name
        self.router_id = router_id or lab.addr(host, 4)
        self.neighbors = list(neighbors)
        self.dir = lab.workdir / name
        self.dir.mkdir(exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        out = ["[global.config]", f"  as = {self.asn}", f'  router-id = "{self.router_id}"', ""]
        for n in self.neighbors:
            family = "ipv6-unicast" if ":" in n.address else "ipv4-unicast"
            out += [
                "[[neighbors]]",
                "  [neighbors.config]",
                f'    neighbor-address = "{n.address}"',
                f"    peer-as = {n.asn}",
            ]
            if n.password:
                out.append(f'    auth-password = "{n.password}"')
            out += [
                "  [neighbors.timers.config]",
                "    connect-retry = 1",
                "    hold-time = 3",
                "    keepalive-interval = 1",
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f'      afi-safi-name = "{family}"',
                "",
            ]
        return "\n".join(out) + "\n"

    def start(self) -> GoBGP:
        conf = self.dir / "gobgpd.toml"
        conf.write_text(self.config())
        self.proc = self.lab.spawn(
            self.host,
            [
                "gobgpd",
                "-f",
                str(conf),
                "-p",
                "--api-hosts",
                "127.0.0.1:50051",
                "--pprof-disable",
                "-l",
                "warn",
            ],
            name=self.name,
        )
        wait_for(
            "gobgpd's API",
            lambda: self.cli("global", check=False),
            lambda done: done.returncode == 0,
            interval=0.01,
            abort=self.lab.exited(self.proc),
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.lab.stop(self.proc)
            self.proc = None

    def cli(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self.host, "gobgp", *self.API, *argv, check=check)

    def established(self) -> dict[str, bool]:
        data = json.loads(self.cli("neighbor", "-j").stdout or "[]")
        return {
            str(p["conf"]["neighbor_address"]): p.get("state", {}).get("session_state") in (6, "established")
            for p in data
        }

    def routes(self, family: int = 4) -> dict[str, list[BgpPath]]:
        data = json.loads(self.cli("global", "rib", "-a", f"ipv{family}", "-j").stdout or "{}")
        out: dict[str, list[BgpPath]] = {}
        for prefix, paths in data.items():
            for p in paths:
                nh = next((a.get("nexthop", "") for a in p.get("attrs", []) if a.get("type") in (3, 14)), "")
                out.setdefault(prefix, []).append(
                    BgpPath(next_hop=str(nh), source=str(p.get("source-id", "")))
                )
        return out
