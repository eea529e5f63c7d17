"""The agent's settings file: one checked model, written by the NodeAgent component, read by both roles.

``AgentConfig`` is the whole file (``agent.yaml`` in the ConfigMap ``ironlb-agent-config``,
path ``$IRONLB_CONFIG``).  The NodeAgent component builds it and writes
``AgentConfig.dump()``; the speaker (``ironlb-agent``) and the controller
(``ironlb-controller``) read the same file with :func:`load` into the same model, so every
key written is a field read, with one default, defined here.  Command-line flags
(standalone use) are layered on top of the file by :func:`merged`, and the result is
checked as one document, so a bad flag and a bad key get the same message.

Models are frozen and reject unknown keys, like the CR schema (``ironlb.model``); Python
reads snake_case attributes, the file uses camelCase keys.  A bad file raises
:class:`~ironlb.errors.ConfigError` whose issues name the key, the value and what is
allowed (``Settings "/etc/ironlb/config/agent.yaml": metrics.port "70000": must be
0-65535``); the agent turns it into exit code 2, never a traceback.

Ports (docs/decisions/0060-agent-settings-and-ports.md) stay clear of MetalLB's so both
can run side by side during a migration: membership 7947/UDP (MetalLB's memberlist is
7946), metrics 7948, health 7949 (MetalLB: 7472 metrics, 7473 FRR metrics), and the opt-in
``/status`` endpoint 7950 on loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from ironlb.config import _friendly, _loc, _value_at
from ironlb.errors import ConfigError, Issue

#: Issue kind for every problem in the settings file or flags.
KIND = "Settings"
#: ``address`` keyword: the pod's own IP from the downward API (``$POD_IP``); the node's IP
#: for the hostNetwork speaker, so the kubelet and Prometheus reach it but no other interface.
POD_IP = "podIP"

METRICS_PORT = 7948
HEALTH_PORT = 7949
STATUS_PORT = 7950
MEMBERSHIP_PORT = 7947


class Section(BaseModel):
    """Base of every settings section: frozen, unknown keys rejected, camelCase in the file."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _check_address(value: str) -> str:
    if value == POD_IP:
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"must be {POD_IP!r} or an IPv4/IPv6 address such as 127.0.0.1") from None


