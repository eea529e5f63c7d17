"""Metrics, the status board, its HTTP endpoints (bound, bounded, timed out), log output in both formats."""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import generate_latest

from ironlb.agent.announcements import Plan
from ironlb.agent.endpoints import HEALTH_PATHS, listeners, serve
from ironlb.agent.logs import JsonFormatter
from ironlb.agent.metrics import Metrics
from ironlb.agent.observability import StatusBoard
from ironlb.agentconfig import AgentConfig, StatusListener
from ironlb.ipam import Rejected
from lab.waiting import wait_for
from tests.factories import owned_plan


class FakeShell:
    def __init__(self, status: dict[str, Any]):
        self._status = status

    def status(self) -> dict[str, Any]:
        return self._status


def plan(owner: str) -> Plan:
    return owned_plan(owner, "10.0.0.5")


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
    assert value(board.metrics, "ironlb_bgp_session_up", peer="r1") == 1
    assert value(board.metrics, "ironlb_bgp_session_up", peer="r2") == 0
    assert value(board.metrics, "ironlb_address_conflicts") == 1
    doc = json.loads(board.snapshot())
    assert doc["ownership"][0]["nodes"] == ["n1"] and "status() failed" in doc["shells"]["Broken"]["problem"]
    assert board.live()[0] is False, "a shell whose status() raises is not healthy"


def test_the_l2_shells_claim_defence_and_hop_limit_counters_are_exported_as_totals() -> None:
    board = StatusBoard("n1")
    counters = {"claims": 7, "defences": 2, "bad_hop_limit": 3, "arp_replies": 99}
    board.shells = {"L2Shell": FakeShell({"counters": counters}), "BGPShell": FakeShell({"applies": 4})}
    board.tick()
    m = board.metrics
    assert (
        value(m, "ironlb_l2_claims_total"),
        value(m, "ironlb_l2_defences_total"),
        value(m, "ironlb_l2_bad_hop_limit_total"),
    ) == (7, 2, 3)
    counters["claims"] = 9
    board.tick()
    assert value(m, "ironlb_l2_claims_total") == 9, "read from the shell on every tick"
    assert value(m, "ironlb_l2_replies_sent_total", protocol="arp") == 99
    assert value(m, "ironlb_l2_replies_sent_total", protocol="ndp") == 0, "a series exists before it counts"
    text = _exposition(m)
    assert "# TYPE ironlb_l2_defences_total counter" in text and "arp_replies" not in text


def _exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_rejected_addresses_are_gauged_counted_once_logged_and_listed_in_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    board = StatusBoard("n1")
    no_pool = Rejected("10.77.0.99", "NoPool", "is in no IPPool")
    foreign = Rejected("10.78.0.16", "OtherTenant", 'is in IPPool "blue", which this Service may not use')
    with caplog.at_level(logging.WARNING, logger="ironlb.agent.observability"):
        board.record_rejected({"red/evil": (no_pool, foreign)})
        board.record_rejected({"red/evil": (no_pool, foreign)})  # the next view: nothing new
    m = board.metrics
    assert value(m, "ironlb_rejected_addresses", reason="NoPool") == 1
    assert value(m, "ironlb_address_rejections_total", reason="NoPool") == 1
    assert value(m, "ironlb_address_rejections_total", reason="OtherTenant") == 1
    assert len([r for r in caplog.records if "not announcing" in r.getMessage()]) == 2
    board.tick()
    doc = json.loads(board.snapshot())
    assert doc["rejected"] == {
        "red/evil": [
            {"ip": "10.77.0.99", "reason": "NoPool", "message": "is in no IPPool"},
            {"ip": "10.78.0.16", "reason": "OtherTenant", "message": foreign.message},
        ]
    }
    board.record_rejected({})
    assert value(m, "ironlb_rejected_addresses", reason="NoPool") == 0, "gone: the gauge reads 0"
    board.record_rejected({"red/evil": (no_pool,)})
    assert value(m, "ironlb_address_rejections_total", reason="NoPool") == 2, "seen again after it went"


