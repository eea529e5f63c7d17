"""A Kubernetes API stand-in that enforces the API server's rules, and counts every violation.

The cluster-mode lab runs every rendered pod as processes in network namespaces; those pods
talk to this server exactly as they would to a kube-apiserver (in-cluster config, HTTPS,
bearer token).  It answers as the real server does for every request a pod makes --
authentication, RBAC from the RBAC objects stored in it, schema validation, pruning and
defaulting, CEL rules, status subresources, resourceVersion concurrency -- and records each
401/403/409/422, each pruned or ignored field, and every request, so tests assert zero
violations and benchmarks compute writes per minute per role.

Interface (stable: the cluster harness codes against it)
========================================================

Start it, as a process (in the router namespace of the lab)::

    python -m lab.apiserver --listen 10.77.0.1:6443 [--listen HOST:PORT ...] \\
        --socket RUN/apiserver.sock --pki-dir RUN/pki [--history 10000]

- ``--listen``: HTTPS for pods (repeatable; IPv6 as ``[fd00::1]:6443``).
- ``--pki-dir``: a per-lab CA is generated there unless ``ca.crt``/``ca.key`` already exist
  (then it is reused); a fresh server certificate is issued on every start, for every
  ``--listen`` host plus ``127.0.0.1``, ``::1``, ``localhost`` and ``kubernetes``,
  ``kubernetes.default``, ``kubernetes.default.svc``, ``kubernetes.default.svc.cluster.local``.
  Files: ``ca.crt`` (mount it as ``/var/run/secrets/kubernetes.io/serviceaccount/ca.crt``),
  ``ca.key``, ``server.crt``, ``server.key`` (keys 0600).
- ``--socket``: a Unix socket (0600) for the test process, trusted as cluster admin
  (user ``system:admin``, group ``system:masters``, which RBAC never restricts, as on a real
  server).  Filesystem sockets are not bound to a network namespace, so the test process needs
  no ``ip netns exec``.  The socket file appears only once every listener accepts: waiting for
  it is the readiness check.  SIGTERM/SIGINT stop the server cleanly and remove the socket.

Or in-process (unit tests; same listeners, same code)::

    async with ApiServer(work_dir) as api:   # HTTPS on 127.0.0.1:<free port> + work_dir/apiserver.sock
        api.url          # "https://127.0.0.1:PORT"
        api.ca_file      # work_dir/pki/ca.crt
        api.socket       # work_dir/apiserver.sock
        api.report()     # the report dict below, without HTTP
        admin = api.admin()   # AdminClient over the Unix socket (also AdminClient(socket_path))

``tests/apiserver_support.py`` has pytest fixtures (``apiserver``, ``admin``) for that.

Admin client (:class:`lab.apiserver.admin.AdminClient`, async, system:masters)::

    await admin.load(manifests)          # create all, in dependency order (Namespaces, CRDs,
                                         # ServiceAccounts, RBAC, ConfigMaps/Secrets, ..., CRs,
                                         # workloads); raises LoadError naming the object
    await admin.get(api_version, kind, name, namespace=None) -> dict | None
    await admin.list(api_version, kind, namespace=None) -> list[dict]
    await admin.request(method, path, body=None, content_type=...) -> (status, dict)
    await admin.token(namespace, service_account) -> str   # a bearer token for that SA
    await admin.report(since=None) -> dict
    lightkube_client()  # a lightkube AsyncClient as admin over the socket

Tokens are minted through the real TokenRequest API, ``POST /api/v1/namespaces/{ns}/
serviceaccounts/{name}/token`` (RBAC applies: ``create`` on ``serviceaccounts/token``; the
ServiceAccount must exist, else 404).  Write the token to
``/var/run/secrets/kubernetes.io/serviceaccount/token`` in the pod, with ``ca.crt`` and a
``namespace`` file beside it, and set ``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``
to a ``--listen`` address: lightkube's ``KubeConfig.from_env()`` then connects unchanged.  A
token authenticates as ``system:serviceaccount:<ns>:<name>`` with groups
``system:serviceaccounts``, ``system:serviceaccounts:<ns>``, ``system:authenticated`` while
that ServiceAccount exists; an unknown token (or none) gets 401.  Tokens do not expire.

Report (``GET /lab/v1/report[?since=UNIX_SECONDS]`` on the socket; ``ApiServer.report()``)::

    {
      "resourceVersion": "1234",            # the server's current global resourceVersion
      "since": 0.0,                         # records at or after this time (unix seconds)
      "counts": {"unauthorized": 0, "forbidden": 0, "pruned": 0, "conflicts": 0, "invalid": 0,
                 "ignored": 0, "unsupported": 0, "errors": 0, "requests": 812},
      "violations": {
        "unauthorized": [{"time", "verb", "path", "remote", "reason"}],           # 401
        "forbidden":    [{"time", "user", "groups", "verb", "group", "resource",
                          "subresource", "namespace", "name", "message"}],           # 403
        "pruned":       [{"time", "user", "verb", "group", "resource", "subresource",
                          "namespace", "name", "kind", "path"}],  # one per pruned field
        "conflicts":    [{"time", "user", "verb", "group", "resource", "subresource",
                          "namespace", "name", "conflict", "message"}],  # 409; conflict is
                        # "stale-resource-version" | "already-exists" | "uid-precondition"
        "invalid":      [{"time", "user", "verb", "group", "resource", "subresource",
                          "namespace", "name", "message", "causes": [{"field","reason","message"}]}],
        "ignored":      [{... same keys as pruned ...}],  # fields a write tried to change that
                        # the endpoint ignores: .status through the main resource, anything
                        # but .status through /status (the real server drops them silently)
        "unsupported":  [{"time", "user", "verb", "path", "message"}], # what this stand-in
                        # cannot serve (server-side apply, deletecollection, CEL it cannot run)
        "errors":       [{"time", "verb", "path", "message"}]   # 500s: a bug in the stand-in
      },
      "requests": [{"user", "verb", "group", "resource", "subresource", "write": bool,
                    "count", "codes": {"200": n, ...}, "times": [unix seconds, ...]}]
    }

``user`` is the authenticated user name; admin requests are counted too (user
``system:admin``), so filter by user for a role's figures.

What it reuses from kmock, and why
==================================

It is built on kmock 0.8 (the project's Kubernetes stand-in), by subclassing its public
:class:`kmock.KubernetesScaffold` (:mod:`.handler`): kmock serves discovery -- ``/``,
``/api``, ``/apis``, ``/apis/<group>[/<version>]``, ``/version`` -- through its own parsing,
request recording and reactions, fed from our resource registry (CRDs appear when created);
every request is modelled as a public :class:`kmock.Request`, and every answer is a
:class:`kmock.Response` that kmock renders (JSON bodies, and the chunked JSON-lines stream of
a watch).  Resource requests do not go through kmock's path parser or reaction matching:
kmock 0.8 cannot parse the ``namespaces`` resource (``/api/v1/namespaces`` raises), and its
matching re-scans every recorded request per reaction, which grows quadratically over a long
soak.  kmock's object storage is not used either: it treats a /status PATCH as a main-object
merge, has no resourceVersion, no PUT and replays every object on every watch; the store here
(:mod:`.store`) is our own.  Nothing in kmock is patched.

Modules: :mod:`.server` (listeners, life cycle), :mod:`.handler` (HTTP, verbs, RBAC check,
watch streams), :mod:`.objects` (create/update/patch/delete semantics), :mod:`.store`
(objects, resourceVersion, history, watches), :mod:`.resources` (served types, CRDs),
:mod:`.crd` (CRD checks), :mod:`.validation`, :mod:`.pruning`, :mod:`.cel` (schema, pruning,
defaulting, CEL), :mod:`.kschema` (built-in schemas), :mod:`.patches`, :mod:`.selectors`,
:mod:`.rbac`, :mod:`.auth`, :mod:`.pki`, :mod:`.report`, :mod:`.status` (error bodies),
:mod:`.admin` (the admin client).

Where it still differs from a real kube-apiserver
=================================================

- **Admission**: no admission plugins or webhooks (no ResourceQuota, LimitRanger,
  ServiceAccount, PodSecurity, DefaultStorageClass, ...), except NamespaceLifecycle's basic
  rule (creating in a missing namespace is 404) and finalizer rules on deletion.  Defaults of
  built-in kinds (e.g. ``Service.spec.sessionAffinity``, ``clusterIP`` allocation) are *not*
  applied; built-in objects are stored as written, pruned to the Kubernetes 1.37 field set.
- **Validation of built-in kinds**: pruning of unknown fields, the JSON types (400, as the
  server's decoder answers) and required fields (422) of the Kubernetes 1.37 schema, and
  object names (DNS subdomain/label rules); none of the Go validation beyond that (e.g. port
  ranges, immutable fields other than name/namespace/uid).  Custom resources get the full
  structural-schema validation, defaulting and the CEL rules cel-python can evaluate (rules
  using Kubernetes CEL libraries it lacks -- ``quantity()``, ``isIP()``, ... -- are reported
  as ``unsupported`` and not enforced); ``messageExpression`` is not evaluated (``message``
  is used).  CRDs themselves are checked for structural schemas (``patternProperties``,
  ``$ref``, missing types, ... are refused with 422, as the real server refuses them).
- **Server-side apply** (``application/apply-patch+yaml``) is not implemented: 415, and
  reported as ``unsupported``.  No ``managedFields``.  ``deletecollection``: 405, reported.
- **Strategic merge patch** follows ``x-kubernetes-patch-strategy``/``-merge-key`` from the
  Kubernetes 1.37 schemas (conditions by ``type``, ports by ``port``, containers by ``name``,
  ...), with ``$patch: delete|replace|merge``, ``$deleteFromPrimitiveList`` and
  ``$retainKeys``; ``$setElementOrder`` is accepted and ignored (merged lists keep the
  existing order, new items appended).  Custom resources answer 415 (as the real server does).
- **Watch**: no bookmarks (``allowWatchBookmarks`` is ignored), no ``sendInitialEvents``,
  no server-side timeout except ``timeoutSeconds``; ``resourceVersion=0`` and none both start
  with synthetic ADDED events.  History holds the last ``--history`` events (default 10000)
  across all resources; a watch from before that gets a 410 ERROR event.
- **List**: no pagination (``limit``/``continue`` ignored: everything in one page), no
  ``resourceVersionMatch``; field selectors: ``metadata.name`` and ``metadata.namespace`` only
  (others: 400, as the real server answers for an unsupported field label).
- **Generation**: tracked (bumped on spec changes) for custom resources, CRDs and apps/v1
  objects; other built-ins carry none.
- **Storage**: one version per resource (no conversion); ``v1`` and ``events.k8s.io/v1``
  Events are separate stores; no ownerReference garbage collection; deleting a Namespace
  removes only the Namespace (no namespace controller); no aggregated APIs, no protobuf, no
  HTTP/2, no ``dryRun``, no ``pretty`` formatting; RBAC ``aggregationRule`` is not expanded.
- **Authentication**: bearer tokens only (no client certificates, no anonymous user: no
  token is 401); tokens never expire; discovery (``/api``, ``/apis``, ``/version``, ...) is
  open to every authenticated user, as ``system:discovery`` allows.
"""

from __future__ import annotations

from lab.apiserver.admin import AdminClient, LoadError
from lab.apiserver.server import ApiServer

__all__ = ["AdminClient", "ApiServer", "LoadError"]
