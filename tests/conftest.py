"""Test-wide rules.

Lab tests (``@pytest.mark.lab``, or anything under ``tests/lab/``) build network
namespaces and need root.  Outside CI a non-root run skips them with a reason; under CI
(``CI=true``) a non-root run fails them, because CI must really exercise the network.
"""

from __future__ import annotations

import os

import pytest


def _is_lab(item: pytest.Item) -> bool:
    return "lab" in item.keywords or f"{os.sep}lab{os.sep}" in str(item.path)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _is_lab(item) or os.geteuid() == 0:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("lab tests must run as root in CI (network namespaces)")
    pytest.skip("lab tests need root (network namespaces)")
