"""agent/Dockerfile, checked without a Docker engine (none runs here).

What is checked: the file parses into instructions; the base is a pinned slim Python 3.11;
every COPY source exists and is not excluded by .dockerignore; the entrypoint is
``ironlb-agent`` and that command starts in this Python environment (``--help``); the
capability explanation is present.  What is NOT checked: that the image builds and runs
(the release workflow builds it on GitHub).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "agent" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_instruction_is_a_known_dockerfile_keyword() -> None:
    known = {"FROM", "ARG", "ENV", "WORKDIR", "COPY", "RUN", "LABEL", "USER", "EXPOSE", "ENTRYPOINT", "CMD"}
    found = instructions()
    assert found and {w for w, _ in found} <= known


def test_the_base_is_a_pinned_slim_python_matching_pyproject() -> None:
    args = dict(rest.split("=", 1) for w, rest in instructions() if w == "ARG" and "=" in rest)
    image = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image), image
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert "3.11" in requires


def test_copied_sources_exist_and_are_not_ignored() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    sources = []
    for word, rest in instructions():
        if word == "COPY" and "--from" not in rest:
            sources += shlex.split(rest)[:-1]
    assert sources, "the Dockerfile copies the project"
    for src in sources:
        assert (ROOT / src).exists(), src
        assert src.rstrip("/") not in ignored, f"{src} is excluded by .dockerignore"


def test_the_entrypoint_is_the_agent_and_it_starts_here() -> None:
    entry = dict(instructions())["ENTRYPOINT"]
    assert entry == '["ironlb-agent"]'
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["ironlb-agent"].partition(":")
    code = f"import sys; from {module} import {func} as m; sys.argv=['ironlb-agent','--help']; m()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "--source" in done.stdout and "kube" in done.stdout


@pytest.mark.parametrize(
    "needle",
    ["NET_RAW", "NET_ADMIN", "allowPrivilegeEscalation"],
    ids=["explains raw sockets", "explains netlink", "explains why not a non-root uid"],
)
def test_the_user_choice_is_explained(needle: str) -> None:
    assert needle in DOCKERFILE.read_text()