class Listener(Section):
    """One HTTP listener: where it binds and on which port (0: off)."""

    address: str = Field(default=POD_IP, description="'podIP' (the pod's IP, $POD_IP) or an IP address.")
    port: int = Field(default=METRICS_PORT, ge=0, le=65535, description="TCP port; 0 turns it off.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_address(value)


class MetricsListener(Listener):
    """Prometheus ``/metrics``."""


class HealthListener(Listener):
    """``/healthz`` (liveness) and ``/readyz`` (readiness) for the kubelet."""

    port: int = Field(default=HEALTH_PORT, ge=0, le=65535, description="TCP port; 0 turns it off.")


class StatusListener(Listener):
    """The ``/status`` table (every tenant's addresses): off by default, loopback when on."""

    enabled: bool = Field(default=False, description="Serve /status (read by `ironlb status --url`).")
    address: str = Field(default="127.0.0.1", description="'podIP' or an IP address.")
    port: int = Field(default=STATUS_PORT, ge=1, le=65535)


class SourceOptions(Section):
    """Where the speaker's cluster view comes from."""

    kind: Literal["files", "kube"] = Field(
        default="files", description="'files': a manifest directory (standalone); 'kube': the Kubernetes API."
    )
    directory: Path | None = Field(default=None, description="Manifest directory for kind 'files'.")
    poll_interval: float = Field(default=0.2, ge=0.01, le=60, description="Seconds between directory checks.")


class L2Options(Section):
    """ARP/NDP responder behaviour."""

    interfaces: tuple[str, ...] = Field(
        default=(), description="Interfaces to answer on when an L2Advertisement names none; empty: by route."
    )
    garp_schedule: tuple[float, ...] = Field(
        default=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
        description="Seconds after a takeover at which gratuitous ARP / unsolicited NA are sent.",
    )
    probe: bool = Field(default=True, description="Probe for a conflicting host before first announcing.")
    probe_count: int = Field(default=2, ge=0, le=10, description="Probes per address before announcing.")
    probe_interval: float = Field(default=0.02, ge=0, le=10, description="Seconds between probes.")
    probe_wait: float = Field(
        default=0.05, ge=0, le=10, description="Seconds to listen after the last probe (decision 0021)."
    )
    handover_grace: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Seconds a host may keep answering a probed address (the previous owner handing over) "
        "before it counts as a conflict.",
    )
    conflict_retry: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Longest wait before an address held by another host is probed again (1 s, doubling).",
    )

    @field_validator("garp_schedule")
    @classmethod
    def _rising(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(t < 0 for t in value) or list(value) != sorted(value):
            raise ValueError("must be non-negative seconds in rising order, e.g. [0, 0.25, 0.5, 1, 2, 4]")
        return value


class MembershipOptions(Section):
    """How the speakers find each other (timing details live in agent.membership)."""

    mode: Literal["gossip", "static"] = Field(
        default="gossip", description="'gossip': authenticated UDP heartbeats; 'static': all agents alive."
    )
    port: int = Field(default=MEMBERSHIP_PORT, ge=1, le=65535, description="UDP port on every node.")
    key_file: Path | None = Field(
        default=None, description="File with the shared HMAC key (at least 32 bytes); required for gossip."
    )
    next_key_file: Path | None = Field(
        default=None, description="During a key rotation: the next key, also accepted (see ADR 0030)."
    )
    interval: float = Field(
        default=0.025,
        ge=0.02,
        le=60,
        description="Heartbeat period to the node's watchers, seconds (detection is about 4 periods).",
    )
    dead_after: int = Field(default=4, ge=1, le=1000, description="Silent periods before a peer is dead.")


class BGPOptions(Section):
    """The BGP speaker process (passwords come from secretsDir, its files go to runDir)."""

    start_timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds for a speaker process to start."
    )
    stop_timeout: float = Field(
        default=3.0, gt=0, le=60, description="Seconds a speaker may take to close its sessions on stop."
    )
    listen_port: int = Field(
        default=1790,
        ge=1024,
        le=65535,
        description=(
            "TCP port BIRD listens on. The speaker always connects out to its peers; an unprivileged "
            "port needs no CAP_NET_BIND_SERVICE and leaves 179 to another BGP daemon on the host."
        ),
    )


class LeaseOptions(Section):
    """The controller's Lease (leader election); failover takes about duration + retry period."""

    name: str = Field(default="ironlb-controller", min_length=1, max_length=253)
    duration_seconds: float = Field(default=2.0, gt=0, le=300)
    renew_deadline_seconds: float = Field(default=1.5, gt=0, le=300)
    retry_period_seconds: float = Field(default=0.5, gt=0, le=300)

    @model_validator(mode="after")
    def _nested(self) -> LeaseOptions:
        if not self.retry_period_seconds < self.renew_deadline_seconds < self.duration_seconds:
            raise ValueError(
                "must nest: retryPeriodSeconds < renewDeadlineSeconds < durationSeconds "
                f"(got {self.retry_period_seconds}, {self.renew_deadline_seconds}, {self.duration_seconds})"
            )
        return self


class KubernetesOptions(Section):
    """Talking to the API server (in a pod: the in-cluster service account)."""

    kubeconfig: Path | None = Field(
        default=None, description="Standalone only: a kubeconfig file; unset: in-cluster, then $KUBECONFIG."
    )
    claim_classless: bool = Field(
        default=False, description="Also serve LoadBalancer Services that set no loadBalancerClass."
    )
    resync_seconds: float = Field(default=300.0, ge=10, le=86400, description="Relist this often.")
    status_debounce_seconds: float = Field(
        default=0.2, ge=0, le=60, description="The speaker batches NodeState status writes this long."
    )
    lease: LeaseOptions = Field(default_factory=LeaseOptions)


class DaemonOptions(Section):
    """Replanning and shutdown of the speaker."""

    settle: float = Field(
        default=0.0, ge=0, le=60, description="Seconds to coalesce changes before a replan."
    )
    close_timeout: float = Field(
        default=5.0, gt=0, le=300, description="Seconds each shell may take to close."
    )
    status_file: Path | None = Field(default=None, description="Also write the status JSON to this file.")
    stuck_after: float = Field(
        default=60.0, ge=5, le=3600, description="A replan running longer than this fails liveness."
    )


