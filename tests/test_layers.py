"""The import layers in pyproject.toml hold (import-linter): the schema imports nothing of ours, etc."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports")
    assert exe is not None, "import-linter is a dev dependency; pip install -e '.[dev]'"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
    assert "Contracts: 3 kept" in proc.stdout or "kept" in proc.stdout
