"""``ironlb status``: the table from an agent's /status and from the cluster (kmock)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ironlb.agent.endpoints import serve
from ironlb.agent.kube.client import SERVICES
from ironlb.agent.kube.writers import ANN_ANNOUNCEMENTS
from ironlb.agent.observability import StatusBoard
from ironlb.model import ANN_ALLOCATED_IPS
from ironlb_cli import main as cli
from ironlb_cli.status import render, rows_from_agent, rows_from_services
from lab.manifests import service
from tests.kube_support import kmock_declare as declare_all
from tests.kube_support import kmock_put as put_object
from tests.test_observability import FakeShell, plan

AGENT_DOC = {
    "node": "n1",
    "ownership": [
        {
            "ip": "10.0.0.5",
            "mode": "layer2",
            "nodes": ["n1"],
            "reason": "ranked first",
            "services": ["default/web"],
        },
        {
            "ip": "10.0.0.6",
            "mode": "bgp",
            "nodes": ["n1", "n2"],
            "reason": "every eligible node",
            "services": ["a/b"],
        },
    ],
    "unannounced": {"default/idle": "no L2Advertisement or BGPAdvertisement selects pool lan"},
    "shells": {
        "L2Shell": {"addresses": {"10.0.0.5": {"state": "conflict", "conflict": "aa:bb:cc answered"}}}
    },
}


def test_agent_rows_say_who_how_why_and_show_conflicts() -> None:
    rows = {r["IP"] + r["SERVICE"]: r for r in rows_from_agent(AGENT_DOC)}
    web = rows["10.0.0.5default/web"]
    assert (web["MODE"], web["NODES"], web["STATE"], web["CONFLICT"]) == (
        "layer2",
        "n1",
        "conflict (on n1)",
        "aa:bb:cc answered",
    )
    assert rows["10.0.0.6a/b"]["NODES"] == "n1,n2" and rows["10.0.0.6a/b"]["STATE"] == "announced"
    assert (
        rows["-default/idle"]["STATE"] == "not announced"
        and "L2Advertisement" in rows["-default/idle"]["WHY"]
    )
    table = render(list(rows.values()))
    assert table.splitlines()[0].split() == ["SERVICE", "IP", "MODE", "NODES", "STATE", "CONFLICT", "WHY"]


def with_ingress(doc: dict[str, Any], *ips: str) -> dict[str, Any]:
    """A Service whose status holds ``ips`` (what only the controller can write)."""
    return {**doc, "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


def test_service_rows_come_from_the_status_and_the_published_announcements() -> None:
    svc = service(
        "web",
        annotations={
            ANN_ANNOUNCEMENTS: json.dumps(
                [{"ip": "10.0.0.5", "mode": "layer2", "nodes": ["n2"], "reason": "ranked"}]
            ),
        },
    )
    rows = rows_from_services([with_ingress(svc, "10.0.0.5", "fd00::5"), service("pending")])
    assert [(r["IP"], r["NODES"], r["STATE"]) for r in rows] == [
        ("10.0.0.5", "n2", "announced"),
        ("fd00::5", "-", "not announced"),
    ]


def test_a_tenant_written_allocation_annotation_is_never_shown_as_an_address() -> None:
    """ironlb.io/allocated-ips is writable by anyone who may edit the Service: not the record."""
    forged = service(
        "evil",
        "red",
        annotations={
            ANN_ALLOCATED_IPS: "10.78.0.16",  # blue's address
            ANN_ANNOUNCEMENTS: json.dumps([{"ip": "10.78.0.16", "mode": "layer2", "nodes": ["n1"]}]),
        },
    )
    assert rows_from_services([forged]) == []
    rows = rows_from_services([with_ingress(forged, "10.77.0.3")])
    assert [(r["IP"], r["STATE"]) for r in rows] == [("10.77.0.3", "not announced")], (
        "a published row for an address the status does not hold is not shown"
    )


@pytest.mark.parametrize(("classless", "shown"), [(False, []), (True, ["10.0.0.9"])])
def test_services_without_a_class_are_shown_only_when_asked(classless: bool, shown: list[str]) -> None:
    svc = with_ingress(service("old", cls=None), "10.0.0.9")
    other = with_ingress(service("metallb", cls="metallb.io/metallb"), "10.0.0.10")
    assert [r["IP"] for r in rows_from_services([svc, other], classless=classless)] == shown


def test_the_command_reads_a_live_agent(capsys: Any) -> None:
    board = StatusBoard("n1")
    board.shells = {"L2Shell": FakeShell({"addresses": {"10.0.0.5": {"state": "announced"}}})}
    board.record_plan(plan("n1"))
    server = serve(board, "127.0.0.1", 0)
    try:
        code = cli.main(
            ["status", "--url", f"http://127.0.0.1:{server.server_address[1]}", "--ip", "10.0.0.5"]
        )
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr().out
    assert code == 0 and "default/web" in out and "announced (on n1)" in out


def test_an_unreachable_agent_is_one_line_not_a_traceback(capsys: Any) -> None:
    assert cli.main(["status", "--url", "http://127.0.0.1:9", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert "cannot read http://127.0.0.1:9/status" in err and "Traceback" not in err


async def test_the_command_reads_the_cluster(kmock: Any, capsys: Any) -> None:
    declare_all(kmock)
    put_object(
        kmock,
        SERVICES,
        with_ingress(
            service(
                "web",
                annotations={
                    ANN_ANNOUNCEMENTS: json.dumps(
                        [{"ip": "10.0.0.5", "mode": "bgp", "nodes": ["n1", "n3"], "reason": "every node"}]
                    ),
                },
            ),
            "10.0.0.5",
        ),
    )
    url = str(kmock.servers[0].url)
    code = await asyncio.to_thread(cli.main, ["status", "--server", url, "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and rows[0]["NODES"] == "n1,n3" and rows[0]["MODE"] == "bgp"


def test_a_conflict_seen_by_any_node_shows_in_the_cluster_table() -> None:
    published = [
        {
            "ip": "10.0.0.5",
            "mode": "layer2",
            "nodes": [],
            "reason": "n1: conflict (not announced yet)",
            "conflicts": [{"node": "n1", "mac": "02:00:00:00:00:99"}],
        }
    ]
    svc = service("web", annotations={ANN_ANNOUNCEMENTS: json.dumps(published)})
    (row,) = rows_from_services([with_ingress(svc, "10.0.0.5")])
    assert (row["STATE"], row["CONFLICT"]) == ("not announced", "02:00:00:00:00:99 seen by n1")
