"""Fixtures for lab tests (root, network namespaces; see :mod:`lab` for the topology).

- ``lab``: a fresh 3-node lab per test, torn down even when the test fails.
- ``make_lab``: ``make_lab(nodes=5)`` for another size; every lab it made is torn down.

Everything under tests/lab/ is a lab test (tests/conftest.py skips it when not root,
and fails it under CI when not root).  On failure the per-run logs of spawned processes
are printed, so a red CI run shows what the agents said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from lab import Lab


def _dump_logs(lab: Lab) -> None:
    for path in sorted(lab.workdir.glob("*.log")):
        text = path.read_text(errors="replace")
        print(f"----- {path.name} (last 60 lines) -----")
        print("\n".join(text.splitlines()[-60:]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        item.stash[_FAILED] = True


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def make_lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    labs: list[Lab] = []

    def make(nodes: int = 3) -> Lab:
        lab = Lab(nodes=nodes)
        labs.append(lab)
        return lab.build()

    try:
        yield make
    finally:
        for lab in labs:
            if request.node.stash.get(_FAILED, False):
                _dump_logs(lab)
            lab.teardown()


@pytest.fixture
def lab(make_lab: Callable[..., Lab]) -> Lab:
    return make_lab(3)
