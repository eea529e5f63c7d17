"""Component inputs that are Pulumi Outputs: a StackReference, an IPAM result, a secret.

Under Pulumi's mocks (``ironlb.components.offline.run_mocked``): a pool's addresses come from a
StackReference output; invalid values that arrive as Outputs fail with the same message
as the same values given plainly, and the failure fails the registration (the custom
resource never reaches the engine), at apply; an unknown value at preview is not an error.
Plain values keep failing before anything registers (decision 0010): see
``tests/test_components.py``.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from ironlb.components import (
    BgpAdvertisement,
    BgpPeer,
    Community,
    InvalidConfigError,
    IpPool,
    L2Advertisement,
    LoadBalancerService,
    Tenant,
)
from ironlb.components.offline import SECRET_SIG, Evaluation, manifests, run_mocked

IPAM = "acme/ipam/prod"


def _ref(key: str) -> pulumi.Output[Any]:
    return pulumi.StackReference("ipam", stack_name=IPAM).require_output(key)


def _cr(ev: Evaluation, kind: str) -> dict[str, Any]:
    return next(m for m in manifests(ev) if m["kind"] == kind)


def _registered(ev_or_exc: Any, suffix: str) -> bool:
    resources = getattr(ev_or_exc, "resources", None) or getattr(ev_or_exc, "recorded", None) or ()
    return any(r.name.endswith(suffix) for r in resources)


def test_pool_addresses_come_from_a_stack_reference():
    box: dict[str, Any] = {}

    def build():
        pool = IpPool("lan", {"addresses": _ref("lanRanges"), "avoid_buggy_ips": True})
        return pool.addresses.apply(lambda a: box.update(addresses=a))

    ev = run_mocked(build, references={IPAM: {"lanRanges": ["192.168.50.0/28", "fd50::/124"]}})
    spec = _cr(ev, "IPPool")["spec"]
    assert spec["addresses"] == ["192.168.50.0/28", "fd50::/124"]
    assert spec["avoidBuggyIPs"] is True
    assert box["addresses"] == ["192.168.50.0/28", "fd50::/124"]


def test_an_invalid_reference_value_fails_the_update_with_the_schemas_message():
    plain_message = ""
    with pytest.raises(InvalidConfigError) as plain:
        run_mocked(lambda: IpPool("lan", {"addresses": ["192.168.50.0/33"]}) and None)
    plain_message = str(plain.value)
    with pytest.raises(InvalidConfigError) as late:
        run_mocked(
            lambda: IpPool("lan", {"addresses": _ref("lanRanges")}) and None,
            references={IPAM: {"lanRanges": ["192.168.50.0/33"]}},
        )
    assert str(late.value) == plain_message
    assert 'IPPool "lan": addresses[0] "192.168.50.0/33": prefix length must be 0-32' in plain_message
    assert not _registered(late.value, "lan-ippool"), "an invalid pool must never reach the engine"


def test_an_unknown_value_at_preview_is_not_an_error():
    ev = run_mocked(
        lambda: IpPool("lan", {"addresses": _ref("lanRanges")}) and None,
        references={IPAM: {"lanRanges": rpc.UNKNOWN}},
        preview=True,
    )
    assert _registered(ev, "lan-ippool"), "the pool registers; its spec is filled in at apply"


def test_a_secret_output_keeps_the_custom_resource_secret_on_the_wire():
    ev = run_mocked(lambda: IpPool("lan", {"addresses": pulumi.Output.secret(["10.9.0.0/29"])}) and None)
    cr = next(r for r in ev.resources if r.name == "lan-ippool")
    assert SECRET_SIG in cr.inputs["spec"], "secretness of an input must carry over"


@pytest.mark.parametrize(
    ("component", "args", "output_field", "message"),
    [
        (
            BgpPeer,
            {"my_asn": 0, "peer_asn": 64512, "peer_address": "10.0.0.1"},
            "my_asn",
            'BGPPeer "bad": myASN "0"',
        ),
        (L2Advertisement, {"garp_interval": 0.5}, "garp_interval", "garpInterval"),
        (BgpAdvertisement, {"communities": ["70000:1"]}, "communities", "must be a:b with each part 0-65535"),
        (Community, {"communities": {"edge": "70000:1"}}, "communities", 'Community "bad"'),
        (
            LoadBalancerService,
            {"namespace": "a", "ports": [{"port": 70000}]},
            "ports",
            'Service "a/bad"',
        ),
        (Tenant, {"namespaces": ["t"], "max_addresses": -1}, "max_addresses", 'Tenant "bad": maxAddresses'),
    ],
    ids=[
        "a peer's ASN from an Output",
        "an L2 GARP interval from an Output",
        "BGP communities from an Output",
        "community aliases from an Output",
        "a service's ports from an Output",
        "a tenant's quota from an Output",
    ],
)
def test_outputs_fail_with_the_same_message_as_plain_values(component, args, output_field, message):
    with pytest.raises(InvalidConfigError) as plain:
        run_mocked(lambda: component("bad", args) and None)
    late_args = {**args, output_field: pulumi.Output.from_input(args[output_field])}
    with pytest.raises(InvalidConfigError) as late:
        run_mocked(lambda: component("bad", late_args) and None)
    assert message in str(plain.value)
    assert str(late.value) == str(plain.value)


@pytest.mark.parametrize(
    ("component", "args", "kind"),
    [
        (BgpPeer, {"my_asn": 64513, "peer_asn": 64512, "peer_address": "10.0.0.1"}, "BGPPeer"),
        (L2Advertisement, {"ip_pools": ["lan"], "interfaces": ["eth0"]}, "L2Advertisement"),
        (BgpAdvertisement, {"ip_pools": ["lan"], "local_pref": 200}, "BGPAdvertisement"),
        (LoadBalancerService, {"namespace": "a", "ports": [{"port": 443}], "pool": "lan"}, "Service"),
    ],
    ids=["BgpPeer", "L2Advertisement", "BgpAdvertisement", "LoadBalancerService"],
)
def test_every_arg_given_as_an_output_gives_the_same_manifest(component, args, kind):
    plain = _cr(run_mocked(lambda: component("x", args) and None), kind)
    outputs = {k: pulumi.Output.from_input(v) for k, v in args.items()}
    late = _cr(run_mocked(lambda: component("x", outputs) and None), kind)
    assert late == plain


def test_a_peer_password_and_secret_name_may_be_outputs():
    args: Any = {  # BgpPeerArgs with outputs
        "my_asn": 64513,
        "peer_asn": 64512,
        "peer_address": "10.0.0.1",
        "password": pulumi.Output.secret("never-shown"),
        "password_secret_name": pulumi.Output.from_input("tor-md5"),
    }
    ev = run_mocked(lambda: BgpPeer("tor", args) and None)
    assert _cr(ev, "BGPPeer")["spec"]["passwordSecretRef"] == {"name": "tor-md5", "key": "password"}
    assert _cr(ev, "Secret")["stringData"] == {"password": "[secret]"}


def test_a_tenant_takes_granted_pools_and_quota_from_outputs():
    def build() -> None:  # the StackReference must be made under the mocks, so inside
        args: Any = {  # TenantArgs with outputs
            "namespaces": ["team-x"],
            "pools": {"x-lan": {"addresses": _ref("teamX")}},
            "granted_pools": pulumi.Output.from_input(["shared"]),
            "max_addresses": pulumi.Output.from_input(8),
            "max_load_balancer_services": pulumi.Output.from_input(4),
        }
        Tenant("team-x", args)

    ev = run_mocked(build, references={IPAM: {"teamX": ["10.60.0.0/29"]}})
    assert _cr(ev, "Tenant")["spec"] == {
        "namespaces": ["team-x"],
        "pools": ["shared", "x-lan"],
        "maxAddresses": 8,
    }
    assert _cr(ev, "IPPool")["spec"]["addresses"] == ["10.60.0.0/29"]
    assert _cr(ev, "ResourceQuota")["spec"] == {"hard": {"services.loadbalancers": "4"}}


@pytest.mark.parametrize("field", ["namespaces", "adopt_namespaces"])
def test_a_tenants_namespaces_must_be_plain(field):
    args: Any = {"namespaces": ["team-x"], field: pulumi.Output.from_input(["team-x"])}  # TenantArgs
    with pytest.raises(InvalidConfigError) as err:
        run_mocked(lambda: Tenant("team-x", args) and None)
    assert f'Tenant "team-x": {field}' in str(err.value)
    assert "must be known when the program runs" in str(err.value)
