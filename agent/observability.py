"""What an agent tells the outside: metrics, health, the status table, structured logs.

- :class:`Metrics` -- one prometheus-client registry per agent: allocations, pool usage,
  BGP sessions up, announcements, address conflicts, failovers, leadership, API errors.
- :class:`StatusBoard` -- the latest plan's ownership table ("which node announces IP X,
  how and why") plus every shell's ``status()``, snapshotted *on the event loop* into
  immutable JSON bytes; the HTTP thread only ever reads that snapshot, so it never races
  with the shells.
- :func:`serve` -- a small stdlib HTTP server in a daemon thread: ``/metrics``,
  ``/healthz`` (the event loop still ticks), ``/readyz`` (the first cluster view arrived),
  ``/status`` (the snapshot as JSON; ``ironlb status --url`` prints it).
- :func:`setup_logging` -- one JSON object per log line (ts, level, logger, msg, extras).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from agent.announcements import Ownership, Plan


class Metrics:
    """The agent's Prometheus metrics (names are part of the public interface)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.allocations = Counter(
            "ironlb_allocations_total",
            "Allocation attempts by result and reason",
            ["result", "reason"],
            registry=r,
        )
        self.pool_used = Gauge(
            "ironlb_pool_addresses_used",
            "Addresses in use per pool and family",
            ["pool", "family"],
            registry=r,
        )
        self.pool_size = Gauge(
            "ironlb_pool_addresses_total", "Pool size per family", ["pool", "family"], registry=r
        )
        self.sessions_up = Gauge("ironlb_bgp_sessions_up", "BGP sessions in Established state", registry=r)
        self.announcements = Gauge(
            "ironlb_announcements", "Addresses this node announces", ["mode"], registry=r
        )
        self.conflicts = Gauge(
            "ironlb_address_conflicts", "Addresses held back: in use by another host on the LAN", registry=r
        )
        self.failovers = Counter(
            "ironlb_failovers_total", "Addresses whose announcing node changed", ["mode"], registry=r
        )
        self.leader = Gauge(
            "ironlb_controller_leader", "1 while this agent holds the controller Lease", registry=r
        )
        self.api_errors = Counter(
            "ironlb_kube_api_errors_total", "Failed Kubernetes API calls", ["operation"], registry=r
        )

    def observe_plan(self, plan: Plan, previous: Plan | None) -> None:
        self.announcements.labels("layer2").set(len(plan.l2))
        self.announcements.labels("bgp").set(len(plan.bgp))
        if previous is None:
            return
        before = {(o.ip, o.mode): o.nodes for o in previous.ownership}
        for row in plan.ownership:
            old = before.get((row.ip, row.mode))
            if old and row.nodes and old != row.nodes and row.mode == "layer2":
                self.failovers.labels(row.mode).inc()

    def observe_shells(self, statuses: Mapping[str, Mapping[str, Any]]) -> None:
        up = conflicts = 0
        for status in statuses.values():
            sessions = status.get("sessions") or {}
            rows = sessions.values() if isinstance(sessions, Mapping) else sessions
            up += sum(
                1 for s in rows if isinstance(s, Mapping) and str(s.get("state", "")).lower() == "established"
            )
            found = status.get("conflicts") or ()
            conflicts += len(found) if isinstance(found, (list, tuple, Mapping)) else 0
        self.sessions_up.set(up)
        self.conflicts.set(conflicts)

    def observe_usage(self, usage: Mapping[str, Any]) -> None:
        """``usage``: ironlb.ipam PoolUsage values by pool name."""
        for name, u in usage.items():
            for family in (4, 6):
                self.pool_used.labels(name, f"ipv{family}").set(u.used.get(family, 0))
                self.pool_size.labels(name, f"ipv{family}").set(u.size.get(family, 0))


def ownership_rows(plan: Plan) -> list[dict[str, Any]]:
    """The plan's cluster-wide ownership table as JSON-able rows."""
    return [_row(o) for o in plan.ownership]


def _row(o: Ownership) -> dict[str, Any]:
    return {
        "ip": o.ip,
        "mode": o.mode,
        "nodes": list(o.nodes),
        "reason": o.reason,
        "services": list(o.services),
    }