def test_status_and_metrics_follow_the_shells_on_every_tick_without_a_replan() -> None:
    state = {"addresses": {"10.0.0.5": {"state": "probing"}}, "conflicts": []}
    board = StatusBoard("n1")
    board.shells = {"L2Shell": FakeShell(state)}
    board.record_plan(plan("n1"))
    state.update(addresses={"10.0.0.5": {"state": "conflict"}}, conflicts=["10.0.0.5"])
    board.tick()  # the daemon's heartbeat: every second, and at once on a shell's on_change
    assert value(board.metrics, "ironlb_address_conflicts") == 1
    assert json.loads(board.snapshot())["shells"]["L2Shell"]["addresses"]["10.0.0.5"]["state"] == "conflict"


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
        assert get(base + "/readyz")[0] == 503, "and so not ready either"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("extra", [{}, {"service": "default/web"}], ids=["plain line", "with extra fields"])
def test_json_log_lines_parse_and_keep_extras(extra: dict[str, str]) -> None:
    record = logging.LogRecord("ironlb.agent.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    for k, v in extra.items():
        setattr(record, k, v)
    doc = json.loads(JsonFormatter().format(record))
    assert (doc["level"], doc["logger"], doc["msg"]) == ("warning", "ironlb.agent.x", "hello world")
    assert all(doc[k] == v for k, v in extra.items())


def test_each_listener_serves_only_its_paths() -> None:
    board = StatusBoard("n1")
    board.record_plan(plan("n1"))
    server = serve(board, "127.0.0.1", 0, HEALTH_PATHS)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert get(base + "/healthz")[0] == 200
        assert get(base + "/status")[0] == 404, "the kubelet's port does not list every tenant's addresses"
        assert get(base + "/metrics")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        (
            AgentConfig(),
            {"POD_IP": "10.0.0.7"},
            {("10.0.0.7", 7949): ["/healthz", "/readyz"], ("10.0.0.7", 7948): ["/metrics"]},
        ),
        (
            AgentConfig(),
            {},
            {("127.0.0.1", 7949): ["/healthz", "/readyz"], ("127.0.0.1", 7948): ["/metrics"]},
        ),
        (
            AgentConfig(status=StatusListener(enabled=True)),
            {"POD_IP": "fd00::7"},
            {
                ("fd00::7", 7949): ["/healthz", "/readyz"],
                ("fd00::7", 7948): ["/metrics"],
                ("127.0.0.1", 7950): ["/status"],
            },
        ),
    ],
    ids=[
        "health and metrics on the pod IP (the node's, for the speaker), never 0.0.0.0",
        "standalone without $POD_IP: loopback only",
        "/status only when enabled, on loopback",
    ],
)
def test_where_each_endpoint_listens(
    config: AgentConfig, env: dict[str, str], expected: dict[Any, Any]
) -> None:
    assert {k: sorted(v) for k, v in listeners(config, env).items()} == expected


def test_a_silent_client_is_dropped_and_a_flood_of_connections_is_refused_not_queued() -> None:
    import socket
    import time

    board = StatusBoard("n1")
    board.record_plan(plan("n1"))
    server = serve(board, "127.0.0.1", 0, HEALTH_PATHS, max_concurrent=2, timeout=1.0)
    port = server.server_address[1]
    silent = []
    try:
        for _ in range(4):  # connect, send nothing: each holds a slot until the socket timeout
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            silent.append(s)
        # at once: well before the 1 s socket timeout that frees the silent clients' slots
        wait_for("connections beyond the limit closed", lambda: server.refused, lambda n: n >= 2, timeout=0.5)
        started = time.monotonic()
        silent[0].settimeout(10)
        assert silent[0].recv(1) == b"", "a silent client is disconnected"
        assert time.monotonic() - started < 3
        code, _ = get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200, "after the timeout the server answers again"
    finally:
        for s in silent:
            s.close()
        server.shutdown()
        server.server_close()


