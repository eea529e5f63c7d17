"""FRR 8 (zebra, bgpd and bfdd) as a lab router, queried with ``vtysh ... json``.

FRR runs as the ``frr`` user (``-u root`` fails on the vty group), so its files live in a
private temporary directory it can enter, removed on :meth:`Frr.stop`.  With
``bfd=BfdTimers(...)``, bfdd runs too and every neighbour with ``bfd=True`` uses the
profile ``lab`` (receive/transmit interval, detect multiplier).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence

from lab.netns import Lab
from lab.routers.common import ROUTER_ASN, BfdTimers, BgpPath, Neighbor
from lab.waiting import wait_for


class Frr:
    """zebra + bgpd (+ bfdd) in ``host``'s namespace (as the frr user), queried with vtysh JSON."""

    def __init__(
        self,
        lab: Lab,
        neighbors: Sequence[Neighbor],
        *,
        host: str = "router",
        asn: int = ROUTER_ASN,
        name: str = "frr",
        bfd: BfdTimers | None = None,
        hold: int = 3,
    ) -> None:
        self.lab, self.host, self.asn, self.name, self.bfd, self.hold = lab, host, asn, name, bfd, hold
        self.neighbors = list(neighbors)
        # FRR runs as the frr user, which cannot enter the lab's private (0700) work directory
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"{lab.tag}-{name}-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def config(self) -> str:
        out = ["frr defaults traditional", "hostname lab-router", "log stdout warnings", "!"]
        if self.bfd is not None:
            t = self.bfd
            out += [
                "bfd",
                " profile lab",
                f"  receive-interval {t.interval_ms}",
                f"  transmit-interval {t.interval_ms}",
                f"  detect-multiplier {t.multiplier}",
                " !",
                "!",
            ]
        out += [
            f"router bgp {self.asn}",
            f" bgp router-id {self.lab.addr(self.host, 4)}",
            " no bgp ebgp-requires-policy",
            " no bgp network import-check",
        ]
        for n in self.neighbors:
            out += [
                f" neighbor {n.address} remote-as {n.asn}",
                f" neighbor {n.address} timers {max(1, self.hold // 3)} {self.hold}",
                f" neighbor {n.address} timers connect 1",
            ]
            if n.password:
                out.append(f" neighbor {n.address} password {n.password}")
            if n.bfd and self.bfd is not None:
                out.append(f" neighbor {n.address} bfd profile lab")
        out.append(" address-family ipv4 unicast")
        out += [f"  neighbor {n.address} activate" for n in self.neighbors if ":" not in n.address]
        out += [" exit-address-family", " address-family ipv6 unicast"]
        out += [f"  neighbor {n.address} activate" for n in self.neighbors if ":" in n.address]
        out += [" exit-address-family", "!"]
        return "\n".join(out) + "\n"

    def start(self) -> Frr:
        conf = self.dir / "frr.conf"
        conf.write_text(self.config())
        shutil.chown(self.dir, "frr", "frr")
        shutil.chown(conf, "frr", "frr")
        common = [
            "-f",
            str(conf),
            "-z",
            str(self.dir / "zserv.api"),
            "--vty_socket",
            str(self.dir),
            "-P",
            "0",
        ]
        self._daemon("zebra", common)
        wait_for("zebra's zserv socket", (self.dir / "zserv.api").exists, interval=0.01)
        if self.bfd is not None:
            self._daemon("bfdd", common)
        self._daemon("bgpd", common)
        wait_for(
            "bgpd's vty",
            lambda: self.vtysh("show bgp summary json", check=False),
            lambda done: done.returncode == 0,
            interval=0.01,
        )
        return self

    def _daemon(self, daemon: str, common: list[str]) -> None:
        argv = [f"/usr/lib/frr/{daemon}", *common, "-i", str(self.dir / f"{daemon}.pid")]
        self.procs.append(self.lab.spawn(self.host, argv, name=f"{self.name}-{daemon}"))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            self.lab.stop(proc)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def vtysh(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self.host, "vtysh", "--vty_socket", str(self.dir), "-c", command, check=check)

    def established(self) -> dict[str, bool]:
        data = json.loads(self.vtysh("show bgp summary json").stdout or "{}")
        peers: dict[str, bool] = {}
        for afi in data.values():
            for addr, peer in (afi.get("peers") or {}).items():
                peers[addr] = peers.get(addr, False) or peer.get("state") == "Established"
        return peers

    def bfd_peers(self) -> dict[str, str]:
        """Peer address -> BFD status (``up``, ``down``, ``init``...)."""
        data = json.loads(self.vtysh("show bfd peers json").stdout or "[]")
        return {str(p.get("peer")): str(p.get("status")) for p in data if isinstance(p, dict)}

    def routes(self, family: int = 4) -> dict[str, list[BgpPath]]:
        data = json.loads(self.vtysh(f"show bgp ipv{family} unicast json").stdout or "{}")
        out: dict[str, list[BgpPath]] = {}
        for prefix, paths in (data.get("routes") or {}).items():
            for p in paths:
                hops = p.get("nexthops") or [{}]
                out.setdefault(prefix, []).append(
                    BgpPath(
                        next_hop=str(hops[0].get("ip", "")),
                        local_pref=p.get("locPrf"),
                        source=str(p.get("peerId", "")),
                    )
                )
        return out

    def kernel_routes(self, family: int = 4) -> str:
        """Routes zebra installed in the router namespace's FIB."""
        return self.lab.run(self.host, "ip", f"-{family}", "route", "show", "proto", "bgp").stdout
