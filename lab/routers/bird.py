"""BIRD 2 as the lab's top-of-rack router (and its output parsers).

:class:`Bird` writes its config into the lab's work directory, runs ``bird -f`` in a lab
host's namespace as a tracked process (stopped by PID), and reads the router's own view
back: ``show route all`` -> :class:`BgpPath` per next hop, ``show protocols`` -> session
states, ``show bfd sessions`` -> BFD states; a kernel protocol with ``merge paths on``
puts ECMP routes into the router namespace's FIB (``kernel_routes``).

Optional: BFD with the neighbours that ask for it (``bfd=BfdTimers(...)``; with
``graceful=True`` a BFD failure starts graceful restart instead of dropping the paths),
and graceful restart as a helper (BIRD's default ``graceful restart aware``).
"""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from lab.errors import LabError
from lab.netns import Lab
from lab.routers.common import ROUTER_ASN, BfdTimers, BgpPath, Neighbor
from lab.waiting import wait_for

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


def parse_bfd_sessions(text: str) -> dict[str, str]:
    """``birdc show bfd sessions`` -> neighbour address -> state (Up, Down, Init...)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        address = parts[0] if len(parts) >= 3 else ""
        if address[:1].isalnum() and (":" in address or "." in address) and not address.endswith(":"):
            out[address] = parts[2]
    return out


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
        bfd: BfdTimers | None = None,
    ) -> None:
        self.lab, self.host, self.asn, self.hold, self.name = lab, host, asn, hold, name
        self.neighbors = list(neighbors)
        self.bfd = bfd
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
        if self.bfd is not None:
            t = self.bfd
            ms = t.interval_ms
            timers = f"min rx interval {ms} ms; min tx interval {ms} ms; multiplier {t.multiplier};"
            out.append(f'protocol bfd {{ interface "*" {{ {timers} }}; multihop {{ {timers} }}; }}')
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
            if n.bfd and self.bfd is not None:
                lines.append("  bfd graceful;" if self.bfd.graceful else "  bfd on;")
            out += [*lines, "}"]
        return "\n".join(out) + "\n"

    def start(self) -> Bird:
        self.conf.write_text(self.config())
        self.proc = self.lab.spawn(
            self.host,
            ["bird", "-f", "-c", str(self.conf), "-s", str(self.ctl), "-P", str(self.dir / "bird.pid")],
            name=self.name,
        )
        wait_for("birdc to answer", self._ctl_ok, abort=self.lab.exited(self.proc), interval=0.01)
        return self

    def _ctl_ok(self) -> bool:
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

    def since(self, protocol: str) -> float:
        """The ``Since`` column of one protocol, in seconds of the day.

        It moves only when the session changes state; BIRD converts it from its monotonic
        clock on every display, so two reads of an unchanged session may differ by a
        millisecond: compare with a tolerance.
        """
        for line in self.birdc("show", "protocols", protocol).stdout.splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[0] == protocol:
                h, m, sec = parts[4].split(":")
                return int(h) * 3600 + int(m) * 60 + float(sec)
        raise LabError(f"BIRD has no protocol {protocol!r}")

    def bfd_sessions(self) -> dict[str, str]:
        """Neighbour address -> BFD state (``Up``, ``Down``...)."""
        return parse_bfd_sessions(self.birdc("show", "bfd", "sessions").stdout)

    def wait_established(self, names: Sequence[str], timeout: float = 15) -> dict[str, str]:
        """Wait until every protocol in ``names`` is Established; return all protocols' states."""
        return wait_for(
            f"BIRD sessions {', '.join(names)} to be Established",
            self.protocols,
            lambda states: all(states.get(n) == "Established" for n in names),
            timeout=timeout,
        )

    def kernel_routes(self, family: int = 4) -> str:
        return self.lab.run(self.host, "ip", f"-{family}", "route", "show", "proto", "bird").stdout
