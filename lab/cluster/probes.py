"""One probe attempt, as the kubelet's prober makes it; and the counters that turn attempts
into the probe's result (``successThreshold``/``failureThreshold``).

Call :func:`attempt` from a thread that is inside the node's network namespace (the kubelet
probes from the node): httpGet connects to host:port (host defaults to the pod IP), sends
``GET path`` with ``User-Agent: kube-probe/1.33`` and the rendered headers, and succeeds on a
status 200-399 within ``timeoutSeconds`` (redirects are not followed; HTTPS does not verify,
as the kubelet does not); tcpSocket succeeds when the connection opens; exec runs the
command inside the container's mount and network namespaces (``nsenter``) and succeeds on
exit 0.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from dataclasses import dataclass

from lab.cluster.podspec import Probe

USER_AGENT = "kube-probe/1.33"


def attempt(probe: Probe, pid: int) -> tuple[bool, str]:
    """(success, a short reason) of one try."""
    try:
        if probe.handler == "http":
            conn: http.client.HTTPConnection
            if probe.scheme.upper() == "HTTPS":
                ctx = ssl._create_unverified_context()  # the kubelet does not verify probe certificates
                conn = http.client.HTTPSConnection(probe.host, probe.port, timeout=probe.timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection(probe.host, probe.port, timeout=probe.timeout)
            try:
                headers = {"User-Agent": USER_AGENT, "Accept": "*/*", **dict(probe.headers)}
                conn.request("GET", probe.path, headers=headers)
                status = conn.getresponse().status
            finally:
                conn.close()
            return 200 <= status < 400, f"HTTP {status}"
        if probe.handler == "tcp":
            with socket.create_connection((probe.host, probe.port), timeout=probe.timeout):
                return True, "connected"
        argv = ["nsenter", "--target", str(pid), "--mount", "--net", "--", *probe.command]
        proc = subprocess.run(argv, capture_output=True, timeout=probe.timeout, check=False)
        return proc.returncode == 0, f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        return False, f"timed out after {probe.timeout} s"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"


@dataclass
class ProbeState:
    """A probe's schedule and result; ``result`` None until the thresholds decide."""

    probe: Probe
    next_at: float
    result: bool | None = None
    successes: int = 0
    failures: int = 0
    last: str = ""

    @classmethod
    def start(cls, probe: Probe, started: float) -> ProbeState:
        return cls(probe, started + probe.initial_delay)

    def record(self, ok: bool, why: str, now: float) -> bool | None:
        """Count one attempt; return the new result when it changed, else None."""
        self.last = why
        self.next_at = now + self.probe.period
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.probe.success_threshold and self.result is not True:
                self.result = True
                return True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.probe.failure_threshold and self.result is not False:
                self.result = False
                return False
        return None
