"""Standalone source: a manifest directory becomes a ClusterView, and changes are noticed.

Reading Services, Nodes and slices is :mod:`ironlb.agent.viewbuild` (tests/test_sources_viewbuild.py);
here: the directory, allocation, recorded status re-checked, annotations never read.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironlb.agent.sources.files import FileSource, build_view
from ironlb.agent.viewbuild import endpoint_nodes, node_info
from ironlb.errors import ConfigError
from ironlb.model import ANN_ALLOCATED_IPS, ANN_ALLOCATED_POOL
from lab import manifests
from lab.manifests import endpoint_slice, l2_advertisement, pool, service
from lab.waiting import always, eventually

POOL = pool("lan", "10.0.0.10-10.0.0.20")
ADV = l2_advertisement("lan")


def node(name: str, conditions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A Node with two InternalIPs (IPv6 first) and a Hostname address, labelled zone=a."""
    doc = manifests.node(
        name, "fd00::1", "192.0.2.1", ready=None, conditions=conditions, labels={"zone": "a"}
    )
    doc["status"]["addresses"].append({"type": "Hostname", "address": name})
    return doc


def write(path: Path, *docs: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump_all(list(docs)))


@pytest.mark.parametrize(
    ("conditions", "ready", "unavailable"),
    [
        pytest.param(None, True, False, id="no conditions: ready"),
        pytest.param([{"type": "Ready", "status": "False"}], False, False, id="Ready False: not ready"),
        pytest.param(
            [{"type": "Ready", "status": "True"}, {"type": "NetworkUnavailable", "status": "True"}],
            True,
            True,
            id="NetworkUnavailable True",
        ),
    ],
)
def test_node_manifest_conditions(conditions: Any, ready: bool, unavailable: bool) -> None:
    info = node_info(node("n1", conditions))
    assert (info.ready, info.network_unavailable) == (ready, unavailable)
    assert info.addresses == ("192.0.2.1", "fd00::1"), "InternalIPs only, IPv4 first"
    assert info.labels == {"zone": "a"}


def test_endpoint_slices_give_nodes_with_ready_endpoints() -> None:
    slices = [
        endpoint_slice(
            "a",
            namespace="web",
            endpoints=[
                {"nodeName": "n1"},
                {"nodeName": "n2", "conditions": {"ready": False}},
                {"nodeName": "n3", "conditions": {"ready": True}},
                {"addresses": ["x"]},
            ],
        ),
        {"kind": "EndpointSlice", "metadata": {"namespace": "web"}, "endpoints": [{"nodeName": "n9"}]},
    ]
    assert endpoint_nodes(slices) == {"web/a": frozenset({"n1", "n3"})}


def test_directory_builds_a_view_with_deterministic_assignments(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", POOL, ADV, node("n1"), node("n2"))
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "svc.yml", service("b", "web", cls=None), service("a", "web", cls=None))
    (tmp_path / "ignored.txt").write_text("not a manifest")
    view = FileSource(tmp_path).load()
    assert set(view.nodes) == {"n1", "n2"}
    assert view.assignments["web/a"].addresses == ("10.0.0.10",)
    assert view.assignments["web/b"].addresses == ("10.0.0.11",)
    again = FileSource(tmp_path).load()
    assert again.assignments == view.assignments, "every agent computes the same allocation"


def test_a_recorded_status_keeps_an_address_stable(tmp_path: Path) -> None:
    write(
        tmp_path / "a.yaml",
        POOL,
        ADV,
        service("b", "web", "10.0.0.15", cls=None),
        service("a", "web", cls=None),
    )
    view = FileSource(tmp_path).load()
    assert view.assignments["web/b"].addresses == ("10.0.0.15",)
    assert view.assignments["web/a"].addresses == ("10.0.0.10",)


def test_annotations_are_never_read_and_a_status_no_pool_allows_is_refused(tmp_path: Path) -> None:
    forged = {ANN_ALLOCATED_IPS: "10.0.0.15,192.0.2.254", ANN_ALLOCATED_POOL: "x"}
    write(
        tmp_path / "a.yaml",
        POOL,
        ADV,
        service("forger", "web", annotations=forged, cls=None),
        service("stale", "web", "10.9.9.9", cls=None),
        service("late", "web", "10.0.0.12", cls=None),
        service("early", "web", "10.0.0.12", cls=None),
    )
    view = FileSource(tmp_path).load()
    assert view.assignments["web/forger"].addresses == ("10.0.0.10",), "the annotation is no record"
    assert view.assignments["web/early"].addresses == ("10.0.0.12",), "first by key (no timestamps)"
    assert view.assignments["web/late"].addresses == ("10.0.0.11",), "its conflicting record is dropped"
    assert view.assignments["web/stale"].addresses == ("10.0.0.13",)
    assert {k: [(r.ip, r.reason) for r in v] for k, v in view.rejected.items()} == {
        "web/late": [("10.0.0.12", "Conflict")],
        "web/stale": [("10.9.9.9", "NoPool")],
    }
    announced = {ip for a in view.assignments.values() for ip in a.addresses}
    assert "10.9.9.9" not in announced and "192.0.2.254" not in announced


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("kind: [unclosed", "cannot be read as YAML/JSON", id="broken YAML names the file"),
        pytest.param("- just\n- a list\n", "must be a mapping", id="a list document is not an object"),
        pytest.param(
            yaml.safe_dump({**POOL, "spec": {"addresses": ["10.0.0.0/33"]}}),
            "prefix length",
            id="an invalid pool names the field",
        ),
    ],
)
def test_invalid_directories_raise_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        FileSource(tmp_path).load()


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        FileSource(tmp_path / "nope").load()


#: Ten polls of the directory (poll_interval 0.01 below): an invalid one would have been yielded by then.
TEN_POLLS = 0.1


async def test_views_notices_changes_and_keeps_the_last_good_view(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", POOL, ADV, service("a", "web", cls=None))
    source = FileSource(tmp_path, poll_interval=0.01)
    views = source.views()
    first = await asyncio.wait_for(anext(views), 5)
    assert set(first.assignments) == {"web/a"}
    (tmp_path / "bad.yaml").write_text("kind: [unclosed")
    write(tmp_path / "a.yaml", POOL, ADV, service("a", "web", cls=None), service("b", "web", cls=None))
    nxt = asyncio.ensure_future(anext(views))
    await eventually(
        "the source to read the invalid directory", lambda: source.last_error or "", lambda e: "bad.yaml" in e
    )
    await always("an invalid directory yields nothing", nxt.done, lambda done: not done, seconds=TEN_POLLS)
    assert source.last_error is not None and "bad.yaml" in source.last_error
    os.unlink(tmp_path / "bad.yaml")
    second = await asyncio.wait_for(nxt, 5)
    assert set(second.assignments) == {"web/a", "web/b"}
    assert source.last_error is None
    await views.aclose()


def test_build_view_reports_allocation_errors_per_service() -> None:
    tiny = {**POOL, "spec": {"addresses": ["10.0.0.10"]}}
    _, errors = build_view([tiny, ADV, service("a", "web", cls=None), service("b", "web", cls=None)])
    assert set(errors) == {"web/b"}
