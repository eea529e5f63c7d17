"""The component provider's Analyzer accepts every component (the offline schema check)."""

from __future__ import annotations

import pytest
from pulumi.provider.experimental.analyzer import Analyzer

from ironlb.components import COMPONENTS


@pytest.fixture(scope="module")
def analysis():
    return Analyzer("ironlb").analyze(list(COMPONENTS))


def test_every_component_is_in_the_schema(analysis):
    assert sorted(analysis["component_definitions"]) == sorted(c.__name__ for c in COMPONENTS)


@pytest.mark.parametrize(
    ("component", "inputs", "outputs"),
    [
        (
            "NodeAgent",
            {"namespace", "image", "version", "membershipKey", "nodeSelector", "tolerations"},
            {
                "namespace",
                "serviceAccountName",
                "controllerServiceAccountName",
                "crdNames",
                "daemonSetName",
                "deploymentName",
            },
        ),
        (
            "IpPool",
            {"addresses", "autoAssign", "avoidBuggyIps", "serviceAllocation", "tenant", "disabled"},
            {"poolName", "addresses"},
        ),
        (
            "BgpPeer",
            {"myAsn", "peerAsn", "peerAddress", "password", "holdTime"},
            {"peerName", "passwordSecretName"},
        ),
        (
            "Tenant",
            {"namespaces", "pools", "maxAddresses", "maxLoadBalancerServices"},
            {"tenantName", "namespaces", "poolNames"},
        ),
        ("LoadBalancerService", {"namespace", "ports", "pool", "ips", "sharingKey"}, {"ip", "serviceName"}),
    ],
    ids=["NodeAgent", "IpPool", "BgpPeer", "Tenant", "LoadBalancerService"],
)
def test_component_schema_has(analysis, component, inputs, outputs):
    definition = analysis["component_definitions"][component]
    assert inputs <= set(definition.inputs)
    assert outputs == set(definition.outputs)
    assert definition.description


def test_list_outputs_are_parameterised(analysis):
    addresses = analysis["component_definitions"]["IpPool"].outputs["addresses"]
    assert addresses.items is not None and addresses.items.type.value == "string"


MINIMAL = {
    "NodeAgent": {"membership_key": "k" * 32},
    "IpPool": {"addresses": ["10.0.0.0/30"]},
    "BgpPeer": {"my_asn": 64512, "peer_asn": 64513, "peer_address": "10.0.0.1"},
    "L2Advertisement": {},
    "BgpAdvertisement": {},
    "Community": {"communities": {"a": "1:1"}},
    "BfdProfile": {},
    "Tenant": {"namespaces": ["t"]},
    "LoadBalancerService": {"namespace": "a", "ports": [{"port": 80}]},
}


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda c: c.__name__)
def test_registered_type_token_is_ironlb_index_class_name(cls):
    from ironlb.components.offline import run_mocked

    ev = run_mocked(lambda: cls("x", MINIMAL[cls.__name__]) and None)
    assert [r.typ for r in ev.resources if not r.custom] == [f"ironlb:index:{cls.__name__}"]
