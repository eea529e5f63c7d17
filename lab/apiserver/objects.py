"""What a read or write does to objects: the API server's registry semantics, over :mod:`.store`.

- **create**: the namespace comes from the URL (a body namespace that disagrees is 400; for
  cluster-scoped kinds it is cleared), ``generateName`` is honoured, the namespace must exist
  (404), a duplicate is 409 AlreadyExists, and the answer is 201.  ``uid``,
  ``creationTimestamp`` and ``generation`` are set by the server; status is reset on create
  for kinds with a status subresource (except Node; Namespace starts ``Active``, Pod
  ``Pending``); Secret ``stringData`` is folded into ``data``.
- **update (PUT) and patch**: a ``metadata.resourceVersion`` that differs from the stored one
  is 409 Conflict (for a PATCH, a resourceVersion in the patch is the same precondition);
  custom resources refuse an unconditional PUT (422), as the real server does.  A write to
  the main resource keeps the stored ``.status``; a write to ``/status`` changes only
  ``.status``; what the client tried to change that way is returned as *ignored*.  Writes
  that change nothing keep the resourceVersion and send no event.  ``generation`` moves on
  spec changes (see :class:`~.resources.ResourceType`).
- **delete**: with finalizers the object gets a ``deletionTimestamp`` and stays until an
  update removes the last finalizer (no new finalizer may be added meanwhile); DeleteOptions
  preconditions (uid, resourceVersion) are checked.  Deleting a CRD deletes its objects.

Every write is pruned (:mod:`.pruning`), defaulted and validated (:mod:`.validation`);
pruned and ignored paths are returned in :class:`Outcome` for the report.  Nothing here
awaits, so each operation is atomic on the event loop.
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lab.apiserver import crd, kschema, patches, pruning, resources, validation
from lab.apiserver.resources import Registry, ResourceType
from lab.apiserver.selectors import matcher
from lab.apiserver.status import (
    Cause,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
    stale,
    unsupported_media_type,
)
from lab.apiserver.store import Store

SERVER_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp", "deletionGracePeriodSeconds")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outcome:
    """The object to answer with, and what the write silently dropped."""

    obj: dict[str, Any]
    code: int = 200
    pruned: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


def _diff(sent: Any, kept: Any, path: list[str | int], out: list[str]) -> None:
    """Paths of what the client sent that differs from what is kept (fields it left out: none)."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        for key in sorted(sent):
            _diff(sent[key], kept.get(key), [*path, key], out)
    elif sent != kept:
        out.append(pruning.field_path(path))


def _name_problem(rt: ResourceType, name: str) -> str:
    if rt.group == "rbac.authorization.k8s.io":
        bad = name in (".", "..") or "/" in name or "%" in name
        return "may not contain '/' or '%', or be '.' or '..'" if bad else ""
    label = rt.plural in ("namespaces", "services")
    pattern, limit = (_LABEL, 63) if label else (_SUBDOMAIN, 253)
    if len(name) <= limit and pattern.match(name):
        return ""
    what = "RFC 1123 label" if label else "RFC 1123 subdomain"
    return (
        f"a lowercase {what} must consist of lower case alphanumeric characters, '-' or '.', "
        f"and must start and end with an alphanumeric character (at most {limit} characters)"
    )


