"""BFD profiles and graceful-restart time end to end on paper: schema, CRD, component, planner, config.

A BFDProfile parses with MetalLB's fields and defaults, refuses what the speaker cannot do
(echo mode; a minimum TTL on multihop peers), is emitted by the BfdProfile component, and
reaches the node's BIRD configuration as a BGP session's ``bfd { ... }`` block.
"""

from __future__ import annotations

from typing import Any

import pytest

from ironlb.agent.announcements import BFDSettings
from ironlb.agent.bgp import birdconf
from ironlb.agent.planner.bgp import plan_sessions
from ironlb.agent.view import ClusterView, NodeInfo
from ironlb.components import BfdProfile, BgpPeer, InvalidConfigError
from ironlb.components.offline import manifests, run_mocked
from ironlb.config import parse
from ironlb.crds import crd_manifests
from ironlb.errors import ConfigError
from lab.manifests import bgp_peer, resource


def test_a_profile_has_metallbs_fields_and_defaults() -> None:
    config = parse([resource("BFDProfile", "default")])
    spec = config.bfd_profiles["default"].spec
    assert (spec.receiveInterval, spec.transmitInterval, spec.detectMultiplier) == (300, 300, 3)
    assert (spec.echoMode, spec.passiveMode, spec.minimumTtl) == (False, False, None)
    assert spec.detect_ms() == 900


INVALID = [
    pytest.param(
        [resource("BFDProfile", "p", echoMode=True)],
        'BFDProfile "p": echoMode "True": must be false: the BGP speaker (BIRD 2) implements no BFD echo',
        id="echo mode is refused: the speaker has none",
    ),
    pytest.param(
        [resource("BFDProfile", "p", transmitInterval=9)],
        'BFDProfile "p": transmitInterval "9": must be 10-60000',
        id="intervals below 10 ms are refused",
    ),
    pytest.param(
        [resource("BFDProfile", "p", detectMultiplier=256)],
        'BFDProfile "p": detectMultiplier "256": must be 2-255',
        id="the multiplier fits a byte and is at least 2",
    ),
    pytest.param(
        [bgp_peer(bfdProfile="nope")],
        'BGPPeer "tor": bfdProfile "nope": names no BFDProfile (known: none defined)',
        id="a peer names a profile that does not exist",
    ),
    pytest.param(
        [resource("BFDProfile", "p", minimumTtl=250), bgp_peer(ebgpMultiHop=True, bfdProfile="p")],
        'BGPPeer "tor": bfdProfile "p": sets minimumTtl 250, which the speaker cannot enforce on multihop',
        id="a multihop peer cannot use a minimum TTL",
    ),
    pytest.param(
        [bgp_peer(enableGracefulRestart=True, gracefulRestartTime=4096)],
        'BGPPeer "tor": gracefulRestartTime "4096": must be 1-4095',
        id="the restart time fits the 12-bit capability field",
    ),
]


@pytest.mark.parametrize(("docs", "message"), INVALID)
def test_invalid_bfd_and_gr_settings_name_object_field_value(
    docs: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(docs)
    assert message in str(info.value)


def test_a_single_hop_peer_may_use_a_minimum_ttl_it_always_exceeds() -> None:
    config = parse([resource("BFDProfile", "p", minimumTtl=250), bgp_peer(bfdProfile="p")])
    assert config.peers["tor"].spec.bfdProfile == "p"


def test_the_crd_carries_the_profile_and_its_echo_rule() -> None:
    (crd,) = [c for c in crd_manifests() if c["spec"]["names"]["kind"] == "BFDProfile"]
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["names"]["plural"] == "bfdprofiles"
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]) == {
        "receiveInterval",
        "transmitInterval",
        "detectMultiplier",
        "echoMode",
        "passiveMode",
        "minimumTtl",
    }
    assert spec["properties"]["receiveInterval"]["minimum"] == 10
    assert any("echoMode" in rule["rule"] for rule in spec["x-kubernetes-validations"])
    (peer_crd,) = [c for c in crd_manifests() if c["spec"]["names"]["kind"] == "BGPPeer"]
    peer_spec = peer_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"bfdProfile", "gracefulRestartTime"} <= set(peer_spec["properties"])


