"""Both programs' log output and /metrics, from the prod stack deployed in the cluster-mode lab.

The prod stack (membership key and two TCP-MD5 BGP passwords, as Pulumi secrets) is rendered
and deployed unmodified by ``lab.cluster`` -- speakers on three nodes, two controller
replicas, BIRD as both top-of-rack routers -- once with ``logFormat: json`` and once with
``logFormat: text``, both at ``logLevel: debug`` (the most lines, API requests included).
When every speaker has both BGP sessions Established and a controller leads, each speaker's
and controller's ``/metrics`` is scraped and checked with the conventions linter of
tests/test_metrics_conventions.py against the catalog (what ships, not a unit registry);
then every pod is stopped as the kubelet stops it (SIGTERM) and its whole log is read:

- JSON mode: every line the program wrote is one JSON object (ts, level, logger, msg);
  text mode: every line is ``time LEVEL logger: message`` and none is JSON;
- startup and shutdown are in it, for both roles; no traceback anywhere;
- the membership key and the BGP passwords (the revealed Secrets' values, plain and base64)
  appear in no log line and in no scrape.

Lines starting ``podinit:`` are the lab kubelet's own (how it laid out the pod's files).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ironlb.agent.metric_catalog import CONTROLLER, SPEAKER
from lab.cluster.deploy import Cluster, deployed
from lab.errors import WaitTimeout
from lab.waiting import wait_for
from tests.test_metrics_conventions import lint

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
METRICS_PORT = 7948  # the rendered default
PEERS = ("tor-a", "tor-b")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


@dataclass
class Run:
    log_format: str
    logs: dict[str, str] = field(default_factory=dict)  # container log file -> text
    scrapes: dict[str, str] = field(default_factory=dict)  # "speaker node1" / "controller pod" -> text
    secrets: dict[str, str] = field(default_factory=dict)  # "secret/key" -> value


def _secret_values(manifests: list[dict[str, Any]]) -> dict[str, str]:
    """ "secret/key" -> value of every rendered Secret (revealed: the lab deploys real values)."""
    values = {}
    for m in manifests:
        if m["kind"] == "Secret":
            name = m["metadata"]["name"]
            values.update({f"{name}/{k}": str(v) for k, v in (m.get("stringData") or {}).items()})
            values.update(
                {f"{name}/{k}": base64.b64decode(v).decode() for k, v in (m.get("data") or {}).items()}
            )
    return values


def _get(cluster: Cluster, host: str, url: str) -> str:
    """The page, or "" while nothing listens there yet."""

    def fetch() -> str:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""

    return cluster.the_lab.call(host, fetch)


def _sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def _scrapes(cluster: Cluster) -> dict[str, str]:
    out = {}
    for node in cluster.the_lab.nodes:
        out[f"speaker {node}"] = _get(
            cluster, node, f"http://{cluster.the_lab.addr(node)}:{METRICS_PORT}/metrics"
        )
    for pod in cluster.admin.list("v1", "Pod", cluster.agent_namespace):
        if pod["metadata"]["name"].startswith("ironlb-controller") and (pod.get("status") or {}).get("podIP"):
            url = f"http://{pod['status']['podIP']}:{METRICS_PORT}/metrics"
            out[f"controller {pod['metadata']['name']}"] = _get(cluster, pod["spec"]["nodeName"], url)
    return out


def _converged(scrapes: dict[str, str]) -> bool:
    speakers = [t for k, t in scrapes.items() if k.startswith("speaker")]
    controllers = [t for k, t in scrapes.items() if k.startswith("controller")]
    return (
        len(speakers) == 3
        and all(_sample(t, "ironlb_bgp_session_up", peer=p) == 1 for t in speakers for p in PEERS)
        and all(_sample(t, "ironlb_membership_peers", state="alive") == 2 for t in speakers)
        and len(controllers) == 2
        and sum(_sample(t, "ironlb_controller_leader") or 0 for t in controllers) == 1
        and any(
            (_sample(t, "ironlb_allocations_total", result="allocated", reason="") or 0) > 0
            for t in controllers
        )
    )


@pytest.fixture(scope="module", params=["json", "text"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    fmt = request.param
    stacks = tmp_path_factory.mktemp(f"stacks-{fmt}")
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    doc["config"]["ironlb:agent"].update(logFormat=fmt, logLevel="debug")
    (stacks / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    result = Run(fmt)
    with deployed("prod", stacks_dir=stacks) as cluster:
        result.secrets = _secret_values(cluster.manifests)
        assert {"ironlb-membership/key", "ironlb-bgp-tor-a/password", "ironlb-bgp-tor-b/password"} <= set(
            result.secrets
        ), sorted(result.secrets)
        try:  # whether it converged is the first test's to say, with the scrapes
            result.scrapes = wait_for(
                "every pod's metrics to converge",
                lambda: _scrapes(cluster),
                _converged,
                timeout=90,
                interval=1,
            )
        except WaitTimeout:
            result.scrapes = _scrapes(cluster)
        assert cluster.kubelet is not None
        cluster.kubelet.stop()  # SIGTERM to every pod, as at a rollout: the shutdown lines
        cluster.kubelet = None
        for path in sorted(cluster.the_lab.workdir.glob("ironlb-*.log")):
            result.logs[path.name] = path.read_text(errors="replace")
    yield result
    shutil.rmtree(stacks, ignore_errors=True)  # a factory's directory: pytest's retention keeps it


def _program_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("podinit: ")]


def _role(name: str) -> str:
    return SPEAKER if name.startswith("ironlb-speaker") else CONTROLLER


def test_both_roles_scrape_clean_after_converging(run: Run) -> None:
    assert _converged(run.scrapes), f"not converged in 90 s: {sorted(run.scrapes)}"
    for who, text in sorted(run.scrapes.items()):
        role = SPEAKER if who.startswith("speaker") else CONTROLLER
        assert lint(text_string_to_metric_families(text), role) == [], who
        assert _sample(text, "ironlb_build_info", role=role) == 1
        assert _sample(text, "process_resident_memory_bytes") is not None


def test_every_line_of_both_roles_is_in_the_chosen_format(run: Run) -> None:
    roles = {_role(name) for name in run.logs}
    assert roles == {SPEAKER, CONTROLLER} and len(run.logs) == 5, sorted(run.logs)
    for name, text in run.logs.items():
        lines = _program_lines(text)
        assert len(lines) > 5, f"{name} logged almost nothing:\n{text}"
        for line in lines:
            if run.log_format == "json":
                doc = json.loads(line)  # raises on any line that is not JSON
                assert isinstance(doc, dict) and {"ts", "level", "logger", "msg"} <= set(doc), line
            else:
                assert TEXT_LINE.match(line), f"{name}: not a text log line: {line!r}"
                assert not line.startswith("{"), line
        assert "Traceback" not in text, f"{name}:\n{text}"


def test_startup_and_shutdown_are_logged_by_both_roles(run: Run) -> None:
    def messages(role: str) -> list[str]:
        out = []
        for name, text in run.logs.items():
            if _role(name) == role:
                for line in _program_lines(text):
                    out.append(
                        json.loads(line)["msg"] if run.log_format == "json" else line.split(": ", 1)[1]
                    )
        return out

    speaker, controller = messages(SPEAKER), messages(CONTROLLER)
    for role, said in ((SPEAKER, speaker), (CONTROLLER, controller)):
        assert sum(m.startswith("serving /metrics on") for m in said) >= (3 if role == SPEAKER else 2), role
    assert sum(m.startswith("live agents: node1, node2, node3") for m in speaker) >= 3
    assert sum(m == "stopped; every announcement withdrawn" for m in speaker) >= 3
    assert sum("leads: controller term 1" in m for m in controller) >= 1
    assert sum(m == "stopped; the Lease is handed back" for m in controller) >= 2


def test_no_secret_is_in_any_log_line_or_scrape(run: Run) -> None:
    everything = {**run.logs, **{f"/metrics of {k}": v for k, v in run.scrapes.items()}}
    for name, secret in run.secrets.items():
        assert len(secret) >= 8, f"{name} is too short to search for"
        forms = {secret, base64.b64encode(secret.encode()).decode(), secret.encode().hex()}
        for where, text in everything.items():
            leaked = [f for f in forms if f in text]
            assert not leaked, f"the value of Secret {name} is in {where}"