def test_a_listener_starts_without_a_reverse_dns_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """http.server would resolve the bound address (socket.getfqdn): with cluster DNS unreachable
    that held every listener for 5 s or more at start-up."""

    def no_dns(*args: object) -> str:
        raise AssertionError(f"a DNS lookup at bind time: getfqdn{args}")

    monkeypatch.setattr("socket.getfqdn", no_dns)
    server = serve(StatusBoard("n1"), "127.0.0.1", 0, HEALTH_PATHS)
    try:
        assert server.server_name == "127.0.0.1" and server.server_port == server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# --- log output (agent.logs) ---------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Any:
    """setup_logging changes process-wide state: put it back after the test."""
    import sys
    import threading
    import warnings

    from ironlb.agent import logs

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, threading.excepthook, sys.excepthook, logs._configured)
    levels = {n: logging.getLogger(n).level for n in (*logs.CHATTY, *logs.TRACE)}
    with warnings.catch_warnings():
        yield
    root.handlers[:], root.level = saved[0], saved[1]
    threading.excepthook, sys.excepthook, logs._configured = saved[2], saved[3], saved[4]
    logging.captureWarnings(False)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_in_json_mode_a_traceback_a_warning_and_a_thread_crash_are_one_json_line_each(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    import threading
    import warnings

    from ironlb.agent.logs import setup_logging

    setup_logging("info", "json")
    log = logging.getLogger("ironlb.agent.test")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("it failed")
    warnings.warn("an old API", DeprecationWarning, stacklevel=1)
    thread = threading.Thread(target=lambda: 1 / 0, name="worker")
    thread.start()
    thread.join()
    logging.getLogger("httpx2").info("HTTP Request: GET https://api/ (one per API call)")
    lines = _lines(capsys)
    docs = [json.loads(line) for line in lines]  # every line parses: nothing printed around logging
    assert len(docs) == 3, lines
    failed, warned, crashed = docs
    assert failed["msg"] == "it failed" and "ValueError: boom\nsecond line" in failed["exc"]
    assert warned["logger"] == "py.warnings" and "an old API" in warned["msg"]
    assert crashed["level"] == "error" and "thread worker stopped" in crashed["msg"]
    assert "ZeroDivisionError" in crashed["exc"]


def test_in_text_mode_lines_are_for_people_and_debug_shows_api_requests(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from ironlb.agent.logs import setup_logging

    setup_logging("debug", "text")
    logging.getLogger("ironlb.agent.daemon").info("live agents: %s", "n1, n2")
    logging.getLogger("httpx2").info("HTTP Request: GET https://api/")
    logging.getLogger("httpcore2.connection").debug("connect_tcp.started (transport trace)")
    logging.getLogger("pyroute2.netlink.core").debug("SOCK_DGRAM enqueue 2972 bytes")
    lines = _lines(capsys)
    assert len(lines) == 2, lines
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ironlb.agent.daemon: live agents: n1, n2$", lines[0]
    )
    assert lines[1].endswith("INFO httpx2: HTTP Request: GET https://api/")


def test_a_fatal_error_is_plain_before_the_settings_are_read_and_a_log_record_after(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from ironlb.agent import logs

    logs._configured = False
    logs.fatal("ironlb-agent", "invalid configuration:\n  metrics.port ...")
    assert capsys.readouterr().err == "ironlb-agent: invalid configuration:\n  metrics.port ...\n"
    logs.setup_logging("info", "json")
    logs.fatal("ironlb-agent", "cannot listen on 10.0.0.7:7948 for /metrics: Address in use")
    (line,) = _lines(capsys)
    assert json.loads(line)["msg"].startswith("cannot listen") and json.loads(line)["level"] == "critical"
