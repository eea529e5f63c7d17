"""ExaBGP API encoding and parsing, and config rendering (pure, no processes)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from agent.announcements import BGPSession
from agent.bgp import api, exaconf
from agent.bgp.settings import BGPSettings

R = api.Route


COMMANDS = [
    pytest.param(
        [R("10.0.0.1/32", "10.1.1.1"), R("10.0.0.2/32", "10.1.1.1")],
        500,
        ["announce attributes next-hop 10.1.1.1 nlri 10.0.0.1/32 10.0.0.2/32"],
        id="routes with equal attributes share one command",
    ),
    pytest.param(
        [R(f"10.0.0.{i}/32", "10.1.1.1") for i in range(1, 6)],
        2,
        [
            "announce attributes next-hop 10.1.1.1 nlri 10.0.0.1/32 10.0.0.2/32",
            "announce attributes next-hop 10.1.1.1 nlri 10.0.0.3/32 10.0.0.4/32",
            "announce attributes next-hop 10.1.1.1 nlri 10.0.0.5/32",
        ],
        id="batches hold at most `batch` prefixes",
    ),
    pytest.param(
        [R("10.0.0.1/32", "10.1.1.1", ("65000:1", "large:1:2:3"), 200)],
        500,
        [
            "announce attributes next-hop 10.1.1.1 local-preference 200 community [ 65000:1 ] "
            "large-community [ 1:2:3 ] nlri 10.0.0.1/32"
        ],
        id="communities, large communities and local pref are attributes",
    ),
    pytest.param(
        [R("10.0.0.1/32", "10.1.1.1"), R("fd00::1/128", "fd00::11")],
        500,
        [
            "announce attributes next-hop 10.1.1.1 nlri 10.0.0.1/32",
            "announce attributes next-hop fd00::11 nlri fd00::1/128",
        ],
        id="families never share a command",
    ),
    pytest.param(
        [R("10.0.0.1/32", "10.1.1.1", ("65000:1",)), R("10.0.0.2/32", "10.1.1.1")],
        500,
        [
            "announce attributes next-hop 10.1.1.1 nlri 10.0.0.2/32",
            "announce attributes next-hop 10.1.1.1 community [ 65000:1 ] nlri 10.0.0.1/32",
        ],
        id="different attributes are different commands",
    ),
]


@pytest.mark.parametrize(("routes", "batch", "lines"), COMMANDS)
def test_announce_commands(routes: list[api.Route], batch: int, lines: list[str]) -> None:
    assert api.announce_commands(routes, batch) == lines


def test_withdraw_needs_only_the_prefix() -> None:
    routes = [R("10.0.0.1/32", "10.1.1.1", ("65000:1",)), R("10.0.0.2/32", "10.1.1.1", (), 100)]
    assert api.withdraw_commands(routes) == [
        "withdraw attributes next-hop 10.1.1.1 nlri 10.0.0.1/32 10.0.0.2/32"
    ]


def test_ten_thousand_routes_are_twenty_lines() -> None:
    routes = [R(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}/32", "10.1.1.1") for i in range(10_000)]
    assert len(api.announce_commands(routes, 500)) == 20


EVENTS = [
    pytest.param("done\n", api.Event("ack", ok=True), id="done is a positive ack"),
    pytest.param("error", api.Event("ack", ok=False), id="error is a negative ack"),
    pytest.param(
        '{"type": "state", "neighbor": {"state": "up"}}',
        api.Event("state", state="up"),
        id="a state event carries the state",
    ),
    pytest.param(
        '{"type": "state", "neighbor": {"state": "down", "reason": "peer reset"}}',
        api.Event("state", state="down", reason="peer reset"),
        id="a down event carries its reason",
    ),
    pytest.param(
        "not json {", api.Event("other", reason="not json {"), id="garbage is other, never an exception"
    ),
    pytest.param("[1, 2]", api.Event("other"), id="a JSON list is other"),
]


@pytest.mark.parametrize(("line", "event"), EVENTS)
def test_parse_line(line: str, event: api.Event) -> None:
    assert api.parse_line(line) == event


SESSION = BGPSession(
    name="tor",
    peer_address="10.0.0.1",
    peer_asn=64512,
    local_asn=64513,
    router_id="10.0.0.11",
    source_address="10.0.0.11",
    hold_time=9,
    connect_time=2,
    next_hops=("10.0.0.11",),
)


def test_render_holds_the_session_settings() -> None:
    text = exaconf.render(SESSION, Path("/run/x/api.sock"))
    for needle in (
        "neighbor 10.0.0.1 {",
        "router-id 10.0.0.11;",
        "local-address 10.0.0.11;",
        "local-as 64513;",
        "peer-as 64512;",
        "hold-time 9;",
        "connect 179;",
        "outgoing-ttl 1;",
        "ipv4 unicast;",
        "ipv6 unicast;",
        "neighbor-changes;",
        "/run/x/api.sock",
    ):
        assert needle in text
    assert "md5" not in text and "capability" not in text, "no password, no graceful restart by default"


def test_render_options() -> None:
    from dataclasses import replace

    text = exaconf.render(
        replace(SESSION, source_address=None, ebgp_multihop=True, graceful_restart=True, peer_port=1179),
        Path("s"),
    )
    assert "local-address auto;" in text and "outgoing-ttl 255;" in text
    assert "graceful-restart 120;" in text and "connect 1179;" in text
    ibgp = exaconf.render(replace(SESSION, peer_asn=64513), Path("s"))
    assert "outgoing-ttl" not in ibgp


def test_the_password_is_base64_in_the_file_and_absent_from_the_environment() -> None:
    secret = 'pa ss"word;}'
    text = exaconf.render(SESSION, Path("s"), secret)
    assert secret not in text
    assert f"md5-password {base64.b64encode(secret.encode()).decode()};" in text
    env = exaconf.environment(SESSION, {"PATH": "/bin", "exabgp_log_level": "DEBUG"})
    assert secret not in repr(env)
    assert env["exabgp_log_level"] == "WARNING" and env["IRONLB_CONNECT_RETRY"] == "2"
    assert env["exabgp_api_terminate"] == "true" and env["exabgp_daemon_user"] == "root"


def test_settings_defaults_are_pinned() -> None:
    s = BGPSettings()
    assert (
        s.run_dir,
        str(s.secrets_dir),
        s.batch,
        s.start_timeout,
        s.ack_timeout,
        s.stop_timeout,
        s.command_prefix,
    ) == (None, "/etc/ironlb/secrets", 500, 30.0, 10.0, 3.0, ())
