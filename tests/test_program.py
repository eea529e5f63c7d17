"""The whole program under mocks: the dev, prod, platform and tenant stacks, and invalid ones."""

from __future__ import annotations

import copy
import runpy
from pathlib import Path
from typing import Any

import pytest

from ironlb.components.base import InvalidConfigError
from ironlb.components.offline import evaluate, evaluate_stack, load_stack, manifests, run_mocked
from ironlb.components.stackconfig import read_stack_file
from ironlb.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
STACKS = ROOT / "stacks"


@pytest.fixture(scope="module")
def dev():
    return evaluate_stack(load_stack("dev", STACKS))


@pytest.fixture(scope="module")
def prod():
    return evaluate_stack(load_stack("prod", STACKS))


def _kinds(ev) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in manifests(ev):
        out[m["kind"]] = out.get(m["kind"], 0) + 1
    return out


def test_dev_stack_is_one_cluster_an_l2_pool_and_two_services(dev):
    kinds = _kinds(dev)
    assert kinds["DaemonSet"] == 1 and kinds["Service"] == 2
    pools = {m["metadata"]["name"]: m["spec"] for m in manifests(dev) if m["kind"] == "IPPool"}
    assert pools["lab-l2"]["addresses"] == ["10.77.0.200-10.77.0.220", "fd77::200-fd77::220"]
    assert dev.outputs["services"] == {"default/web": "10.77.0.200", "default/dns": "10.78.0.53"}


def test_dev_stack_fits_the_lab(dev):
    peer = next(m for m in manifests(dev) if m["kind"] == "BGPPeer")["spec"]
    assert (peer["peerAddress"], peer["peerASN"], peer["myASN"]) == ("10.77.0.1", 64512, 64513)
    bgp_pool = next(m for m in manifests(dev) if m["kind"] == "IPPool" and m["metadata"]["name"] == "lab-bgp")
    assert bgp_pool["spec"]["addresses"] == ["10.78.0.0/24"]


def test_prod_stack_has_three_tenants_with_namespaces_pools_and_quotas(prod):
    tenants = {m["metadata"]["name"]: m["spec"] for m in manifests(prod) if m["kind"] == "Tenant"}
    assert len(tenants) >= 3
    assert all(t["namespaces"] and t["pools"] and t["maxAddresses"] for t in tenants.values())
    quotas = [m for m in manifests(prod) if m["kind"] == "ResourceQuota"]
    assert {q["metadata"]["namespace"] for q in quotas} == {
        ns for t in tenants.values() for ns in t["namespaces"]
    }


def test_prod_stack_peers_with_two_tor_routers_with_secret_passwords(prod):
    peers = [m for m in manifests(prod) if m["kind"] == "BGPPeer"]
    assert len(peers) == 2 and all("passwordSecretRef" in p["spec"] for p in peers)
    secrets = {m["metadata"]["name"]: m for m in manifests(prod) if m["kind"] == "Secret"}
    for peer in peers:
        assert secrets[peer["spec"]["passwordSecretRef"]["name"]]["stringData"] == {"password": "[secret]"}


def test_prod_stack_is_dual_stack_with_an_l2_pool(prod):
    pools = [m["spec"]["addresses"] for m in manifests(prod) if m["kind"] == "IPPool"]
    assert any(":" in a for p in pools for a in p) and any("." in a for p in pools for a in p)
    assert _kinds(prod)["L2Advertisement"] >= 1
    dual = next(
        m
        for m in manifests(prod)
        if m["kind"] == "Service" and m["spec"].get("ipFamilyPolicy") == "RequireDualStack"
    )
    assert dual["spec"]["ipFamilies"] == ["IPv4", "IPv6"]


def test_tenant_pools_are_children_of_their_tenant(prod):
    pool = next(r for r in prod.resources if r.typ == "ironlb:index:IpPool" and r.name == "team-a-bgp")
    assert pool.parent.endswith("ironlb:index:Tenant::team-a")
    shared = next(r for r in prod.resources if r.typ == "ironlb:index:IpPool" and r.name == "shared-l2")
    assert "ironlb:index:Tenant" not in shared.parent


def test_custom_resources_wait_for_the_crds(prod):
    crds = {r.urn for r in prod.resources if r.typ.endswith(":CustomResourceDefinition")}
    crs = [r for r in prod.resources if r.typ.startswith("kubernetes:ironlb.io/")]
    assert crs and all(crds <= set(r.dependencies) for r in crs)


def test_main_py_is_the_program():
    values, secrets = read_stack_file(STACKS / "Pulumi.dev.yaml")
    ev = run_mocked(lambda: runpy.run_path(str(ROOT / "__main__.py")) and None, values, secrets)
    assert len([r for r in ev.resources if r.custom]) == len(
        manifests(evaluate_stack(load_stack("dev", STACKS)))
    )


def test_platform_stack_exports_grants_for_each_tenant():
    ev = evaluate_stack(load_stack("platform", STACKS))
    grants = ev.outputs["tenantGrants"]
    assert sorted(grants) == ["team-a", "team-b", "team-c"]
    assert sorted(grants["team-a"]["pools"]) == ["team-a-bgp"]
    assert grants["team-a"]["namespaces"] == ["team-a-prod", "team-a-staging"]


