"""The one settings model: the component writes it, both roles read it, one default per key.

- defaults are pinned (ports clear of MetalLB's, the Lease timings the failover needs);
- the ConfigMap the NodeAgent component renders parses back into the same model, and holds
  every key of it (nothing written that is not a field; no field left to a second default);
- every key is read: each leaf field is used by agent code, and the main ones are followed
  to the object that consumes them;
- a bad file fails at start with the key, the value and what is allowed (exit 2, no traceback).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironlb import agentconfig
from ironlb.agent.endpoints import listeners
from ironlb.agent.kube.runtime import lease_settings
from ironlb.agent.main import main
from ironlb.agent.settings import Settings
from ironlb.agentconfig import AgentConfig
from ironlb.components.node_agent import NodeAgent
from ironlb.components.offline import manifests, run_mocked
from ironlb.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
KEY = "a-membership-key-of-at-least-32-bytes"
METALLB_PORTS = {7946, 7472, 7473}


def test_defaults_are_pinned_and_clear_of_metallb() -> None:
    c = AgentConfig()
    ports = {c.membership.port, c.metrics.port, c.health.port, c.status.port}
    assert (c.membership.port, c.metrics.port, c.health.port, c.status.port) == (7947, 7948, 7949, 7950)
    assert not ports & METALLB_PORTS, "MetalLB and IronLB must run side by side during a migration"
    assert (c.metrics.address, c.health.address) == ("podIP", "podIP"), "never the whole LAN by default"
    assert (c.status.enabled, c.status.address) == (False, "127.0.0.1"), "/status is opt-in and local"
    lease = c.kubernetes.lease
    assert (lease.duration_seconds, lease.renew_deadline_seconds, lease.retry_period_seconds) == (
        2.0,
        1.5,
        0.5,
    )
    assert (c.namespace, c.log_level, c.log_format) == ("ironlb-system", "info", "json")
    assert (c.run_dir, c.secrets_dir) == (Path("/run/ironlb"), Path("/etc/ironlb/secrets"))
    assert c.membership.next_key_file is None and c.membership.mode == "gossip"


def rendered_config(**args: Any) -> tuple[str, AgentConfig]:
    settings: Any = {"membership_key": KEY, **args}  # NodeAgentArgs, as each test passes them
    ev = run_mocked(lambda: NodeAgent("ironlb", settings) and None)
    cm = next(m for m in manifests(ev) if m["kind"] == "ConfigMap")
    text = cm["data"]["agent.yaml"]
    return text, agentconfig.parse(yaml.safe_load(text), "rendered ConfigMap")


def flatten(doc: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_the_component_writes_every_key_of_the_model_and_the_agent_reads_it_back_unchanged() -> None:
    text, config = rendered_config(metrics_port=9100, log_format="text", membership_next_key=KEY + "-next")
    written = flatten(yaml.safe_load(text))
    unset = set(agentconfig.leaf_keys()) - written
    assert written <= set(agentconfig.leaf_keys()), "nothing is written that the model does not define"
    assert unset == {"source.directory", "kubernetes.kubeconfig", "daemon.statusFile"}, (
        "every key is written but the standalone-only ones, which stay unset (None) in a pod"
    )
    assert config.dump() == yaml.safe_load(text), "read back, the model writes the same file"
    assert (config.metrics.port, config.log_format, config.source.kind) == (9100, "text", "kube")
    assert str(config.membership.next_key_file) == "/etc/ironlb/membership/next-key"
    _, plain = rendered_config()
    assert plain.membership.next_key_file is None
    assert plain.model_dump(exclude={"source", "membership", "namespace"}) == AgentConfig().model_dump(
        exclude={"source", "membership", "namespace"}
    ), "a key the component does not set keeps the model's one default"


def _sources() -> str:
    files = [p for p in (ROOT / "agent").rglob("*.py")]
    return "\n".join(p.read_text() for p in files)


def test_every_key_is_read_by_the_agent() -> None:
    code = _sources()
    unread = []
    for key in agentconfig.leaf_keys():
        leaf = key.rpartition(".")[2]
        attr = re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + str(m.group(1)).lower(), leaf)
        if not re.search(rf"\.{attr}\b", code):
            unread.append(key)
    assert unread == [], f"settings no agent code reads: {unread}"


def with_key(dotted: str, value: Any, tmp_path: Path) -> Settings:
    base = {"source.directory": str(tmp_path), "membership.keyFile": str(tmp_path / "key")}
    return Settings("n1", agentconfig.merged({}, {**base, dotted: value}))


#: key -> (a non-default value, what consumes it). The consumer is the agent's own code path.
FOLLOWED: dict[str, tuple[Any, Callable[[Settings], Any]]] = {
    "namespace": ("lb", lambda s: lease_settings(s.config).namespace),
    "kubernetes.lease.durationSeconds": (9.0, lambda s: lease_settings(s.config).duration),
    "kubernetes.lease.name": ("other", lambda s: lease_settings(s.config).name),
    "metrics.port": (9100, lambda s: sorted(listeners(s.config, {}))),
    "health.address": ("10.9.9.9", lambda s: sorted(listeners(s.config, {}))),
    "status.enabled": (True, lambda s: sorted(listeners(s.config, {}))),
    "runDir": ("/run/elsewhere", lambda s: s.bgp.run_dir),
    "secretsDir": ("/etc/elsewhere", lambda s: s.bgp.secrets_dir),
    "bgp.stopTimeout": (9.0, lambda s: s.bgp.stop_timeout),
    "l2.probeCount": (5, lambda s: s.l2.probe_count),
    "membership.port": (17947, lambda s: s.membership.port),
}


@pytest.mark.parametrize("key", sorted(FOLLOWED))
def test_a_changed_key_reaches_its_consumer(key: str, tmp_path: Path) -> None:
    value, consumer = FOLLOWED[key]
    assert consumer(with_key(key, value, tmp_path)) != consumer(with_key("logLevel", "info", tmp_path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics:\n  port: 70000\n", 'metrics.port "70000": must be 0-65535'),
        ("membership:\n  keyFil: /k\n", 'membership.keyFil "/k": unknown key; allowed here: deadAfter,'),
        ("logLevel: loud\n", 'logLevel "loud": must be one of: debug, info, warning or error'),
        ("health:\n  address: eth0\n", "health.address \"eth0\": must be 'podIP' or an IPv4/IPv6 address"),
        (
            "kubernetes:\n  lease:\n    durationSeconds: 1\n",
            "kubernetes.lease: must nest: retryPeriodSeconds < renewDeadlineSeconds < durationSeconds",
        ),
        ("metrics:\n  port: 7949\n", "metrics.port and health.port must differ"),
        ("[1, 2\n", "is not valid YAML at line"),
        ("- a list\n", "must be a mapping of settings"),
    ],
    ids=[
        "a port out of range",
        "a misspelt key lists the allowed ones",
        "a value not in the list",
        "an interface name where an address goes",
        "lease timings that do not nest",
        "two listeners on one port",
        "not YAML",
        "not a mapping",
    ],
)
def test_a_bad_settings_file_names_key_value_and_what_is_allowed(
    text: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        agentconfig.load(path)
    assert message in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("program", ["ironlb.agent.main", "ironlb.agent.controller_main"])
def test_a_bad_settings_file_exits_2_at_start_without_a_traceback(program: str, tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("metrics:\n  port: 70000\n")
    proc = subprocess.run(
        [sys.executable, "-m", program, *(["--node", "n1"] if program == "ironlb.agent.main" else [])],
        capture_output=True,
        text=True,
        timeout=60,
        env={"IRONLB_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stderr
    assert 'metrics.port "70000": must be 0-65535' in proc.stderr and "Traceback" not in proc.stderr


def test_flags_override_single_keys_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        yaml.safe_dump({**AgentConfig().dump(), "logLevel": "warning", "source": {"kind": "files"}})
    )
    assert main(["--config", str(path), "--node", "n1", "--membership-port", "70000"]) == 2
