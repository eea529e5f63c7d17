"""What a pod refers to, resolved as the kubelet resolves it (pure): the downward API,
ConfigMap and Secret keys, quantities, ``$(VAR)`` expansion, and the files of every volume.

:mod:`lab.cluster.podspec` builds a container's plan on these; :mod:`lab.cluster.podinit`
writes the files.  Errors are :class:`PodSpecError` (the kubelet's
``CreateContainerConfigError``), naming the pod, the field and the value.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from lab.cluster.image import ImageConfig

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Lookup of a ConfigMap's or Secret's data (values as bytes): (kind, namespace, name) -> data | None
Lookup = Callable[[str, str, str], Mapping[str, bytes] | None]


class PodSpecError(ValueError):
    """The kubelet would refuse to start this container; the message names pod, field and value."""


@dataclass(frozen=True)
class PodContext:
    """What the node knows when it starts a pod."""

    node: str
    host_ip: str
    host_ips: tuple[str, ...]
    pod_ip: str
    uid: str
    api_host: str
    api_port: int
    token: Callable[[str, str], str]  # (namespace, service account) -> bearer token
    lookup: Lookup
    image: Callable[[str], ImageConfig]


@dataclass
class FileEntry:
    path: str  # relative to the volume root
    data: bytes
    mode: int
    uid: int = 0
    gid: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "data": base64.b64encode(self.data).decode()}


@dataclass
class Volume:
    name: str
    kind: Literal["files", "emptyDir", "memory", "hostPath"]
    files: list[FileEntry] = field(default_factory=list)
    size_limit: int | None = None
    host_path: str = ""  # hostPath; for emptyDir the kubelet fills in its directory


def err(pod: str, where: str, message: str) -> PodSpecError:
    return PodSpecError(f'Pod "{pod}": {where}: {message}')


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_UNITS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}


def quantity(text: Any) -> float:
    """A Kubernetes quantity (``500m``, ``64Mi``, ``1``) as a number."""
    m = _QUANTITY.match(str(text).strip())
    if not m or m.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not a quantity")
    return float(m.group(1)) * _UNITS[m.group(2)]


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known variables replaced, unknown left, ``$$`` -> ``$``."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


class Resolver:
    def __init__(self, pod: Mapping[str, Any], ctx: PodContext) -> None:
        self.pod, self.ctx = pod, ctx
        self.meta = pod.get("metadata") or {}
        self.spec = pod.get("spec") or {}
        self.name = str(self.meta.get("name"))
        self.namespace = str(self.meta.get("namespace") or "default")

    def field(self, path: str, where: str) -> str:
        meta, ctx = self.meta, self.ctx
        simple = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": ctx.uid,
            "spec.nodeName": ctx.node,
            "spec.serviceAccountName": str(self.spec.get("serviceAccountName") or "default"),
            "status.hostIP": ctx.host_ip,
            "status.hostIPs": ",".join(ctx.host_ips),
            "status.podIP": ctx.pod_ip,
            "status.podIPs": ctx.pod_ip,
        }
        if path in simple:
            return simple[path]
        if m := re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path):
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        raise err(self.name, where, f'fieldPath "{path}" is not supported by the downward API')

    def resource(self, ref: Mapping[str, Any], container: Mapping[str, Any], where: str) -> str:
        res = str(ref.get("resource", ""))
        section, _, name = res.partition(".")
        value = ((container.get("resources") or {}).get(section) or {}).get(name)
        if value is None:  # unset limits default to the node's allocatable; the lab says so
            raise err(self.name, where, f'resourceFieldRef "{res}" is not set on the container')
        divisor = quantity(ref.get("divisor", "1"))
        return str(math.ceil(quantity(value) / divisor))

    def key_ref(self, kind: str, ref: Mapping[str, Any], where: str) -> str | None:
        data = self.ctx.lookup(kind, self.namespace, str(ref.get("name")))
        key = str(ref.get("key"))
        if data is None or key not in data:
            if ref.get("optional"):
                return None
            what = f'{kind} "{ref.get("name")}"' + (
                f' has no key "{key}"' if data is not None else " not found"
            )
            raise err(self.name, where, what)
        return data[key].decode()


def _items(r: Resolver, kind: str, src: Mapping[str, Any], mode: int, where: str) -> list[FileEntry]:
    name = str(src.get("name") or src.get("secretName"))
    data = r.ctx.lookup(kind, r.namespace, name)
    if data is None:
        if src.get("optional"):
            return []
        raise err(r.name, where, f'{kind} "{name}" not found (and not optional)')
    items = src.get("items")
    if not items:
        return [FileEntry(k, v, mode) for k, v in sorted(data.items())]
    out = []
    for item in items:
        if item["key"] not in data:
            if src.get("optional"):
                continue
            raise err(r.name, where, f'{kind} "{name}" has no key "{item["key"]}"')
        out.append(FileEntry(str(item["path"]), data[item["key"]], int(item.get("mode", mode))))
    return out


def _downward(
    r: Resolver, items: list[Mapping[str, Any]], mode: int, where: str, c: Mapping[str, Any]
) -> list[FileEntry]:
    out = []
    for item in items:
        if "fieldRef" in item:
            value = r.field(str(item["fieldRef"].get("fieldPath")), where)
        else:
            value = r.resource(item.get("resourceFieldRef") or {}, c, where)
        out.append(FileEntry(str(item["path"]), value.encode(), int(item.get("mode", mode))))
    return out


def volume(r: Resolver, v: Mapping[str, Any], token_uid: int, fs_group: int | None) -> Volume:
    name, where = str(v.get("name")), f'volumes "{v.get("name")}"'
    if "emptyDir" in v:
        ed = v["emptyDir"] or {}
        limit = int(quantity(ed["sizeLimit"])) if ed.get("sizeLimit") else None
        return Volume(name, "memory" if ed.get("medium") == "Memory" else "emptyDir", size_limit=limit)
    if "hostPath" in v:
        return Volume(name, "hostPath", host_path=str(v["hostPath"]["path"]))
    files: list[FileEntry] = []
    if "configMap" in v:
        files = _items(r, "ConfigMap", v["configMap"], int(v["configMap"].get("defaultMode", 0o644)), where)
    elif "secret" in v:
        files = _items(r, "Secret", v["secret"], int(v["secret"].get("defaultMode", 0o644)), where)
    elif "downwardAPI" in v:
        da = v["downwardAPI"]
        files = _downward(r, da.get("items") or [], int(da.get("defaultMode", 0o644)), where, {})
    elif "projected" in v:
        proj = v["projected"]
        mode = int(proj.get("defaultMode", 0o644))
        for i, src in enumerate(proj.get("sources") or []):
            at = f"{where}.projected.sources[{i}]"
            if "secret" in src:
                files += _items(r, "Secret", src["secret"], mode, at)
            elif "configMap" in src:
                files += _items(r, "ConfigMap", src["configMap"], mode, at)
            elif "downwardAPI" in src:
                files += _downward(r, src["downwardAPI"].get("items") or [], mode, at, {})
            elif "serviceAccountToken" in src:
                sa = str(r.spec.get("serviceAccountName") or "default")
                tok = src["serviceAccountToken"]
                entry = FileEntry(str(tok.get("path", "token")), r.ctx.token(r.namespace, sa).encode(), mode)
                if token_uid:  # the kubelet gives a non-root container its own token file
                    entry.uid, entry.mode = token_uid, 0o600
                files.append(entry)
            else:
                raise err(r.name, at, f"projected source {sorted(src)} is not supported")
    else:
        raise err(r.name, where, f"volume type {sorted(set(v) - {'name'})} is not supported by the lab")
    if fs_group is not None:
        for f in files:
            f.gid, f.mode = fs_group, f.mode | 0o040
    return Volume(name, "files", files)


def sa_volume(r: Resolver) -> dict[str, Any]:
    return {
        "name": "kube-api-access-lab",
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {
                    "downwardAPI": {
                        "items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
            ],
        },
    }
