"""The object store: every object, one global resourceVersion, a bounded event history, watches.

Objects are kept per storage key (group, plural) as the JSON the server returns.  Every
write bumps one global counter (the resourceVersion, as etcd's revision does) and appends an
event ``(rv, type, object, previous)`` to a history of the last ``history`` events.  A watch
from resourceVersion N replays the events after N that match it, then follows live ones; if
N is older than the history, it fails with 410 Gone (the caller turns that into the ERROR
event the real server streams).  Selectors are evaluated on both the old and new object, so a
watch sees ADDED when an object starts matching and DELETED when it stops, as from the real
server's watch cache.

The store is mechanism only (no validation, no RBAC): :mod:`.objects` decides what to write.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from lab.apiserver.selectors import Matcher
from lab.apiserver.status import gone

Key = tuple[str, str]  # (group, plural)
ObjectId = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class Event:
    rv: int
    key: Key
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    previous: dict[str, Any] | None


def _ns_name(obj: dict[str, Any]) -> ObjectId:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class Store:
    def __init__(self, history: int = 10000) -> None:
        self.rv = 0
        self._objects: dict[Key, dict[ObjectId, dict[str, Any]]] = {}
        self._history: deque[Event] = deque(maxlen=history)
        self._compacted = 0  # events with rv <= this may be gone from the history
        self._watchers: set[asyncio.Queue[Event | None]] = set()

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(key, {}).get((namespace, name))

    def list(self, key: Key, namespace: str = "", match: Matcher | None = None) -> list[dict[str, Any]]:
        out = []
        for (ns, _), obj in sorted(self._objects.get(key, {}).items()):
            if (not namespace or ns == namespace) and (match is None or match(obj)):
                out.append(obj)
        return out

    @property
    def watchers(self) -> int:
        """Open watches (each removed when its client goes away)."""
        return len(self._watchers)

    # -- writes --------------------------------------------------------------------------
    def put(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` (create or replace) with a new resourceVersion; returns it."""
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        ident = _ns_name(obj)
        objects = self._objects.setdefault(key, {})
        previous = objects.get(ident)
        objects[ident] = obj
        self._emit(Event(self.rv, key, "MODIFIED" if previous else "ADDED", obj, previous))
        return obj

    def remove(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        """Delete an object for good; the DELETED event carries a new resourceVersion."""
        previous = self._objects.get(key, {}).pop((namespace, name), None)
        if previous is None:
            return None
        self.rv += 1
        last = copy.deepcopy(previous)
        last["metadata"]["resourceVersion"] = str(self.rv)
        self._emit(Event(self.rv, key, "DELETED", last, previous))
        return last

    def _emit(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(event)
        for queue in list(self._watchers):
            queue.put_nowait(event)

    # -- watch ---------------------------------------------------------------------------
    async def watch(
        self, key: Key, namespace: str, match: Matcher, since: int | None, deadline: float | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) events: synthetic ADDED for all (``since`` None), else after ``since``.

        Raises 410 (:class:`~.status.ApiError`) before yielding when ``since`` is too old; ends
        at ``deadline`` (``time.monotonic()``) or when :meth:`close_watches` is called.
        """
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        if since is not None and since < self._compacted:
            raise gone(f"too old resource version: {since} ({self._compacted + 1})")
        self._watchers.add(queue)  # no await between the replay snapshot and this: nothing is lost
        try:
            if since is None:
                backlog = [("ADDED", obj) for obj in self.list(key, namespace, match)]
            else:
                backlog = [
                    e
                    for e in (self._view(ev, key, namespace, match) for ev in self._history if ev.rv > since)
                    if e
                ]
            for item in backlog:
                yield item[0], copy.deepcopy(item[1])
            while True:
                try:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    event = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    return
                if event is None:
                    return
                if since is not None and event.rv <= since:
                    continue
                seen = self._view(event, key, namespace, match)
                if seen is not None:
                    yield seen[0], copy.deepcopy(seen[1])
        finally:
            self._watchers.discard(queue)

    @staticmethod
    def _view(event: Event, key: Key, namespace: str, match: Matcher) -> tuple[str, dict[str, Any]] | None:
        """How a watch with this scope and selector sees ``event`` (None: not at all)."""
        if event.key != key:
            return None
        if namespace and _ns_name(event.obj)[0] != namespace:
            return None
        now = match(event.obj) if event.type != "DELETED" else False
        before = match(event.previous) if event.previous is not None else False
        if event.type == "DELETED":
            return ("DELETED", event.obj) if before else None
        if now and before:
            return ("MODIFIED", event.obj)
        if now:
            return ("ADDED", event.obj)
        if before:
            return ("DELETED", event.obj)
        return None

    def close_watches(self) -> None:
        for queue in list(self._watchers):
            queue.put_nowait(None)
