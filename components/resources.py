"""Components for IronLB's own objects: IpPool, BgpPeer, L2Advertisement, BgpAdvertisement, Community.

Each one validates its args through the shared schema *before* registering (so a bad
address fails ``pulumi preview`` with the schema's message), then emits one
``ironlb.io/v1alpha1`` custom resource as its child.  Pass the agent's CRDs in
``opts.depends_on`` so the objects are created after their definitions.

Every arg may be a Pulumi Output (a pool's addresses from a StackReference, say): such
args are validated when they resolve, with the same messages, and an invalid value fails
the custom resource's registration (:func:`ironlb.components.base.when_known`).

BgpPeer is the only one holding a secret: the password (a Pulumi secret) goes into a
Kubernetes Secret marked ``additional_secret_outputs``; the BGPPeer object only
references it (``passwordSecretRef``), so the password never appears in plain text in
state, outputs or rendered YAML.

No ``from __future__ import annotations`` here: the Analyzer reads the annotations.
"""

from typing import Any, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from ironlb import model
from ironlb.components.args import (
    BgpAdvertisementArgs,
    BgpPeerArgs,
    IpPoolArgs,
    L2AdvertisementArgs,
    to_spec,
)
from ironlb.components.base import (
    DEFAULT_NAMESPACE,
    MANAGED_BY,
    child_opts,
    child_resource,
    lift,
    token,
    validate,
    when_known,
)

#: Key of the password inside the Secret a BgpPeer creates.
PASSWORD_KEY = "password"


def bgp_password_secret_name(peer: str) -> str:
    """The default name of the Secret holding ``peer``'s password."""
    return f"ironlb-bgp-{peer}"


def _split(args: Any, *local: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(component-only keys, schema keys)."""
    mine = {k: args[k] for k in local if k in args}
    rest = {k: v for k, v in dict(args).items() if k not in local}
    return mine, rest


def _checked(model_cls: type[model.Resource], spec_cls: Any, name: str, spec: Any, labels: Any = None) -> Any:
    """The validated model now (plain args) or as an Output (args holding Outputs)."""
    return when_known(
        {"spec": spec, "labels": labels},
        lambda v: validate(model_cls, name, to_spec(spec_cls, v["spec"]), v["labels"]),
    )


class IpPool(pulumi.ComponentResource):
    """An IPPool: addresses IronLB may hand to LoadBalancer Services."""

    pool_name: pulumi.Output[str]
    """The IPPool's metadata.name."""
    addresses: pulumi.Output[list[str]]
    """The pool's address blocks."""

    def __init__(self, name: str, args: IpPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        local, spec = _split(args, "namespace", "labels")
        res = _checked(model.IPPool, model.IPPoolSpec, name, spec, local.get("labels"))
        super().__init__(token("IpPool"), name, {}, opts)
        self.resource = res
        self.cr = child_resource(
            self, name, model.IPPool, res, local.get("namespace", DEFAULT_NAMESPACE), opts
        )
        self.pool_name = pulumi.Output.from_input(name)
        self.addresses = lift(res, lambda r: list(r.spec.addresses))
        self.register_outputs({"pool_name": self.pool_name, "addresses": self.addresses})


class BgpPeer(pulumi.ComponentResource):
    """A BGPPeer: a BGP session to a router. The password becomes a Kubernetes Secret."""

    peer_name: pulumi.Output[str]
    """The BGPPeer's metadata.name."""
    password_secret_name: pulumi.Output[str]
    """Name of the Secret holding the password ('' when there is none)."""

    def __init__(self, name: str, args: BgpPeerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        local, spec = _split(args, "namespace", "password", "password_secret_name")
        namespace = local.get("namespace", DEFAULT_NAMESPACE)
        password = local.get("password")
        secret_name = local.get("password_secret_name") or bgp_password_secret_name(name)
        if password is not None:
            spec["password_secret_ref"] = {"name": secret_name, "key": PASSWORD_KEY}
        res = _checked(model.BGPPeer, model.BGPPeerSpec, name, spec)
        super().__init__(token("BgpPeer"), name, {}, opts)
        self.resource = res
        self.secret: k8s.core.v1.Secret | None = None
        if password is not None:
            self.secret = k8s.core.v1.Secret(
                f"{name}-password",
                metadata={"name": secret_name, "namespace": namespace, "labels": dict(MANAGED_BY)},
                type="Opaque",
                string_data={PASSWORD_KEY: pulumi.Output.secret(password)},
                opts=child_opts(self, opts, additional_secret_outputs=["data", "stringData"]),
            )
        depends = [self.secret] if self.secret is not None else []
        self.cr = child_resource(self, name, model.BGPPeer, res, namespace, opts, depends_on=depends)
        self.peer_name = pulumi.Output.from_input(name)
        self.password_secret_name = pulumi.Output.from_input(secret_name if password is not None else "")
        self.register_outputs(
            {"peer_name": self.peer_name, "password_secret_name": self.password_secret_name}
        )


class _Advertisement(pulumi.ComponentResource):
    """What both advertisement components do: validate, register, emit their custom resource.

    The two subclasses stay (alike) on purpose: the provider's Analyzer reads each
    component's own ``__init__`` args type and output docstrings to build the schema."""

    advertisement_name: pulumi.Output[str]

    def __init__(
        self,
        cls: type[model.Resource],
        spec_cls: Any,
        name: str,
        args: Any,
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        local, spec = _split(args, "namespace")
        res = _checked(cls, spec_cls, name, spec)
        super().__init__(token(type(self).__name__), name, {}, opts)
        self.resource = res
        self.cr = child_resource(self, name, cls, res, local.get("namespace", DEFAULT_NAMESPACE), opts)
        self.advertisement_name = pulumi.Output.from_input(name)
        self.register_outputs({"advertisement_name": self.advertisement_name})


class L2Advertisement(_Advertisement):
    """Announce the selected pools' addresses by answering ARP / NDP."""

    advertisement_name: pulumi.Output[str]
    """The L2Advertisement's metadata.name."""

    def __init__(
        self, name: str, args: L2AdvertisementArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(model.L2Advertisement, model.L2AdvertisementSpec, name, args, opts)


class BgpAdvertisement(_Advertisement):
    """Announce the selected pools' addresses to BGP peers."""

    advertisement_name: pulumi.Output[str]
    """The BGPAdvertisement's metadata.name."""

    def __init__(
        self, name: str, args: BgpAdvertisementArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(model.BGPAdvertisement, model.BGPAdvertisementSpec, name, args, opts)


class CommunityArgs(TypedDict, total=False):
    """Named BGP community aliases."""

    communities: pulumi.Input[dict[str, pulumi.Input[str]]]
    """alias name -> 'a:b' or 'large:a:b:c'."""
    namespace: pulumi.Input[str]
    """Namespace of the IronLB installation."""


class Community(pulumi.ComponentResource):
    """Named BGP community aliases, usable in BgpAdvertisement communities."""

    community_name: pulumi.Output[str]
    """The Community's metadata.name."""

    def __init__(self, name: str, args: CommunityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        local, spec = _split(args, "namespace")
        res = when_known(spec, lambda v: validate(model.Community, name, dict(v)))
        super().__init__(token("Community"), name, {}, opts)
        self.resource = res
        self.cr = child_resource(
            self, name, model.Community, res, local.get("namespace", DEFAULT_NAMESPACE), opts
        )
        self.community_name = pulumi.Output.from_input(name)
        self.register_outputs({"community_name": self.community_name})
