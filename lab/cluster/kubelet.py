"""The lab's kubelet: runs the Pods bound to the lab's nodes as processes, as a kubelet would.

One :class:`PodWorker` thread per Pod, sitting in its node's network namespace (probes come
from the node, as the kubelet's do).  For each container it:

- plans the container from the Pod object (:mod:`lab.cluster.podspec`; ConfigMaps, Secrets
  and tokens read from the API stand-in at every start), writes the plan 0600 into the pod's
  directory and starts ``ip netns exec NS unshare -m [-u] -- python -m lab.cluster.podinit``
  (files at their mountPaths, read-only root, uid/capabilities dropped, exec);
- runs startup/liveness/readiness probes exactly as rendered; a failed startup or liveness
  probe stops the container (SIGTERM, SIGKILL after the grace period: the probe's own
  ``terminationGracePeriodSeconds`` or the pod's) and restarts it;
- restarts any container that exits (``restartPolicy: Always``), with the kubelet's
  back-off: the first restart at once, then 10 s, doubling to 300 s, reset after 10 minutes
  of running; when the main process ends, every process left in its session is killed (the
  cgroup kill of a real runtime);
- counts restarts with their reason (``liveness``, ``startup``, ``exit`` with the exit code,
  ``induced`` for kills a test asked for) and writes the Pod's status to the API stand-in
  (phase, podIP/hostIP, conditions, containerStatuses with ready/restartCount/state/
  lastState) whenever it changes, as admin (see :mod:`lab.cluster.api`).

Not reproduced: cgroups (CPU/memory limits, OOM kills, resource accounting), image pulls
and the image filesystem (the host's, read-only; see :mod:`lab.cluster.image`), seccomp and
AppArmor profiles, init and sidecar containers, lifecycle hooks, ephemeral containers,
Pod eviction, ConfigMap/Secret updates reaching a running container (files are written at
each container start), and container log rotation (logs append to ``<pod>.<container>.log``
in the lab work dir).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from subprocess import Popen
from typing import Any

from lab.cluster.api import Api, ApiError
from lab.cluster.image import image_config, image_files
from lab.cluster.podspec import Container, PodContext, PodPlan, PodSpecError, plan_pod
from lab.cluster.probes import ProbeState, attempt
from lab.cluster.resolve import Volume
from lab.cluster.sandbox import Sandbox, SandboxFactory, release_all
from lab.cluster.workloads import PodPlacement
from lab.netns import Lab, enter_netns

log = logging.getLogger(__name__)

BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET = 10.0, 300.0, 600.0
TICK = 0.05


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Restart:
    pod: str
    container: str
    at: float
    reason: str  # liveness | startup | exit | induced
    exit_code: int | None


@dataclass
class _Running:
    spec: Container
    proc: Popen[bytes] | None = None
    started: float = 0.0
    started_at: str = ""
    restarts: int = 0
    ready: bool = False
    probes: list[ProbeState] = field(default_factory=list)
    stop_reason: str | None = None
    next_start: float = 0.0
    backoff: float = 0.0
    last_state: dict[str, Any] = field(default_factory=dict)
    waiting: str = ""


def session_pids(sid: int) -> list[int]:
    """Every process in session ``sid`` (the container's processes: it was started in its own)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid:  # after "pid (comm)": state ppid pgrp session ...
            pids.append(int(entry.name))
    return pids


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


class PodWorker(threading.Thread):
    """Runs one Pod's containers until :meth:`stop`."""

    def __init__(
        self, lab: Lab, placement: PodPlacement, box: Sandbox, context: Callable[[Sandbox], PodContext],
        write_status: Callable[[PodPlacement, dict[str, Any]], None], on_restart: Callable[[Restart], None],
    ) -> None:  # fmt: skip
        super().__init__(name=f"kubelet-{placement.name}", daemon=True)
        self.lab, self.placement, self.box = lab, placement, box
        self.context, self.write_status, self.on_restart = context, write_status, on_restart
        self.plan: PodPlan = plan_pod(placement.manifest, context(box))
        self.containers = {c.name: _Running(c) for c in self.plan.containers}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.induced: set[str] = set()
        self.down_for: dict[str, float] = {}  # container -> seconds to stay down after a kill
        self.error: str = ""
        self._last_status: str = ""
        self.created = time.monotonic()
        self._images = {
            str(c.get("name")): str(c.get("image"))
            for c in placement.manifest["spec"].get("containers") or []
        }

    # --- control (any thread) -----------------------------------------------------------------

    def kill(
        self, container: str | None = None, sig: int = signal.SIGKILL, down_for: float | None = None
    ) -> int:
        """Signal a container's main process as a test's crash would; returns its PID.

        ``down_for``: restart it exactly that many seconds after it ends, whatever its back-off
        (which does not grow): a pod that stays down that long, as in a CrashLoopBackOff, and
        is then re-created fresh.  None: the kubelet's back-off, as for any exit."""
        name = container or next(iter(self.containers))
        run = self.containers[name]
        with self.lock:
            if run.proc is None or run.proc.poll() is not None:
                raise RuntimeError(f"{self.placement.name}/{name} is not running")
            self.induced.add(name)
            if down_for is not None:
                self.down_for[name] = down_for
            os.kill(run.proc.pid, sig)
            return run.proc.pid

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=self.plan.grace + 10)

    def pids(self) -> list[int]:
        return [
            p
            for r in self.containers.values()
            if r.proc and r.proc.poll() is None
            for p in session_pids(r.proc.pid)
        ]

    # --- the loop (this thread, in the node's network namespace) ------------------------------

    def run(self) -> None:
        try:
            enter_netns(self.lab.ns(self.placement.node))
            self._loop()
        except Exception as exc:  # the worker's failure is the test's to see (pod status + error)
            self.error = f"{type(exc).__name__}: {exc}"
            self.write_status(self.placement, {"phase": "Failed", "message": self.error})
        finally:
            for run in self.containers.values():
                self._terminate(run, self.plan.grace)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            for run in self.containers.values():
                self._sync(run, time.monotonic())
            self._publish()
            self.stopping.wait(TICK)

    def _sync(self, run: _Running, now: float) -> None:
        if run.proc is None:
            if now >= run.next_start:
                self._start(run, now)
            return
        code = run.proc.poll()
        if code is not None:
            reason = run.stop_reason or ("induced" if run.spec.name in self.induced else "exit")
            self.induced.discard(run.spec.name)
            self._finished(run, code, reason, now)
            return
        for state in run.probes:
            if now < state.next_at or (state.probe.kind != "startup" and self._starting(run)):
                continue
            ok, why = attempt(state.probe, run.proc.pid)
            changed = state.record(ok, why, time.monotonic())
            if state.probe.kind == "readiness" and changed is not None:
                run.ready = changed
            elif state.probe.kind in ("startup", "liveness") and changed is False:
                run.stop_reason = state.probe.kind
                grace = state.probe.grace if state.probe.grace is not None else self.plan.grace
                where = f"{self.placement.name}/{run.spec.name}"
                log.info("%s %s probe failed (%s): killing", where, state.probe.kind, why)
                self._terminate(run, grace)
                return

    @staticmethod
    def _starting(run: _Running) -> bool:
        return any(s.probe.kind == "startup" and s.result is not True for s in run.probes)

    def _start(self, run: _Running, now: float) -> None:
        try:
            self.plan = plan_pod(self.placement.manifest, self.context(self.box))
        except PodSpecError as exc:
            run.waiting, run.next_start = f"CreateContainerConfigError: {exc}", now + BACKOFF_START
            return
        spec = next(c for c in self.plan.containers if c.name == run.spec.name)
        run.spec = spec
        cdir = self.box.directory / "containers" / spec.name
        cdir.mkdir(parents=True, exist_ok=True)
        used = {m.volume for m in spec.mounts}
        doc = {
            "argv": spec.argv, "env": spec.env, "workdir": spec.workdir, "uid": spec.uid, "gid": spec.gid,
            "groups": spec.groups, "caps": spec.caps, "no_new_privs": spec.no_new_privs,
            "read_only_root": spec.read_only_root, "scratch": str(cdir / "scratch"),
            "hostname": "" if self.plan.host_network else self.plan.hostname,
            "files": {n: [f.to_json() for f in v.files] for n, v in self.plan.volumes.items()
                      if n in used and v.kind == "files"},
            "mounts": [
                {"target": m.target, "volume": m.volume, "sub_path": m.sub_path, "read_only": m.read_only,
                 "source": self._source(self.plan.volumes[m.volume])}
                for m in spec.mounts
            ],
            "log": [f"image path remapped: {r}" for r in spec.remaps],
            "image_files": image_files(),
        }  # fmt: skip
        path = cdir / "spec.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        unshare = ["unshare", "-m", *([] if self.plan.host_network else ["-u"]), "--"]
        argv = [*unshare, sys.executable, "-m", "lab.cluster.podinit", str(path)]
        with self.lock:
            run.proc = self.lab.spawn(self.box.host, argv, name=f"{self.placement.name}.{spec.name}")
        run.started, run.started_at, run.ready, run.stop_reason, run.waiting = now, _now(), False, None, ""
        run.probes = [ProbeState.start(p, now) for p in spec.probes]
        if not any(p.kind == "readiness" for p in spec.probes):
            run.ready = True

    def _source(self, volume: Volume) -> str:
        """Host directory behind a volume ("" for a files volume, which podinit writes itself)."""
        if volume.kind == "hostPath":
            return volume.host_path
        return "" if volume.kind == "files" else str(self.box.volume_dir(volume.name))

    def _finished(self, run: _Running, code: int, reason: str, now: float) -> None:
        assert run.proc is not None
        for pid in session_pids(run.proc.pid):  # what the main process left behind dies with it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        exit_code = code if code >= 0 else 128 - code
        run.last_state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": run.started_at,
                "finishedAt": _now(),
            }
        }
        ran = now - run.started
        down_for = self.down_for.pop(run.spec.name, None)
        if down_for is not None:  # a test's kill that says how long the pod stays down
            run.next_start = now + down_for
        else:
            run.backoff = 0.0 if ran >= BACKOFF_RESET else run.backoff
            run.next_start = now + run.backoff
            run.backoff = min(BACKOFF_MAX, run.backoff * 2 if run.backoff else BACKOFF_START)
        run.proc, run.ready, run.restarts = None, False, run.restarts + 1
        run.waiting = "CrashLoopBackOff" if run.next_start > now else ""
        restart = Restart(self.placement.name, run.spec.name, time.time(), reason, exit_code)
        log.info("%s", restart)
        self.on_restart(restart)

    def _terminate(self, run: _Running, grace: float) -> None:
        proc = run.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:  # the grace period is over
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def _publish(self) -> None:
        statuses = []
        for run in self.containers.values():
            state: dict[str, Any]
            if run.proc is not None:
                state = {"running": {"startedAt": run.started_at}}
            else:
                state = {
                    "waiting": {
                        "reason": run.waiting.split(":")[0] or "ContainerCreating",
                        "message": run.waiting,
                    }
                }
            statuses.append(
                {"name": run.spec.name, "ready": run.ready, "restartCount": run.restarts,
                 "started": run.proc is not None, "state": state, "lastState": run.last_state,
                 "image": self._images.get(run.spec.name, ""), "imageID": "", "containerID": ""}
            )  # fmt: skip
        ready = all(s["ready"] for s in statuses)
        status = {
            "phase": "Running" if any(s["started"] for s in statuses) else "Pending",
            "hostIP": self.lab.addr(self.plan.node),
            "podIP": self.box.ip,
            "podIPs": [{"ip": self.box.ip}],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": str(ready)},
                {"type": "Ready", "status": str(ready)},
            ],
            "containerStatuses": statuses,
        }
        text = json.dumps(status, sort_keys=True)
        if text != self._last_status:
            self._last_status = text
            self.write_status(self.placement, status)


