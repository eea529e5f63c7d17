"""``ironlb demo``, run as the README writes it: the installed console script, as root.

The demo deploys the rendered dev stack unmodified in the cluster-mode lab (lab/demo.py).
What is expected of its table comes from the stack itself (``ironlb render``, independent
of the demo): every LoadBalancer Service, one row per requested IP family, each with an
owner (layer 2: the node answering ARP/NDP; BGP: next hops at the router) and a client that
reaches it over TCP; a layer-2 address is answered by its owner, a BGP one by one of its
next hops.  After the command, nothing of the lab is left: namespaces, work dir, mounts.

Watching (no ``--once``): unplugging the layer-2 owner's switch port, as the demo's hint
says, is printed as an owner change, and Ctrl-C tears everything down.  The thin entry
point's refusals (not root; not a checkout) and the table's pure core are checked too.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from ironlb.errors import IronLBError
from ironlb_cli.demo import use_checkout_lab
from ironlb_cli.render import render
from lab.demo import Row, Seen, changes, row_for, table
from lab.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
IRONLB = Path(sys.executable).parent / "ironlb"  # the console script ./scripts/setup installs


def dev_services() -> dict[str, int]:
    """``namespace/name`` -> IP families requested, for every LoadBalancer Service the dev stack renders."""
    out = {}
    for _, text in render("dev", ROOT / "stacks", validate=False):
        doc = yaml.safe_load(text)
        if doc["kind"] == "Service" and doc["spec"].get("type") == "LoadBalancer":
            spec, meta = doc["spec"], doc["metadata"]
            single = (spec.get("ipFamilyPolicy") or "SingleStack") == "SingleStack"
            out[f"{meta['namespace']}/{meta['name']}"] = (
                1 if single else len(spec.get("ipFamilies") or ["IPv4"])
            )
    assert out, "the dev stack renders no LoadBalancer Service"
    return out


def table_rows(stdout: str) -> list[dict[str, str]]:
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("SERVICE "))
    columns = re.split(r"\s{2,}", lines[head].strip())
    rows = []
    for line in lines[head + 1 :]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != len(columns) or "/" not in cells[0]:
            break
        rows.append(dict(zip(columns, cells, strict=True)))
    return rows


def lab_of(stderr: str) -> tuple[str, str]:
    """(lab tag, work dir) from the demo's progress lines."""
    tag = re.search(r"^lab (\S+) up in", stderr, re.M)
    workdir = re.search(r"logs: (\S+)/\*\.log", stderr)
    assert tag and workdir, stderr
    return tag.group(1), workdir.group(1)


def assert_torn_down(tag: str, workdir: str) -> None:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not [n for n in namespaces.split() if n.startswith(f"{tag}-")], namespaces
    assert not Path(workdir).exists(), f"{workdir} (it held the revealed secrets) is left"
    assert workdir not in Path("/proc/self/mountinfo").read_text(), "an emptyDir mount is left"


@pytest.mark.timeout(400)
def test_the_readme_command_lists_every_dev_service_announced_and_reached_over_ipv4_and_ipv6() -> None:
    want = dev_services()
    started = time.monotonic()
    done = subprocess.run(
        [str(IRONLB), "demo", "--once"], capture_output=True, text=True, timeout=360, cwd=ROOT
    )
    print(f"ironlb demo --once: {time.monotonic() - started:.1f} s\n{done.stdout}{done.stderr}")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = table_rows(done.stdout)
    assert {r["SERVICE"] for r in rows} == set(want), rows
    families = set()
    for key, count in want.items():
        mine = [r for r in rows if r["SERVICE"] == key]
        assert len(mine) == count, (key, mine)
        assert len({ipaddress.ip_address(r["IP"]).version for r in mine}) == count, mine
        families |= {ipaddress.ip_address(r["IP"]).version for r in mine}
    assert families == {4, 6}, "the dev stack has IPv4 and IPv6 addresses: both are shown"
    for r in rows:
        owners = r["OWNER / NEXT HOPS"].split(", ")
        assert all(re.fullmatch(r"node\d", o) for o in owners), r
        answered = re.fullmatch(r"ok, answered by (node\d)", r["CLIENT TCP"])
        assert answered, r
        assert r["MODE"] in {"layer2", "bgp"}, r
        if r["MODE"] == "layer2":
            assert owners == [answered.group(1)], f"the client reaches the layer-2 owner: {r}"
        else:
            assert answered.group(1) in owners, f"the client is routed to one of the next hops: {r}"
    web = [r for r in rows if r["MODE"] == "layer2" and r["SERVICE"] == "default/web"]
    assert len({r["OWNER / NEXT HOPS"] for r in web}) == 1, (
        "one layer-2 owner for all of a Service's addresses"
    )
    assert "lab torn down" in done.stderr
    assert_torn_down(*lab_of(done.stderr))


