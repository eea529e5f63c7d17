"""Render one session's ExaBGP configuration file and process environment (pure).

One :class:`~agent.announcements.BGPSession` becomes one ExaBGP ``neighbor`` block plus
the ``process`` that relays the API to the agent.  The MD5 password goes into the file
base64-encoded (``md5-base64 true``), so no quoting can break it; the file is written
0600 into a private 0700 directory by the speaker and the password is never logged or
put on a command line.

What ExaBGP does not configure: the keepalive interval (always the negotiated hold time
÷ 3) and the connect-retry interval (the launcher caps ExaBGP's back-off at
``connectTime`` through ``IRONLB_CONNECT_RETRY``).
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Mapping
from pathlib import Path

from agent.announcements import BGPSession

#: Seconds a graceful-restart helper keeps our routes after the session drops.
GRACEFUL_RESTART_TIME = 120
#: ExaBGP handles this many queued API actions per reactor loop (its default, 50,
#: plus a 10 ms idle sleep per loop, capped announcements at about 4k routes/s).
ASYNC_LIMIT = 2000
API_PROCESS = "ironlb"
RELAY = Path(__file__).with_name("relay.py")


def render(session: BGPSession, api_socket: Path, password: str | None = None) -> str:
    """The ExaBGP configuration for ``session``; the relay connects to ``api_socket``."""
    s = session
    lines = [
        f"process {API_PROCESS} {{",
        f"    run {sys.executable} -I -S {RELAY} {api_socket};",
        "    encoder json;",
        "}",
        "",
        f"neighbor {s.peer_address} {{",
        f'    description "{s.name}";',
        f"    router-id {s.router_id};",
        f"    local-address {s.source_address or 'auto'};",
        f"    local-as {s.local_asn};",
        f"    peer-as {s.peer_asn};",
        f"    hold-time {s.hold_time};",
        f"    connect {s.peer_port};",
        "    passive false;",
        "    group-updates true;",
    ]
    if s.ebgp_multihop:
        lines.append("    outgoing-ttl 255;")
    elif s.local_asn != s.peer_asn:
        lines.append("    outgoing-ttl 1;")
    if password:
        encoded = base64.b64encode(password.encode()).decode()
        lines += [f"    md5-password {encoded};", "    md5-base64 true;"]
    if s.graceful_restart:  # without it no capability at all: peers then drop our paths at once
        lines += ["    capability {", f"        graceful-restart {GRACEFUL_RESTART_TIME};", "    }"]
    lines += [
        "    family {",
        "        ipv4 unicast;",
        "        ipv6 unicast;",
        "    }",
        "    api {",
        f"        processes [ {API_PROCESS} ];",
        "        neighbor-changes;",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def environment(session: BGPSession, base: Mapping[str, str]) -> dict[str, str]:
    """Process environment for the speaker: ``base`` plus ExaBGP's knobs (no secrets)."""
    env = {k: v for k, v in base.items() if not k.startswith("exabgp")}
    env.update(
        {
            "exabgp_daemon_user": "root",  # do not drop to nobody: it could not open our socket
            "exabgp_daemon_drop": "false",
            "exabgp_daemon_daemonize": "false",
            "exabgp_api_cli": "false",  # no named pipes, no extra helper
            "exabgp_api_ack": "true",
            "exabgp_api_respawn": "false",
            "exabgp_api_terminate": "true",  # the relay gone (agent gone) -> ExaBGP exits
            "exabgp_log_enable": "true",
            "exabgp_log_level": "WARNING",
            "exabgp_log_destination": "stderr",
            "exabgp_tcp_bind": "",  # never listen: we always connect out
            "IRONLB_CONNECT_RETRY": str(session.connect_time),
            "IRONLB_ASYNC_LIMIT": str(ASYNC_LIMIT),
        }
    )
    return env
