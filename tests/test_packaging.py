"""Packaging: dependency groups, the hashed lock, the wheel, and the image's Python for real.

- The base ``dependencies`` are the agent's, the controller's and the schema's; the Pulumi
  side is the ``pulumi`` extra.  requirements/agent.txt pins every base dependency at its
  pyproject version, and ``scripts/lock --check`` finds it fresh (uv resolves against PyPI).
- The wheel ships IronLB's packages only: no ``lab``, ``bench`` or ``tests``, and nothing it
  ships imports them (``ironlb demo`` reaches ``lab`` lazily, from a checkout).
- The image's Python, installed for real with the final stage's commands: a venv without
  pip, the lock (hashes required, wheels only, no deps), the wheel built from the Docker
  context (``--no-deps``), ``pip check``.  There every agent, schema and CLI module imports,
  no Pulumi-side module is importable, both roles' console scripts start, ``ironlb validate``
  works, and ``ironlb render``/``plan``/``demo`` fail with one line saying what is missing.
  The same runs on each Python 3.12/3.13 the machine has (pyenv's here); a version it lacks
  is skipped with that reason.
- The size of that closure is measured and held under a ceiling (ADR 0052 has the figures).

Needs PyPI (pip and uv download the locked wheels; their caches make reruns fast).
"""

from __future__ import annotations

import ast
import glob
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ironlb_cli.main import PULUMI_SIDE
from tests.image_support import (
    AGENT_LOCK,
    ROOT,
    build_image_wheel,
    console_script,
    install_image_python,
    run_in_image,
    run_script,
    site_packages,
    tree_size,
)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: the top-level packages of the wheel (decision 0074), and the folders they are built from
SHIPPED = ("ironlb", "ironlb_cli")
SOURCES = ("ironlb", "agent", "components", "ironlb_cli")
REPO_ONLY = ("lab", "bench", "tests")
#: installed size of the agent's Python closure (requirements/agent.txt, bytecode included):
#: 37.6 MB measured in 2026-12; the Pulumi-only packages it no longer carries were 145 MB
CLOSURE_CEILING_MB = 55


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _version(requirement: str) -> str | None:
    found = re.search(r"==([^;,\s]+)", requirement)
    return found[1] if found else None


def locked() -> dict[str, str]:
    text = AGENT_LOCK.read_text()
    return {
        n.lower().replace("_", "-"): v for n, v in re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)", text, re.M)
    }


# --- the groups and the lock ------------------------------------------------------------------


def test_every_base_dependency_is_locked_at_its_pyproject_version() -> None:
    deps = PYPROJECT["project"]["dependencies"]
    assert deps
    lock = locked()
    for requirement in deps:
        assert _version(requirement), f"{requirement}: base dependencies are pinned exactly"
        assert lock.get(_name(requirement)) == _version(requirement), f"{requirement}: run ./scripts/lock"


def test_the_lock_is_what_a_fresh_resolution_gives() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "lock"), "--check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_pulumi_side_is_an_extra_that_dev_pins_exactly() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    base = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    pulumi = {_name(r): r for r in extras["pulumi"]}
    assert {"pulumi", "pulumi-kubernetes", "cryptography", "kubernetes-validate"} <= set(pulumi)
    assert not base & {"pulumi", "pulumi-kubernetes", "pulumi-policy", "protobuf", "cryptography"}
    dev = {_name(r): r for r in extras["dev"]}
    assert "ironlb[pulumi]" in extras["dev"], "dev installs the extra, so ./scripts/setup is unchanged"
    for name, requirement in pulumi.items():
        exact = _version(requirement) or _version(dev.get(name, ""))
        assert exact, f"{name}: the extra gives a range, so dev must pin the tested version exactly"
        if "<" in requirement:  # a range: its floor is the version CI tests
            assert f">={exact}" in requirement, f"{requirement} vs dev's {exact}"


def test_the_cli_knows_every_module_the_extra_installs() -> None:
    """PULUMI_SIDE (ironlb_cli/main.py) names the modules whose absence means "install the extra"."""
    providers = importlib.metadata.packages_distributions()
    for requirement in PYPROJECT["project"]["optional-dependencies"]["pulumi"]:
        name = _name(requirement)
        modules = {
            m for m, dists in providers.items() if name in {_name(d) for d in dists} and m.isidentifier()
        }
        assert modules, f"{name} is not installed in this environment"
        assert modules <= PULUMI_SIDE, f"{name} installs {sorted(modules - PULUMI_SIDE)}: add to PULUMI_SIDE"


