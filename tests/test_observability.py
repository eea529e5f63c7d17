"""Metrics, the status board and its HTTP endpoints, JSON logs."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

import pytest

from agent.announcements import L2Announcement, Ownership, Plan
from agent.observability import JsonFormatter, Metrics, StatusBoard, serve


class FakeShell:
    def __init__(self, status: dict[str, Any]):
        self._status = status

    def status(self) -> dict[str, Any]:
        return self._status


def plan(owner: str) -> Plan:
    return Plan(
        node="n1",
        l2=(L2Announcement("10.0.0.5", ("default/web",)),) if owner == "n1" else (),
        ownership=(
            Ownership("10.0.0.5", "layer2", (owner,), "ranked first of 2 eligible nodes", ("default/web",)),
        ),
    )


def value(metrics: Metrics, name: str, **labels: str) -> float:
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_an_owner_change_counts_as_one_failover_and_announcements_are_gauged() -> None:
    board = StatusBoard("n1")
    board.record_plan(plan("n2"))
    board.record_plan(plan("n1"))
    board.record_plan(plan("n1"))
    m = board.metrics
    assert value(m, "ironlb_failovers_total", mode="layer2") == 1
    assert value(m, "ironlb_announcements", mode="layer2") == 1


def test_sessions_and_conflicts_are_read_from_the_shells_status() -> None:
    board = StatusBoard("n1")
    board.shells = {
        "L2Shell": FakeShell({"conflicts": ["10.0.0.9"], "addresses": {"10.0.0.9": {"state": "conflict"}}}),
        "BGPShell": FakeShell({"sessions": {"r1": {"state": "established"}, "r2": {"state": "connect"}}}),
        "Broken": FakeShell(None),  # type: ignore[arg-type]
    }
    board.record_plan(plan("n1"))
    assert value(board.metrics, "ironlb_bgp_sessions_up") == 1
    assert value(board.metrics, "ironlb_address_conflicts") == 1
    doc = json.loads(board.snapshot())
    assert doc["ownership"][0]["nodes"] == ["n1"] and "error" in doc["shells"]["Broken"]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_endpoints_answer_health_readiness_metrics_and_status() -> None:
    board = StatusBoard("n1")
    server = serve(board, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert get(base + "/readyz")[0] == 503, "not ready before the first plan"
        board.record_plan(plan("n1"))
        assert get(base + "/readyz")[0] == 200
        assert get(base + "/healthz")[0] == 200
        code, body = get(base + "/metrics")
        assert code == 200 and b"ironlb_announcements" in body
        code, body = get(base + "/status")
        assert code == 200 and json.loads(body)["ownership"][0]["ip"] == "10.0.0.5"
        assert get(base + "/nope")[0] == 404
        board.last_tick -= 3600
        assert get(base + "/healthz")[0] == 503, "a stalled event loop is unhealthy"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("extra", [{}, {"service": "default/web"}], ids=["plain line", "with extra fields"])
def test_json_log_lines_parse_and_keep_extras(extra: dict[str, str]) -> None:
    record = logging.LogRecord("agent.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    for k, v in extra.items():
        setattr(record, k, v)
    doc = json.loads(JsonFormatter().format(record))
    assert (doc["level"], doc["logger"], doc["msg"]) == ("warning", "agent.x", "hello world")
    assert all(doc[k] == v for k, v in extra.items())
