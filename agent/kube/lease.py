"""Leader election on a coordination.k8s.io/v1 Lease, written by hand.

(The official client's asyncio LeaseLock is broken; lightkube has none.)  The protocol is
client-go's, reduced to its core:

- **Acquire**: ``get`` the Lease; create it if missing.  If another holder's record has not
  changed for ``leaseDurationSeconds`` *as observed on our own monotonic clock* (so skewed
  wall clocks between nodes do not matter), take it over.
- **Every write is a compare-and-swap**: ``replace`` (PUT) carrying the resourceVersion we
  read; a 409 means someone else wrote first, and we simply lost this round.
- **Renew** every ``retry_period``; a leader that cannot renew within ``renew_deadline``
  steps down *before* its lease can expire for the others (renew_deadline < duration).
  Followers read every half ``retry_period``, so a crashed leader is replaced at most
  ``duration + retry_period`` after its last renewal.
- **Release** on shutdown (holder emptied), so a clean restart hands over at once instead
  of after a full lease duration.

An unreachable API server never raises out of :meth:`LeaseElector.run`: a follower keeps
trying, a leader steps down at its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ironlb.agent.kube.client import LEASES, Conflict, KubeClient, KubeError, NotFound
from ironlb.agentconfig import AgentConfig, LeaseOptions

_DEFAULT = LeaseOptions()  # the defaults live in the settings model (one place)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    name: str = _DEFAULT.name
    namespace: str = AgentConfig.model_fields["namespace"].default
    duration: float = _DEFAULT.duration_seconds
    """Seconds a holder's record must stay unchanged before others may take over."""
    renew_deadline: float = _DEFAULT.renew_deadline_seconds
    """A leader that has not renewed for this long steps down (must be < duration)."""
    retry_period: float = _DEFAULT.retry_period_seconds
    """Seconds between attempts (renewals for the leader, acquisitions for the others)."""

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                f"lease timings must satisfy 0 < retry_period ({self.retry_period}) < renew_deadline "
                f"({self.renew_deadline}) < duration ({self.duration})"
            )


def micro_time(now: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Campaigns for one Lease as ``identity``; :attr:`is_leader` says whether we hold it."""

    def __init__(
        self,
        client: KubeClient,
        identity: str,
        settings: LeaseSettings | None = None,
        *,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.client = client
        self.identity = identity
        self.settings = settings or LeaseSettings()
        self.on_change = on_change
        self.clock, self.wall = clock, wall
        self.is_leader = False
        self.holder: str | None = None  # last holder we saw (for status)
        self.transitions = 0  # leadership changes seen by this elector
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self.leading = asyncio.Event()

    # --- one round --------------------------------------------------------------------

    def _body(self, old: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
        spec = dict((old or {}).get("spec") or {})
        taking_over = spec.get("holderIdentity") != self.identity
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=math.ceil(self.settings.duration),  # whole seconds, never shorter
            renewTime=micro_time(now),
        )
        if taking_over:
            spec["acquireTime"] = micro_time(now)
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if old else 0)
        meta: dict[str, Any] = {"name": self.settings.name, "namespace": self.settings.namespace}
        if old is not None:
            meta = {**(old.get("metadata") or {}), **meta}
        return {"apiVersion": LEASES.api_version, "kind": LEASES.kind, "metadata": meta, "spec": spec}

    def _expired(self, lease: dict[str, Any]) -> bool:
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        now = self.clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.settings.duration)
        return not spec.get("holderIdentity") or now - self._observed_at >= duration

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True when we hold the Lease afterwards. Raises KubeError if unreachable."""
        now = self.wall()
        try:
            lease = await self.client.get(LEASES, self.settings.name, self.settings.namespace)
        except NotFound:
            try:
                await self.client.create(LEASES, self._body(None, now))
            except Conflict:
                return False
            self.holder = self.identity
            return True
        self.holder = (lease.get("spec") or {}).get("holderIdentity")
        if self.holder != self.identity and not self._expired(lease):
            return False
        try:
            await self.client.replace(LEASES, self._body(lease, now))
        except Conflict:
            return False
        self.holder = self.identity
        return True

    # --- the loop ---------------------------------------------------------------------

    def _set(self, leader: bool) -> None:
        if leader == self.is_leader:
            return
        self.is_leader = leader
        self.transitions += 1
        (self.leading.set if leader else self.leading.clear)()
        log.info(
            "lease %s/%s: %s", self.settings.namespace, self.settings.name, "acquired" if leader else "lost"
        )
        if self.on_change is not None:
            self.on_change(leader)

    async def run(self) -> None:
        """Campaign and renew until cancelled; releases the Lease on the way out."""
        try:
            while True:
                try:  # asyncio.timeout: 3.11's wait_for can swallow a cancellation (gh-86296)
                    async with asyncio.timeout(self.settings.retry_period * 2):
                        ok = await self.try_acquire_or_renew()
                except (KubeError, TimeoutError) as exc:
                    log.warning("lease %s: %s", self.settings.name, exc)
                    ok = False
                if ok:
                    self._last_renew = self.clock()
                    self._set(True)
                elif not self.is_leader or self.clock() - self._last_renew >= self.settings.renew_deadline:
                    self._set(False)
                # A follower looks twice as often as the leader writes: it notices the last
                # renewal sooner, so it takes over sooner after a crash (reads are cheap).
                await asyncio.sleep(self.settings.retry_period / (1 if self.is_leader else 2))
        finally:
            if self.is_leader:
                await asyncio.shield(self._release())
            self._set(False)

    async def _release(self) -> None:
        try:
            lease = await asyncio.wait_for(
                self.client.get(LEASES, self.settings.name, self.settings.namespace), 2.0
            )
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            body = self._body(lease, self.wall())
            body["spec"].update(holderIdentity="", leaseDurationSeconds=1)
            await asyncio.wait_for(self.client.replace(LEASES, body), 2.0)
        except (KubeError, TimeoutError) as exc:
            log.warning("could not release lease %s: %s", self.settings.name, exc)
