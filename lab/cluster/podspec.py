"""A Pod manifest -> exactly what to run for each container (pure; the kubelet's decisions).

:func:`plan_pod` resolves everything the kubelet resolves before starting a container, and
refuses what it would refuse (as ``CreateContainerConfigError``: :class:`PodSpecError`):

- **argv**: ``command`` replaces the image's ENTRYPOINT, ``args`` its CMD (``command``
  without ``args`` drops CMD), ``$(VAR)`` expanded from the container's env (``$$`` escapes).
- **env**, in the kubelet's order: the image's ENV; the service variables of the API server
  (``KUBERNETES_SERVICE_HOST``/``_PORT``/``_PORT_HTTPS`` and the ``KUBERNETES_PORT*``
  family: only the ``kubernetes`` Service's, ``enableServiceLinks`` for other Services is not
  reproduced); ``envFrom``; then ``env`` with ``value`` (expanded), ``fieldRef``
  (metadata.name/namespace/uid/labels['k']/annotations['k'], spec.nodeName,
  spec.serviceAccountName, status.hostIP/hostIPs/podIP/podIPs), ``resourceFieldRef``
  (limits/requests of cpu and memory, with divisor), ``secretKeyRef``, ``configMapKeyRef``
  (``optional`` honoured).  ``HOSTNAME`` is the pod name (the node's name with hostNetwork).
- **volumes** (files are materialised by :mod:`lab.cluster.podinit` at the exact
  ``mountPath``): configMap, secret (``items``, ``defaultMode``/item ``mode``, ``optional``),
  downwardAPI, projected (secret, configMap, downwardAPI, serviceAccountToken sources),
  emptyDir (``medium: Memory`` -> tmpfs of ``sizeLimit``), hostPath (bind), and the
  automounted service-account volume (token, ``ca.crt``, ``namespace``) at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` unless ``automountServiceAccountToken``
  is false.  configMap, secret, downwardAPI and projected mounts are read-only, as in
  Kubernetes.  Files are owned by root, group ``fsGroup`` when set; a projected token is owned
  by the container's ``runAsUser`` when that is not root (as the kubelet does).
- **identity**: ``runAsUser``/``runAsGroup`` (container over pod over the image's ``USER``),
  ``runAsNonRoot`` checked (a root uid is refused), supplemental groups and ``fsGroup``.
- **capabilities**: the runtime's default set, minus ``drop``, plus ``add`` (``ALL`` both
  ways; ``privileged`` is everything).  As in Kubernetes (no ambient capabilities), only a
  root process has them *effective*; a non-root one keeps them in its bounding set only.
  ``allowPrivilegeEscalation: false`` (or a non-root uid with it unset? no: Kubernetes
  defaults it to true) sets no_new_privs.  ``readOnlyRootFilesystem`` is passed on.
- **probes**: httpGet (named or numbered port, host defaulting to the pod IP, scheme,
  headers), tcpSocket and exec, with the Kubernetes defaults (period 10, timeout 1,
  success 1, failure 3, delay 0); gRPC probes are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lab.cluster.image import ImageConfig
from lab.cluster.resolve import (
    SA_DIR,
    PodContext,
    PodSpecError,
    Resolver,
    Volume,
    err,
    expand,
    sa_volume,
    volume,
)

__all__ = ["SA_DIR", "Container", "Mount", "PodContext", "PodPlan", "PodSpecError", "Probe", "plan_pod"]

#: containerd's default capability set (what a container has before add/drop)
DEFAULT_CAPS = frozenset(
    {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP"}
    | {"SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}
)


@dataclass
class Mount:
    target: str
    volume: str
    sub_path: str = ""
    read_only: bool = False


@dataclass(frozen=True)
class Probe:
    kind: Literal["liveness", "readiness", "startup"]
    handler: Literal["http", "tcp", "exec"]
    host: str = ""
    port: int = 0
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    grace: float | None = None  # probe-level terminationGracePeriodSeconds


@dataclass
class Container:
    name: str
    argv: list[str]
    env: dict[str, str]
    workdir: str
    uid: int
    gid: int
    groups: list[int]
    caps: list[str]  # effective only when uid == 0 (see the module docstring)
    no_new_privs: bool
    read_only_root: bool
    mounts: list[Mount]
    probes: list[Probe]
    ports: dict[str, int]
    remaps: list[str]


@dataclass
class PodPlan:
    name: str
    namespace: str
    node: str
    host_network: bool
    hostname: str
    grace: float
    service_account: str
    volumes: dict[str, Volume]
    containers: list[Container]


def _env(r: Resolver, c: Mapping[str, Any], base: Mapping[str, str], where: str) -> dict[str, str]:
    env = dict(base)
    for i, src in enumerate(c.get("envFrom") or []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in src:
                data = r.ctx.lookup(kind, r.namespace, str(src[key].get("name")))
                if data is None and not src[key].get("optional"):
                    raise err(r.name, f"{where}.envFrom[{i}]", f'{kind} "{src[key].get("name")}" not found')
                env.update({f"{src.get('prefix', '')}{k}": v.decode() for k, v in (data or {}).items()})
    for i, var in enumerate(c.get("env") or []):
        at, name = f"{where}.env[{i}]", str(var.get("name"))
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        src = var["valueFrom"]
        value: str | None
        if "fieldRef" in src:
            value = r.field(str(src["fieldRef"].get("fieldPath")), at)
        elif "resourceFieldRef" in src:
            value = r.resource(src["resourceFieldRef"], c, at)
        elif "secretKeyRef" in src:
            value = r.key_ref("Secret", src["secretKeyRef"], at)
        elif "configMapKeyRef" in src:
            value = r.key_ref("ConfigMap", src["configMapKeyRef"], at)
        else:
            raise err(r.name, at, f"valueFrom {sorted(src)} is not supported")
        if value is not None:
            env[name] = value
    return env


def _uid(value: Any, image: ImageConfig, pod: str, where: str) -> tuple[int, int | None]:
    if value is not None:
        return int(value), None
    user, _, group = image.user.partition(":")
    if not user.isdigit() or (group and not group.isdigit()):
        raise err(pod, where, f'image "{image.image}" has non-numeric USER "{image.user}": set runAsUser')
    return int(user), int(group) if group else None


def _caps(sc: Mapping[str, Any]) -> list[str]:
    if sc.get("privileged"):
        return ["ALL"]
    caps = sc.get("capabilities") or {}
    drop = {str(c).upper().removeprefix("CAP_") for c in caps.get("drop") or []}
    add = {str(c).upper().removeprefix("CAP_") for c in caps.get("add") or []}
    have = set() if "ALL" in drop else set(DEFAULT_CAPS - drop)
    return ["ALL"] if "ALL" in add else sorted(have | add)


def _probe(
    kind: Any, p: Mapping[str, Any], ports: Mapping[str, int], host: str, pod: str, where: str
) -> Probe:
    def port_of(value: Any) -> int:
        if isinstance(value, int) or str(value).isdigit():
            return int(value)
        if str(value) not in ports:
            raise err(
                pod,
                where,
                f'port "{value}" names no containerPort; named ports: {", ".join(ports) or "none"}',
            )
        return ports[str(value)]

    timing: dict[str, Any] = {
        "initial_delay": float(p.get("initialDelaySeconds", 0)),
        "period": float(p.get("periodSeconds", 10)),
        "timeout": float(p.get("timeoutSeconds", 1)),
        "success_threshold": int(p.get("successThreshold", 1)),
        "failure_threshold": int(p.get("failureThreshold", 3)),
        "grace": float(p["terminationGracePeriodSeconds"]) if "terminationGracePeriodSeconds" in p else None,
    }
    if "httpGet" in p:
        h = p["httpGet"]
        headers = tuple((str(x["name"]), str(x["value"])) for x in h.get("httpHeaders") or [])
        return Probe(
            kind,
            "http",
            str(h.get("host") or host),
            port_of(h.get("port")),
            str(h.get("path", "/")),
            str(h.get("scheme", "HTTP")),
            headers,
            **timing,
        )
    if "tcpSocket" in p:
        t = p["tcpSocket"]
        return Probe(kind, "tcp", str(t.get("host") or host), port_of(t.get("port")), **timing)
    if "exec" in p:
        return Probe(kind, "exec", command=tuple(str(x) for x in p["exec"].get("command") or []), **timing)
    raise err(
        pod, where, f"probe handler {sorted(set(p) & {'grpc'}) or sorted(p)} is not supported by the lab"
    )


def plan_pod(pod: Mapping[str, Any], ctx: PodContext) -> PodPlan:
    """Everything needed to run ``pod`` on ``ctx.node`` (raises PodSpecError)."""
    r = Resolver(pod, ctx)
    spec = r.spec
    psc = spec.get("securityContext") or {}
    host_network = bool(spec.get("hostNetwork"))
    volumes_raw = list(spec.get("volumes") or [])
    sa = str(spec.get("serviceAccountName") or "default")
    automount = spec.get("automountServiceAccountToken", True) is not False
    if automount:
        volumes_raw.append(sa_volume(r))
    api = ctx.api_host if ":" not in ctx.api_host else f"[{ctx.api_host}]"
    service_env = {
        "KUBERNETES_SERVICE_HOST": ctx.api_host,
        "KUBERNETES_SERVICE_PORT": str(ctx.api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(ctx.api_port),
        "KUBERNETES_PORT": f"tcp://{api}:{ctx.api_port}",
        f"KUBERNETES_PORT_{ctx.api_port}_TCP": f"tcp://{api}:{ctx.api_port}",
        f"KUBERNETES_PORT_{ctx.api_port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{ctx.api_port}_TCP_PORT": str(ctx.api_port),
        f"KUBERNETES_PORT_{ctx.api_port}_TCP_ADDR": ctx.api_host,
    }
    hostname = ctx.node if host_network else r.name
    containers = []
    uids: set[int] = set()
    for i, c in enumerate(spec.get("containers") or []):
        where = f'containers[{i}] "{c.get("name")}"'
        image = ctx.image(str(c.get("image")))
        sc = {**psc, **(c.get("securityContext") or {})}
        uid, image_gid = _uid(sc.get("runAsUser"), image, r.name, where)
        if sc.get("runAsNonRoot") and uid == 0:
            raise err(r.name, where, "runAsNonRoot is true but the container would run as root (uid 0)")
        uids.add(uid)
        gid = int(sc.get("runAsGroup", image_gid if image_gid is not None else 0))
        groups = [int(g) for g in psc.get("supplementalGroups") or []]
        if psc.get("fsGroup") is not None:
            groups.append(int(psc["fsGroup"]))
        ports = {str(p["name"]): int(p["containerPort"]) for p in c.get("ports") or [] if p.get("name")}
        base = {**image.env, "HOSTNAME": hostname, "HOME": "/root" if uid == 0 else "/", **service_env}
        env = _env(r, c, base, where)
        command = [expand(str(x), env) for x in c.get("command") or image.entrypoint]
        args = c.get("args") if "args" in c else (None if c.get("command") else image.cmd)
        argv = command + [expand(str(x), env) for x in args or []]
        if not argv:
            raise err(r.name, where, "no command: neither the container nor its image gives one")
        mounts = [
            Mount(str(m["mountPath"]), str(m["name"]), str(m.get("subPath", "")), bool(m.get("readOnly")))
            for m in c.get("volumeMounts") or []
        ]
        if automount and not any(m.target == SA_DIR for m in mounts):
            mounts.append(Mount(SA_DIR, "kube-api-access-lab", read_only=True))
        probes = [
            _probe(kind, c[f"{kind}Probe"], ports, ctx.pod_ip, r.name, f"{where}.{kind}Probe")
            for kind in ("startup", "liveness", "readiness")
            if c.get(f"{kind}Probe")
        ]
        remaps = [f"{a} -> {b}" for a, b in image.remaps]
        containers.append(
            Container(
                str(c.get("name")), argv, env, str(c.get("workingDir") or image.workdir), uid, gid,
                groups, _caps(sc), sc.get("allowPrivilegeEscalation") is False,
                bool(sc.get("readOnlyRootFilesystem")), mounts, probes, ports, remaps,
            )
        )  # fmt: skip
    token_uid = uids.pop() if len(uids) == 1 else 0
    fs_group = int(psc["fsGroup"]) if psc.get("fsGroup") is not None else None
    volumes = {str(v["name"]): volume(r, v, token_uid, fs_group) for v in volumes_raw}
    for c_plan in containers:
        for m in c_plan.mounts:
            if m.volume not in volumes:
                raise err(
                    r.name, f'container "{c_plan.name}" volumeMounts', f'volume "{m.volume}" is not defined'
                )
            if volumes[m.volume].kind == "files":
                m.read_only = True  # configMap, secret, downwardAPI, projected: always read-only
    return PodPlan(
        r.name, r.namespace, ctx.node, host_network, hostname,
        float(spec.get("terminationGracePeriodSeconds", 30)), sa, volumes, containers,
    )  # fmt: skip