class StatusBoard:
    """Latest plan + shells' status, snapshotted on the loop; read from any thread."""

    def __init__(
        self, node: str, metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self.node = node
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.plan: Plan | None = None
        self.shells: dict[str, Any] = {}  # name -> object with status()
        self.extra: dict[str, Any] = {}
        self.extra_fn: Callable[[], Mapping[str, Any]] | None = None  # e.g. the kube runtime's status
        self.ready = False
        self.last_tick = clock()
        self._snapshot = b"{}"
        self._lock = threading.Lock()

    def record_plan(self, plan: Plan) -> None:
        """Call after every plan is applied (the daemon's hook)."""
        self.metrics.observe_plan(plan, self.plan)
        self.plan = plan
        self.ready = True
        self.refresh()

    def refresh(self) -> None:
        """Take a new snapshot (on the event loop)."""
        self.last_tick = self.clock()
        statuses: dict[str, Any] = {}
        for name, shell in self.shells.items():
            try:
                statuses[name] = dict(shell.status())
            except Exception as exc:  # a broken shell must not break /status
                statuses[name] = {"error": f"{type(exc).__name__}: {exc}"}
        self.metrics.observe_shells(statuses)
        plan = self.plan
        doc = {
            "node": self.node,
            "ready": self.ready,
            "ownership": ownership_rows(plan) if plan else [],
            "unannounced": dict(plan.unannounced) if plan else {},
            "local": {
                "l2": [a.ip for a in plan.l2] if plan else [],
                "bgp": [r.prefix for r in plan.bgp] if plan else [],
            },
            "shells": statuses,
            **self.extra,
        }
        if self.extra_fn is not None:
            try:
                doc["kubernetes"] = dict(self.extra_fn())
            except Exception as exc:
                doc["kubernetes"] = {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(doc, default=str, sort_keys=True).encode()
        with self._lock:
            self._snapshot = data

    def snapshot(self) -> bytes:
        with self._lock:
            return self._snapshot

    def healthy(self, max_stall: float = 30.0) -> bool:
        return self.clock() - self.last_tick < max_stall


def _handler(board: StatusBoard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(board.metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = board.healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"event loop stalled\n")
            elif path == "/readyz":
                self._send(200 if board.ready else 503, b"ok\n" if board.ready else b"no cluster view yet\n")
            elif path == "/status":
                self._send(200, board.snapshot(), "application/json")
            else:
                self._send(404, b"not found; try /metrics /healthz /readyz /status\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: scrapes every few seconds
            return

    return Handler


def serve(board: StatusBoard, host: str = "127.0.0.1", port: int = 7472) -> ThreadingHTTPServer:
    """Start the HTTP endpoints in a daemon thread; ``server.shutdown()`` stops them."""
    server = ThreadingHTTPServer((host, port), _handler(board))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="ironlb-http", daemon=True).start()
    return server


_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields are kept as keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in _STD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(level: str = "info", json_lines: bool = True) -> None:
    """Configure the root logger once (JSON lines for machines, plain text for humans)."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def attach(daemon: Any, source: Any, environ: Mapping[str, str] | None = None) -> StatusBoard:
    """Wire observability into a daemon (one line in ``agent.main``).

    Registers the shells, a plan hook feeding the board (and, with the Kubernetes source,
    the controller's ownership publisher), and starts the HTTP endpoints when
    ``IRONLB_HTTP_ADDR`` (``host:port``, e.g. ``0.0.0.0:7472``) is set -- opt-in, so tests
    and labs running many agents never fight over a port.
    """
    import os

    env = os.environ if environ is None else environ
    board = StatusBoard(daemon.settings.node)
    board.shells = {type(s).__name__: s for s in daemon.shells}
    runtime = getattr(source, "runtime", None)
    if runtime is not None:
        runtime.metrics = board.metrics
        daemon.hooks.append(runtime.on_plan)
        board.extra_fn = runtime.status
    daemon.hooks.append(lambda plan, view: board.record_plan(plan))
    for host, port in http_addresses(env):
        serve(board, host, port)
    return board


def http_addresses(env: Mapping[str, str]) -> list[tuple[str, int]]:
    """Where to serve: ``IRONLB_HTTP_ADDR=host:port``, else the metricsPort/healthPort of the
    settings file ``IRONLB_CONFIG`` (written by the NodeAgent component), else nowhere."""
    addr = env.get("IRONLB_HTTP_ADDR", "")
    if addr:
        host, _, port = addr.rpartition(":")
        return [(host or "0.0.0.0", int(port))]
    path = env.get("IRONLB_CONFIG", "")
    if not path:
        return []
    try:
        import yaml

        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except (OSError, ValueError) as exc:
        logging.getLogger(__name__).warning("cannot read %s for HTTP ports: %s", path, exc)
        return []
    ports = sorted({int(doc[k]) for k in ("metricsPort", "healthPort") if isinstance(doc.get(k), int)})
    return [("0.0.0.0", p) for p in ports]
