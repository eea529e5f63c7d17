"""BGP speaker settings, one docstring per field; defaults pinned by tests/test_bgp_speaker.py.

``ironlb.agent.settings.Settings.bgp`` builds this from the agent's settings file
(``runDir``, ``secretsDir``, ``bgp.startTimeout``, ``bgp.stopTimeout``); the other fields
keep their defaults unless a caller (a benchmark, a test) sets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BGPSettings:
    """How the agent runs its BIRD speaker."""

    run_dir: Path = Path("/run/ironlb")
    """Memory-backed scratch directory; the speaker uses ``<run_dir>/bgp`` (0700) for BIRD's
    control socket and, while BIRD parses it, its configuration (with MD5 passwords)."""

    secrets_dir: Path = Path("/etc/ironlb/secrets")
    """Where Secrets are mounted: a BGPPeer's password is read from ``<dir>/<secret>/<key>``."""

    start_timeout: float = 30.0
    """Seconds for BIRD to start (open its control socket) or to take a new configuration."""

    stop_timeout: float = 3.0
    """Seconds BIRD may take to close its sessions on stop before it is SIGKILLed."""

    bird: str = "bird"
    """The BIRD 2 daemon (looked up on PATH; Debian's ``bird2`` package installs /usr/sbin/bird)."""

    listen_port: int = 1790
    """TCP port BIRD listens on (it always connects out; routers' connects to 179 are refused).
    Unprivileged, so no CAP_NET_BIND_SERVICE, and clear of another BGP daemon on port 179."""

    poll_interval: float = 1.0
    """Seconds between reads of session and BFD state for status."""