class Lines:
    """Lines a process writes on one stream, collected by a thread (the demo never stops writing)."""

    def __init__(self, stream: IO[str]) -> None:
        self.all: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.all.append(line)

    def text(self) -> str:
        return "".join(self.all)

    def wait_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` (a line, ``re.M``); a timeout shows everything written."""
        text = wait_for(
            f"a line matching {pattern!r}", self.text, lambda t: re.search(pattern, t, re.M), timeout=timeout
        )
        found = re.search(pattern, text, re.M)
        assert found is not None
        return found


@pytest.fixture
def watching() -> Iterator[tuple[subprocess.Popen[str], Lines, Lines]]:
    proc = subprocess.Popen(
        [str(IRONLB), "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        yield proc, Lines(proc.stdout), Lines(proc.stderr)
    finally:
        if proc.poll() is None:  # the test failed midway: let the demo tear down, as Ctrl-C does
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.timeout(400)
def test_watching_prints_a_failover_when_the_owner_is_unplugged_and_ctrl_c_tears_down(
    watching: tuple[subprocess.Popen[str], Lines, Lines],
) -> None:
    proc, out, err = watching
    hint = err.wait_line(r"unplug (node\d) \(owner of (\S+)\): (ip -n \S+ link set \S+) down", 300)
    owner, ip, command = hint.groups()
    subprocess.run([*shlex.split(command), "down"], check=True)
    moved = out.wait_line(rf"^\S+  \S+ {re.escape(ip)}: {owner} -> (node\d); client .*", 60)
    assert moved.group(1) != owner, moved.group(0)
    assert "ok, answered by" in moved.group(0).rsplit("->", 1)[-1], f"the client follows: {moved.group(0)}"
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert proc.wait(timeout=60) == 130, err.text()
    err.wait_line("^lab torn down$", 5)
    assert_torn_down(*lab_of(err.text()))


def test_run_as_another_user_it_says_in_one_line_to_run_it_as_root() -> None:
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(IRONLB), "demo", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: ironlb demo builds network namespaces: run it as root on Linux (sudo)"
    ], done.stderr
    assert done.stdout == ""


def test_without_a_checkout_beside_it_the_entry_point_says_it_needs_one(tmp_path: Path) -> None:
    with pytest.raises(IronLBError, match=r"^ironlb demo runs from a source checkout of IronLB"):
        use_checkout_lab(tmp_path)


# --- the table's pure core -------------------------------------------------------------------------


def seen(lan: Any = None, routers: Any = None, answered: Any = None) -> Seen:
    return Seen(lan, routers, {80: "node2"} if answered is None else answered)


TWO_TORS = {"tor-a": ("node1", "node2"), "tor-b": ("node2", "node1")}
OK = "ok, answered by node2"


@pytest.mark.parametrize(
    ("case", "row_seen", "announcing", "owner", "client", "ready"),
    [
        ("the owner answers and serves", seen(lan=("node2",)), ["node2"], "node2", OK, True),
        ("not the node the speakers say", seen(lan=("node1",)), ["node2"], "node1", OK, False),
        ("two nodes answer ARP", seen(lan=("node1", "node2")), ["node2"], "node1, node2", OK, False),
        ("nobody answers yet", seen(lan=()), [], "nobody answers ARP", OK, False),
        ("all routers, all hops", seen(routers=TWO_TORS), ["node1", "node2"], "node1, node2 at tor-a, tor-b",
         OK, True),
        ("a router lacks a hop", seen(routers={**TWO_TORS, "tor-b": ("node1",)}), ["node1", "node2"],
         "tor-a: node1, node2; tor-b: node1", OK, False),
        ("no route at the router", seen(routers={"r": ()}), ["node1"], "no route at the router", OK, False),
        ("the client fails", seen(lan=("node2",), answered={80: None, 443: "node2"}), ["node2"], "node2",
         "FAILED (port 80)", False),
        ("no TCP port", seen(lan=("node2",), answered={}), ["node2"], "node2", "- (no TCP port)", True),
    ],
)  # fmt: skip
def test_a_row_shows_what_the_network_sees_and_is_ready_only_when_it_matches_the_speakers(
    case: str, row_seen: Seen, announcing: list[str], owner: str, client: str, ready: bool
) -> None:
    row = row_for("default/web", "10.77.0.200", row_seen, announcing)
    assert (row.owner, row.client, row.ready) == (owner, client, ready), case
    assert bool(row.note) == (not ready), "an address that is not ready says why"


def test_changes_name_the_address_old_and_new_owner_and_the_client() -> None:
    before = [Row("default/web", "10.77.0.200", "layer2", "node3", "ok, answered by node3", True)]
    after = [Row("default/web", "10.77.0.200", "layer2", "node2", "ok, answered by node2", True)]
    assert changes(before, after) == [
        "default/web 10.77.0.200: node3 -> node2; client ok, answered by node3 -> ok, answered by node2"
    ]
    assert changes(after, after) == []
    assert changes(after, []) == ["default/web 10.77.0.200: gone"]


def test_table_columns_split_on_two_spaces() -> None:
    rows = [Row("default/dns", "10.78.0.53", "bgp", "node1, node2", "ok, answered by node1", True)]
    assert table_rows(table(rows)) == [
        {
            "SERVICE": "default/dns",
            "IP": "10.78.0.53",
            "MODE": "bgp",
            "OWNER / NEXT HOPS": "node1, node2",
            "CLIENT TCP": "ok, answered by node1",
        }
    ]
