"""The import layers in pyproject.toml hold (import-linter): the schema imports nothing of ours, etc.

import-linter is run from the same environment as the tests (``sys.executable``'s bin
directory), not looked up on PATH: on a fresh clone ``.venv/bin`` is not on PATH.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _contracts() -> int:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return len(doc["tool"]["importlinter"]["contracts"])


def test_import_linter_contracts_are_kept() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    assert exe.is_file(), f"import-linter is a dev dependency ({exe} missing); pip install -e '.[dev]'"
    proc = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"Contracts: (\d+) kept, (\d+) broken", proc.stdout)
    assert found is not None, proc.stdout
    assert (int(found[1]), int(found[2])) == (_contracts(), 0), proc.stdout
