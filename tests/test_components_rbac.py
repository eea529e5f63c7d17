"""The rendered RBAC, per role, verb by verb: widening it must be a reviewed change here too.

``ironlb.components.rbac`` is the one table (every grant with its reason, per role);
tests/test_kube_roles.py runs both roles against the API server with exactly these rules and
checks every call is granted and every grant used.  Here: what is rendered, and what is
never granted.
"""

from __future__ import annotations

from typing import Any

import pytest

from ironlb.components import rbac
from ironlb.components.node_agent import NodeAgent
from ironlb.components.offline import manifests, run_mocked

CONFIG = (
    "bfdprofiles",
    "bgpadvertisements",
    "bgppeers",
    "communities",
    "ippools",
    "l2advertisements",
    "tenants",
)
LIST = ("list", "watch")

#: (apiGroup, resource, verb), listed again on purpose.
EXPECTED = {
    "speaker": {
        "cluster": {
            *{("ironlb.io", r, v) for r in CONFIG for v in LIST},
            *{("", r, v) for r in ("services", "nodes", "namespaces") for v in LIST},
            *{("discovery.k8s.io", "endpointslices", v) for v in LIST},
            ("ironlb.io", "nodestates", "get"),
            ("ironlb.io", "nodestates", "create"),
            ("ironlb.io", "nodestates/status", "patch"),
            ("", "events", "create"),
        },
        "namespace": set(),
    },
    "controller": {
        "cluster": {
            *{("ironlb.io", r, v) for r in (*CONFIG, "nodestates") for v in LIST},
            *{("", r, v) for r in ("services", "nodes", "namespaces") for v in LIST},
            ("", "services", "patch"),
            ("", "services/status", "patch"),
            *{("ironlb.io", f"{r}/status", "patch") for r in CONFIG if r != "bfdprofiles"},  # no status
            ("", "events", "create"),
        },
        "namespace": {
            ("coordination.k8s.io", "leases", "create"),
            ("coordination.k8s.io", "leases", "get"),
            ("coordination.k8s.io", "leases", "update"),
        },
    },
}


def _triples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def _rendered() -> dict[tuple[str, str], list[dict[str, Any]]]:
    ev = run_mocked(lambda: NodeAgent("ironlb", {"membership_key": "k" * 32}) and None)
    out = {}
    for m in manifests(ev):
        if m["kind"] in ("ClusterRole", "Role"):
            role = m["metadata"]["name"].split("-")[1]  # ironlb-<role>[-<namespace>]
            out[(role, "cluster" if m["kind"] == "ClusterRole" else "namespace")] = m["rules"]
    return out


@pytest.mark.parametrize("role", ["speaker", "controller"])
def test_each_role_is_granted_exactly_the_listed_verbs(role):
    rendered = _rendered()
    assert _triples(rendered[(role, "cluster")]) == EXPECTED[role]["cluster"]
    assert _triples(rendered.get((role, "namespace"), [])) == EXPECTED[role]["namespace"]


def test_the_lease_can_be_read_and_renewed_only_by_name():
    (named,) = [r for r in _rendered()[("controller", "namespace")] if "get" in r["verbs"]]
    assert named["resourceNames"] == ["ironlb-controller"]


def test_only_the_controller_writes_services_and_the_speaker_writes_only_its_nodestate_and_events():
    speaker_writes = {t for t in EXPECTED["speaker"]["cluster"] if t[2] not in ("get", "list", "watch")}
    assert speaker_writes == {
        ("ironlb.io", "nodestates", "create"),
        ("ironlb.io", "nodestates/status", "patch"),
        ("", "events", "create"),
    }


@pytest.mark.parametrize("resource", ["secrets", "pods", "configmaps", "*"])
def test_no_role_can_read_or_write(resource):
    for rules in _rendered().values():
        assert not any(r == resource for _, r, _ in _triples(rules))


def test_no_wildcards_deletes_or_escalation_verbs():
    verbs = {v for rules in _rendered().values() for _, _, v in _triples(rules)}
    assert verbs <= {"get", "list", "watch", "create", "update", "patch"}


@pytest.mark.parametrize("role", [rbac.SPEAKER, rbac.CONTROLLER])
def test_every_grant_says_why(role):
    assert all(len(g.why.split()) >= 4 for g in rbac.grants(role))


def test_an_unknown_role_is_an_error():
    with pytest.raises(ValueError, match="unknown role"):
        rbac.grants("operator")
