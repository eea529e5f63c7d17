"""Test-wide rules.

Lab tests (``@pytest.mark.lab``, or anything under ``tests/lab/``) build network
namespaces and need root.  Outside CI a non-root run skips them with a reason; under CI
(``CI=true``) a non-root run fails them, because CI must really exercise the network.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterator

import pytest

_SYNC_LOOP: asyncio.AbstractEventLoop | None = None


def _is_lab(item: pytest.Item) -> bool:
    return "lab" in item.keywords or f"{os.sep}lab{os.sep}" in str(item.path)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _is_lab(item) or os.geteuid() == 0:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("lab tests must run as root in CI (network namespaces)")
    pytest.skip("lab tests need root (network namespaces)")


@pytest.fixture(autouse=True)
def _current_event_loop_for_sync_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give synchronous tests a current event loop.

    Pulumi's SDK (mocks, ``@pulumi.runtime.test``) calls ``asyncio.get_event_loop()`` from
    synchronous code. After any ``asyncio.run()`` or pytest-asyncio test, Python 3.11 has
    no current loop and that call raises, so a Pulumi test would pass alone but fail after
    an agent test. Async tests keep pytest-asyncio's own loop.
    """
    global _SYNC_LOOP
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            current = None
        if current is None or current.is_closed():
            if _SYNC_LOOP is None or _SYNC_LOOP.is_closed():
                _SYNC_LOOP = asyncio.new_event_loop()
            asyncio.set_event_loop(_SYNC_LOOP)
    yield
