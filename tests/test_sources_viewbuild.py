"""One view builder for both sources (agent.viewbuild): reading objects, incrementally and exactly.

The two sources used to read Nodes, EndpointSlices and Services in two ways that had
drifted (node address order, endpoint readiness, namespace defaults).  These tests pin the
one reading, show that the files source and the Kubernetes source's informer feed give the
same view from the same objects, and check the incremental builder against a builder
started from scratch and against the trust check run over every Service in precedence
order, for random sequences of changes.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ironlb import ipam
from ironlb.agent.kube.client import SPEAKER_KINDS
from ironlb.agent.kube.informer import Caches
from ironlb.agent.kube.viewfeed import CacheFeed
from ironlb.agent.sources.files import build_view
from ironlb.agent.view import ClusterView
from ironlb.agent.viewbuild import (
    NODES,
    SERVICES,
    SLICES,
    ViewBuilder,
    node_info,
    precedence,
    recorded_ips,
    slice_nodes,
)
from ironlb.config import parse
from ironlb.model import ANN_ALLOCATED_IPS
from ironlb.service import request_from_manifest
from lab.manifests import endpoint_slice, node, resource, service

CRS = [
    resource("IPPool", "open", addresses=["10.0.0.0/29", "fd00::/125"], allowUntenanted=True),
    resource("IPPool", "team", addresses=["10.0.1.0/29"]),
    resource("Tenant", "t", namespaces=["tn"], pools=["team"]),
    resource("L2Advertisement", "all"),
]
CONFIG = parse(CRS)
OTHER = parse([*CRS[1:], resource("IPPool", "open", addresses=["10.0.0.0/30"], allowUntenanted=True)])
ADVERTISED = parse([*CRS, resource("L2Advertisement", "more", interfaces=["eth1"])])  # same pools and tenants


# --- reading one object ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "addresses", "ready", "unavailable"),
    [
        pytest.param(
            node("n", "192.0.2.9", "fd00::9", "10.0.0.1", ready=None),
            ("192.0.2.9", "10.0.0.1", "fd00::9"),
            True,
            False,
            id="IPv4 first, each family in the Node's order (its primary address first)",
        ),
        pytest.param(node("n", conditions=[]), (), True, False, id="no Ready condition: ready"),
        pytest.param(
            node("n", conditions=[{"type": "Ready", "status": "Unknown"}]),
            (),
            False,
            False,
            id="Ready Unknown: not ready",
        ),
        pytest.param(
            node("n", conditions=[{"type": "NetworkUnavailable", "status": "True"}]),
            (),
            True,
            True,
            id="NetworkUnavailable",
        ),
        pytest.param(
            {"metadata": {"name": "n", "labels": "x"}, "status": {"addresses": "x", "conditions": 3}},
            (),
            True,
            False,
            id="junk shapes never crash",
        ),
    ],
)
def test_a_node_is_read_one_way(doc: dict[str, Any], addresses: Any, ready: bool, unavailable: bool) -> None:
    info = node_info(doc)
    assert (info.addresses, info.ready, info.network_unavailable) == (addresses, ready, unavailable)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(
            endpoint_slice(
                "web",
                name="s",
                namespace=None,
                endpoints=[
                    {"nodeName": "n1"},
                    {"nodeName": "n2", "conditions": {"ready": False}},
                    {"nodeName": "n3", "conditions": {"ready": None}},
                    {"addresses": ["x"]},
                    "junk",
                ],
            ),
            ("default/web", frozenset({"n1", "n3"})),
            id="ready unset or null counts; a missing namespace is default",
        ),
        pytest.param(
            {"metadata": {"name": "s"}, "endpoints": []}, (None, frozenset()), id="no service label"
        ),
    ],
)
def test_an_endpoint_slice_is_read_one_way(doc: dict[str, Any], expected: Any) -> None:
    assert slice_nodes(doc) == expected


def test_only_status_ingress_is_a_record_and_older_goes_first() -> None:
    doc = service("a", "default", "10.0.0.1", created="2026-01-01T00:00:00Z")
    doc["status"]["loadBalancer"]["ingress"].append({"hostname": "lb.example"})
    assert recorded_ips(doc) == ("10.0.0.1",), "hostname entries are not addresses"
    assert recorded_ips(service("b", annotations={ANN_ALLOCATED_IPS: "10.0.0.2"})) == ()
    assert precedence(doc, "default/a") < precedence(
        service("z", created="2026-01-02T00:00:00Z"), "default/z"
    )


# --- both sources, one reading ----------------------------------------------------------------


DOCS = [
    *CRS,
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tn"}},
    node("n1", "fd00::1", "192.0.2.1", ready=None),
    node("n2", "192.0.2.2", conditions=[{"type": "Ready", "status": "False"}]),
    service("web", None, "10.0.0.1"),
    service("api", "tn", "10.0.1.1"),
    service("thief", "tn", "10.0.0.2", "10.0.0.9"),
    endpoint_slice("web", name="web-1", namespace=None, endpoints=[{"nodeName": "n1"}]),
    endpoint_slice("web", name="web-2", endpoints=[{"nodeName": "n2", "conditions": {"ready": False}}]),
]


def feed_view(docs: list[dict[str, Any]]) -> ClusterView:
    """The Kubernetes source's path: objects in informer caches, fed to the builder."""
    caches = Caches(None, SPEAKER_KINDS)  # type: ignore[arg-type]  # fed directly, no client
    feed = CacheFeed(caches, claim_classless=True)
    plural = {"Service": "services", "Node": "nodes", "EndpointSlice": "endpointslices"}
    plural.update({"Namespace": "namespaces", "IPPool": "ippools", "Tenant": "tenants"})
    plural["L2Advertisement"] = "l2advertisements"
    for doc in docs:
        with_ns = dict(doc)
        if doc["kind"] in ("Service", "EndpointSlice"):  # the API server always fills it in
            with_ns["metadata"] = {"namespace": "default", **doc["metadata"]}
        caches.informers[plural[doc["kind"]]].apply("ADDED", with_ns)
    return feed.view()


