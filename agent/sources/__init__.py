"""Cluster-view sources: where the agent learns services, addresses, nodes and endpoints.

Every source implements :class:`ironlb.agent.interfaces.Source`: ``views()`` yields a complete
:class:`~ironlb.agent.view.ClusterView` at once, then a new one whenever something changed.

- ``files`` (:mod:`ironlb.agent.sources.files`): a directory of manifests -- standalone mode,
  for clusters without the controller and for non-Kubernetes users.
- ``kube`` (:mod:`ironlb.agent.sources.kube`): the Kubernetes API (informers).

:func:`make_source` picks one from :class:`ironlb.agent.settings.SourceSettings`.
"""

from __future__ import annotations

import importlib
from typing import Any

from ironlb.agent.interfaces import Source
from ironlb.agent.settings import Settings


def make_source(settings: Settings, **extra: Any) -> Source:
    """Build the configured source. ``extra`` is passed to the kube source's constructor."""
    if settings.source.kind == "files":
        from ironlb.agent.sources.files import FileSource

        assert settings.source.directory is not None  # Settings checked it
        return FileSource(settings.source.directory, poll_interval=settings.source.poll_interval)
    module = importlib.import_module("ironlb.agent.sources.kube")  # owned by the Kubernetes work
    factory: Any = module.make_source
    source: Source = factory(settings, **extra)
    return source
