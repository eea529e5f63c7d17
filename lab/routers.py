"""Routers for the lab: BIRD 2 (the main top-of-rack peer), FRR bgpd and GoBGP.

Each class writes its daemon's config into the lab's work directory, starts it in a
lab host's namespace as a tracked process (stopped by PID), and reads the router's own
view back, parsed:

- :class:`Bird` -- ``birdc show route all`` -> :class:`BgpPath` per next hop (communities,
  large communities, local pref), ``show protocols`` -> session states, kernel export
  with ``merge paths on`` so ECMP lands in the router namespace's FIB.
- :class:`Frr` -- zebra + bgpd as the ``frr`` user, queried with ``vtysh ... json``.
- :class:`GoBGP` -- ``gobgpd`` with its gRPC API on the namespace's loopback, queried with
  ``gobgp ... -j``; also used as a reference announcer in ``bench/bgp.py``.

The node-side ASN is one for all nodes (eBGP to the router by default, so paths from
every node are equal and merge into ECMP).
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.announcements import BGPSession
from lab import probe
from lab.netns import Lab, LabError

ROUTER_ASN = 64512
NODE_ASN = 64513


@dataclass(frozen=True)
class Neighbor:
    """A session the router accepts from one node."""

    name: str
    address: str
    asn: int = NODE_ASN
    password: str | None = None
    multihop: bool = False


@dataclass(frozen=True)
class BgpPath:
    """One path to a prefix as the router holds it."""

    next_hop: str
    communities: tuple[str, ...] = ()  # "a:b"
    large_communities: tuple[str, ...] = ()  # "a:b:c"
    local_pref: int | None = None
    source: str = ""  # BIRD protocol / peer address


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.01) -> float:
    """Poll ``check`` until true; return seconds taken; raise LabError naming ``what``."""
    start = time.monotonic()
    probe.wait_for(what, check, bool, timeout=timeout, interval=interval)
    return time.monotonic() - start


# --- BIRD --------------------------------------------------------------------------------

_PREFIX_LINE = re.compile(r"^(\S+)\s+unicast\s+\[(\S+)")
_ALT_LINE = re.compile(r"^\s+unicast\s+\[(\S+)")


@dataclass
class _Acc:
    source: str
    next_hop: str = ""
    communities: tuple[str, ...] = ()
    large: tuple[str, ...] = ()
    local_pref: int | None = None

    def path(self) -> BgpPath:
        return BgpPath(self.next_hop, self.communities, self.large, self.local_pref, self.source)


def parse_bird_routes(text: str) -> dict[str, list[BgpPath]]:
    """Parse ``birdc show route all`` output: prefix -> paths."""
    routes: dict[str, list[BgpPath]] = {}
    prefix = ""
    cur: _Acc | None = None
    for line in text.splitlines():
        if m := _PREFIX_LINE.match(line):
            if cur is not None:
                routes.setdefault(prefix, []).append(cur.path())
            prefix, cur = m.group(1), _Acc(m.group(2))
        elif m := _ALT_LINE.match(line):
            if cur is not None:
                routes.setdefault(prefix, []).append(cur.path())
            cur = _Acc(m.group(1))
        elif cur is None:
            continue
        elif (s := line.strip()).startswith(("via ", "BGP.next_hop:")):
            cur.next_hop = cur.next_hop or s.split()[1]
        elif s.startswith("BGP.local_pref:"):
            cur.local_pref = int(s.split()[1])
        elif s.startswith("BGP.community:"):
            cur.communities = tuple(f"{a}:{b}" for a, b in re.findall(r"\((\d+),\s*(\d+)\)", s))
        elif s.startswith("BGP.large_community:"):
            cur.large = tuple(f"{a}:{b}:{c}" for a, b, c in re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)", s))
    if cur is not None:
        routes.setdefault(prefix, []).append(cur.path())
    return routes


class Bird:
    """BIRD 2 in ``host``'s namespace, accepting sessions from ``neighbors``."""

    def __init__(
        self,
        lab: Lab,
        neighbors: Sequence[Neighbor],
        *,
        host: str = "router",
        asn: int = ROUTER_ASN,
        hold: int = 6,
        name: str = "bird",
    ) -> None:
        self.lab, self.host, self.asn, self.hold, self.name = lab, host, asn, hold, name
        self.neighbors = list(neighbors)
        self.dir = lab.workdir / name
        self.dir.mkdir(exist_ok=True)
        self.conf, self.ctl = self.dir / "bird.conf", self.dir / "bird.ctl"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        rid = self.lab.addr(self.host, 4)
        out = [
            f"router id {rid};",
            "protocol device { scan time 10; }",
            "protocol kernel k4 { ipv4 { export all; import none; }; merge paths on; }",
            "protocol kernel k6 { ipv6 { export all; import none; }; merge paths on; }",
        ]
        for n in self.neighbors:
            v6 = ":" in n.address
            chan = "ipv6" if v6 else "ipv4"
            lines = [
                f"protocol bgp {n.name} {{",
                f"  local {self.lab.addr(self.host, 6 if v6 else 4)} as {self.asn};",
                f"  neighbor {n.address} as {n.asn};",
                f"  hold time {self.hold}; connect retry time 1; error wait time 1, 2;",
                f"  {chan} {{ import all; export none; gateway direct; }};",
            ]
            if n.password:
                lines.append(f'  password "{n.password}";')
            if n.multihop:
                lines.append("  multihop;")
            elif n.asn == self.asn:
                lines.append("  direct;")  # iBGP on the LAN: neighbours are directly connected
            out += [*lines, "}"]
        return "\n".join(out) + "\n"

    def start(self) -> Bird:
        self.conf.write_text(self.config())
        self.proc = self.lab.spawn(
            self.host,
            ["bird", "-f", "-c", str(self.conf), "-s", str(self.ctl), "-P", str(self.dir / "bird.pid")],
            name=self.name,
        )
        wait_for(lambda: self._ctl_ok(), 10, "birdc to answer")
        return self

    def _ctl_ok(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(f"bird exited: {self.lab.log(self.name)}")
        return self.ctl.exists() and self.birdc("show", "status", check=False).returncode == 0

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.lab.stop(self.proc, sig)
            self.proc = None
        self.ctl.unlink(missing_ok=True)

    def birdc(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.lab.run(self.host, "birdc", "-s", str(self.ctl), *argv, check=check)

    def routes(self, table: str = "master4") -> dict[str, list[BgpPath]]:
        return parse_bird_routes(self.birdc("show", "route", "all", "table", table).stdout)

    def count(self, table: str = "master4") -> int:
        out = self.birdc("show", "route", "count", "table", table).stdout
        m = re.search(r"(\d+) of \d+ routes", out)
        return int(m.group(1)) if m else 0

    def protocols(self) -> dict[str, str]:
        """BGP protocol name -> state info (``Established``, ``Active``, ``Connect``...)."""
        states = {}
        for line in self.birdc("show", "protocols").stdout.splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[1] == "BGP":
                states[parts[0]] = parts[5]
        return states

    def wait_established(self, names: Sequence[str], timeout: float = 15) -> float:
        return wait_for(
            lambda: all(self.protocols().get(n) == "Established" for n in names),
            timeout,
            f"BIRD sessions {', '.join(names)} to be Established",
            interval=0.05,
        )

    def kernel_routes(self, family: int = 4) -> str:
        return self.lab.run(self.host, "ip", f"-{family}", "route", "show", "proto", "bird").stdout


# --- FRR ---------------------------------------------------------------------------------


class Frr:
    """zebra + bgpd in ``host``'s namespace (as the frr user), queried with vtysh JSON."""

    def __init__(
        self,
        lab: Lab,
        neighbors: Sequence[Neighbor],
        *,
        host: str = "router",
        asn: int = ROUTER_ASN,
        name: str = "frr",
    ) -> None:
        self.lab, self.host, self.asn, self.name = lab, host, asn, name
        self.neighbors = list(neighbors)
        # FRR runs as the frr user, which cannot enter the lab's private (0700) work directory
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"{lab.tag}-{name}-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def config(self) -> str:
        out = [
            "frr defaults traditional",
            "hostname lab-router",
            "log stdout warnings",
            "!",
            f"router bgp {self.asn}",
            f" bgp router-id {self.lab.addr(self.host, 4)}",
            " no bgp ebgp-requires-policy",
            " no bgp network import-check",
        ]
        for n in self.neighbors:
            out += [
                f" neighbor {n.address} remote-as {n.asn}",
                f" neighbor {n.address} timers 1 3",
                f" neighbor {n.address} timers connect 1",
            ]
            if n.password:
                out.append(f" neighbor {n.address} password {n.password}")
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
        self.procs.append(
            self.lab.spawn(
                self.host,
                ["/usr/lib/frr/zebra", *common, "-i", str(self.dir / "zebra.pid")],
                name=f"{self.name}-zebra",
            )
        )
        wait_for(lambda: (self.dir / "zserv.api").exists(), 10, "zebra's zserv socket")
        self.procs.append(
            self.lab.spawn(
                self.host,
                ["/usr/lib/frr/bgpd", *common, "-i", str(self.dir / "bgpd.pid")],
                name=f"{self.name}-bgpd",
            )
        )
        wait_for(lambda: self.vtysh("show bgp summary json", check=False).returncode == 0, 10, "bgpd's vty")
        return self

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


# --- GoBGP -------------------------------------------------------------------------------


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
        wait_for(lambda: self.cli("global", check=False).returncode == 0, 10, "gobgpd's API")
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


def node_session(lab: Lab, node: str = "node1", hold_time: int = 9, keepalive_time: int = 3) -> BGPSession:
    """The session ``node`` keeps with the lab router (eBGP, NODE_ASN -> ROUTER_ASN, 1 s retry)."""
    return BGPSession(
        name="tor",
        peer_address=lab.addr("router"),
        peer_asn=ROUTER_ASN,
        local_asn=NODE_ASN,
        router_id=lab.addr(node),
        source_address=lab.addr(node),
        hold_time=hold_time,
        keepalive_time=keepalive_time,
        connect_time=1,
        next_hops=(lab.addr(node),),
    )
