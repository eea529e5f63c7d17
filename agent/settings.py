"""Agent settings: frozen dataclasses grouped by concern, one docstring per field.

``agent.main`` builds :class:`Settings` from command-line flags; everything else receives
it (or its part) and never reads flags or the environment itself.  Defaults are pinned by
a test (tests/test_daemon.py), so changing one is a visible decision.
Membership timing lives with membership (``agent.membership.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ironlb.errors import ConfigError, Issue


@dataclass(frozen=True)
class SourceSettings:
    """Where the cluster view comes from."""

    kind: Literal["files", "kube"] = "files"
    """``files``: a directory of manifests (standalone); ``kube``: the Kubernetes API."""

    directory: Path | None = None
    """Manifest directory for ``kind="files"`` (``*.yaml``, ``*.yml``, ``*.json``, recursively)."""

    poll_interval: float = 0.2
    """Seconds between checks of the directory's file names, sizes and mtimes."""


@dataclass(frozen=True)
class L2Settings:
    """ARP/NDP responder behaviour."""

    interfaces: tuple[str, ...] = ()
    """Interfaces to answer on when an L2Advertisement names none; empty: by route lookup."""

    garp_schedule: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    """Seconds after a takeover at which gratuitous ARP / unsolicited NA are sent."""

    probe: bool = True
    """Probe for a conflicting host (RFC 5227 ARP probe / DAD-style NS) before first announcing."""

    probe_count: int = 2
    """Probes sent per address before it is first announced."""

    probe_interval: float = 0.05
    """Seconds between probes."""

    probe_wait: float = 0.2
    """Seconds to listen for an answer after the last probe."""

    conflict_retry: float = 30.0
    """Seconds before an address that met a conflict is probed again."""


@dataclass(frozen=True)
class DaemonSettings:
    """Replanning and shutdown."""

    settle: float = 0.0
    """Seconds to wait after a change before replanning (coalesces bursts); 0: at once."""

    close_timeout: float = 5.0
    """Seconds each shell's ``close()`` may take on shutdown."""

    status_file: Path | None = None
    """When set, the agent writes its status (plan, shells) here as JSON after every apply."""


@dataclass(frozen=True)
class MembershipOptions:
    """How this agent finds its peers (timing lives in agent.membership.settings)."""

    mode: Literal["static", "gossip"] = "gossip"
    """``gossip``: authenticated UDP heartbeats; ``static``: assume every node's agent is alive."""

    key_file: Path | None = None
    """File holding the shared HMAC key (at least 32 bytes); required for ``gossip``."""

    port: int = 7947
    """UDP port of the membership protocol on every node."""

    interval: float = 0.1
    """Heartbeat period (seconds) for small clusters."""

    dead_after: int = 4
    """Silent periods before a peer is declared dead."""


@dataclass(frozen=True)
class Settings:
    """Everything one agent process needs to know."""

    node: str
    """This node's name (as in v1 Node manifests / Kubernetes)."""

    source: SourceSettings = field(default_factory=SourceSettings)
    l2: L2Settings = field(default_factory=L2Settings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    membership: MembershipOptions = field(default_factory=MembershipOptions)

    def __post_init__(self) -> None:
        issues: list[Issue] = []

        def bad(name: str, value: object, allowed: str) -> None:
            issues.append(Issue("Settings", self.node or "agent", name, value, allowed))

        if not self.node:
            bad("node", self.node, "is required (--node NAME)")
        if self.source.kind == "files" and self.source.directory is None:
            bad("source.directory", None, "is required with --source files (--dir DIR)")
        if not 0.01 <= self.source.poll_interval <= 60:
            bad("source.poll_interval", self.source.poll_interval, "must be 0.01-60 seconds")
        if any(t < 0 for t in self.l2.garp_schedule) or list(self.l2.garp_schedule) != sorted(
            self.l2.garp_schedule
        ):
            bad("l2.garp_schedule", self.l2.garp_schedule, "must be non-negative seconds in rising order")
        if not 0 <= self.l2.probe_count <= 10:
            bad("l2.probe_count", self.l2.probe_count, "must be 0-10")
        if not 0 < self.l2.conflict_retry <= 3600:
            bad("l2.conflict_retry", self.l2.conflict_retry, "must be 0-3600 seconds")
        if self.membership.mode == "gossip" and self.membership.key_file is None:
            bad("membership.key_file", None, "is required with --membership gossip (--membership-key FILE)")
        if issues:
            raise ConfigError(issues)
