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


def _schema_modules() -> set[str]:
    """Every module of ironlb/ itself: its files and real sub-packages, not the two links."""
    found = set()
    for path in (ROOT / "ironlb").iterdir():
        if path.is_symlink() or path.name.startswith(("_", ".")):
            continue
        if path.suffix == ".py" or (path / "__init__.py").is_file():
            found.add(f"ironlb.{path.stem}")
    return found


def test_the_schema_contract_names_every_schema_module() -> None:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (schema,) = [
        c for c in doc["tool"]["importlinter"]["contracts"] if c["name"].startswith("The shared schema")
    ]
    assert set(schema["source_modules"]) == _schema_modules()


def test_agent_and_components_are_imported_only_as_ironlb_agent_and_ironlb_components() -> None:
    """agent/ and components/ are also importable by their folder name from the repository
    root; importing them that way would load a second copy of every module (decision 0074)."""
    pattern = re.compile(r"^\s*(?:from|import)\s+(agent|components)\b", re.M)
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.py"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert len(tracked) > 100
    bad = [f for f in tracked if (ROOT / f).is_file() and pattern.search((ROOT / f).read_text())]
    assert bad == []
    for link, target in (("ironlb/agent", "../agent"), ("ironlb/components", "../components")):
        assert (ROOT / link).is_symlink() and str((ROOT / link).readlink()) == target
