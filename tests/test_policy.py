"""The CrossGuard policies: called directly, and fed every resource the mocked programs register."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
    StackValidationPolicy,
)

from ironlb.components.offline import SECRET_SIG, Evaluation, evaluate, evaluate_stack, load_stack
from ironlb.model import ANN_IPS
from policy import policies

STACKS = Path(__file__).resolve().parents[1] / "stacks"


def _opts(secret_outputs: list[str] | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        False, [], None, [], PolicyCustomTimeouts(0, 0, 0), secret_outputs or [], None
    )


def _unwrap(value: Any) -> Any:
    """Wire inputs as the policy SDK sees them: secrets unwrapped to their plain value."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def validate_resource(
    policy, typ: str, props: dict[str, Any], config: dict[str, Any] | None = None
) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(typ, props, f"urn:x::{typ}::r", "r", _opts(), None, config or {})
    policy.validate(args, lambda message, urn=None: found.append(message))
    return found


def stack_resources(ev: Evaluation) -> list[PolicyResource]:
    return [
        PolicyResource(
            r.typ, _unwrap(dict(r.inputs)), r.urn, r.name, _opts(list(r.secret_outputs)), None, None, [], {}
        )
        for r in ev.resources
        if r.custom
    ]


def validate_stack(policy, resources: list[PolicyResource]) -> list[str]:
    found: list[str] = []
    policy.validate(StackValidationArgs(resources, {}), lambda message, urn=None: found.append(message))
    return found


def pool(addresses: list[str]) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"addresses": addresses}}


@pytest.mark.parametrize(
    ("addresses", "config", "violations"),
    [
        (["10.1.0.0/24", "172.16.5.1-172.16.5.9", "192.168.1.7", "fd00:1::/64"], {}, 0),
        (["203.0.113.0/24"], {}, 1),
        (["2001:db8::/64"], {}, 1),
        (["10.255.255.250-11.0.0.5"], {}, 1),
        (["203.0.113.0/28"], {"allowedRanges": ["203.0.113.0/24"]}, 0),
    ],
    ids=[
        "private and ULA blocks pass",
        "a public IPv4 CIDR is refused",
        "a global IPv6 prefix is refused",
        "a range leaving private space is refused",
        "an explicitly allowed public range passes",
    ],
)
def test_pools_must_be_private(addresses, config, violations):
    found = validate_resource(policies.pools_private, policies.POOL_TYPE, pool(addresses), config)
    assert len(found) == violations
    if violations:
        assert 'IPPool "p": addresses[0]' in found[0] and "allowedRanges" in found[0]


@pytest.mark.parametrize(
    ("mine", "theirs", "config", "violations"),
    [
        (64513, 64512, {}, 0),
        (4200000001, 65534, {}, 0),
        (13335, 64512, {}, 1),
        (64513, 3356, {}, 1),
        (64513, 3356, {"allowedAsns": [3356]}, 0),
    ],
    ids=[
        "two 16-bit private ASNs pass",
        "a 32-bit private ASN passes",
        "a public node ASN is refused",
        "a public router ASN is refused",
        "an explicitly allowed public ASN passes",
    ],
)
def test_peers_use_private_asns(mine, theirs, config, violations):
    props = {
        "metadata": {"name": "tor"},
        "spec": {"myASN": mine, "peerASN": theirs, "peerAddress": "10.0.0.1"},
    }
    assert len(validate_resource(policies.private_asn, policies.PEER_TYPE, props, config)) == violations


def test_resource_policies_ignore_other_types():
    assert validate_resource(policies.pools_private, policies.SERVICE_TYPE, pool(["8.8.8.0/24"])) == []


@functools.cache
def _evaluated(stack: str) -> Evaluation:
    return evaluate_stack(load_stack(stack, STACKS))


def _prod() -> Evaluation:
    return _evaluated("prod")


@pytest.mark.parametrize("stack", ["dev", "prod", "platform", "team-a"])
def test_every_policy_passes_on_the_stacks_we_ship(stack):
    resources = stack_resources(_evaluated(stack))
    for policy in policies.POLICIES:
        if isinstance(policy, StackValidationPolicy):
            assert validate_stack(policy, resources) == []
        else:
            for res in resources:
                assert validate_resource(policy, res.resource_type, dict(res.props)) == []


