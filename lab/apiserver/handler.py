"""The HTTP face of the server: a kmock handler that routes each request through RBAC to the core.

:class:`KubeApi` subclasses kmock's public :class:`kmock.KubernetesScaffold`.  Discovery
(``/``, ``/api``, ``/apis``, ``/apis/<group>[/<version>]``, ``/version``) goes through
kmock unchanged -- parsing, recording, its discovery reactions -- fed from
:class:`~.resources.Registry` (CRDs appear when created).  Every other request is parsed
here (:func:`parse_path`) into a public :class:`kmock.Request` and answered by
:meth:`KubeApi._serve` with :class:`kmock.Response` objects, which kmock renders (JSON, and
the chunked JSON-lines stream of a watch).  Two kmock 0.8 behaviours keep resource requests
out of its reaction matching: its path parser cannot read the ``namespaces`` resource
(``/api/v1/namespaces`` raises, ``/api/v1/namespaces/x`` reads as *namespace* x), and its
matching re-scans every request ever recorded, per reaction, on each request (quadratic over
a long soak).

For each request: the identity the listener authenticated (:mod:`.auth`), the verb (get,
list, watch -- a watch of one name by URL or ``fieldSelector=metadata.name=`` --, create,
update, patch, delete), RBAC (:mod:`.rbac`), then :mod:`.objects`.  Every answer and every
silent drop is written to the :class:`~.report.Recorder`; an unexpected exception is a 500,
logged and reported under ``errors``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp.web
import attrs
import kmock as km

from lab.apiserver import auth, patches, resources
from lab.apiserver.objects import Objects, Outcome
from lab.apiserver.rbac import MASTERS, Attributes, Authorizer, User
from lab.apiserver.report import Call, Recorder
from lab.apiserver.resources import Registry, ResourceType
from lab.apiserver.selectors import matcher, single_name
from lab.apiserver.status import (
    ApiError,
    bad_request,
    forbidden,
    method_not_allowed,
    not_found,
    page_not_found,
    unauthorized,
    unsupported_media_type,
)
from lab.apiserver.store import Store

logger = logging.getLogger(__name__)
_DISCOVERY = re.compile(r"^/(|api|apis|version|api/[^/]+|apis/[^/]+|apis/[^/]+/[^/]+)$")
REPORT_PATH = "/lab/v1/report"
UNSUPPORTED_HERE = "is not implemented by the lab API server"


class ApiState:
    """Everything the server holds: objects, types, tokens, the authoriser and the record."""

    def __init__(self, history: int = 10000) -> None:
        self.store = Store(history)
        self.registry = Registry()
        self.recorder = Recorder()
        self.tokens = auth.Tokens(self.store)
        self.authorizer = Authorizer(self.store)
        self.objects = Objects(self.store, self.registry)

    def report(self, since: float = 0.0) -> dict[str, Any]:
        return self.recorder.report(self.store.rv, since)


JSON = "application/json"  # exactly: lightkube decodes a Status only for this Content-Type


def _response(code: int, payload: Any) -> Any:
    return km.Response(status=code, payload=payload, headers={"Content-Type": JSON})  # type: ignore[attr-defined]


def json_response(body: Any, status: int) -> aiohttp.web.Response:
    """A JSON reply outside kmock's rendering, with the server's exact Content-Type."""
    return aiohttp.web.Response(body=json.dumps(body).encode(), status=status, headers={"Content-Type": JSON})


def _error(exc: ApiError) -> Any:
    return _response(exc.code, exc.body())


@dataclasses.dataclass(frozen=True)
class Path:
    """A resource URL taken apart (group "" is the core API)."""

    group: str
    version: str
    plural: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""


def parse_path(path: str) -> Path | None:
    """``/api/v1/namespaces/ns/services/x/status`` -> Path (None: not a resource URL)."""
    parts = [p for p in path.strip("/").split("/")]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    namespace_object = len(rest) == 3 and rest[2] in ("status", "finalize")  # namespaces/x/status
    if len(rest) >= 3 and rest[0] == "namespaces" and not namespace_object:
        namespace, rest = rest[1], rest[2:]
    if not rest or not rest[0]:
        return None
    return Path(group, version, rest[0], namespace, rest[1] if len(rest) > 1 else "", "/".join(rest[2:]))


_ACTIONS = {
    "GET": km.action.FETCH,
    "POST": km.action.CREATE,
    "PATCH": km.action.UPDATE,
    "DELETE": km.action.DELETE,
}


async def _request(raw: aiohttp.web.BaseRequest) -> km.Request:
    body = await raw.read()
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    path = parse_path(raw.path)
    fields: dict[str, Any] = {}
    if path is not None:
        action = _ACTIONS.get(raw.method)
        if raw.method == "GET" and (raw.query.get("watch") in ("true", "1") or not path.name):
            action = km.action.WATCH if raw.query.get("watch") in ("true", "1") else km.action.LIST
        fields = {
            "action": action,
            "resource": km.resource(path.group, path.version, path.plural),
            "namespace": path.namespace or None,
            "name": path.name or None,
            "subresource": path.subresource or None,
        }
    return km.Request(
        method=raw.method,
        url=raw.url,
        params=dict(raw.query),
        headers=dict(raw.headers),
        cookies=dict(raw.cookies),
        body=body,
        text=text,
        data=data,
        raw_request=raw,
        **fields,
    )


def _verb(method: str, name: str, watch: bool, subresource: str) -> str:
    if method == "GET":
        return "watch" if watch else ("get" if name else "list")
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return method.lower()


@attrs.define(kw_only=True)
class KubeApi(km.KubernetesScaffold):
    """kmock's scaffold, serving :class:`ApiState` with the API server's rules."""

    state: ApiState

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.sync_discovery()

    def sync_discovery(self) -> None:
        """Make kmock's discovery list exactly the served types."""
        served = {km.resource(t.group, t.version, t.plural): t for t in self.state.registry}
        for key in list(self.resources):
            if key not in served:
                del self.resources[key]
        for key, t in served.items():
            verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
            self.resources[key] = km.ResourceInfo(
                kind=t.kind,
                singular=t.singular,
                namespaced=t.namespaced,
                verbs=verbs,
                subresources=set(t.all_subresources()),
            )

    # -- entry -----------------------------------------------------------------------------
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock's entry point: discovery through kmock, the rest here (see the module docstring)."""
        if _DISCOVERY.match(raw_request.path):
            return await super().__call__(raw_request)
        request = await _request(raw_request)
        try:
            answer = await self._serve(request)
            response: aiohttp.web.StreamResponse = await answer(request)
            return response
        except Exception as exc:  # a bug here or in a scripted reaction: a 500, logged and reported
            logger.exception("lab API server: %s %s failed", raw_request.method, raw_request.path)
            self.state.recorder.add(
                "errors", verb=raw_request.method, path=raw_request.path, message=repr(exc)
            )
            started = (
                exc.args[0] if exc.args and isinstance(exc.args[0], aiohttp.web.StreamResponse) else None
            )
            if started is not None and started.prepared:
                return started
            body = ApiError(
                500,
                "InternalError",
                f"an error on the server ({exc!r}) has prevented the request from succeeding",
            )
            return json_response(body.body(), 500)

    async def _serve(self, request: km.Request) -> Any:
        user = auth.decode(
            next((v for k, v in request.headers.items() if k.lower() == auth.IDENTITY_HEADER.lower()), "")
        )
        if user is None:  # only the listeners call us, and they always set it
            return _error(unauthorized())
        if request.url.path == REPORT_PATH:
            if MASTERS not in user.groups:
                return _error(
                    forbidden(f'forbidden: User "{user.name}" cannot get path "{REPORT_PATH}"', "", "", "")
                )
            since = float(request.params.get("since") or 0)
            return _response(200, self.state.report(since))
        resource = request.resource
        if resource is None or not resource.plural or not resource.version:
            return _error(page_not_found())
        rt = self.state.registry.get(resource.group or "", resource.version, resource.plural)
        if rt is None or (request.namespace and not rt.namespaced):
            return _error(page_not_found())
        name, sub = request.name or "", request.subresource or ""
        watch = request.params.get("watch") in ("true", "1")
        verb = _verb(str(request.method.value), name, watch, sub)
        namespace = request.namespace or ""
        authz_name = name or (
            single_name(request.params.get("fieldSelector", "")) if verb in ("list", "watch") else ""
        )
        call = Call(user.name, verb, rt.group, rt.plural, sub, namespace, name)
        attrs_ = Attributes(verb, rt.group, rt.plural, sub, namespace, authz_name)
        if not self.state.authorizer.allowed(user, attrs_):
            message = attrs_.describe(user)
            self.state.recorder.call("forbidden", call, groups=list(user.groups), message=message)
            self.state.recorder.request(call, 403)
            return _error(forbidden(message, rt.plural, rt.group, authz_name))
        try:
            if sub and sub not in rt.all_subresources():
                raise page_not_found()
            if verb == "watch":
                self.state.recorder.request(call, 200)
                return self._watch(rt, namespace, name, request.params)
            result = self._dispatch(rt, user, call, request)
        except ApiError as exc:
            self._record_error(call, exc)
            self.state.recorder.request(call, exc.code)
            return _error(exc)
        self.state.recorder.request(call, result.code)
        return _response(result.code, result.obj)

    def _record_error(self, call: Call, exc: ApiError) -> None:
        recorder = self.state.recorder
        if exc.code == 409:
            recorder.call("conflicts", call, conflict=exc.conflict, message=exc.message)
        elif exc.code == 422:
            recorder.call("invalid", call, message=exc.message, causes=[c.body() for c in exc.causes])
        elif exc.unsupported:
            recorder.add(
                "unsupported", user=call.user, verb=call.verb, path=call.resource, message=exc.message
            )

    # -- verbs -----------------------------------------------------------------------------
    def _dispatch(self, rt: ResourceType, user: User, call: Call, request: km.Request) -> Outcome:
        objects, verb, ns = self.state.objects, call.verb, call.namespace
        if verb == "get":
            return Outcome(objects.get(rt, ns, call.name))
        if verb == "list":
            params = request.params
            return Outcome(
                objects.list(rt, ns, params.get("labelSelector", ""), params.get("fieldSelector", ""))
            )
        if verb == "deletecollection":
            raise dataclasses.replace(
                method_not_allowed(f"deletecollection {UNSUPPORTED_HERE}"), unsupported=True
            )
        if rt.namespaced and not ns and verb in ("create", "update", "patch", "delete"):
            raise page_not_found()
        body = self._body(request, optional=verb == "delete")
        if verb == "create" and call.subresource == "token":
            return self._token(ns, call.name)
        if verb == "create":
            if call.name:
                raise method_not_allowed(f"POST is not supported on a named {rt.plural}")
            out = objects.create(rt, ns, body)
        elif verb == "update":
            out = objects.update(rt, ns, call.name, body, call.subresource)
        elif verb == "patch":
            content_type = str(request.headers.get("Content-Type", request.headers.get("content-type", "")))
            content_type = content_type.split(";")[0].strip()
            if content_type == patches.APPLY:
                accepted = [patches.JSON, patches.MERGE, patches.STRATEGIC]
                refused = unsupported_media_type(
                    f"{content_type}: server-side apply {UNSUPPORTED_HERE}", accepted
                )
                raise dataclasses.replace(refused, unsupported=True)
            out = objects.patch(rt, ns, call.name, body, content_type, call.subresource)
        else:
            out = objects.delete(rt, ns, call.name, body)
        where = rt.kind
        recorder = self.state.recorder
        final = dataclasses.replace(
            call, name=call.name or str((out.obj.get("metadata") or {}).get("name", ""))
        )
        recorder.fields_dropped("pruned", final, where, out.pruned)
        recorder.fields_dropped("ignored", final, where, out.ignored)
        for rule in out.unsupported:
            recorder.unsupported_once(final, f"{rt.kind}: CEL rule not evaluated: {rule}")
        if rt is resources.CRDS and verb in ("create", "update", "patch", "delete"):
            self.sync_discovery()
        return out

    @staticmethod
    def _body(request: km.Request, optional: bool = False) -> Any:
        if not request.body:
            if optional:
                return None
            raise bad_request("the request has no body")
        try:
            return json.loads(request.body)
        except ValueError as exc:
            raise bad_request(f"the request body is not valid JSON: {exc}") from exc

    def _token(self, namespace: str, name: str) -> Outcome:
        token = self.state.tokens.mint(namespace, name)
        if token is None:
            raise not_found("serviceaccounts", "", name)
        expires = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "audiences": ["https://kubernetes.default.svc.cluster.local"],
                "expirationSeconds": 31536000,
            },
            "status": {"token": token, "expirationTimestamp": expires},
        }
        return Outcome(body, code=201)

    # -- watch -----------------------------------------------------------------------------
    def _watch(self, rt: ResourceType, namespace: str, name: str, params: Any) -> Any:
        fields = params.get("fieldSelector", "")
        if name:
            fields = ",".join(p for p in (fields, f"metadata.name={name}") if p)
        match = matcher(params.get("labelSelector", ""), fields)
        raw = params.get("resourceVersion") or ""
        try:
            since = None if raw in ("", "0") else int(raw)
        except ValueError as exc:
            raise bad_request(f"invalid resource version: {raw!r}") from exc
        timeout = params.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout else None
        store = self.state.store

        async def events() -> AsyncIterator[Any]:
            yield b""  # send the headers now, as the real server does, even if nothing happens
            try:
                async for kind, obj in store.watch(rt.key, namespace, match, since, deadline):
                    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
                    yield {"type": kind, "object": obj}
            except ApiError as exc:  # 410: the real server streams it as an ERROR event
                yield {"type": "ERROR", "object": exc.body()}

        return _response(200, events())
