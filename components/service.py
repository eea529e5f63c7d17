"""LoadBalancerService: a Service of type LoadBalancer that IronLB serves.

The Service gets ``spec.loadBalancerClass: ironlb.io/ironlb`` (so no other load-balancer
implementation touches it) and IronLB's annotations for the pool, pinned addresses and
sharing key.  Before registering, the manifest is read back through the shared schema
(``ironlb.service.request_from_manifest``); when the caller passes ``known`` (the
program's checked :class:`~ironlb.config.Config`), the request is also checked against
the known pools and tenants with the allocator's own rule (``ironlb.ipam``), so "a
tenant's service names another tenant's pool" fails ``pulumi preview`` with the same
sentence the agent would put in an Event.

Every arg may be a Pulumi Output: the manifest is then built and checked when the args
resolve (:func:`ironlb.components.base.when_known`), with the same messages, and a failed check
fails the Service's registration.

Output ``ip``: the first ingress address from the live Service status ('' until IronLB
has assigned one).

No ``from __future__ import annotations`` here: the Analyzer reads the annotations.
"""

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from ironlb.components.args import LoadBalancerServiceArgs
from ironlb.components.base import MANAGED_BY, InvalidConfigError, child_opts, lift, token, when_known
from ironlb.config import Config
from ironlb.errors import Issue
from ironlb.model import ANN_IPS, ANN_POOL, ANN_SHARING, LOAD_BALANCER_CLASS
from ironlb.service import ServiceRequest, request_from_manifest


def service_manifest(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The Service manifest (camelCase) the component creates, from resolved (plain) args."""
    annotations = dict(args.get("annotations", {}))
    if args.get("pool"):
        annotations[ANN_POOL] = args["pool"]
    if args.get("ips"):
        annotations[ANN_IPS] = ",".join(args["ips"])
    if args.get("sharing_key"):
        annotations[ANN_SHARING] = args["sharing_key"]
    ports = []
    for p in args.get("ports", []):
        port: dict[str, Any] = {"port": p.get("port"), "protocol": p.get("protocol", "TCP")}
        port["name"] = p.get("name") or f"{str(port['protocol']).lower()}-{port['port']}"
        port["targetPort"] = p.get("target_port", p.get("port"))
        ports.append(port)
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "loadBalancerClass": LOAD_BALANCER_CLASS,
        "ports": ports,
        "externalTrafficPolicy": args.get("external_traffic_policy", "Cluster"),
        "allocateLoadBalancerNodePorts": False,
    }
    if args.get("selector"):
        spec["selector"] = dict(args["selector"])
    if args.get("ip_family_policy"):
        spec["ipFamilyPolicy"] = args["ip_family_policy"]
    if args.get("ip_families"):
        spec["ipFamilies"] = list(args["ip_families"])
    meta: dict[str, Any] = {
        "name": args.get("service_name") or name,
        "namespace": args.get("namespace", "default"),
        "labels": {**MANAGED_BY, **args.get("labels", {})},
    }
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def check_request(manifest: dict[str, Any], known: Config | None) -> ServiceRequest:
    """Read the manifest through the schema; with ``known``, check pool and tenant rules."""
    request, issues = request_from_manifest(manifest)
    if not manifest["spec"]["ports"]:
        issues.append(
            Issue(
                "Service",
                f"{manifest['metadata']['namespace']}/{manifest['metadata']['name']}",
                "spec.ports",
                None,
                "needs at least one port",
            )
        )
    if issues or request is None:
        raise InvalidConfigError(issues)
    if known is not None:
        from ironlb.ipam import Allocator

        allocator = Allocator(known)
        pools = [request.pool] if request.pool else []
        for ip in request.requested_ips:
            owner = allocator.pool_of(ip)
            if owner is None:
                issues.append(
                    Issue(
                        "Service",
                        request.key,
                        f"metadata.annotations[{ANN_IPS}]",
                        ip,
                        "is in no IPPool; pin only addresses from a pool the service may use",
                    )
                )
            elif owner not in pools:
                pools.append(owner)
        for pool in pools:
            reason = allocator.may_use(request, pool)
            if reason is not None:
                issues.append(
                    Issue("Service", request.key, f"metadata.annotations[{ANN_POOL}]", pool, reason)
                )
        if issues:
            raise InvalidConfigError(issues)
    return request


def _first_ip(status: Any) -> str:
    ingress = ((status or {}).get("load_balancer") or {}).get("ingress") or []
    return str(ingress[0].get("ip") or "") if ingress else ""


class LoadBalancerService(pulumi.ComponentResource):
    """A Service of type LoadBalancer with IronLB's loadBalancerClass and annotations."""

    ip: pulumi.Output[str]
    """The first address IronLB assigned (from the live Service status; '' until assigned)."""
    service_name: pulumi.Output[str]
    """The Service's metadata.name."""

    def __init__(
        self,
        name: str,
        args: LoadBalancerServiceArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        known: Config | None = None,
    ) -> None:
        def build(plain: Any) -> tuple[dict[str, Any], ServiceRequest]:
            manifest = service_manifest(name, plain)
            return manifest, check_request(manifest, known)

        checked = when_known(dict(args), build)
        super().__init__(token("LoadBalancerService"), name, {}, opts)
        #: The checked request (None when the args held Outputs: it is known only at apply).
        self.request: ServiceRequest | None = None if isinstance(checked, pulumi.Output) else checked[1]
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=_part(checked, lambda c: c[0]["metadata"]),
            spec=_part(checked, lambda c: c[0]["spec"]),
            opts=child_opts(self, opts),
        )
        self.ip = self.service.status.apply(lambda s: _first_ip(_plain(s)))
        self.service_name = lift(checked, lambda c: str(c[0]["metadata"]["name"]))
        self.register_outputs({"ip": self.ip, "service_name": self.service_name})


def _part(checked: Any, read: Any) -> Any:
    """A part of the checked manifest: plain when it was checked at once, else an Output."""
    return checked.apply(read) if isinstance(checked, pulumi.Output) else read(checked)


def _plain(value: Any) -> Any:
    """Typed output classes (ServiceStatus) -> plain dicts with snake_case keys."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    items = {
        k: getattr(value, k) for k in dir(value) if not k.startswith("_") and not callable(getattr(value, k))
    }
    return {k: _plain(v) for k, v in items.items()}