# --- what the wheel ships ---------------------------------------------------------------------


def _python_files(package: str) -> Iterator[Path]:
    yield from (p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(top-level module, imported at module level) for every absolute import in ``path``."""
    tree = ast.parse(path.read_text())
    top_level = {id(n) for n in tree.body} | {
        id(n) for stmt in tree.body if isinstance(stmt, ast.If | ast.Try) for n in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.partition(".")[0], id(node) in top_level


def test_nothing_shipped_imports_the_repository_only_packages() -> None:
    found = []
    for package in SOURCES:
        for path in _python_files(package):
            for module, at_top in _imports(path):
                if module in REPO_ONLY:
                    found.append((path.relative_to(ROOT).as_posix(), module, at_top))
    assert found, "ironlb demo uses the lab (this check must see it)"
    assert {(f, m) for f, m, _ in found} == {("ironlb_cli/demo.py", "lab")}, found
    assert not [f for f in found if f[2]], "only lazily, after use_checkout_lab()"


def test_the_agent_side_imports_only_what_the_lock_installs() -> None:
    """Every outside module agent/ and ironlb/ import (lazily too), and ironlb_cli/ at module
    level, comes from a distribution in requirements/agent.txt."""
    providers = importlib.metadata.packages_distributions()
    lock = set(locked())
    ours = set(SHIPPED) | set(REPO_ONLY)
    bad = []
    for package, lazy_too in (("agent", True), ("ironlb", True), ("ironlb_cli", False)):
        for path in _python_files(package):
            for module, at_top in _imports(path):
                if module in sys.stdlib_module_names or module in ours or not (at_top or lazy_too):
                    continue
                dists = {_name(d) for d in providers.get(module, [])}
                if not dists & lock:
                    bad.append(f"{path.relative_to(ROOT)}: {module} ({', '.join(sorted(dists)) or '?'})")
    assert not bad, "imports outside the agent's closure:\n" + "\n".join(bad)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The builds' directory (wheels and virtualenvs, ~150 MB), removed after the module:
    pytest's retention keeps only failed tests' own tmp_path, not a factory's directories."""
    path = tmp_path_factory.mktemp("packaging")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def full_wheel(work: Path) -> Path:
    """The wheel as PyPI would get it: built from the whole repository (lab/, bench/ included)."""
    src, dist = work / "repo", work / "full-dist"
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src / "pyproject.toml")
    for package in (*SOURCES, "policy", "lab", "bench"):
        shutil.copytree(
            ROOT / package,
            src / package,
            symlinks=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = dist.glob("ironlb-*.whl")
    return wheel


def test_the_wheel_ships_ironlbs_packages_and_nothing_repository_only(full_wheel: Path) -> None:
    with zipfile.ZipFile(full_wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == set(SHIPPED), tops  # no agent, components, policy or lab beside a user's own
    for package in ("ironlb/agent/", "ironlb/components/"):
        assert any(n.startswith(package) for n in names), package
    for script in ("ironlb", "ironlb-agent", "ironlb-controller"):
        assert re.search(rf"^{script} = ", entry_points, flags=re.M), script
    requires = re.findall(r"^Requires-Dist: (.+)$", meta, flags=re.M)
    unconditional = sorted(r for r in requires if "extra ==" not in r)
    assert [r.replace(" ", "") for r in unconditional] == sorted(
        r.replace(" ", "") for r in PYPROJECT["project"]["dependencies"]
    )
    assert re.search(r'^Requires-Dist: pulumi<4,>=3\.\d+\.\d+; extra == "pulumi"$', meta, flags=re.M), (
        requires
    )
    assert "Requires-Python: >=3.11" in meta


# --- the image's Python, for real -------------------------------------------------------------


@dataclass(frozen=True)
class ImagePython:
    version: str
    venv: Path  # the lock, then the image's wheel, installed as the final stage does
    lock_bytes: int

    def run(self, code: str, *extra_paths: Path) -> subprocess.CompletedProcess[str]:
        first = "".join(f"import sys; sys.path.insert(0, {str(p)!r})\n" for p in extra_paths)
        return run_in_image(self.venv, first + code)


def _interpreter(version: str) -> str | None:
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    found = [shutil.which(f"python{version}"), *pyenv]
    for candidate in filter(None, found):
        probe = subprocess.run(
            [candidate, "-c", "import sys, pip; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


@pytest.fixture(scope="module")
def image_wheel(work: Path) -> Path:
    return build_image_wheel(sys.executable, work / "image-build")


@pytest.fixture(scope="module", params=["3.11", "3.12", "3.13"])
def image(request: pytest.FixtureRequest, work: Path, image_wheel: Path) -> ImagePython:
    version = request.param
    python = _interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} with pip on this machine")
    venv = work / f"venv-{version}"
    lock_bytes = install_image_python(python, venv, image_wheel)
    return ImagePython(version, venv, lock_bytes)


def test_every_agent_schema_and_cli_module_imports_in_the_image(image: ImagePython) -> None:
    code = """
import importlib, json, pkgutil
failed = {}
for package in ("ironlb", "ironlb_cli"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # reported, the test fails on it
            failed[info.name] = repr(exc)
print(json.dumps(failed))
"""
    done = image.run(code)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}


def test_the_image_has_no_pulumi_side_module(image: ImagePython) -> None:
    code = f"import importlib.util as u; print(sorted(m for m in {sorted(PULUMI_SIDE)!r} if u.find_spec(m)))"
    done = image.run(code)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["ironlb-agent", "--help"], "--source"),
        (["ironlb-controller", "--help"], "usage: ironlb-controller"),
        (["ironlb", "--help"], "validate"),
    ],
    ids=["the speaker", "the controller", "the CLI"],
)
def test_both_roles_and_the_cli_start_in_the_image(image: ImagePython, argv: list[str], expect: str) -> None:
    done = run_script(image.venv, argv)
    assert done.returncode == 0, done.stderr[-3000:]
    assert expect in done.stdout


