"""What a cluster has recorded: the addresses its LoadBalancer Services hold now.

``ironlb plan`` reads these so that addresses already live are shown as live and kept in
the prediction (the controller never moves a held address).  Two sources, one shape
(service key ``ns/name`` -> addresses, in recorded order):

- a file written by ``ironlb status --export FILE`` (:func:`export_document` /
  :func:`read_export`), for CI jobs that cannot reach the cluster;
- the cluster itself (:func:`from_cluster`), through a read-only kubeconfig: it only
  lists Services (``get``/``list`` on ``services`` is the whole grant it needs).

The addresses are read from ``status.loadBalancer.ingress``, which only the controller can
write; annotations are tenant-writable and are not read.  Only Services IronLB serves
count: ``spec.loadBalancerClass: ironlb.io/ironlb`` (or none, when ``claim_classless``
says so: pass ``classless=True``).  Everything read is re-checked against the stack's
config by the planner (``ironlb.ipam.TrustCheck``) before it is used.

This module owns the command line's synchronous, read-only use of lightkube
(:func:`list_with`, which ``ironlb import metallb`` uses too); it imports nothing from the
agent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ironlb.errors import IronLBError
from ironlb.model import GROUP_VERSION
from ironlb.service import is_ours

T = TypeVar("T")

EXPORT_KIND = "AssignmentExport"
#: service key -> addresses it holds, in recorded order
Live = dict[str, tuple[str, ...]]


def recorded(services: Iterable[Mapping[str, Any]], *, classless: bool = False) -> Live:
    """The addresses IronLB's Services hold, from their status (plain Service dicts)."""
    out: Live = {}
    for doc in services:
        spec = doc.get("spec") or {}
        if spec.get("type") != "LoadBalancer":
            continue
        if not is_ours(spec.get("loadBalancerClass"), claim_classless=classless):
            continue
        meta = doc.get("metadata") or {}
        ingress = ((doc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ips = tuple(str(i["ip"]) for i in ingress if isinstance(i, Mapping) and i.get("ip"))
        if ips:
            out[f"{meta.get('namespace', 'default')}/{meta.get('name')}"] = ips
    return dict(sorted(out.items()))


def export_document(services: Iterable[Mapping[str, Any]], *, classless: bool = False) -> dict[str, Any]:
    """What ``ironlb status --export`` writes."""
    live = recorded(services, classless=classless)
    return {
        "apiVersion": GROUP_VERSION,
        "kind": EXPORT_KIND,
        "services": {key: list(ips) for key, ips in live.items()},
    }


def read_export(path: Path) -> Live:
    """Read an export file; every problem names the file, the field and what is expected."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise IronLBError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise IronLBError(f"{path}: not JSON ({exc}); write it with `ironlb status --export FILE`") from None
    if not isinstance(doc, dict) or doc.get("kind") != EXPORT_KIND:
        raise IronLBError(f'{path}: kind must be "{EXPORT_KIND}" (written by `ironlb status --export FILE`)')
    services = doc.get("services")
    if not isinstance(services, dict):
        raise IronLBError(f"{path}: services must be a mapping of namespace/name to a list of addresses")
    out: Live = {}
    for key, ips in services.items():
        if not isinstance(key, str) or key.count("/") != 1:
            raise IronLBError(f'{path}: services key "{key}" must be namespace/name')
        if not isinstance(ips, list) or not all(isinstance(i, str) for i in ips):
            raise IronLBError(f'{path}: services["{key}"] must be a list of address strings')
        out[key] = tuple(ips)
    return out


def list_with(
    kubeconfig: str | None, context: str | None, lister: Callable[[Any], T], *, what: str, needs: str
) -> T:
    """``lister(client)`` with a lightkube client for the kubeconfig (default: ``$KUBECONFIG``
    or in-cluster); every failure becomes one IronLBError line.  An API refusal says it
    could not list ``what`` and what the user ``needs``."""
    import httpx2
    from lightkube import Client, KubeConfig
    from lightkube.core.exceptions import ApiError, ConfigError

    try:
        config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_env()
        return lister(Client(config=config.get(context_name=context), field_manager="ironlb"))
    except ConfigError as exc:
        raise IronLBError(f"kubeconfig: {exc}") from None
    except ApiError as exc:
        raise IronLBError(f"cannot list {what}: {exc.status.message} ({needs})") from None
    except (OSError, httpx2.HTTPError) as exc:
        raise IronLBError(f"cannot reach the cluster: {exc}") from None


def from_cluster(kubeconfig: str | None, context: str | None, *, classless: bool = False) -> Live:
    """List Services with a (read-only) kubeconfig and return what they hold."""
    from lightkube.resources.core_v1 import Service

    items = list_with(
        kubeconfig,
        context,
        lambda client: [item.to_dict() for item in client.list(Service, namespace="*")],
        what="Services",
        needs="the plan needs get/list on services",
    )
    return recorded(items, classless=classless)
