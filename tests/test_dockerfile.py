"""agent/Dockerfile and its build context, checked statically (no Docker engine runs here).

What is checked: the base is pinned by digest and is the Python the lock is resolved for; the
final stage installs requirements/agent.txt with hashes required and no dependency resolution,
then IronLB's wheel with ``--no-deps``, checks the set, and leaves no pip, setuptools or
compiler behind; Debian packages are pinned; the default user is the unprivileged 65532; the
build context (.dockerignore, an allowlist) holds only what the image is built from; the lock
holds nothing of the Pulumi side.  tests/test_packaging.py installs that lock and wheel for
real and runs the entry points.  What is NOT checked: that ``docker build`` succeeds and the
image runs (the release workflow builds it), nor that the base digest is the one the registry
serves for its tag (ADR 0052 says where it comes from and how to move it).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import TypeVar

import pytest

from lab.cluster.image import image_config
from tests.image_support import (
    AGENT_LOCK,
    DOCKERFILE,
    LOCK_FLAGS,
    ROOT,
    context_files,
    global_args,
    instructions,
    stages,
)

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: distributions of the Pulumi side (the `pulumi` extra and what it pulls in) that must never
#: reach the agent image
PULUMI_SIDE_DISTS = re.compile(r"pulumi.*|grpcio.*|protobuf|cryptography|opentelemetry.*|debugpy|dill")
T = TypeVar("T")
BUILD_TOOLS = re.compile(r"gcc.*|g\+\+.*|cpp|make|build-essential|clang.*|.*-dev|python3?-pip|git")


def final() -> list[tuple[str, str]]:
    return stages()[-1][1]


def commands(stage: list[tuple[str, str]]) -> list[list[str]]:
    """Every shell command of the stage's RUN instructions, split on ``&&`` into argv lists."""
    out = []
    for word, rest in stage:
        if word == "RUN":
            out += [shlex.split(part) for part in rest.split("&&") if part.strip()]
    return out


def one(found: list[T], what: str) -> T:
    assert len(found) == 1, f"expected exactly one {what}, found {found}"
    return found[0]


def lock_names() -> list[str]:
    return re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", AGENT_LOCK.read_text(), flags=re.M)


def test_every_instruction_is_a_known_dockerfile_keyword() -> None:
    known = {"FROM", "ARG", "ENV", "WORKDIR", "COPY", "RUN", "LABEL", "USER", "EXPOSE", "ENTRYPOINT", "CMD"}
    found = instructions()
    assert found and {w for w, _ in found} <= known