def _with(resources: list[PolicyResource], typ: str, name: str, edit) -> list[PolicyResource]:
    out = []
    for res in resources:
        props = copy.deepcopy(dict(res.props))
        if res.resource_type == typ and props["metadata"]["name"] == name:
            edit(props)
        out.append(PolicyResource(res.resource_type, props, res.urn, res.name, res.opts, None, None, [], {}))
    return out


@pytest.mark.parametrize(
    ("namespace", "service", "pin", "fragment"),
    [
        (
            "team-a-prod",
            "web",
            "10.100.1.11",
            'pool "team-b-bgp" (tenant "team-b"), but namespace "team-a-prod" belongs to tenant "team-a"',
        ),
        ("default", "ingress", "10.100.2.3", 'namespace "default" belongs to no tenant'),
        ("team-c", "mqtt", "10.20.0.201", 'pool "shared-l2" (tenant "-")'),
        ("team-b", "api", "198.51.100.1", "is in no IPPool of this stack"),
    ],
    ids=[
        "a tenant cannot pin another tenant's address",
        "a platform service cannot pin a tenant's address",
        "a tenant cannot pin a shared address",
        "a pin outside every pool is refused",
    ],
)
def test_service_pins_stay_inside_the_tenant(namespace, service, pin, fragment):
    def pin_it(props):
        props["metadata"].setdefault("annotations", {})[ANN_IPS] = pin

    resources = [
        r
        for r in stack_resources(_prod())
        if not (r.resource_type == policies.SERVICE_TYPE and r.props["metadata"]["namespace"] != namespace)
    ]
    found = validate_stack(policies.pins_in_tenant, _with(resources, policies.SERVICE_TYPE, service, pin_it))
    assert len(found) == 1 and fragment in found[0]


def test_a_bgp_password_secret_without_secret_outputs_is_refused():
    resources = stack_resources(_prod())
    stripped = [
        PolicyResource(r.resource_type, r.props, r.urn, r.name, _opts([]), None, None, [], {})
        if r.resource_type == policies.SECRET_TYPE and r.props["metadata"]["name"] == "ironlb-bgp-tor-a"
        else r
        for r in resources
    ]
    found = validate_stack(policies.passwords_secret, stripped)
    assert len(found) == 1 and 'Secret "ironlb-bgp-tor-a" holds BGPPeer "tor-a"' in found[0]


def test_a_plaintext_password_on_a_peer_is_refused():
    resources = _with(
        stack_resources(_prod()), policies.PEER_TYPE, "tor-b", lambda p: p["spec"].update(password="hunter2")
    )
    found = validate_stack(policies.passwords_secret, resources)
    assert found == [
        'BGPPeer "tor-b": spec.password is plain text; put the password in a Secret and reference '
        "it with passwordSecretRef"
    ]


def test_policy_annotation_constant_matches_the_schema():
    assert policies.ANN_IPS == ANN_IPS


def test_public_pool_in_a_stack_is_caught_end_to_end():
    values = copy.deepcopy(dict(load_stack("dev", STACKS).values))
    values["pools"].append({"name": "public", "addresses": ["198.51.100.0/28"], "autoAssign": False})
    resources = stack_resources(evaluate(values, {"membershipKey"}))
    found = [
        m
        for r in resources
        for m in validate_resource(policies.pools_private, r.resource_type, dict(r.props))
    ]
    assert found == [
        'IPPool "public": addresses[0] "198.51.100.0/28" is not in private (RFC 1918) or ULA space; '
        "add its range to this policy's allowedRanges if that is intended"
    ]


def test_a_tenant_stack_pin_is_checked_against_the_platform_grants():
    resources = _with(
        stack_resources(_evaluated("team-a")),
        policies.SERVICE_TYPE,
        "shop-admin",
        lambda p: p["metadata"]["annotations"].update({ANN_IPS: "10.100.1.5"}),
    )
    found = validate_stack(policies.pins_in_tenant, resources)
    assert len(found) == 1 and 'pool "team-b-bgp" (tenant "team-b")' in found[0]
