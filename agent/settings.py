"""The speaker's settings: the checked settings file plus what only this process knows.

Everything configurable lives in one model, :class:`ironlb.agentconfig.AgentConfig` (the
file the NodeAgent component writes; defaults defined there, pinned by
tests/test_agentconfig.py).  :class:`Settings` adds the node's name (``$NODE_NAME``, from
the downward API) and the rules that hold only for the speaker (a manifest directory for
``source.kind: files``, a key file for gossip membership), and hands each shell its part:
``settings.l2`` to the layer-2 shell, ``settings.bgp`` to the BGP shell (whose
:class:`~ironlb.agent.bgp.settings.BGPSettings` is built here from ``bgp``, ``runDir`` and
``secretsDir``), ``settings.membership`` to membership.  Nothing below ``ironlb.agent.main``
reads flags or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ironlb.agentconfig import (
    KIND,
    AgentConfig,
    DaemonOptions,
    KubernetesOptions,
    L2Options,
    MembershipOptions,
    SourceOptions,
)
from ironlb.errors import ConfigError, Issue

if TYPE_CHECKING:
    from ironlb.agent.bgp.settings import BGPSettings

#: Section types under the names the shells import.
L2Settings = L2Options
SourceSettings = SourceOptions
DaemonSettings = DaemonOptions
__all__ = [
    "AgentConfig",
    "DaemonSettings",
    "KubernetesOptions",
    "L2Settings",
    "MembershipOptions",
    "Settings",
    "SourceSettings",
]


@dataclass(frozen=True)
class Settings:
    """Everything one speaker process needs to know."""

    node: str
    """This node's name (as in v1 Node objects; ``$NODE_NAME`` in a pod)."""

    config: AgentConfig = field(default_factory=AgentConfig)
    """The checked settings file (with any command-line overrides applied)."""

    origin: str = "agent settings"
    """Where the settings came from (a file path, or "flags"), for error messages."""

    def __post_init__(self) -> None:
        issues: list[Issue] = []

        def bad(key: str, value: object, allowed: str) -> None:
            issues.append(Issue(KIND, self.origin, key, value, allowed))

        if not self.node:
            bad("node", None, "is required (--node NAME, or $NODE_NAME from the downward API)")
        if self.source.kind == "files" and self.source.directory is None:
            bad("source.directory", None, "is required with source.kind 'files' (--dir DIR)")
        if self.membership.mode == "gossip" and self.membership.key_file is None:
            bad(
                "membership.keyFile",
                None,
                "is required with membership.mode 'gossip' (--membership-key FILE)",
            )
        if issues:
            raise ConfigError(issues)

    @property
    def source(self) -> SourceOptions:
        return self.config.source

    @property
    def l2(self) -> L2Options:
        return self.config.l2

    @property
    def daemon(self) -> DaemonOptions:
        return self.config.daemon

    @property
    def membership(self) -> MembershipOptions:
        return self.config.membership

    @property
    def kubernetes(self) -> KubernetesOptions:
        return self.config.kubernetes

    @property
    def bgp(self) -> BGPSettings:
        """The BGP shell's settings: its files under ``runDir``, passwords from ``secretsDir``."""
        from ironlb.agent.bgp.settings import BGPSettings

        return BGPSettings(
            run_dir=self.config.run_dir,
            secrets_dir=self.config.secrets_dir,
            start_timeout=self.config.bgp.start_timeout,
            stop_timeout=self.config.bgp.stop_timeout,
            listen_port=self.config.bgp.listen_port,
        )
