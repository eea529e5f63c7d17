"""Every component under Pulumi's mock runtime: children, parents, options, secrets, specs."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest

from ironlb import model
from ironlb.components import (
    BgpAdvertisement,
    BgpPeer,
    Community,
    InvalidConfigError,
    IpPool,
    L2Advertisement,
    LoadBalancerService,
    NodeAgent,
    Tenant,
)
from ironlb.components.args import to_args, to_spec
from ironlb.components.offline import SECRET_SIG, Evaluation, Recorded, manifests, run_mocked
from ironlb.config import load_objects, parse
from ironlb.model import ANN_IPS, ANN_POOL, ANN_SHARING, LOAD_BALANCER_CLASS
from lab.manifests import pool, tenant

PASSWORD = "pa55-w0rd-never-shown"
KEY = "membership-key-never-shown-0123456789"  # at least 32 bytes, as the component requires


def children(ev: Evaluation, parent_type: str, parent_name: str) -> list[Recorded]:
    parent = next(r for r in ev.resources if r.typ == parent_type and r.name == parent_name)
    return [r for r in ev.resources if r.parent == parent.urn]


def kinds(resources: list[Recorded]) -> list[tuple[str, str]]:
    return sorted((r.typ, r.name) for r in resources)


def agent(name: str = "ironlb", **extra: Any) -> NodeAgent:
    settings: Any = {"membership_key": pulumi.Output.secret(KEY), **extra}  # NodeAgentArgs
    return NodeAgent(name, settings)


# --- NodeAgent ---------------------------------------------------------------------------


def test_node_agent_creates_exactly_its_children_under_itself():
    ev = run_mocked(lambda: agent() and None)
    got = kinds(children(ev, "ironlb:index:NodeAgent", "ironlb"))
    crds = [
        ("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition", f"ironlb-crd-{p}")
        for p in sorted([*(c.PLURAL for c in model.RESOURCE_KINDS.values()), "nodestates"])
    ]
    rbac = "kubernetes:rbac.authorization.k8s.io/v1"
    assert got == sorted(
        [
            *crds,
            ("kubernetes:apps/v1:DaemonSet", "ironlb-daemonset"),
            ("kubernetes:apps/v1:Deployment", "ironlb-deployment"),
            ("kubernetes:core/v1:ConfigMap", "ironlb-config"),
            ("kubernetes:core/v1:Namespace", "ironlb-namespace"),
            ("kubernetes:core/v1:Secret", "ironlb-membership-key"),
            ("kubernetes:core/v1:ServiceAccount", "ironlb-speaker-serviceaccount"),
            ("kubernetes:core/v1:ServiceAccount", "ironlb-controller-serviceaccount"),
            (f"{rbac}:ClusterRole", "ironlb-speaker-clusterrole"),
            (f"{rbac}:ClusterRoleBinding", "ironlb-speaker-clusterrolebinding"),
            (f"{rbac}:ClusterRole", "ironlb-controller-clusterrole"),
            (f"{rbac}:ClusterRoleBinding", "ironlb-controller-clusterrolebinding"),
            (f"{rbac}:Role", "ironlb-controller-role"),
            (f"{rbac}:RoleBinding", "ironlb-controller-rolebinding"),
        ]
    )


def _daemonset(ev: Evaluation) -> dict[str, Any]:
    return next(m for m in manifests(ev) if m["kind"] == "DaemonSet")


def test_daemonset_is_hardened_as_documented():
    ev = run_mocked(
        lambda: agent(node_selector={"role": "edge"}, bgp_password_secrets=["ironlb-bgp-a"]) and None
    )
    pod = _daemonset(ev)["spec"]["template"]["spec"]
    box = pod["containers"][0]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert box["securityContext"] == {
        "runAsUser": 0,  # explicitly: the image's default user is 65532
        "runAsGroup": 0,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]},
    }
    assert box["command"] == ["ironlb-agent"], "everything else comes from the settings file"
    assert box["image"] == "ghcr.io/ironlb/agent:0.1.0"
    assert box["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert box["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert set(box["resources"]) == {"requests", "limits"}
    assert {p["name"] for p in box["ports"]} >= {"metrics", "health"}
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "role": "edge"}
    assert pod["tolerations"]
    mounts = {m["mountPath"]: m for m in box["volumeMounts"]}
    assert set(mounts) == {
        "/etc/ironlb/config",
        "/etc/ironlb/membership",
        "/etc/ironlb/secrets",
        "/run/ironlb",
        "/tmp",
    }
    projected = next(v for v in pod["volumes"] if v["name"] == "bgp-secrets")["projected"]["sources"]
    assert projected == [
        {
            "secret": {
                "name": "ironlb-bgp-a",
                "optional": True,
                "items": [{"key": "password", "path": "ironlb-bgp-a/password"}],
            }
        }
    ]


@pytest.mark.parametrize(
    ("args", "image"),
    [
        ({}, "ghcr.io/ironlb/agent:0.1.0"),
        ({"version": "0.2.1"}, "ghcr.io/ironlb/agent:0.2.1"),
        ({"image": "registry.local/ironlb:dev"}, "registry.local/ironlb:dev"),
    ],
    ids=[
        "the default image is the current release",
        "a version picks the tag",
        "an image wins over the version",
    ],
)
def test_agent_image_is_an_input_with_a_default(args, image):
    ev = run_mocked(lambda: agent(**args) and None)
    assert _daemonset(ev)["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_agent_without_a_membership_key_fails_before_registering():
    registered: list[Recorded] = []
    with pytest.raises(InvalidConfigError, match="membership_key"):
        registered.extend(run_mocked(lambda: NodeAgent("x", {}) and None).resources)
    assert registered == []


def test_membership_key_stays_secret_on_the_wire_and_in_manifests(capsys):
    ev = run_mocked(lambda: {"ns": agent().namespace})
    secret = next(r for r in ev.resources if r.typ == "kubernetes:core/v1:Secret")
    assert SECRET_SIG in secret.inputs["stringData"]
    assert {"data", "stringData"} <= set(secret.secret_outputs)
    assert KEY not in json.dumps(manifests(ev)) + json.dumps(ev.outputs) + "".join(capsys.readouterr())


def test_agent_can_adopt_a_namespace_and_skip_crds():
    ev = run_mocked(lambda: agent(create_namespace=False, install_crds=False, namespace="lb") and None)
    got = {r.typ for r in ev.resources}
    assert "kubernetes:core/v1:Namespace" not in got
    assert "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition" not in got
    assert {
        m["metadata"].get("namespace")
        for m in manifests(ev)
        if m["kind"] != "ClusterRole" and m["kind"] != "ClusterRoleBinding"
    } == {"lb"}


# --- options flow to children --------------------------------------------------------------


def test_a_provider_given_to_a_component_reaches_every_child():
    def build():
        provider = k8s.Provider("cluster-b", kubeconfig="{}")
        agent("a", namespace="a")  # default provider, for contrast
        IpPool("p", {"addresses": ["10.1.0.0/24"]}, opts=pulumi.ResourceOptions(provider=provider))
        NodeAgent(
            "b", {"membership_key": KEY, "namespace": "b"}, opts=pulumi.ResourceOptions(providers=[provider])
        )

    ev = run_mocked(build)
    on_b = {r.name for r in ev.resources if r.custom and "cluster-b" in (r.provider or "")}
    b_children = {r.name for r in children(ev, "ironlb:index:NodeAgent", "b")}
    assert "p-ippool" in on_b
    assert b_children and b_children <= on_b
    assert not any("cluster-b" in (r.provider or "") for r in children(ev, "ironlb:index:NodeAgent", "a"))


def test_depends_on_given_to_a_component_reaches_its_custom_resource():
    def build():
        gate = k8s.core.v1.ConfigMap("gate", metadata={"name": "gate", "namespace": "x"})
        IpPool("p", {"addresses": ["10.1.0.0/24"]}, opts=pulumi.ResourceOptions(depends_on=[gate]))

    ev = run_mocked(build)
    gate = next(r for r in ev.resources if r.name == "gate")
    cr = next(r for r in ev.resources if r.name == "p-ippool")
    assert gate.urn in cr.dependencies


# --- IpPool / advertisements / Community -------------------------------------------------


def _cr(ev: Evaluation, kind: str) -> dict[str, Any]:
    return next(m for m in manifests(ev) if m["kind"] == kind)


@pytest.mark.parametrize(
    ("component", "args", "kind", "spec"),
    [
        (
            IpPool,
            {
                "addresses": ["10.1.0.0/24", "fd01::/120"],
                "auto_assign": False,
                "avoid_buggy_ips": True,
                "service_allocation": {"priority": 5, "namespaces": ["web"]},
            },
            "IPPool",
            model.IPPoolSpec,
        ),
        (
            L2Advertisement,
            {
                "ip_pools": ["a"],
                "interfaces": ["eth0"],
                "garp_interval": 30,
                "node_selector": {"match_labels": {"edge": "true"}},
            },
            "L2Advertisement",
            model.L2AdvertisementSpec,
        ),
        (
            BgpAdvertisement,
            {
                "ip_pools": ["a"],
                "aggregation_length_v6": 64,
                "communities": ["65000:1", "large:1:2:3"],
                "local_pref": 200,
                "peers": ["tor"],
            },
            "BGPAdvertisement",
            model.BGPAdvertisementSpec,
        ),
        (Community, {"communities": {"edge": "65000:7"}}, "Community", model.CommunitySpec),
    ],
    ids=[
        "an IpPool emits an IPPool whose spec is the schema's",
        "an L2Advertisement emits the schema's spec",
        "a BgpAdvertisement emits the schema's spec",
        "a Community emits the schema's spec",
    ],
)
def test_custom_resource_spec_matches_the_schema(component, args, kind, spec):
    ev = run_mocked(lambda: component("x", args) and None)
    cr = _cr(ev, kind)
    expected = model.RESOURCE_KINDS[kind].build("x", spec.model_validate(to_spec(spec, args))).to_manifest()
    assert cr["spec"] == expected["spec"]
    assert cr["apiVersion"] == "ironlb.io/v1alpha1"
    read, _, issues = load_objects([cr])  # the agent reads it back as it is
    assert issues == [] and read[0].spec == spec.model_validate(to_spec(spec, args))  # type: ignore[attr-defined]  # every kind has one
    assert [r.name for r in children(ev, f"ironlb:index:{component.__name__}", "x")] == [f"x-{kind.lower()}"]


@pytest.mark.parametrize(
    ("component", "args", "message"),
    [
        (
            IpPool,
            {"addresses": ["10.0.0.0/33"]},
            'IPPool "bad": addresses[0] "10.0.0.0/33": prefix length must be 0-32',
        ),
        (IpPool, {"addresses": ["10.0.0.1/24"]}, "host bits are set; the network is 10.0.0.0/24"),
        (IpPool, {"addresses": ["10.0.0.0/24"], "colour": "red"}, 'colour "red": unknown field'),
        (BgpPeer, {"my_asn": 0, "peer_asn": 64512, "peer_address": "10.0.0.1"}, 'BGPPeer "bad": myASN "0"'),
        (
            BgpPeer,
            {"my_asn": 64512, "peer_asn": 64512, "peer_address": "10.0.0.1", "hold_time": 2},
            "must be 0 or 3-65535 seconds",
        ),
        (BgpAdvertisement, {"communities": ["70000:1"]}, "must be a:b with each part 0-65535"),
        (L2Advertisement, {"garp_interval": 0.5}, "garpInterval"),
    ],
    ids=[
        "an IPv4 prefix over 32 fails with the schema's message",
        "host bits set fail",
        "an unknown field is named",
        "ASN 0 fails",
        "a hold time of 2 s fails",
        "a community over 65535 fails",
        "a GARP interval under 1 s fails",
    ],
)
def test_invalid_args_fail_before_anything_registers(component, args, message):
    seen: list[Recorded] = []
    with pytest.raises(InvalidConfigError) as err:
        seen.extend(run_mocked(lambda: component("bad", args) and None).resources)
    assert message in str(err.value)
    assert seen == []


@pytest.mark.parametrize(
    "kind", sorted(["IPPool", "BGPPeer", "L2Advertisement", "BGPAdvertisement", "Tenant"])
)
def test_args_and_spec_convert_both_ways_for(kind):
    samples: dict[str, dict[str, Any]] = {
        "IPPool": {
            "addresses": ["10.0.0.0/24"],
            "avoidBuggyIPs": True,
            "serviceAllocation": {"priority": 3, "namespaceSelector": {"matchLabels": {"a_b": "c"}}},
        },
        "BGPPeer": {
            "myASN": 64512,
            "peerASN": 64513,
            "peerAddress": "10.0.0.1",
            "routerID": "10.0.0.9",
            "ebgpMultiHop": True,
            "passwordSecretRef": {"name": "s"},
        },
        "L2Advertisement": {"ipPools": ["a"], "garpInterval": 5},
        "BGPAdvertisement": {"aggregationLengthV6": 64, "localPref": 7},
        "Tenant": {"namespaces": ["a"], "maxAddresses": 3},
    }
    res = model.RESOURCE_KINDS[kind].build("x", samples[kind])
    args = to_args(res.spec)
    assert all(k == k.lower() for k in args)  # snake_case, like the TypedDicts
    assert type(res.spec).model_validate(to_spec(type(res.spec), args)) == res.spec


# --- BgpPeer -----------------------------------------------------------------------------


def test_bgp_peer_password_goes_only_into_a_secret(capsys):
    ev = run_mocked(
        lambda: {
            "name": BgpPeer(
                "tor",
                {
                    "my_asn": 64513,
                    "peer_asn": 64512,
                    "peer_address": "10.0.0.1",
                    "password": pulumi.Output.secret(PASSWORD),
                },
            ).password_secret_name
        }
    )
    secret = next(r for r in ev.resources if r.typ == "kubernetes:core/v1:Secret")
    assert secret.parent.endswith("ironlb:index:BgpPeer::tor")
    assert SECRET_SIG in secret.inputs["stringData"]
    assert {"data", "stringData"} <= set(secret.secret_outputs)
    peer = _cr(ev, "BGPPeer")
    assert peer["spec"]["passwordSecretRef"] == {"name": "ironlb-bgp-tor", "key": "password"}
    assert ev.outputs == {"name": "ironlb-bgp-tor"}
    everything = json.dumps(manifests(ev)) + json.dumps(ev.outputs) + "".join(capsys.readouterr())
    assert PASSWORD not in everything


def test_a_plain_string_password_is_made_secret_by_the_component():
    ev = run_mocked(
        lambda: (
            BgpPeer(
                "tor", {"my_asn": 64513, "peer_asn": 64512, "peer_address": "10.0.0.1", "password": PASSWORD}
            )
            and None
        )
    )
    secret = next(r for r in ev.resources if r.typ == "kubernetes:core/v1:Secret")
    assert SECRET_SIG in secret.inputs["stringData"]


def test_bgp_peer_without_password_creates_no_secret():
    ev = run_mocked(
        lambda: BgpPeer("tor", {"my_asn": 64513, "peer_asn": 64512, "peer_address": "10.0.0.1"}) and None
    )
    assert [r.typ for r in ev.resources if r.custom] == ["kubernetes:ironlb.io/v1alpha1:BGPPeer"]
    assert "passwordSecretRef" not in _cr(ev, "BGPPeer")["spec"]


# --- Tenant ------------------------------------------------------------------------------


def test_tenant_owns_namespaces_pools_and_quotas():
    ev = run_mocked(
        lambda: (
            Tenant(
                "team",
                {
                    "namespaces": ["team-web", "team-old"],
                    "adopt_namespaces": ["team-old"],
                    "pools": {"team-pool": {"addresses": ["10.9.0.0/28"]}},
                    "granted_pools": ["shared"],
                    "max_addresses": 5,
                    "max_load_balancer_services": 3,
                },
            )
            and None
        )
    )
    got = kinds(children(ev, "ironlb:index:Tenant", "team"))
    assert got == sorted(
        [
            ("ironlb:index:IpPool", "team-pool"),
            ("kubernetes:core/v1:Namespace", "team-namespace-team-web"),
            ("kubernetes:core/v1:NamespacePatch", "team-namespace-team-old"),
            ("kubernetes:core/v1:ResourceQuota", "team-quota-team-old"),
            ("kubernetes:core/v1:ResourceQuota", "team-quota-team-web"),
            ("kubernetes:ironlb.io/v1alpha1:Tenant", "team-tenant"),
        ]
    )
    cr = _cr(ev, "Tenant")["spec"]
    assert cr == {"namespaces": ["team-web", "team-old"], "pools": ["shared", "team-pool"], "maxAddresses": 5}
    assert _cr(ev, "IPPool")["spec"]["tenant"] == "team"
    quota = next(m for m in manifests(ev) if m["kind"] == "ResourceQuota")
    assert quota["spec"] == {"hard": {"services.loadbalancers": "3"}}


def test_tenant_with_an_invalid_pool_fails_before_registering():
    with pytest.raises(InvalidConfigError, match='IPPool "p": addresses'):
        run_mocked(lambda: Tenant("t", {"namespaces": ["a"], "pools": {"p": {"addresses": ["nope"]}}}))


# --- LoadBalancerService -----------------------------------------------------------------


def test_service_carries_ironlb_class_and_annotations_and_reports_its_ip():
    ev = run_mocked(
        lambda: {
            "ip": LoadBalancerService(
                "web",
                {
                    "namespace": "shop",
                    "ports": [{"port": 443}],
                    "selector": {"app": "web"},
                    "pool": "p",
                    "ips": ["10.1.0.7"],
                    "sharing_key": "edge",
                },
            ).ip
        },
        planned={"shop/web": ("10.1.0.7",)},
    )
    svc = next(m for m in manifests(ev) if m["kind"] == "Service")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["loadBalancerClass"] == LOAD_BALANCER_CLASS
    assert svc["metadata"]["annotations"] == {ANN_POOL: "p", ANN_IPS: "10.1.0.7", ANN_SHARING: "edge"}
    assert ev.outputs == {"ip": "10.1.0.7"}


def test_service_ip_is_empty_until_assigned():
    ev = run_mocked(
        lambda: {"ip": LoadBalancerService("web", {"namespace": "a", "ports": [{"port": 80}]}).ip}
    )
    assert ev.outputs == {"ip": ""}


KNOWN = [
    pool("a-pool", "10.1.0.0/28", tenant="a"),
    pool("b-pool", "10.2.0.0/28", tenant="b"),
    tenant("a", ["a"]),
    tenant("b", ["b"]),
]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"pool": "b-pool"}, 'pool "b-pool" belongs to tenant "b", not to tenant "a"'),
        ({"ips": ["10.2.0.3"]}, 'pool "b-pool" belongs to tenant "b", not to tenant "a"'),
        ({"ips": ["192.168.9.9"]}, "is in no IPPool"),
        ({"pool": "nope"}, 'pool "nope" does not exist'),
        ({"ips": ["not-an-ip"]}, "is not an IPv4 or IPv6 address"),
    ],
    ids=[
        "a tenant's service cannot name another tenant's pool",
        "a tenant's service cannot pin another tenant's address",
        "a service cannot pin an address outside every pool",
        "a service cannot name an unknown pool",
        "a malformed pinned address is named",
    ],
)
def test_service_checked_against_known_pools_and_tenants(args, message):
    known = parse(KNOWN)
    service_args: Any = {"namespace": "a", "ports": [{"port": 80}], **args}  # LoadBalancerServiceArgs
    with pytest.raises(InvalidConfigError, match=message):
        run_mocked(lambda: LoadBalancerService("svc", service_args, known=known))


def test_service_in_its_own_tenant_pool_is_accepted():
    ev = run_mocked(
        lambda: (
            LoadBalancerService(
                "svc", {"namespace": "a", "ports": [{"port": 80}], "ips": ["10.1.0.3"]}, known=parse(KNOWN)
            )
            and None
        )
    )
    assert [r.typ for r in ev.resources if r.custom] == ["kubernetes:core/v1:Service"]