def test_ironlb_validate_works_in_the_image(image: ImagePython) -> None:
    files = sorted(str(p) for p in (ROOT / "tests" / "data" / "valid").glob("*.yaml"))
    assert files
    done = run_script(image.venv, ["ironlb", "validate", *files])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("valid:"), done.stdout


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_render_without_the_pulumi_side_says_what_to_install(image: ImagePython, tmp_path: Path) -> None:
    argv = ["ironlb", "render", "--stack", "dev", "--out", str(tmp_path / "out")]
    line = _one_line_error(run_script(image.venv, argv))
    assert line == (
        "error: `ironlb render` needs IronLB's Pulumi side (module 'ironlb.components' is not installed): "
        "pip install 'ironlb[pulumi]'"
    )


def test_render_from_the_full_wheel_without_the_extra_says_what_to_install(
    image: ImagePython, full_wheel: Path, tmp_path: Path
) -> None:
    """A user's `pip install ironlb` (no extra): the components are there, the Pulumi SDK isn't."""
    site = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(full_wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    for command in (["render", "--stack", "dev", "--out", str(tmp_path / "out")], ["plan", "--stack", "dev"]):
        line = _one_line_error(image.run(console_script("ironlb_cli.main:main", ["ironlb", *command]), site))
        assert line == (
            f"error: `ironlb {command[0]}` needs IronLB's Pulumi side (module 'pulumi' is not installed): "
            "pip install 'ironlb[pulumi]'"
        )


def test_the_demo_outside_a_checkout_says_it_needs_one(image: ImagePython) -> None:
    line = _one_line_error(run_script(image.venv, ["ironlb", "demo", "--once"]))
    if os.geteuid() != 0:
        assert "run it as root" in line
    else:
        assert line.startswith("error: ironlb demo runs from a source checkout of IronLB"), line


@pytest.mark.parametrize("image", ["3.11"], indirect=True)  # the image's Python
def test_the_agent_closure_is_small(image: ImagePython) -> None:
    total = tree_size(site_packages(image.venv))
    print(
        json.dumps(
            {"agent_closure_mb": round(image.lock_bytes / 1e6, 1), "with_ironlb_mb": round(total / 1e6, 1)}
        )
    )
    assert image.lock_bytes < CLOSURE_CEILING_MB * 1e6, f"{image.lock_bytes / 1e6:.1f} MB"
    assert total - image.lock_bytes < 5e6, "IronLB's own wheel, installed"


def test_a_users_program_with_its_own_components_folder_uses_ironlb_without_a_clash(tmp_path: Path) -> None:
    """The Pulumi boilerplate's layout: the user's program has its own ``components/``."""
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "__init__.py").write_text("WHOSE = 'the user'\n")
    (tmp_path / "__main__.py").write_text(
        "import components\n"
        "from ironlb.components import IpPool, LoadBalancerService, NodeAgent\n"
        "print(components.WHOSE, IpPool.__module__, NodeAgent.__name__, LoadBalancerService.__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [
        "the",
        "user",
        "ironlb.components.resources",
        "NodeAgent",
        "LoadBalancerService",
    ]