class AgentConfig(Section):
    """The whole settings file (``agent.yaml``)."""

    namespace: str = Field(
        default="ironlb-system",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="IronLB's namespace: the controller Lease lives here.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = Field(default="json", description="'json': one object per line.")
    metrics: MetricsListener = Field(default_factory=MetricsListener)
    health: HealthListener = Field(default_factory=HealthListener)
    status: StatusListener = Field(default_factory=StatusListener)
    source: SourceOptions = Field(default_factory=SourceOptions)
    l2: L2Options = Field(default_factory=L2Options)
    membership: MembershipOptions = Field(default_factory=MembershipOptions)
    bgp: BGPOptions = Field(default_factory=BGPOptions)
    kubernetes: KubernetesOptions = Field(default_factory=KubernetesOptions)
    daemon: DaemonOptions = Field(default_factory=DaemonOptions)
    secrets_dir: Path = Field(
        default=Path("/etc/ironlb/secrets"), description="BGP passwords: <secretsDir>/<secret>/<key>."
    )
    run_dir: Path = Field(
        default=Path("/run/ironlb"),
        description="Memory-backed scratch space (speaker configs with passwords).",
    )

    @model_validator(mode="after")
    def _ports_differ(self) -> AgentConfig:
        if self.metrics.port and self.metrics.port == self.health.port:
            raise ValueError(f"metrics.port and health.port must differ (both {self.health.port})")
        return self

    def dump(self) -> dict[str, Any]:
        """The file's content: every field, camelCase keys, None values left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- reading ------------------------------------------------------------------------------


def parse(doc: Any, origin: str = "agent settings") -> AgentConfig:
    """Check one settings document; raise ConfigError naming key, value and what is allowed."""
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError([Issue(KIND, origin, "", None, "must be a mapping of settings (YAML keys)")])
    try:
        return AgentConfig.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(_issues(origin, doc, exc)) from None


def load(path: Path) -> AgentConfig:
    """Read and check a settings file (YAML or JSON)."""
    return parse(read(path), str(path))


def read(path: Path) -> Any:
    """The raw document of a settings file (a ConfigError when unreadable or not YAML)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            [
                Issue(
                    KIND, str(path), "", None, f"cannot be read ({exc.strerror or exc}); check $IRONLB_CONFIG"
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError([Issue(KIND, str(path), "", None, f"is not valid YAML{line}")]) from None


def merged(doc: Any, overrides: Mapping[str, Any], origin: str = "agent settings") -> AgentConfig:
    """``doc`` (a settings file's content) with ``overrides`` (dotted camelCase keys) applied, checked."""
    base: dict[str, Any] = dict(doc) if isinstance(doc, Mapping) else {}
    if doc is not None and not isinstance(doc, Mapping):
        return parse(doc, origin)
    for dotted, value in overrides.items():
        node = base
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node[leaf] = value
    return parse(base, origin)


def _issues(origin: str, doc: Mapping[str, Any], exc: ValidationError) -> list[Issue]:
    """pydantic's errors in the schema's words (reusing ironlb.config's translation)."""
    issues = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.endswith("]")))
        if err["type"] == "value_error" and not loc:  # a cross-field rule: its text names the keys
            issues.append(Issue(KIND, origin, "", None, str(err["msg"]).removeprefix("Value error, ")))
            continue
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            message = f"unknown key; allowed here: {', '.join(allowed)}"
        else:
            message = _friendly(err, _field_info(loc))
        value = _value_at(doc, loc) if err["type"] != "missing" else None
        if isinstance(value, Mapping):
            value = None
        issues.append(Issue(KIND, origin, _loc(loc), value, message))
    return issues


def _field_info(loc: tuple[int | str, ...]) -> FieldInfo | None:
    """The field a (camelCase) error location points at, for its bounds."""
    model: Any = AgentConfig
    found: FieldInfo | None = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return found if isinstance(part, int) else None
        by_alias = {f.alias or n: f for n, f in model.model_fields.items()}
        found = by_alias.get(str(part))
        if found is None:
            return None
        model = found.annotation
    return found


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    model: Any = _field_info(loc).annotation if loc else AgentConfig  # type: ignore[union-attr]
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def leaf_keys(model: type[BaseModel] = AgentConfig, prefix: str = "") -> list[str]:
    """Every leaf key of the file, dotted camelCase (``membership.keyFile``); for tests and docs."""
    keys: list[str] = []
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        inner = info.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys.extend(leaf_keys(inner, key + "."))
        else:
            keys.append(key)
    return keys