class Objects:
    def __init__(self, store: Store, registry: Registry, on_types: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.registry = registry
        self._on_types = on_types  # called when CRDs change what is served
        for ns in _DEFAULT_NAMESPACES:
            self.create(
                resources.NAMESPACES, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            )

    # -- reads ---------------------------------------------------------------------------
    def _served(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"], out["kind"] = rt.api_version, rt.kind
        return out

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(rt.key, namespace, name)
        if obj is None:
            raise not_found(rt.plural, rt.group, name)
        return self._served(rt, obj)

    def list(self, rt: ResourceType, namespace: str, labels: str = "", fields: str = "") -> dict[str, Any]:
        match = matcher(labels, fields)
        items = [self._served(rt, o) for o in self.store.list(rt.key, namespace, match)]
        meta = {"resourceVersion": str(self.store.rv)}
        return {"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": meta, "items": items}

    # -- create --------------------------------------------------------------------------
    def create(self, rt: ResourceType, namespace: str, body: Any) -> Outcome:
        obj = self._checked_body(rt, body)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace") or ""
            if not meta["namespace"]:
                raise bad_request("a namespace is required to create a namespaced object")
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)[:5]}"
        name = str(meta.get("name") or "")
        if not name:
            raise invalid(
                rt.kind,
                rt.group,
                "",
                [
                    Cause(
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        if problem := _name_problem(rt, name):
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [Cause("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {problem}')],
            )
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        ns = meta.get("namespace", "")
        if rt.namespaced:
            space = self.store.get(resources.NAMESPACES.key, "", ns)
            if space is None:
                raise not_found("namespaces", "", ns)
            if (space.get("metadata") or {}).get("deletionTimestamp"):
                raise forbidden(
                    f"unable to create new content in namespace {ns} because it is being terminated",
                    rt.plural,
                    rt.group,
                    name,
                )
        if self.store.get(rt.key, ns, name) is not None:
            raise already_exists(rt.plural, rt.group, name)
        out = Outcome(obj, code=201)
        out.pruned = pruning.prune(rt, obj)
        for key in (*SERVER_META, "managedFields", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.generation:
            meta["generation"] = 1
        if rt.status:
            self._status_on_create(rt, obj, out)
        self._finish(rt, obj, None, out)
        self.store.put(rt.key, obj)
        if rt is resources.CRDS:
            self._crd_changed(name, obj)
        out.obj = self._served(rt, obj)
        return out

    def _status_on_create(self, rt: ResourceType, obj: dict[str, Any], out: Outcome) -> None:
        if rt.status_on_create == "keep":
            return
        if rt.status_on_create == "reset" and "status" in obj and obj["status"] not in ({}, None):
            out.ignored.append("status")
        obj.pop("status", None)
        if rt.status_on_create == "namespace":
            obj["status"] = {"phase": "Active"}
        elif rt.status_on_create == "pod":
            obj["status"] = {"phase": "Pending"}
        elif rt is resources.CRDS:
            obj["status"] = crd.status(obj, now())

    def _checked_body(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the request body is not a JSON object")
        obj = copy.deepcopy(body)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if not kind:
            raise bad_request("Object 'Kind' is missing in the request body")
        if (api_version, kind) != (rt.api_version, rt.kind):
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version}), or the kind ({kind}) is not {rt.kind}"
            )
        if not isinstance(obj.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")
        return obj

    # -- update and patch ----------------------------------------------------------------
    def update(
        self, rt: ResourceType, namespace: str, name: str, body: Any, subresource: str = ""
    ) -> Outcome:
        obj = self._checked_body(rt, body)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        old = self._existing(rt, namespace, name)
        if not meta.get("resourceVersion") and rt.custom:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    Cause(
                        "metadata.resourceVersion",
                        "FieldValueInvalid",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        return self._write(rt, namespace, old, obj, subresource)

    def patch(
        self, rt: ResourceType, namespace: str, name: str, body: Any, content_type: str, subresource: str = ""
    ) -> Outcome:
        old = self._existing(rt, namespace, name)
        base = self._served(rt, old)
        if content_type == patches.MERGE:
            obj = patches.merge(base, body)
        elif content_type == patches.JSON:
            obj = patches.json_patch(base, body)
        elif content_type == patches.STRATEGIC and not rt.custom:
            obj = patches.strategic(base, body, kschema.root(rt.api_version, rt.kind) or kschema.EMPTY)
        else:
            accepted = [patches.JSON, patches.MERGE, patches.APPLY] + (
                [] if rt.custom else [patches.STRATEGIC]
            )
            raise unsupported_media_type(content_type, accepted)
        if not isinstance(obj, dict):
            raise bad_request("the patch does not produce a JSON object")
        obj = self._checked_body(rt, obj)
        if (obj.get("metadata") or {}).get("name") != name:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [Cause("metadata.name", "FieldValueInvalid", "Invalid value: field is immutable")],
            )
        return self._write(rt, namespace, old, obj, subresource)

    def _existing(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        old = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if old is None:
            raise not_found(rt.plural, rt.group, name)
        return old

    def _write(
        self, rt: ResourceType, namespace: str, old: dict[str, Any], obj: dict[str, Any], subresource: str
    ) -> Outcome:
        meta, old_meta = obj.setdefault("metadata", {}), old["metadata"]
        name = old_meta["name"]
        if rt.namespaced and meta.get("namespace", namespace) != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if not rt.namespaced:
            meta.pop("namespace", None)
        sent = meta.get("resourceVersion")
        if sent and sent != old_meta["resourceVersion"]:
            raise stale(rt.plural, rt.group, name)
        _check_uid(rt, name, meta.get("uid"), old_meta["uid"])
        out = Outcome(obj)
        out.pruned = pruning.prune(rt, obj)
        for key in (*SERVER_META, "managedFields", "selfLink"):
            meta.pop(key, None)
            if key in old_meta:
                meta[key] = copy.deepcopy(old_meta[key])
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in obj:
                result["status"] = obj["status"]
            else:
                result.pop("status", None)
            _diff(
                {k: v for k, v in obj.items() if k != "status"},
                {k: v for k, v in result.items() if k != "status"},
                [],
                out.ignored,
            )
            obj = result
        elif rt.status:
            if "status" in obj:
                _diff(obj["status"], old.get("status"), ["status"], out.ignored)
            obj.pop("status", None)
            if "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
        added = set(obj["metadata"].get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if old_meta.get("deletionTimestamp") and added:
            raise invalid(
                rt.kind,
                rt.group,
                name,
                [
                    Cause(
                        "metadata.finalizers",
                        "FieldValueForbidden",
                        "Forbidden: no new finalizers can be added if the object is being deleted",
                    )
                ],
            )
        self._finish(rt, obj, old, out)
        if rt.generation and _spec_changed(rt, obj, old):
            obj["metadata"]["generation"] = int(old_meta.get("generation") or 0) + 1
        if obj == old:
            out.obj = self._served(rt, old)
            return out
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            last = self.store.remove(rt.key, old_meta.get("namespace", ""), name) or obj
            self._after_delete(rt, name)
            out.obj = self._served(rt, last)
            return out
        if rt is resources.CRDS:
            obj["status"] = {**(obj.get("status") or {}), **crd.status(obj, now())}
        self.store.put(rt.key, obj)
        if rt is resources.CRDS:
            self._crd_changed(name, obj)
        out.obj = self._served(rt, obj)
        return out

    def _finish(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, out: Outcome
    ) -> None:
        """Type-specific fix-ups, defaulting and validation of the object about to be stored."""
        if rt is resources.SECRETS and isinstance(obj.get("stringData"), dict):
            data = dict(obj.get("data") or {})
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
        name = str(obj["metadata"].get("name", ""))
        if rt.custom:
            pruning.apply_defaults(rt, obj)
            causes, out.unsupported = validation.validate_custom(rt, obj, old)
            if causes:
                raise invalid(rt.kind, rt.group, name, causes)
            return
        types, others = validation.builtin_problems(rt, obj)
        if types:
            raise bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                + "; ".join(f"{c.field}: {c.message}" for c in types)
            )
        if rt is resources.CRDS:
            others += crd.problems(obj)
        if others:
            raise invalid(rt.kind, rt.group, name, others)

    # -- delete --------------------------------------------------------------------------
    def delete(self, rt: ResourceType, namespace: str, name: str, options: Any = None) -> Outcome:
        old = self._existing(rt, namespace, name)
        pre = (options or {}).get("preconditions") or {} if isinstance(options, dict) else {}
        _check_uid(rt, name, pre.get("uid"), old["metadata"]["uid"])
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise stale(rt.plural, rt.group, name)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return Outcome(self._served(rt, old))
            obj = copy.deepcopy(old)
            obj["metadata"]["deletionTimestamp"] = now()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            return Outcome(self._served(rt, self.store.put(rt.key, obj)))
        last = self.store.remove(rt.key, old["metadata"].get("namespace", ""), name) or old
        self._after_delete(rt, name)
        return Outcome(self._served(rt, last))

    def _after_delete(self, rt: ResourceType, name: str) -> None:
        if rt is not resources.CRDS:
            return
        removed, _ = self.registry.set_crd(name, None)
        for gone_type in removed:
            for obj in self.store.list(gone_type.key):
                meta = obj["metadata"]
                self.store.remove(gone_type.key, meta.get("namespace", ""), meta["name"])
        self._on_types()

    def _crd_changed(self, name: str, definition: dict[str, Any]) -> None:
        self.registry.set_crd(name, definition)
        self._on_types()


def _check_uid(rt: ResourceType, name: str, sent: Any, have: Any) -> None:
    if sent and sent != have:
        why = f"Precondition failed: UID in precondition: {sent}, UID in object meta: {have}"
        raise conflict(rt.plural, rt.group, name, why, "uid-precondition")


def _spec_changed(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> bool:
    skip = {"metadata", "status"} if rt.status else {"metadata"}
    return {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}
