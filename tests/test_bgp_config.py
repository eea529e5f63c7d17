"""BIRD configuration rendering and control-socket parsing (pure), checked against BIRD itself.

Rendered configurations are parsed by the real ``bird -p -c`` (BIRD 2.0.12, installed by
scripts/setup), so a rendering BIRD would reject fails here, not on a node.  The control
socket replies below were recorded from BIRD 2.0.12 in the lab (``timeformat protocol "%s"``).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from ironlb.agent.announcements import BFDSettings
from ironlb.agent.bgp import birdconf, birdctl
from ironlb.agent.bgp.birdconf import Peering, Route
from tests.factories import bgp_session

SESSION = bgp_session(
    name="tor-a.rack1", hold_time=9, keepalive_time=3, connect_time=2, next_hops=("10.0.0.11", "fd00::11")
)


def render(*peerings: Peering, port: int = 1790) -> str:
    return birdconf.render("node1", list(peerings), listen_port=port)


def bird_parses(text: str, tmp_path: Path) -> None:
    if shutil.which("bird") is None:  # scripts/setup installs bird2; CI always has it
        pytest.skip("BIRD 2 is not installed")
    conf = tmp_path / "bird.conf"
    conf.write_text(text)
    proc = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, f"BIRD rejected the rendering: {proc.stderr}\n{text}"


def test_a_session_becomes_tables_statics_and_one_bgp_protocol(tmp_path: Path) -> None:
    routes = {
        "10.9.0.1/32": Route("10.9.0.1/32"),
        "10.9.0.2/32": Route("10.9.0.2/32", ("65000:7", "large:64513:1:2"), 250),
        "fd00::9/128": Route("fd00::9/128"),
    }
    text = render(Peering(SESSION, routes))
    i = birdconf.ident("tor-a.rack1")
    for line in (
        f"ipv4 table t4_{i};",
        f"protocol static s4_{i} {{",
        "  route 10.9.0.1/32 blackhole;",
        "  route 10.9.0.2/32 blackhole { bgp_community.add((65000,7)); "
        "bgp_large_community.add((64513,1,2)); bgp_local_pref = 250; };",
        "  route fd00::9/128 blackhole;",
        f"protocol bgp bgp_{i} {{",
        '  description "BGPPeer tor-a.rack1";',
        "  local 10.0.0.11 port 1790 as 64513;",
        "  neighbor 10.0.0.1 port 179 as 64512;",
        "  strict bind on;",
        "  hold time 9;",
        "  keepalive time 3;",
        "  connect delay time 1; connect retry time 2;",
        "  error wait time 2, 10;",
        "  direct;",
        "  graceful restart off;",
        f"  ipv4 {{ table t4_{i}; import none; export all; next hop self; next hop address 10.0.0.11; }};",
        f"  ipv6 {{ table t6_{i}; import none; export all; next hop self; next hop address fd00::11; }};",
    ):
        assert line in text.splitlines(), f"missing: {line}\n{text}"
    assert "password" not in text and "bfd" not in text and "kernel" not in text
    bird_parses(text, tmp_path)


def test_options_password_gr_bfd_multihop_and_no_source(tmp_path: Path) -> None:
    s = dataclasses.replace(
        SESSION,
        source_address=None,
        ebgp_multihop=True,
        graceful_restart=True,
        graceful_restart_time=30,
        bfd=BFDSettings(50, 75, 4, passive=True),
        peer_port=1179,
    )
    text = render(Peering(s, {}, password="pa ss'#;{}!"))
    for line in (
        "  local 10.0.0.11 port 1790 as 64513;",  # multihop BFD needs a local address: the node's
        "  neighbor 10.0.0.1 port 1179 as 64512;",
        "  multihop 255;",
        '  password "pa ss\'#;{}!";',
        "  graceful restart on; graceful restart time 30;",
        "  bfd { min rx interval 50 ms; min tx interval 75 ms; multiplier 4; passive on; };",
        "protocol bfd bfd_ironlb { }",
    ):
        assert line in text.splitlines(), f"missing: {line}\n{text}"
    bird_parses(text, tmp_path)
    plain = render(Peering(dataclasses.replace(s, bfd=None)))
    assert "  local port 1790 as 64513;" in plain.splitlines() and "strict bind" not in plain
    bird_parses(plain, tmp_path)


def test_sessions_render_in_name_order_and_identically_every_time() -> None:
    a, b = (
        dataclasses.replace(SESSION, name="a"),
        dataclasses.replace(SESSION, name="b", router_id="10.0.0.12"),
    )
    one = render(Peering(b), Peering(a))
    assert one == render(Peering(a), Peering(b)), "the order of sessions never changes the file"
    assert one.index("BGPPeer a") < one.index("BGPPeer b")
    assert "router id 10.0.0.11;" in one.splitlines(), "the lowest session router ID is BIRD's own"


def test_keepalive_not_below_hold_is_left_to_bird() -> None:
    assert "keepalive time" not in render(
        Peering(dataclasses.replace(SESSION, hold_time=3, keepalive_time=30))
    )


def test_a_session_without_an_ipv6_address_has_no_ipv6_channel(tmp_path: Path) -> None:
    text = render(Peering(dataclasses.replace(SESSION, next_hops=("10.0.0.11",))))
    assert "ipv6" not in text
    bird_parses(text, tmp_path)


IDENTS = [
    pytest.param("tor", id="a plain name keeps its spelling"),
    pytest.param("tor-a.b", id="dashes and dots become underscores"),
    pytest.param("x" * 253, id="the longest Kubernetes name still fits BIRD's 64 characters"),
]


@pytest.mark.parametrize("name", IDENTS)
def test_protocol_names_are_stable_valid_bird_symbols(name: str) -> None:
    proto = birdconf.protocol_name(name)
    assert proto == birdconf.protocol_name(name) and len(proto) <= 64
    assert proto.replace("_", "").isalnum()


def test_names_that_sanitise_alike_stay_apart() -> None:
    assert birdconf.ident("tor-a") != birdconf.ident("tor.a")


PASSWORDS = [
    pytest.param("s3cret!", None, id="an ordinary password is fine"),
    pytest.param("x" * 80, None, id="80 bytes is the TCP-MD5 limit"),
    pytest.param("x" * 81, "longer than 80 bytes", id="81 bytes is too long"),
    pytest.param('pa"ss', "double quotes", id="a double quote cannot be written"),
    pytest.param("pa\nss", "line breaks", id="a line break cannot be written"),
    pytest.param("", "is empty", id="empty is refused"),
]


@pytest.mark.parametrize(("password", "problem"), PASSWORDS)
def test_password_problem(password: str, problem: str | None) -> None:
    found = birdconf.password_problem(password)
    assert (found is None) if problem is None else (problem in (found or ""))


# --- control socket ------------------------------------------------------------------------

PROTOCOLS = (
    """\
