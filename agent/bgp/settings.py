"""BGP speaker settings, one docstring per field; defaults pinned by tests/test_bgp_shell.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BGPSettings:
    """How the agent runs its ExaBGP speakers."""

    run_dir: Path | None = None
    """Parent of the per-session private directories (0700); None: the system temp dir."""

    secrets_dir: Path = Path("/etc/ironlb/secrets")
    """Where Secrets are mounted: a BGPPeer's password is read from ``<dir>/<secret>/<key>``."""

    batch: int = 500
    """Prefixes per ExaBGP ``announce attributes ... nlri`` command (10k routes: 0.2 s at 500)."""

    start_timeout: float = 30.0
    """Seconds for a speaker process to start and connect its API relay."""

    ack_timeout: float = 10.0
    """Seconds to wait for ExaBGP to acknowledge a batch of commands."""

    stop_timeout: float = 3.0
    """Seconds a speaker may take to close its session after SIGTERM before it is SIGKILLed."""

    command_prefix: tuple[str, ...] = ()
    """Prepended to the speaker command (tests: ``ip netns exec NS``); empty in production."""