def test_tenant_stack_creates_only_its_services_from_granted_pools():
    ev = evaluate_stack(load_stack("team-a", STACKS))
    assert {m["kind"] for m in manifests(ev)} == {"Service"}
    assert ev.outputs["services"] == {
        "team-a-prod/shop": "10.100.0.1",
        "team-a-staging/shop-admin": "10.100.0.20",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda v: v["services"][0].update(pool="team-b-bgp"),
            'no IPPool named "team-b-bgp" (known pools: team-a-bgp)',
        ),
        (lambda v: v["services"][1].update(ips=["10.100.1.10"]), "10.100.1.10"),
        (lambda v: v["platform"].update(tenant="team-z"), "grants nothing to this tenant"),
    ],
    ids=[
        "a tenant stack cannot name a pool the platform did not grant",
        "a tenant stack cannot pin another tenant's address",
        "a tenant stack for an unknown tenant fails",
    ],
)
def test_tenant_stack_cannot_reach_beyond_its_grant(change, message):
    loaded = load_stack("team-a", STACKS)
    values: dict[str, Any] = copy.deepcopy(dict(loaded.values))
    change(values)
    with pytest.raises((InvalidConfigError, ConfigError)) as err:
        evaluate(values, loaded.secret_keys, stack="team-a", references=loaded.references)
    assert message in str(err.value)
    assert not any(r.typ == "kubernetes:core/v1:Service" for r in getattr(err.value, "recorded", ()))


def _dev_values() -> dict[str, Any]:
    values, _ = read_stack_file(STACKS / "Pulumi.dev.yaml")
    return copy.deepcopy(values)


def _prod_values() -> dict[str, Any]:
    values, _ = read_stack_file(STACKS / "Pulumi.prod.yaml")
    return copy.deepcopy(values)


INVALID = [
    ("dev", lambda v: v["pools"].append({"name": "dup", "addresses": ["10.77.0.210/31"]}), "overlaps"),
    (
        "dev",
        lambda v: v["pools"][0].update(addresses=["10.77.0.0/33"]),
        'IPPool "lab-l2": addresses[0] "10.77.0.0/33": prefix length must be 0-32 for IPv4',
    ),
    ("dev", lambda v: v["pools"][0].update(colour="red"), 'IPPool "lab-l2": colour "red": unknown field'),
    (
        "dev",
        lambda v: v["peers"][0].update(holdTime=2),
        'BGPPeer "lab-router": holdTime "2": must be 0 or 3-65535',
    ),
    ("dev", lambda v: v["services"][0].update(pool="nope"), 'no IPPool named "nope"'),
    ("dev", lambda v: v["services"][0].update(ips=["192.0.2.1"]), "192.0.2.1"),
    ("dev", lambda v: v.update(pool=[]), 'stack config "ironlb:pool": unknown key'),
    (
        "dev",
        lambda v: v["services"][0].update(port=80),
        'stack config "ironlb:services[0]": port: unknown key',
    ),
    ("dev", lambda v: v.pop("membershipKey"), 'stack config "ironlb:membershipKey": is required'),
    ("dev", lambda v: v["peers"][0].update(passwordConfig="routerPassword"), 'is named by peer "lab-router"'),
    (
        "prod",
        lambda v: v["services"][1].update(pool="team-b-bgp"),
        'pool "team-b-bgp" belongs to tenant "team-b", not to tenant "team-a"',
    ),
    ("prod", lambda v: v["tenants"][1]["namespaces"].append("team-a-prod"), "team-a-prod"),
]


@pytest.mark.parametrize(
    ("stack", "change", "message"),
    INVALID,
    ids=[
        "overlapping pools are named",
        "a bad prefix gets the schema's message",
        "an unknown pool field is named",
        "a bad hold time is named",
        "a service naming an unknown pool fails",
        "a pin outside every pool fails",
        "a misspelt stack key is named",
        "a misspelt service key is named",
        "a missing membership key is named",
        "a peer naming an unset password key fails",
        "a tenant's service cannot use another tenant's pool",
        "a namespace claimed by two tenants fails",
    ],
)
def test_invalid_stack_config_fails_preview_with_the_schema_message(stack, change, message):
    values = _dev_values() if stack == "dev" else _prod_values()
    change(values)
    with pytest.raises(InvalidConfigError) as err:
        evaluate(values, {"membershipKey"}, stack=stack)
    assert message in str(err.value)
    assert [r for r in getattr(err.value, "recorded", ()) if r.custom] == []


def test_crds_are_kept_in_the_cluster_when_deleted_from_the_stack(dev):
    crds = [r for r in dev.resources if r.typ.endswith(":CustomResourceDefinition")]
    assert crds and all(r.retain_on_delete for r in crds), "deleting a CRD deletes every pool with it"
    others = [r for r in dev.resources if r.custom and not r.typ.endswith(":CustomResourceDefinition")]
    assert not any(r.retain_on_delete for r in others)
