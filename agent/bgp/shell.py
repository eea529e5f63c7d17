"""The BGP shell: turns each new :class:`~agent.announcements.Plan` into speaker actions.

``apply(plan)`` diffs the plan's sessions against the running speakers:

- a session that is new starts a speaker; one that vanished is withdrawn and stopped;
- a session whose settings (or password file contents) changed is restarted -- only that
  one: every session has its own ExaBGP process, so the others are never touched;
- then each speaker is given its routes (prefix -> next hop, communities, local pref),
  and sends only the difference.

The next hop of a route is this node's address of the route's family from the session
(``next_hops``); a route of a family the node has no address for is skipped and noted in
``last_error``.  The MD5 password is read from ``<secrets_dir>/<secret>/<key>`` here and
handed to the speaker; it is never logged.  ``close()`` withdraws and stops everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from agent.announcements import BGPRoute, BGPSession, Plan
from agent.bgp import api
from agent.bgp.settings import BGPSettings
from agent.bgp.speaker import Speaker, SpeakerError

log = logging.getLogger(__name__)


def wanted_routes(
    session: BGPSession, routes: tuple[BGPRoute, ...]
) -> tuple[dict[str, api.Route], list[str]]:
    """(prefix -> route for ``session``, prefixes skipped for lack of a next hop)."""
    hops = {6 if ":" in a else 4: a for a in session.next_hops}
    out: dict[str, api.Route] = {}
    skipped: list[str] = []
    for route in routes:
        if session.name not in route.peers:
            continue
        family = 6 if ":" in route.prefix else 4
        if family not in hops:
            skipped.append(route.prefix)
            continue
        out[route.prefix] = api.Route(route.prefix, hops[family], route.communities, route.local_pref)
    return out, skipped


class BGPShell:
    """The agent's BGP speaker: one ExaBGP process per session (see module docstring)."""

    def __init__(self, node: str, settings: BGPSettings | None = None) -> None:
        self.node = node
        self.settings = settings or BGPSettings()
        self.speakers: dict[str, Speaker] = {}
        self._passwords: dict[str, str | None] = {}
        self._errors: dict[str, str] = {}  # session -> why it is not running
        self._lock = asyncio.Lock()
        self.counters = {"applies": 0, "session_restarts": 0}

    def _password(self, session: BGPSession) -> str | None:
        if session.password_ref is None:
            return None
        secret, key = session.password_ref
        path = self.settings.secrets_dir / secret / key
        try:
            return path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise SpeakerError(
                f'BGPPeer "{session.name}": passwordSecretRef {secret}/{key}: cannot read {path} '
                f"({exc.strerror}); mount the Secret there"
            ) from None

    async def apply(self, plan: Plan) -> None:
        async with self._lock:
            self.counters["applies"] += 1
            wanted = {s.name: s for s in plan.bgp_sessions}
            for name in [n for n in self.speakers if n not in wanted]:
                await self.speakers.pop(name).stop(withdraw=True)
                self._passwords.pop(name, None)
            for name in [n for n in self._errors if n not in wanted]:
                del self._errors[name]
            failures: list[str] = []
            for name, session in sorted(wanted.items()):
                try:
                    password = self._password(session)
                    speaker = self.speakers.get(name)
                    if speaker is not None and (
                        speaker.session != session or self._passwords.get(name) != password
                    ):
                        log.info('BGPPeer "%s": settings changed; restarting its session', name)
                        self.counters["session_restarts"] += 1
                        await self.speakers.pop(name).stop(withdraw=True)
                        speaker = None
                    if speaker is None:
                        speaker = Speaker(session, self.settings, password)
                        self._passwords[name] = password
                        await speaker.start()
                        self.speakers[name] = speaker
                    routes, skipped = wanted_routes(session, plan.bgp)
                    if skipped:
                        speaker.last_error = (
                            f"no next hop of the family of {', '.join(skipped[:3])}: "
                            "this node has no address of that family"
                        )
                    await speaker.set_routes(routes)
                    self._errors.pop(name, None)
                except (SpeakerError, OSError) as exc:
                    self._errors[name] = str(exc)
                    failures.append(str(exc))
            if failures:
                raise SpeakerError("; ".join(failures))

    async def close(self) -> None:
        async with self._lock:
            speakers, self.speakers = list(self.speakers.values()), {}
            await asyncio.gather(*(s.stop(withdraw=True) for s in speakers), return_exceptions=True)

    def status(self) -> Mapping[str, Any]:
        sessions: dict[str, Any] = {name: sp.status() for name, sp in sorted(self.speakers.items())}
        for name, error in self._errors.items():
            sessions.setdefault(name, {"state": "failed", "uptime_s": 0, "prefixes_sent": 0})[
                "last_error"
            ] = error
        return {
            "sessions": sessions,
            "established": sum(1 for s in self.speakers.values() if s.state == "established"),
            **self.counters,
        }