class Kubelet:
    """Every lab node's kubelet: creates the Pods in the API, their sandboxes and workers."""

    def __init__(self, lab: Lab, api: Api, api_host: str, api_port: int, sandboxes: SandboxFactory) -> None:
        self.lab, self.api, self.api_host, self.api_port = lab, api, api_host, api_port
        self.sandboxes = sandboxes
        self.workers: dict[str, PodWorker] = {}
        self.boxes: list[Sandbox] = []
        self.restarts: list[Restart] = []
        self._tokens: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def _token(self, namespace: str, account: str) -> str:
        key = (namespace, account)
        if key not in self._tokens:
            self._tokens[key] = self.api.token(namespace, account)
        return self._tokens[key]

    def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, bytes] | None:
        obj = self.api.get("v1", kind, name, namespace)
        if obj is None:
            return None
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()} if kind == "Secret" else {
            k: str(v).encode() for k, v in (obj.get("data") or {}).items()
        }  # fmt: skip
        data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    def _context(self, placement: PodPlacement, uid: str) -> Callable[[Sandbox], PodContext]:
        node = placement.node
        host_ips = (self.lab.addr(node, 4), self.lab.addr(node, 6))
        return lambda box: PodContext(
            node, host_ips[0], host_ips, box.ip, uid, self.api_host, self.api_port,
            self._token, self._lookup, image_config,
        )  # fmt: skip

    def _write_status(self, placement: PodPlacement, status: dict[str, Any]) -> None:
        with contextlib.suppress(
            ApiError, OSError
        ):  # the next change writes again; a test reads restarts here
            self.api.patch("v1", "Pod", placement.name, {"status": status}, placement.namespace, sub="status")

    def _on_restart(self, restart: Restart) -> None:
        with self._lock:
            self.restarts.append(restart)

    def run(self, placements: list[PodPlacement]) -> None:
        """Create each Pod object and start it on its node."""
        for placement in placements:
            created = self.api.create(placement.manifest)
            uid = str((created.get("metadata") or {}).get("uid", ""))
            spec = placement.manifest.get("spec") or {}
            box = self.sandboxes.create(placement.name, placement.node, bool(spec.get("hostNetwork")))
            self.boxes.append(box)
            worker = PodWorker(
                self.lab, placement, box, self._context(placement, uid), self._write_status, self._on_restart
            )
            self.sandboxes.add_volumes(box, worker.plan.volumes)
            self.workers[placement.name] = worker
            worker.start()

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stopping.set()
        for worker in self.workers.values():
            worker.join(timeout=worker.plan.grace + 10)
        release_all(self.boxes)
