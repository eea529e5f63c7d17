"""``ironlb bundle`` output loads into the lab API server, object by object in the file's order
(as ``kubectl apply -f`` sends them), with zero violations: no 4xx, no pruned or ignored field.

The stand-in starts with the namespaces every cluster has (default, kube-system, ...) and
enforces what matters here (namespaces must exist, CRDs served once created, structural
schemas with pruning and CEL on custom resources, built-in kinds pruned to the Kubernetes
1.37 field set); see ``lab/apiserver/__init__.py`` for where it differs from a
real kube-apiserver (no admission plugins; a CRD is served at once, where a real server may
need a moment to establish it, hence ``--crds-only`` in docs/install-yaml.md).
"""

# ruff: noqa: F811  (pytest fixtures imported from tests.apiserver_support are redefined as arguments)
from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

pytest.importorskip("lab.apiserver")

from ironlb_cli.bundle import build
from lab.apiserver import AdminClient, ApiServer
from tests.apiserver_support import admin, apiserver  # noqa: F401
from tests.test_bundle import KEY, RELEASE, STACKS, env_for


async def apply_in_order(admin: AdminClient, text: str) -> list[dict[str, Any]]:
    objects = [d for d in yaml.safe_load_all(text) if d]
    for doc in objects:
        await admin.create(doc)
    return objects


def zero_violations(apiserver: ApiServer) -> None:
    report = apiserver.report()
    counts = {k: v for k, v in report["counts"].items() if k != "requests"}
    assert counts == dict.fromkeys(counts, 0), report["violations"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
async def test_a_stack_bundle_loads_with_zero_violations(
    apiserver: ApiServer, admin: AdminClient, stack: str
) -> None:
    objects = await apply_in_order(admin, build(stack, STACKS, env=env_for(stack)).text)
    zero_violations(apiserver)
    for m in objects:
        meta = m["metadata"]
        stored = await admin.get(m["apiVersion"], m["kind"], meta["name"], meta.get("namespace"))
        assert stored is not None, f"{m['kind']} {meta.get('namespace')}/{meta['name']}"
        if m["kind"] == "Secret":  # stringData written, data stored: the value the stack holds
            stored_values = {k: base64.b64decode(v).decode() for k, v in (stored.get("data") or {}).items()}
            stored_values.update(stored.get("stringData") or {})
            assert stored_values == m["stringData"]


async def test_the_base_bundle_loads_and_the_secret_it_names_completes_it(
    apiserver: ApiServer, admin: AdminClient
) -> None:
    bundle = build("base", RELEASE, omit_secrets=True, env={})
    objects = await apply_in_order(admin, bundle.text)
    kinds = {m["kind"] for m in objects}
    assert {"DaemonSet", "Deployment"} <= kinds and "Secret" not in kinds
    (omitted,) = bundle.omitted
    ns, name = omitted.split("/")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {"key": KEY},
    }
    await admin.create(secret)  # what the header's `kubectl create secret` line does
    zero_violations(apiserver)
