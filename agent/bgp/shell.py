"""The BGP shell: turns each new :class:`~ironlb.agent.announcements.Plan` into BIRD's configuration.

``apply(plan)`` builds, for every session the plan keeps, its routes (prefix ->
communities, local preference; the next hop is the session's address of the family) and
its MD5 password (read from ``<secrets_dir>/<secret>/<key>``, never logged), renders the
whole BIRD configuration (:mod:`ironlb.agent.bgp.birdconf`) and hands it to the speaker only if
it changed:

- the first session starts BIRD; no session left stops it (every session sends a Cease);
- otherwise BIRD reloads and diffs: changed routes are sent as UPDATEs, a session whose
  lines changed (timers, password, BFD...) is restarted, the others are never touched.

A session whose password cannot be read keeps the password it had (and is reported);
without one it is left out until the file appears.  A route of a family the node has no
address for is skipped and noted in ``last_error``.  ``close()`` shuts BIRD down for a
graceful restart: sessions with graceful restart keep their routes at the routers for the
restart time, the others are withdrawn at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ironlb.agent.announcements import BGPRoute, BGPSession, Plan
from ironlb.agent.bgp import birdconf
from ironlb.agent.bgp.birdconf import Peering, RouteLike
from ironlb.agent.bgp.settings import BGPSettings
from ironlb.agent.bgp.speaker import Speaker, SpeakerError

log = logging.getLogger(__name__)


def wanted_routes(session: BGPSession, routes: tuple[BGPRoute, ...]) -> tuple[dict[str, BGPRoute], list[str]]:
    """(prefix -> route for ``session``, prefixes skipped for lack of a next hop of their family)."""
    has4 = any(":" not in a for a in session.next_hops)
    has6 = any(":" in a for a in session.next_hops)
    name = session.name
    out: dict[str, BGPRoute] = {}
    skipped: list[str] = []
    for route in routes:  # the hot loop at 10k routes: no object built per route
        if name not in route.peers:
            continue
        if has6 if ":" in route.prefix else has4:
            out[route.prefix] = route
        else:
            skipped.append(route.prefix)
    return out, skipped


class BGPShell:
    """The agent's BGP speaker: one BIRD for every session of this node (see module docstring)."""

    def __init__(self, node: str, settings: BGPSettings | None = None) -> None:
        self.node = node
        self.settings = settings or BGPSettings()
        self.speaker = Speaker(self.settings, node)
        self.sessions: dict[str, BGPSession] = {}
        self.routes: dict[str, Mapping[str, RouteLike]] = {}
        self._passwords: dict[str, str | None] = {}
        self._errors: dict[str, str] = {}  # session -> why it is not (fully) running
        self._notes: dict[str, str] = {}  # session -> routes skipped
        self._lock = asyncio.Lock()
        self.counters = {"applies": 0, "session_restarts": 0}

    @property
    def on_change(self) -> Callable[[], None]:
        """Called when a session changes state (the speaker's poll notices it)."""
        return self.speaker.on_change

    @on_change.setter
    def on_change(self, callback: Callable[[], None]) -> None:
        self.speaker.on_change = callback

    def _password(self, session: BGPSession) -> str | None:
        if session.password_ref is None:
            return None
        secret, key = session.password_ref
        path = self.settings.secrets_dir / secret / key
        where = f'BGPPeer "{session.name}": passwordSecretRef {secret}/{key}'
        try:
            text = path.read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise SpeakerError(f"{where}: cannot read {path} ({why}); mount the Secret there") from None
        problem = birdconf.password_problem(text)
        if problem:
            raise SpeakerError(f"{where}: the password {problem}")
        return text

    def _peerings(self, plan: Plan) -> list[Peering]:
        self._errors, self._notes = {}, {}
        peerings = []
        for session in sorted(plan.bgp_sessions):
            name = session.name
            try:
                password = self._password(session)
            except SpeakerError as exc:
                self._errors[name] = str(exc)
                if self.sessions.get(name) != session or name not in self._passwords:
                    continue  # nothing it ran with before: leave it out until the file is readable
                password = self._passwords[name]  # keep the session up on the password it has
            routes, skipped = wanted_routes(session, plan.bgp)
            if skipped:
                self._notes[name] = (
                    f"no next hop of the family of {', '.join(skipped[:3])}: "
                    "this node has no address of that family"
                )
            if name in self.sessions and (self.sessions[name], self._passwords.get(name)) != (
                session,
                password,
            ):
                self.counters["session_restarts"] += 1
                log.info('BGPPeer "%s": settings changed; BIRD restarts this session only', name)
            peerings.append(Peering(session, routes, password))
        self.sessions = {p.session.name: p.session for p in peerings}
        self._passwords = {p.session.name: p.password for p in peerings}
        self.routes = {p.session.name: p.routes for p in peerings}
        return peerings

    async def apply(self, plan: Plan) -> None:
        async with self._lock:
            self.counters["applies"] += 1
            peerings = self._peerings(plan)
            errors = list(self._errors.values())
            try:
                if not peerings:
                    if self.speaker.state != "stopped":
                        await self.speaker.stop(graceful=False)  # no session wanted: withdraw everything
                else:
                    config = birdconf.render(self.node, peerings, listen_port=self.settings.listen_port)
                    if self.speaker.state == "stopped":
                        await self.speaker.start(config)
                    elif config != self.speaker.config:
                        await self.speaker.configure(config)
            except (SpeakerError, OSError) as exc:
                errors.append(str(exc))
            if errors:
                raise SpeakerError("; ".join(errors))

    async def close(self) -> None:
        async with self._lock:
            await self.speaker.stop(graceful=True)
            self.sessions, self.routes = {}, {}

    def _session_status(self, session: BGPSession) -> dict[str, Any]:
        proto = self.speaker.protocols.get(birdconf.protocol_name(session.name))
        if proto is None:
            state = "idle" if self.speaker.state == "running" else self.speaker.state
        else:
            state = (proto.bgp_state or proto.state).lower()
        up = state == "established" and proto is not None and proto.since is not None
        routes = self.routes.get(session.name, {})
        error = self._errors.get(session.name) or (proto.last_error if proto else "") or ""
        row: dict[str, Any] = {
            "peer": session.peer_address,
            "state": state,
            "uptime_s": round(max(0.0, time.time() - proto.since), 1) if up and proto and proto.since else 0,
            "prefixes_sent": proto.exported if up and proto else 0,
            "prefixes": len(routes),
            "last_error": error or self._notes.get(session.name, ""),
            "graceful_restart": session.graceful_restart,
        }
        if session.bfd is not None:
            row["bfd"] = self.speaker.bfd.get(session.peer_address, "down").lower()
        return row

    def status(self) -> Mapping[str, Any]:
        sessions: dict[str, Any] = {
            name: self._session_status(s) for name, s in sorted(self.sessions.items())
        }
        for name, error in self._errors.items():
            sessions.setdefault(name, {"state": "failed", "uptime_s": 0, "prefixes_sent": 0})[
                "last_error"
            ] = error
        return {
            "speaker": self.speaker.status(),
            "sessions": sessions,
            "established": sum(1 for s in sessions.values() if s.get("state") == "established"),
            **self.counters,
        }