def test_the_component_emits_one_bfdprofile_and_peers_name_it() -> None:
    def build() -> None:
        BfdProfile("fast", {"receive_interval": 50, "transmit_interval": 50, "detect_multiplier": 3})
        BgpPeer(
            "tor", {"my_asn": 64513, "peer_asn": 64512, "peer_address": "10.0.0.1", "bfd_profile": "fast"}
        )

    ev = run_mocked(build)
    (profile,) = [m for m in manifests(ev) if m["kind"] == "BFDProfile"]
    assert profile["metadata"]["name"] == "fast"
    assert profile["spec"] == {
        "receiveInterval": 50,
        "transmitInterval": 50,
        "detectMultiplier": 3,
        "echoMode": False,
        "passiveMode": False,
    }
    (bgp_peer,) = [m for m in manifests(ev) if m["kind"] == "BGPPeer"]
    assert bgp_peer["spec"]["bfdProfile"] == "fast"
    parent = next(r for r in ev.resources if r.typ == "ironlb:index:BfdProfile")
    assert all(r.parent == parent.urn for r in ev.resources if r.custom and "BFDProfile" in r.typ)


def test_the_component_refuses_echo_mode_at_preview() -> None:
    with pytest.raises(InvalidConfigError, match="echoMode"):
        run_mocked(lambda: BfdProfile("echo", {"echo_mode": True}) and None)


def test_the_planner_and_the_speaker_config_carry_the_profile() -> None:
    config = parse(
        [
            resource(
                "BFDProfile",
                "fast",
                receiveInterval=50,
                transmitInterval=100,
                detectMultiplier=4,
                passiveMode=True,
            ),
            bgp_peer(bfdProfile="fast", enableGracefulRestart=True, gracefulRestartTime=30),
            bgp_peer("plain", peerAddress="10.0.0.2"),
        ]
    )
    view = ClusterView(config=config, nodes={"n1": NodeInfo("n1", addresses=("10.0.0.11",))})
    by_name = {s.name: s for s in plan_sessions(view, "n1")}
    assert by_name["tor"].bfd == BFDSettings(50, 100, 4, passive=True)
    assert (by_name["tor"].graceful_restart, by_name["tor"].graceful_restart_time) == (True, 30)
    assert by_name["plain"].bfd is None and not by_name["plain"].graceful_restart
    text = birdconf.render("n1", [birdconf.Peering(s) for s in by_name.values()], listen_port=1790)
    assert "  bfd { min rx interval 50 ms; min tx interval 100 ms; multiplier 4; passive on; };" in text
    assert "  graceful restart on; graceful restart time 30;" in text
    assert text.count("  bfd {") == 1 and "protocol bfd bfd_ironlb { }" in text


def test_a_stack_declares_profiles_under_bfdProfiles_and_the_program_emits_them() -> None:
    import pulumi

    from ironlb.components.program import build_platform
    from ironlb.components.stackconfig import documents, spec_from_values

    values = {
        "bfdProfiles": [{"name": "fast", "receiveInterval": 100, "transmitInterval": 100}],
        "peers": [
            {"name": "tor", "myASN": 64513, "peerASN": 64512, "peerAddress": "10.0.0.1", "bfdProfile": "fast"}
        ],
        "membershipKey": "[secret]",
    }
    spec = spec_from_values(values)
    config = parse(documents(spec))
    ev = run_mocked(lambda: build_platform(spec, config, lambda key: pulumi.Output.secret("k" * 40)))
    got = {(m["kind"], m["metadata"]["name"]): m.get("spec") or {} for m in manifests(ev)}
    assert got[("BFDProfile", "fast")]["receiveInterval"] == 100
    assert got[("BGPPeer", "tor")]["bfdProfile"] == "fast"
