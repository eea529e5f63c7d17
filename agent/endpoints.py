"""The agent's HTTP endpoints, each on the listener its settings name.

=================  ==========================  ======================================
listener           paths                       default bind
=================  ==========================  ======================================
``health``         ``/healthz``, ``/readyz``   ``podIP``:7949 (the kubelet's probes)
``metrics``        ``/metrics``                ``podIP``:7948 (Prometheus)
``status``         ``/status``                 off; when enabled ``127.0.0.1``:7950
=================  ==========================  ======================================

``podIP`` is ``$POD_IP`` from the downward API: for the hostNetwork speaker that is the
node's address, where the kubelet and Prometheus reach it, and not every interface of the
host (``0.0.0.0`` only when the settings say so).  ``/status`` lists every tenant's
addresses, so it is opt-in and local by default.  Listeners sharing an address and port
share one server (their paths merged).

Each server is a small stdlib HTTP server in daemon threads, hardened for a hostile LAN:
a socket timeout (a slow or silent client is dropped after :data:`TIMEOUT` seconds) and at
most :data:`MAX_CONCURRENT` requests at once (further connections are closed at once and
counted), so no client can exhaust threads or memory.  Handlers only read the
:class:`~ironlb.agent.observability.StatusBoard`'s snapshots.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ironlb.agent.observability import StatusBoard
from ironlb.agentconfig import POD_IP, AgentConfig

log = logging.getLogger(__name__)

#: Seconds a client may take to send its request or read the answer.
TIMEOUT = 5.0
#: Requests served at once per listener; more are refused (connection closed).
MAX_CONCURRENT = 8

HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
METRICS_PATHS = frozenset({"/metrics"})
STATUS_PATHS = frozenset({"/status"})


class BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``max_concurrent`` requests at once."""

    daemon_threads = True
    request_queue_size = 32

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_concurrent: int):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self.refused = 0
        super().__init__(address, handler)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer.server_bind``'s ``socket.getfqdn`` of the address: that is a
        reverse DNS query, which blocks start-up for 5 s or more per listener whenever cluster
        DNS is slow or unreachable (bootstrap, a node's resolver down); ``server_name`` is unused."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread took the slot: give it back, whatever failed, then re-raise
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _handler(board: StatusBoard, paths: frozenset[str], limit: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = limit  # socket timeout of each connection (StreamRequestHandler)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in paths:
                self._send(404, f"not found; here: {' '.join(sorted(paths))}\n".encode())
            elif path == "/metrics":
                self._send(200, generate_latest(board.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok, why = board.live()
                self._send(200 if ok else 503, f"{why}\n".encode())
            elif path == "/readyz":
                ok, why = board.readiness()
                self._send(200 if ok else 503, f"{why}\n".encode())
            else:
                self._send(200, board.snapshot(), "application/json")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: probes and scrapes are frequent
            return

    return Handler


def serve(
    board: StatusBoard,
    host: str = "127.0.0.1",
    port: int = 7948,
    paths: Iterable[str] = HEALTH_PATHS | METRICS_PATHS | STATUS_PATHS,
    *,
    max_concurrent: int = MAX_CONCURRENT,
    timeout: float = TIMEOUT,
) -> BoundedServer:
    """Serve ``paths`` on ``host:port`` in daemon threads; ``server.shutdown()`` stops it."""
    server = BoundedServer((host, port), _handler(board, frozenset(paths), timeout), max_concurrent)
    threading.Thread(target=server.serve_forever, name=f"ironlb-http-{port}", daemon=True).start()
    return server


def bind_address(address: str, env: Mapping[str, str]) -> str:
    """``podIP`` -> ``$POD_IP`` (loopback when unset: standalone); an IP address as it is."""
    if address != POD_IP:
        return address
    pod_ip = env.get("POD_IP", "").strip()
    try:
        return str(ipaddress.ip_address(pod_ip))
    except ValueError:
        log.info("no usable $POD_IP (%r): serving on loopback only", pod_ip)
        return "127.0.0.1"


def listeners(config: AgentConfig, env: Mapping[str, str]) -> dict[tuple[str, int], frozenset[str]]:
    """(host, port) -> paths served there, from the settings (listeners on port 0 are off)."""
    wanted: list[tuple[str, int, frozenset[str]]] = [
        (config.health.address, config.health.port, HEALTH_PATHS),
        (config.metrics.address, config.metrics.port, METRICS_PATHS),
    ]
    if config.status.enabled:
        wanted.append((config.status.address, config.status.port, STATUS_PATHS))
    out: dict[tuple[str, int], frozenset[str]] = {}
    for address, port, paths in wanted:
        if port:
            key = (bind_address(address, env), port)
            out[key] = out.get(key, frozenset()) | paths
    return out


def start(board: StatusBoard, config: AgentConfig, env: Mapping[str, str]) -> list[BoundedServer]:
    """Start every configured listener (an address in use is a clear error, not a traceback)."""
    servers: list[BoundedServer] = []
    try:
        for (host, port), paths in listeners(config, env).items():
            servers.append(serve(board, host, port, paths))
            log.info("serving %s on %s:%d", " ".join(sorted(paths)), host, port)
    except OSError as exc:
        stop(servers)
        raise EndpointError(
            f"cannot listen on {host}:{port} for {' '.join(sorted(paths))}: {exc.strerror or exc}"
        ) from exc
    return servers


def stop(servers: Iterable[BoundedServer]) -> None:
    for server in servers:
        server.shutdown()
        server.server_close()


class EndpointError(OSError):
    """A listener could not be opened (port in use, address not on this host)."""