def test_the_files_source_and_the_kube_source_read_the_same_objects_the_same_way() -> None:
    files, _ = build_view([*DOCS])
    kube = feed_view(DOCS)
    assert files.nodes == kube.nodes
    assert files.nodes["n1"].addresses == ("192.0.2.1", "fd00::1")
    assert files.endpoints == kube.endpoints == {"default/web": frozenset({"n1"})}
    assert files.rejected == kube.rejected
    assert [(r.ip, r.reason) for r in kube.rejected["tn/thief"]] == [
        ("10.0.0.2", "OtherTenant"),
        ("10.0.0.9", "NoPool"),
    ]
    assert {k: a.addresses for k, a in kube.assignments.items()} == {
        "default/web": ("10.0.0.1",),
        "tn/api": ("10.0.1.1",),
    }
    assert {k: files.assignments[k] for k in kube.assignments} == dict(kube.assignments), (
        "what the cluster records is what the files source keeps"
    )


# --- incremental == from scratch == the trust check over everything ----------------------------

CANDIDATES = ("10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.1.1", "10.0.1.2", "fd00::1", "10.9.0.1", "nope")
services_st = st.builds(
    lambda name, ns, ips, created, key, port: service(
        name, ns, *ips, created=created, sharing=key, port=port
    ),
    st.sampled_from(("a", "b", "c", "d", "e")),
    st.sampled_from(("default", "tn")),
    st.lists(st.sampled_from(CANDIDATES), max_size=3),
    st.sampled_from((None, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")),
    st.sampled_from((None, "k")),
    st.sampled_from((80, 443)),
)
events_st = st.lists(
    st.one_of(
        st.tuples(st.just("put"), services_st),
        st.tuples(st.just("delete"), services_st),
        st.tuples(st.just("config"), st.sampled_from((CONFIG, OTHER, ADVERTISED))),
        st.tuples(
            st.just("node"),
            st.builds(
                lambda n, a: node(n, a, ready=None),
                st.sampled_from(("n1", "n2")),
                st.sampled_from(("192.0.2.1", "fd00::5")),
            ),
        ),
        st.tuples(
            st.just("slice"),
            st.builds(
                lambda n, s, nodes: endpoint_slice(s, name=n, endpoints=[{"nodeName": x} for x in nodes]),
                st.sampled_from(("s1", "s2")),
                st.sampled_from(("a", "b")),
                st.lists(st.sampled_from(("n1", "n2")), max_size=2),
            ),
        ),
    ),
    max_size=25,
)


def from_scratch(config: Any, docs: dict[Any, dict[str, Any]]) -> ClusterView:
    fresh = ViewBuilder()
    fresh.set_config(config)
    for (kind, _), doc in docs.items():
        fresh.put(kind, doc)
    return fresh.build()


def reference(config: Any, services: list[dict[str, Any]]) -> dict[str, Any]:
    """The trust check over every Service in precedence order (no components, no memo)."""
    items = []
    for doc in services:
        request, _ = request_from_manifest(doc)
        assert request is not None
        items.append((precedence(doc, request.key), request, recorded_ips(doc)))
    items.sort(key=lambda t: t[0])
    verdicts = ipam.TrustCheck(config).check_all((r, rec) for _, r, rec in items)
    return {k: v.assignment(r) for (_, r, _), (k, v) in zip(items, verdicts.items(), strict=True)}


@settings(max_examples=150, deadline=None)
@given(events_st)
def test_the_incremental_builder_equals_one_built_from_scratch_and_the_trust_check(
    events: list[tuple[str, Any]],
) -> None:
    builder = ViewBuilder()
    builder.set_config(CONFIG)
    config = CONFIG
    docs: dict[Any, dict[str, Any]] = {}
    last = builder.build()
    for what, arg in events:
        if what == "config":
            config = arg
            builder.set_config(arg)
        elif what == "delete":
            builder.delete(SERVICES, arg)  # by key: the object's version does not matter
            docs.pop((SERVICES, f"{arg['metadata']['namespace']}/{arg['metadata']['name']}"), None)
        else:
            kind = {"put": SERVICES, "node": NODES, "slice": SLICES}[what]
            if kind == SERVICES:  # a Service's key is namespace/name: the other namespace's twin stays
                docs[(kind, f"{arg['metadata']['namespace']}/{arg['metadata']['name']}")] = arg
            else:
                name = arg["metadata"]["name"]
                docs[(kind, name if kind == NODES else f"default/{name}")] = arg
            builder.put(kind, arg)
        view = builder.build()
        assert view == from_scratch(config, docs)
        expected = reference(config, [d for (k, _), d in docs.items() if k == SERVICES])
        assert dict(view.assignments) == {k: a for k, a in expected.items() if a is not None}
        for table in ("assignments", "endpoints", "nodes", "rejected"):
            if getattr(view, table) == getattr(last, table):
                assert getattr(view, table) is getattr(last, table), f"unchanged {table} is reused"
        last = view


def test_a_closed_feed_no_longer_listens_to_the_caches_it_outlives() -> None:
    caches = Caches(None, SPEAKER_KINDS)  # type: ignore[arg-type]  # fed directly, no client
    caches.informers["nodes"].apply("ADDED", node("n1", "192.0.2.1", ready=None))
    feed = CacheFeed(caches)
    assert set(feed.view().nodes) == {"n1"}, "what the caches held when it started"
    caches.informers["nodes"].apply("ADDED", node("n2", "192.0.2.2", ready=None))
    assert set(feed.view().nodes) == {"n1", "n2"}
    feed.close()
    caches.informers["nodes"].apply("ADDED", node("n3", "192.0.2.3", ready=None))
    assert set(feed.view().nodes) == {"n1", "n2"}
    assert all(not inf.listeners[1:] for inf in caches.informers.values()), "only the caches' own listener"
