"""PATCH bodies applied to a stored object: JSON merge, JSON patch, strategic merge.

- ``application/merge-patch+json``: RFC 7386 (objects merge, ``null`` deletes, lists replace).
- ``application/json-patch+json``: RFC 6902, through the ``jsonpatch`` library (a failed
  ``test`` or a bad path is a 422, a malformed patch a 400, as the real server answers).
- ``application/strategic-merge-patch+json`` (built-in kinds only; custom resources get 415,
  as from the real server): like a merge patch, except lists whose schema node says
  ``x-kubernetes-patch-strategy: merge`` -- with a ``x-kubernetes-patch-merge-key`` they
  merge item by item on that key (``conditions`` by ``type``, ``ports`` by ``port``,
  ``containers`` by ``name``, ...), without one (primitive lists such as ``finalizers``) they
  become the union.  Directives: ``$patch: delete`` (drop a keyed item or a map),
  ``$patch: replace`` (replace a map or, as ``{"$patch": "replace"}`` in a list, the list),
  ``$patch: merge``, ``$deleteFromPrimitiveList/<field>``, ``$retainKeys``;
  ``$setElementOrder/<field>`` is accepted and ignored (existing order kept, new items
  appended).  Schema nodes come from :mod:`.kschema`.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from lab.apiserver import kschema
from lab.apiserver.kschema import Node
from lab.apiserver.status import ApiError, Cause, bad_request

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
KINDS = (JSON, MERGE, STRATEGIC, APPLY)


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (returns a new value)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (400 when malformed, 422 when it does not apply)."""
    if not isinstance(operations, list):
        raise bad_request("the patch is not a JSON array of operations")
    try:
        return jsonpatch.JsonPatch(operations).apply(copy.deepcopy(target))
    except (
        jsonpatch.JsonPatchTestFailed,
        jsonpatch.JsonPatchConflict,
        jsonpatch.JsonPointerException,
    ) as exc:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: {exc}",
            causes=[Cause("", "FieldValueInvalid", str(exc))],
        ) from exc
    except (jsonpatch.InvalidJsonPatch, TypeError, KeyError) as exc:
        raise bad_request(f"invalid JSON patch: {exc}") from exc


def strategic(target: Any, patch: Any, node: Node) -> Any:
    """Strategic merge patch of ``target`` (an object) with ``patch``, under schema ``node``."""
    if not isinstance(patch, dict):
        raise bad_request("a strategic merge patch must be a JSON object")
    return _map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch, node)


def _map(out: dict[str, Any], patch: dict[str, Any], node: Node) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise bad_request(f"unknown patch type: {directive!r} in the strategic merge patch")
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(value, list):
                out[field] = [v for v in out[field] if v not in value]
            continue
        sub = kschema.child(node, key) or kschema.EMPTY
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                out.pop(key, None)
            else:
                existing = out.get(key)
                out[key] = _map(existing if isinstance(existing, dict) else {}, value, sub)
        elif isinstance(value, list):
            out[key] = _list(out.get(key), value, sub)
        else:
            out[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        for key in list(out):
            if key not in retain:
                del out[key]
    return out


def _list(current: Any, patch: list[Any], node: Node) -> list[Any]:
    strategy = str(kschema.resolve(node).get("x-kubernetes-patch-strategy", ""))
    key = kschema.resolve(node).get("x-kubernetes-patch-merge-key")
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if "merge" not in strategy.split(",") or not isinstance(current, list):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    if not key:  # a list of primitives: the union, in order
        out = list(current)
        out += [copy.deepcopy(p) for p in patch if p not in out]
        return out
    item = kschema.items(node)
    out = [copy.deepcopy(c) for c in current]
    for p in patch:
        if not isinstance(p, dict) or key not in p:
            raise bad_request(f"map: {p!r} does not contain declared merge key: {key}")
        index = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == p[key]), None)
        if p.get("$patch") == "delete":
            if index is not None:
                del out[index]
        elif index is None:
            out.append({k: copy.deepcopy(v) for k, v in p.items() if k != "$patch"})
        else:
            out[index] = _map(out[index], p, item)
    return out