2002-Name       Proto      Table      State  Since         Info
1002-device1    Device     ---        up     1796165291
1006-

1002-bfd_ironlb BFD        ---        up     1796165291
1006-

1002-bgp_tor_bd144d BGP        ---        up     1796165292    Established
1006-  Description:    BGPPeer tor
   Router ID:      10.77.0.11
   BGP state:          Established
     Neighbor address: 10.77.0.1
     Neighbor AS:      64512
   Channel ipv4
     State:          UP
     Routes:         0 imported, 1 exported, 0 preferred
   Channel ipv6
     State:          DOWN

1002-bgp_tor6_bfce3c BGP        ---        start  1796165291    Active        Socket: Connection refused
1006-  Description:    BGPPeer tor6
   BGP state:          Active
     Neighbor address: fd77::1
     Last error:       Socket: Connection refused

"""
    + "0000 \n"  # the last line: its code, then a space
)

BFD = (
    """\
1020-bfd_ironlb:
 IP address                Interface  State      Since         Interval  Timeout
 10.77.0.1                 eth0       Up         1796165292      0.100    0.300
 fd77::1                   ---        Down       1796165291      1.000    0.000
"""
    + "0000 \n"
)


def replies(text: str) -> list[birdctl.Reply]:
    reader = birdctl.ReplyReader()
    out = [r for line in text.splitlines() if (r := reader.feed(line)) is not None]
    return out


def test_a_reply_ends_at_the_line_with_a_space_after_its_code() -> None:
    (reply,) = replies(PROTOCOLS)
    assert reply.code == 0 and reply.ok and len(reply.lines) > 10
    (error,) = replies("0002-Reading configuration from /x.conf\n8002 /x.conf: No such file or directory\n")
    assert error.code == 8002 and not error.ok and "No such file" in error.text
    assert replies("0001 BIRD 2.0.12 ready.")[0].text == "BIRD 2.0.12 ready."
    assert replies("+spontaneous\n0000 ") == [birdctl.Reply(((0, ""),))], (
        "async lines are not part of a reply"
    )


def test_show_protocols_all_parses_states_errors_and_exported_routes() -> None:
    (reply,) = replies(PROTOCOLS)
    got = birdctl.parse_protocols(reply)
    tor = got["bgp_tor_bd144d"]
    assert (tor.proto, tor.state, tor.bgp_state, tor.since) == ("BGP", "up", "Established", 1796165292.0)
    assert (tor.neighbor, tor.exported, tor.description) == ("10.77.0.1", 1, "BGPPeer tor")
    tor6 = got["bgp_tor6_bfce3c"]
    assert (tor6.bgp_state, tor6.last_error, tor6.exported) == ("Active", "Socket: Connection refused", 0)
    assert got["bfd_ironlb"].proto == "BFD" and set(got) == {
        "device1",
        "bfd_ironlb",
        "bgp_tor_bd144d",
        "bgp_tor6_bfce3c",
    }


def test_show_bfd_sessions_parses_state_per_neighbour() -> None:
    (reply,) = replies(BFD)
    assert birdctl.parse_bfd_sessions(reply) == {"10.77.0.1": "Up", "fd77::1": "Down"}


def test_garbage_never_raises() -> None:
    reply = birdctl.Reply(((1002, "x"), (1006, "no colon here"), (1020, ""), (1006, "Routes: many exported")))
    assert birdctl.parse_protocols(reply) == {}
    assert birdctl.parse_bfd_sessions(reply) == {}
