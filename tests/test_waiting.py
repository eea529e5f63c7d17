"""lab.waiting, the one polling helper: it returns what satisfied the wait, and a failure says
what was waited for and what was seen last."""

from __future__ import annotations

import itertools
import time

import pytest

from lab import LabError
from lab.waiting import WaitTimeout, always, eventually, holds, wait_for


def counter(start: int = 0) -> itertools.count[int]:
    return itertools.count(start)


def test_wait_for_returns_the_first_value_that_is_ok() -> None:
    values = counter()
    assert wait_for("three reads", lambda: next(values), lambda n: n >= 3, interval=0) == 3


def test_wait_for_by_default_waits_for_a_truthy_value() -> None:
    answers = iter([None, "", "node2"])
    assert wait_for("an owner", lambda: next(answers), interval=0) == "node2"


def test_a_timeout_names_what_was_awaited_and_the_last_value_seen() -> None:
    values = counter()
    with pytest.raises(WaitTimeout) as caught:
        wait_for("the route at the router", lambda: {"read": next(values)}, lambda _: False, timeout=0.05)
    message = str(caught.value)
    assert "waiting for the route at the router" in message
    assert "after 0.05 s" in message
    last = int(message.rsplit("'read': ", 1)[1].rstrip("}"))
    assert last >= 1, message  # the value of the final read, taken at the deadline
    assert isinstance(caught.value, LabError), "a lab driver (the demo) catches every lab failure as one"


def test_the_probe_is_read_once_more_at_the_deadline() -> None:
    """A probe slower than the timeout still gets a read after the deadline has passed."""
    reads: list[float] = []

    def slow() -> bool:
        reads.append(time.monotonic())
        time.sleep(0.03)
        return len(reads) == 2

    assert wait_for("the second read", slow, timeout=0.01, interval=0)


def test_abort_gives_up_at_once_with_its_reason() -> None:
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"gave up waiting for the socket: agent exited 1"):
        wait_for("the socket", lambda: False, timeout=30, abort=lambda: "agent exited 1")
    assert time.monotonic() - start < 5


def test_holds_reads_for_the_whole_window_and_returns_the_last_value() -> None:
    values = counter()
    start = time.monotonic()
    assert (
        holds("reads stay small", lambda: next(values), lambda n: n < 10**6, seconds=0.1, interval=0.01) > 2
    )
    assert time.monotonic() - start >= 0.1


def test_holds_fails_at_the_first_value_that_breaks_it() -> None:
    values = counter()
    with pytest.raises(AssertionError, match=r"no second write did not hold for 5 s: .* value was 3"):
        holds("no second write", lambda: next(values), lambda n: n < 3, seconds=5, interval=0)


async def test_eventually_takes_plain_and_coroutine_probes() -> None:
    values = counter()

    async def read() -> int:
        return next(values)

    assert await eventually("a plain probe", lambda: next(values), lambda n: n >= 2, interval=0) >= 2
    assert await eventually("a coroutine probe", read, lambda n: n >= 5, interval=0) >= 5
    assert await eventually("a truthy value", lambda: read()) > 0


async def test_eventually_times_out_with_the_last_value() -> None:
    async def read() -> list[str]:
        return ["node1"]

    with pytest.raises(WaitTimeout, match=r"waiting for two owners; last value: \['node1'\]"):
        await eventually("two owners", read, lambda owners: len(owners) == 2, timeout=0.05)


async def test_eventually_aborts_with_its_reason() -> None:
    with pytest.raises(WaitTimeout, match="gave up waiting for a leader: the API server exited"):
        await eventually("a leader", lambda: None, timeout=30, abort=lambda: "the API server exited")


async def test_always_fails_at_the_first_value_that_breaks_it() -> None:
    values = counter()
    await always("small", lambda: next(values), lambda n: n < 10**6, seconds=0.05, interval=0.01)
    with pytest.raises(AssertionError, match="one write did not hold"):
        await always("one write", lambda: next(values), lambda n: n < 0, seconds=5)


def test_an_answer_written_just_before_the_process_exited_is_still_read() -> None:
    """The abort is asked before each read: the read after "it exited" sees all it wrote."""
    log: list[str] = []
    asked = itertools.count()

    def exited() -> str | None:
        if next(asked) == 0:
            return None  # the first read finds nothing yet
        log.append("moved node2")  # meanwhile it answered, then exited
        return "the watcher exited 0"

    answer = wait_for("the watcher's answer", lambda: log[-1] if log else None, abort=exited, interval=0)
    assert answer == "moved node2"