def test_the_base_is_a_slim_python_pinned_by_digest_and_is_the_pythons_the_lock_is_for() -> None:
    image = global_args()["PYTHON_IMAGE"]
    pinned = re.fullmatch(r"python:(3\.\d+)\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image)
    assert pinned, f"PYTHON_IMAGE {image!r} must be python:3.X.Y-slim-bookworm@sha256:<digest>"
    froms = [rest for name, stage in stages()[1:] for word, rest in stage if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: a wheel-building stage and the image"
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms), froms
    lock_python = re.search(r"^PYTHON_VERSION=(\S+)", (ROOT / "scripts" / "lock").read_text(), flags=re.M)
    assert lock_python and lock_python[1] == pinned[1], "scripts/lock resolves for the image's Python"
    assert f"Programming Language :: Python :: {pinned[1]}" in PYPROJECT["project"]["classifiers"]
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_the_final_stage_installs_only_the_lock_with_hashes_then_the_wheel_without_deps() -> None:
    stage = final()
    copies = {shlex.split(rest)[-1]: shlex.split(rest)[:-1] for word, rest in stage if word == "COPY"}
    lock_path = one(
        [dst for dst, src in copies.items() if src == ["requirements/agent.txt"]], "COPY of the lock"
    )
    installs = [c for c in commands(stage) if c[:1] == ["pip"] and "install" in c]
    assert len(installs) == 2, installs
    lock, wheel = installs
    assert set(LOCK_FLAGS) <= set(lock) and lock[lock.index("-r") + 1] == lock_path, lock
    assert "--no-deps" in wheel and [a for a in wheel if a.endswith(".whl")], wheel
    assert all(c[c.index("--python") + 1] == "/opt/ironlb/bin/python" for c in installs), installs
    venv = one([c for c in commands(stage) if c[:3] == ["python", "-m", "venv"]], "python -m venv")
    assert "--without-pip" in venv and venv[-1] == "/opt/ironlb", venv
    assert any(c[:1] == ["pip"] and "check" in c for c in commands(stage)), "pip check the installed set"


def test_the_final_stage_leaves_no_pip_setuptools_or_build_tools() -> None:
    cmds = commands(final())
    uninstall = one([c for c in cmds if c[:2] == ["pip", "uninstall"]], "pip uninstall of pip itself")
    assert {"pip", "setuptools", "wheel"} <= set(uninstall), uninstall
    assert cmds.index(uninstall) > max(i for i, c in enumerate(cmds) if c[:1] == ["pip"] and "install" in c)
    assert not [c for c in cmds if c[:2] == ["pip", "wheel"]], "the wheel is built in the first stage"
    apt = [a for c in cmds if c[:2] == ["apt-get", "install"] for a in c[2:] if not a.startswith("-")]
    assert apt, "BIRD comes from Debian"
    for package in apt:
        name, sep, version = package.partition("=")
        assert sep and version, f"Debian package {package!r} must be pinned (name=version)"
        assert not BUILD_TOOLS.fullmatch(name), f"{name}: no build tools in the final stage"


def test_the_wheel_stage_builds_with_the_hashed_backend_and_no_isolation() -> None:
    name, stage = stages()[1]
    assert name == "wheel"
    cmds = commands(stage)
    backend = one([c for c in cmds if c[:2] == ["pip", "install"]], "pip install of the build backend")
    assert set(LOCK_FLAGS) <= set(backend) and backend[-1] == "requirements/build.txt", backend
    build = one([c for c in cmds if c[:2] == ["pip", "wheel"]], "pip wheel")
    assert {"--no-deps", "--no-build-isolation"} <= set(build), build
    pins = (ROOT / "requirements" / "build.txt").read_text()
    for requirement in PYPROJECT["build-system"]["requires"]:
        assert re.search(rf"^{re.escape(requirement)} ", pins, flags=re.M), f"{requirement}: ./scripts/lock"


def test_the_default_user_is_the_unprivileged_ironlb_user() -> None:
    users = [rest for word, rest in final() if word == "USER"]
    assert users == ["65532:65532"]
    created = " ".join(" ".join(c) for c in commands(final()) if c[:1] in (["groupadd"], ["useradd"]))
    assert "--gid 65532 ironlb" in created and "--uid 65532 --gid 65532" in created, created
    # the lab runs pods with the image's config read from this file: it sees the same user
    assert image_config("ghcr.io/ironlb/agent:0.1.0").user == "65532:65532"


def test_the_entrypoint_is_the_agent_and_both_roles_have_console_scripts() -> None:
    entry = [rest for word, rest in final() if word == "ENTRYPOINT"]
    assert entry == ['["ironlb-agent"]']
    scripts = PYPROJECT["project"]["scripts"]
    assert {"ironlb", "ironlb-agent", "ironlb-controller"} <= set(scripts)
    ran = {c[0] for c in commands(final()) if c and c[0].startswith("/opt/ironlb/bin/ironlb")}
    assert ran == {"/opt/ironlb/bin/ironlb-agent", "/opt/ironlb/bin/ironlb-controller"}, "both start at build"


def test_the_build_context_holds_only_what_the_image_is_built_from() -> None:
    files = context_files()
    assert {f.split("/")[0] for f in files} == {
        "pyproject.toml",
        "requirements",
        "ironlb",
        "agent",
        "ironlb_cli",
    }
    assert [f for f in files if f.startswith("requirements/")] == [
        "requirements/agent.txt",
        "requirements/build.txt",
    ]
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]
    assert "agent/main.py" in files and "ironlb/model.py" in files


def test_every_copied_source_is_in_the_context_whole() -> None:
    files = set(context_files())
    sources = [
        s
        for word, rest in instructions()
        if word == "COPY" and "--from" not in rest
        for s in shlex.split(rest)[:-1]
    ]
    assert sources, "the Dockerfile copies the project"
    for src in sources:
        path = ROOT / src
        assert path.exists(), src
        wanted = (
            {
                p.relative_to(ROOT).as_posix()
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts
            }
            if path.is_dir()
            else {src}
        )
        assert wanted and wanted <= files, f"{src}: {sorted(wanted - files)[:5]} excluded by .dockerignore"


def test_the_lock_holds_nothing_of_the_pulumi_side_and_every_pin_is_hashed() -> None:
    names = lock_names()
    assert len(names) >= 10, "the lock lists the agent's whole closure"
    assert not [n for n in names if PULUMI_SIDE_DISTS.fullmatch(n.lower())], names
    blocks = re.split(r"\n(?=[A-Za-z0-9])", AGENT_LOCK.read_text())
    pins = [b for b in blocks if re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*==", b)]
    assert len(pins) == len(names)
    for block in pins:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"no hash: {block[:60]}"


@pytest.mark.parametrize(
    "needle",
    ["NET_RAW", "NET_ADMIN", "allowPrivilegeEscalation", "runAsUser 0"],
    ids=[
        "explains raw sockets",
        "explains netlink",
        "explains why not a non-root uid",
        "says who sets uid 0",
    ],
)
def test_the_user_choice_is_explained(needle: str) -> None:
    assert needle in DOCKERFILE.read_text()
