"""Informer caches -> the shared view builder and the parsed Config (pure; no API calls).

Used by both roles: the speaker's Kubernetes source and the IPAM controller, so both read
the cluster exactly the same way (:mod:`ironlb.agent.viewbuild`, with the same trust check and
the same precedence).

- :class:`ConfigTracker` parses IronLB's custom resources and Namespaces into one
  :class:`~ironlb.config.Config`, keeping **the last good version of every object**: an
  object that fails validation (alone or against the others) is replaced by its last
  version that passed, or left out if it never passed, and reported in ``invalid`` so the
  controller can set a condition and an Event on it.
- :class:`CacheFeed` listens to the informers: each Service, Node or EndpointSlice event
  goes to the :class:`~ironlb.agent.viewbuild.ViewBuilder` as it happens (O(1), nothing is
  rebuilt yet), and an event on a custom resource or a Namespace marks the Config stale.
  :meth:`CacheFeed.view` then parses the Config only if it is stale and lets the builder
  redo only what changed, so one event among 10,000 Services costs one Service's work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ironlb.agent.kube.client import CRDS
from ironlb.agent.kube.informer import Caches
from ironlb.agent.view import ClusterView
from ironlb.agent.viewbuild import KINDS, ViewBuilder
from ironlb.config import Config, parse
from ironlb.errors import ConfigError, Issue

#: The informers whose objects make up the Config.
CONFIG_SOURCES = (*CRDS, "namespaces")


ObjKey = tuple[str, str]  # (kind, name)


def _doc_key(doc: Mapping[str, Any]) -> ObjKey:
    return str(doc.get("kind") or ""), str((doc.get("metadata") or {}).get("name") or "")


@dataclass
class ConfigTracker:
    """Parse custom resources, keeping the last good version of each invalid one."""

    config: Config = field(default_factory=Config)
    last_good: dict[ObjKey, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[ObjKey, list[Issue]] = field(default_factory=dict)
    max_rounds: int = 8
    _last_input: Any = None

    def update(
        self, resources: Iterable[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]]
    ) -> Config:
        current = {_doc_key(d): _strip(d) for d in resources}
        ns_docs = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": d.get("metadata") or {}} for d in namespaces
        ]
        if (current, ns_docs) == self._last_input:
            return self.config  # unchanged input: the same Config object (callers memoise on it)
        self._last_input = (current, ns_docs)
        chosen = dict(current)
        invalid: dict[ObjKey, list[Issue]] = {}
        for _ in range(self.max_rounds):
            try:
                config = parse([*chosen.values(), *ns_docs])
            except ConfigError as exc:
                blamed = _blame(exc.issues, chosen)
                if not blamed:  # an issue we cannot pin on one object: keep the old config
                    invalid[("", "")] = list(exc.issues)
                    self.invalid = invalid
                    return self.config
                for key, issues in blamed.items():
                    invalid.setdefault(key, []).extend(issues)
                    old = self.last_good.get(key)
                    if old is not None and chosen.get(key) != old:
                        chosen[key] = old
                    else:
                        chosen.pop(key, None)
                continue
            for key in chosen:
                if key not in invalid:
                    self.last_good[key] = chosen[key]
            for key in [k for k in self.last_good if k not in current]:
                del self.last_good[key]  # deleted objects are gone for good
            self.config, self.invalid = config, invalid
            return config
        self.invalid = invalid
        return self.config


def _strip(doc: Mapping[str, Any]) -> dict[str, Any]:
    meta = doc.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    return {
        "apiVersion": doc.get("apiVersion"),
        "kind": doc.get("kind"),
        "metadata": keep,
        "spec": doc.get("spec") or {},
    }


def _blame(issues: Iterable[Issue], chosen: Mapping[ObjKey, Any]) -> dict[ObjKey, list[Issue]]:
    out: dict[ObjKey, list[Issue]] = {}
    for issue in issues:
        key = (issue.kind, issue.name)
        if key in chosen:
            out.setdefault(key, []).append(issue)
    return out


class CacheFeed:
    """Feeds one role's informer caches into a :class:`ViewBuilder`; :meth:`close` detaches it."""

    def __init__(self, caches: Caches, *, claim_classless: bool = False) -> None:
        self.caches = caches
        self.tracker = ConfigTracker()
        self.builder = ViewBuilder(claim_classless=claim_classless)
        self._stale = True
        self._hooks: list[tuple[str, Any]] = []
        for kind in KINDS:
            inf = caches.informers.get(kind)
            if inf is None:
                continue
            for doc in inf.store.values():  # what the caches already hold (a new controller term)
                self.builder.put(kind, doc)

            def on_object(event: str, key: str, obj: Mapping[str, Any], kind: Any = kind) -> None:
                if event == "DELETED":
                    self.builder.delete(kind, obj)
                else:
                    self.builder.put(kind, obj)

            self._listen(kind, on_object)
        for name in CONFIG_SOURCES:
            self._listen(name, self._on_config)

    def _listen(self, name: str, listener: Any) -> None:
        inf = self.caches.informers.get(name)
        if inf is not None:
            inf.add_listener(listener)
            self._hooks.append((name, listener))

    def _on_config(self, event: str, key: str, obj: Mapping[str, Any]) -> None:
        self._stale = True

    def close(self) -> None:
        """Stop listening (the caches outlive a controller term)."""
        for name, listener in self._hooks:
            self.caches.informers[name].remove_listener(listener)
        self._hooks.clear()

    def config(self) -> Config:
        """The current Config (re-parsed only after a custom resource or Namespace changed)."""
        if self._stale:
            self._stale = False
            crds = [d for plural in CRDS for d in self.caches.items(plural)]
            self.builder.set_config(self.tracker.update(crds, self.caches.items("namespaces")))
        return self.builder.config

    def view(self) -> ClusterView:
        """The ClusterView for the caches now (only what changed since the last call is redone)."""
        self.config()
        return self.builder.build()
