"""A list-then-watch informer: a local cache of one resource kind kept in sync.

The API server's contract: list (getting a resourceVersion), then watch from that version.
This loop adds what lightkube does not have:

- **Relist and diff** when the watch says 410 Gone (our version expired) or the stream
  breaks (API server restart, network cut).  The new list is compared with the cache and
  only real differences become events, so consumers see ADDED/MODIFIED/DELETED exactly as
  if the watch had never stopped -- including deletions that happened while it was down.
- **Periodic resync** (relist + diff) as a safety net against a silently stuck stream.
- **Back-off** on errors (doubling, capped), so a vanished API server costs a retry every
  few seconds and never an exception: the cache keeps its last known state meanwhile.

Events that do not change the cached object (a watch started without a resourceVersion
begins with every object as ADDED; a relist after a reconnect repeats what the cache holds)
are swallowed, so consumers only wake on change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ironlb.agent.kube.client import ApiUnavailable, Gone, Kind, KubeClient, KubeError

log = logging.getLogger(__name__)

#: (event type, key, object) -- object is the new state, or the last known one for DELETED.
Listener = Callable[[str, str, Mapping[str, Any]], None]


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` for namespaced objects, ``name`` for cluster-scoped ones."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


@dataclass(frozen=True)
class InformerSettings:
    resync_seconds: float = 300.0
    """Relist and diff this often even when the watch looks healthy."""
    backoff_initial: float = 0.2
    """First wait after an error; doubles up to ``backoff_max``."""
    backoff_max: float = 5.0


class Informer:
    """Cache of every object of one :class:`Kind`; call :meth:`run` as a task."""

    def __init__(self, client: KubeClient, kind: Kind, settings: InformerSettings | None = None):
        self.client = client
        self.kind = kind
        self.settings = settings or InformerSettings()
        self.store: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()  # set after the first successful list
        self.listeners: list[Listener] = []
        self.relists = 0
        self.errors = 0

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _emit(self, event: str, key: str, obj: Mapping[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(event, key, obj)
            except Exception:  # a consumer's bug must not stop the cache
                log.exception("listener failed on %s %s %s", event, self.kind, key)

    def apply(self, event: str, obj: Mapping[str, Any]) -> None:
        """Fold one watch event into the cache; notify only on a real change."""
        key = object_key(obj)
        if event == "DELETED":
            old = self.store.pop(key, None)
            if old is not None:
                self._emit("DELETED", key, old)
            return
        new = dict(obj)
        old = self.store.get(key)
        if old == new:
            return
        self.store[key] = new
        self._emit("ADDED" if old is None else "MODIFIED", key, new)

    def replace_all(self, items: list[dict[str, Any]]) -> None:
        """Make the cache equal to a fresh list, emitting the difference."""
        fresh = {object_key(o): o for o in items}
        for key in [k for k in self.store if k not in fresh]:
            self._emit("DELETED", key, self.store.pop(key))
        for obj in fresh.values():
            self.apply("ADDED", obj)

    async def relist(self) -> str | None:
        items, version = await self.client.list(self.kind)
        self.replace_all(items)
        self.relists += 1
        self.synced.set()
        return version

    async def run(self) -> None:
        """List, watch, relist on trouble; forever (until cancelled)."""
        delay = self.settings.backoff_initial
        while True:
            try:
                version = await self.relist()
                delay = self.settings.backoff_initial
                async with asyncio.timeout(self.settings.resync_seconds):  # not wait_for: gh-86296
                    await self._watch(version)
            except TimeoutError:
                continue  # periodic resync
            except Gone:
                log.info("watch of %s expired (410); relisting", self.kind)
                continue
            except (ApiUnavailable, KubeError) as exc:
                self.errors += 1
                log.warning("%s: %s; retrying in %.1fs (cache kept)", self.kind, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max)

    async def _watch(self, version: str | None) -> None:
        while True:
            async for event, obj in self.client.watch(self.kind, version):
                if event in ("ADDED", "MODIFIED", "DELETED"):
                    self.apply(event, obj)
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
            # the server closed the stream cleanly: resume from the last version seen


class Caches:
    """The informers one agent runs, plus one "something changed" signal for all of them."""

    def __init__(
        self, client: KubeClient, kinds: Mapping[str, Kind], settings: InformerSettings | None = None
    ):
        self.informers = {name: Informer(client, kind, settings) for name, kind in kinds.items()}
        self.generation = 0  # bumped on every change (cheap "did anything move" check)
        self._subscribers: list[asyncio.Event] = []
        for inf in self.informers.values():
            inf.add_listener(self._on_change)

    def subscribe(self) -> asyncio.Event:
        """A new Event, set on every change; each consumer owns (and clears) its own."""
        event = asyncio.Event()
        self._subscribers.append(event)
        return event

    def _on_change(self, event: str, key: str, obj: Mapping[str, Any]) -> None:
        self.generation += 1
        for sub in self._subscribers:
            sub.set()

    def items(self, name: str) -> list[dict[str, Any]]:
        """Cached objects of one kind ([] for a kind this agent does not watch)."""
        inf = self.informers.get(name)
        return list(inf.store.values()) if inf is not None else []

    def get(self, name: str, key: str) -> dict[str, Any] | None:
        inf = self.informers.get(name)
        return inf.store.get(key) if inf is not None else None

    async def wait_synced(self) -> None:
        for inf in self.informers.values():
            await inf.synced.wait()

    def tasks(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(inf.run(), name=f"informer-{name}") for name, inf in self.informers.items()
        ]
