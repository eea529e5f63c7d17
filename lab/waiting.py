"""Waiting on something observable: the one polling helper of the lab, its tests and benchmarks.

Whoever waits for an outcome (a route at the router, an owner in a status file, an object
in the API server, a socket appearing) polls it with :func:`wait_for`, or with
:func:`eventually` from a coroutine. Both take:

- ``what``: the outcome in words ("node1's path withdrawn"), for the failure message;
- ``probe``: reads the current value (for :func:`eventually` a function or a coroutine
  function);
- ``ok``: whether that value is the outcome (default: it is truthy);
- ``timeout``, ``interval`` (seconds, keyword-only);
- ``abort`` (optional): asked every round whether waiting has become pointless (the process
  that should answer has exited); its reason is raised at once, with what was waited for.

They return the value that satisfied ``ok``. On timeout they raise :class:`WaitTimeout`
naming ``what``, the time allowed and the **last value observed**, so a red run shows what
was seen, not only that time ran out.  The probe is read once more at the deadline, so a
slow probe never loses its last chance.

Showing that something did *not* happen is the other half: :func:`holds` (and
:func:`always`) read the probe for a whole window and fail at the first value that breaks
``ok``.  The window is the caller's claim of how long "nothing happened" must last to mean
something; callers pass it as a named constant with a comment saying why it is enough
(say, "3 heartbeat periods + the probe window").
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from lab.errors import WaitTimeout

__all__ = ["WaitTimeout", "always", "eventually", "holds", "wait_for"]

T = TypeVar("T")
Abort = Callable[[], "str | None"]


@dataclass
class _Until:
    """One wait's rules, free of sleeping: :meth:`pause` is asked after every read."""

    what: str
    ok: Callable[[Any], object]
    timeout: float
    interval: float
    abort: Abort | None
    now: Callable[[], float]
    last: bool = False
    reason: str | None = None

    def __post_init__(self) -> None:
        self.deadline = self.now() + self.timeout

    def reading(self) -> None:
        """A read is about to happen: is it the one at (or past) the deadline, or is waiting
        pointless? (Asked before the read, so a process that wrote its answer and exited is
        read once more before giving up.)"""
        self.last = self.now() >= self.deadline
        self.reason = self.abort() if self.abort is not None else None

    def pause(self, value: object) -> float | None:
        """None when ``value`` is the outcome; else the seconds to sleep before the next read."""
        if self.ok(value):
            return None
        if self.reason:
            raise WaitTimeout(f"gave up waiting for {self.what}: {self.reason}")
        if self.last:
            raise WaitTimeout(
                f"timed out after {self.timeout:g} s waiting for {self.what}; last value: {value!r}"
            )
        return max(0.0, min(self.interval, self.deadline - self.now()))


@dataclass
class _Holds:
    """One bounded negative check's rules, free of sleeping (see :func:`holds`)."""

    what: str
    ok: Callable[[Any], object]
    seconds: float
    interval: float
    now: Callable[[], float]

    def __post_init__(self) -> None:
        self.start = self.now()

    def pause(self, value: object) -> float | None:
        """None once the window is over; else the seconds to sleep; raise at a value breaking ``ok``."""
        elapsed = self.now() - self.start
        if not self.ok(value):
            held = f"after {elapsed:.2f} s the value was {value!r}"
            raise AssertionError(f"{self.what} did not hold for {self.seconds:g} s: {held}")
        return None if elapsed >= self.seconds else max(0.0, min(self.interval, self.seconds - elapsed))


@overload
def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    abort: Abort | None = ...,
) -> T: ...
@overload
def wait_for(
    what: str,
    probe: Callable[[], T],
    ok: Callable[[T], object],
    *,
    timeout: float = ...,
    interval: float = ...,
    abort: Abort | None = ...,
) -> T: ...
def wait_for(
    what: str,
    probe: Callable[[], Any],
    ok: Callable[[Any], object] = bool,
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    abort: Abort | None = None,
) -> Any:
    """Poll ``probe()`` until ``ok(value)`` (by default: until it is truthy, so never None);
    return that value (see the module docstring)."""
    rules = _Until(what, ok, timeout, interval, abort, time.monotonic)
    while True:
        rules.reading()
        value = probe()
        pause = rules.pause(value)
        if pause is None:
            return value
        time.sleep(pause)


def holds(
    what: str,
    probe: Callable[[], T],
    ok: Callable[[T], object] = bool,
    *,
    seconds: float,
    interval: float = 0.05,
) -> T:
    """Read ``probe()`` for ``seconds``; fail at the first value that breaks ``ok``; return the last."""
    rules = _Holds(what, ok, seconds, interval, time.monotonic)
    while True:
        value = probe()
        pause = rules.pause(value)
        if pause is None:
            return value
        time.sleep(pause)


async def _read(probe: Callable[[], Awaitable[T] | T]) -> T:
    value = probe()
    if inspect.isawaitable(value):
        return await value
    return value


# The overloads only type the four ways to call it (a plain or coroutine probe, with or without
# ``ok``), as wait_for's do; the one body below shares its rules with wait_for through _Until.
@overload
async def eventually(
    what: str,
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    interval: float = ...,
    abort: Abort | None = ...,
) -> T: ...
@overload
async def eventually(
    what: str,
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], object],
    *,
    timeout: float = ...,
    interval: float = ...,
    abort: Abort | None = ...,
) -> T: ...
@overload
async def eventually(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = ...,
    interval: float = ...,
    abort: Abort | None = ...,
) -> T: ...
@overload
async def eventually(
    what: str,
    probe: Callable[[], T],
    ok: Callable[[T], object],
    *,
    timeout: float = ...,
    interval: float = ...,
    abort: Abort | None = ...,
) -> T: ...
async def eventually(
    what: str,
    probe: Callable[[], Any],
    ok: Callable[[Any], object] = bool,
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    abort: Abort | None = None,
) -> Any:
    """:func:`wait_for` for a coroutine: ``probe`` may be a coroutine function; sleeps yield."""
    rules = _Until(what, ok, timeout, interval, abort, asyncio.get_running_loop().time)
    while True:
        rules.reading()
        value = await _read(probe)
        pause = rules.pause(value)
        if pause is None:
            return value
        await asyncio.sleep(pause)


@overload
async def always(
    what: str,
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], object] = ...,
    *,
    seconds: float,
    interval: float = ...,
) -> T: ...
@overload
async def always(
    what: str,
    probe: Callable[[], T],
    ok: Callable[[T], object] = ...,
    *,
    seconds: float,
    interval: float = ...,
) -> T: ...
async def always(
    what: str,
    probe: Callable[[], Any],
    ok: Callable[[Any], object] = bool,
    *,
    seconds: float,
    interval: float = 0.05,
) -> Any:
    """:func:`holds` for a coroutine: ``probe`` may be a coroutine function; sleeps yield."""
    rules = _Holds(what, ok, seconds, interval, asyncio.get_running_loop().time)
    while True:
        value = await _read(probe)
        pause = rules.pause(value)
        if pause is None:
            return value
        await asyncio.sleep(pause)
