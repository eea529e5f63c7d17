"""Cluster-view sources: where the agent learns services, addresses, nodes and endpoints.

Every source implements :class:`ironlb.agent.interfaces.Source`: ``views()`` yields a complete
:class:`~ironlb.agent.view.ClusterView` at once, then a new one whenever something changed.

- ``files`` (:mod:`ironlb.agent.sources.files`): a directory of manifests -- standalone mode,
  for clusters without the controller and for non-Kubernetes users.
- ``kube`` (:mod:`ironlb.agent.sources.kube`): the Kubernetes API (informers).

:func:`make_source` picks one from :class:`ironlb.agent.settings.SourceSettings`.
"""

from __future__ import annotations

from ironlb.agent.interfaces import Source
from ironlb.agent.settings import Settings


def make_source(settings: Settings) -> Source:
    """Build the configured source (each imported only when chosen: files mode needs no client)."""
    if settings.source.kind == "files":
        from ironlb.agent.sources.files import FileSource

        assert settings.source.directory is not None  # Settings checked it
        return FileSource(settings.source.directory, poll_interval=settings.source.poll_interval)
    from ironlb.agent.sources import kube

    return kube.make_source(settings)
