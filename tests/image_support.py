"""The agent image without a Docker engine: its Dockerfile, its build context, its Python set.

No engine runs on these machines, so the image is checked in two honest halves
(tests/test_dockerfile.py, tests/test_packaging.py):

- statically: :func:`stages` reads ``agent/Dockerfile`` into stages of instructions, and
  :func:`context_files` lists the files ``docker build .`` would send, by ``.dockerignore``'s
  rules (the last matching pattern wins, ``!`` lets back in, a pattern that matches a directory
  covers everything inside it; ``*`` and ``?`` stop at ``/``, ``**`` crosses directories);
- for real: :func:`build_image_wheel` builds IronLB's wheel from exactly those context files,
  as the Dockerfile's first stage does (the hashed build backend of requirements/build.txt,
  no build isolation), and :func:`install_image_python` repeats the final stage's install:
  a venv created without pip, requirements/agent.txt with its flags (:data:`LOCK_FLAGS`), the
  wheel with ``--no-deps``, ``pip check``.  :func:`run_script` runs that venv's console
  scripts and :func:`run_in_image` code in its interpreter, isolated from the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "agent" / "Dockerfile"
AGENT_LOCK = ROOT / "requirements" / "agent.txt"
BUILD_LOCK = ROOT / "requirements" / "build.txt"
#: the flags agent/Dockerfile's final stage installs the lock with (test_dockerfile checks they are there)
LOCK_FLAGS = ("--require-hashes", "--no-deps", "--only-binary=:all:")

Instruction = tuple[str, str]  # (KEYWORD, the rest of the line)


def instructions(text: str | None = None) -> list[Instruction]:
    """Every instruction, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text() if text is None else text
    out: list[Instruction] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(text: str | None = None) -> list[tuple[str, list[Instruction]]]:
    """[(stage name or its index, its instructions from FROM on)]; ARGs before the first FROM are
    stage ``"global"``."""
    found: list[tuple[str, list[Instruction]]] = [("global", [])]
    for word, rest in instructions(text):
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(found) - 1)
            found.append((name, []))
        found[-1][1].append((word, rest))
    return found


def global_args(text: str | None = None) -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in stages(text)[0][1] if word == "ARG" and "=" in rest)


# --- the build context ------------------------------------------------------------------------


def _regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignore_rules(root: Path = ROOT) -> list[tuple[str, re.Pattern[str], bool]]:
    """.dockerignore as [(cleaned pattern, regex, is a `!` exception)], in file order."""
    rules = []
    for raw in (root / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line[1:] if negated else line).lstrip("/")
        rules.append((pattern, _regex(pattern), negated))
    return rules


def excluded(rel: str, rules: Sequence[tuple[str, re.Pattern[str], bool]]) -> bool:
    """Whether ``rel`` (a path relative to the context, ``/``-separated) stays out of the context."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for _, regex, negated in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            out = not negated
    return out


def context_files(root: Path = ROOT) -> list[str]:
    """The files ``docker build`` sends from ``root``, sorted, relative and ``/``-separated."""
    rules = ignore_rules(root)
    exceptions = [p for p, _, negated in rules if negated]
    out: list[str] = []
    for here, dirs, files in os.walk(root):
        rel_dir = Path(here).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # prune a directory that is excluded and that no exception reaches into
        dirs[:] = [
            d
            for d in dirs
            if not excluded(rel_dir + d, rules)
            or any(e == rel_dir + d or e.startswith(rel_dir + d + "/") for e in exceptions)
        ]
        out += [rel_dir + f for f in files if not excluded(rel_dir + f, rules)]
        # links to directories (ironlb/agent -> ../agent): docker sends the link itself
        out += [rel_dir + d for d in dirs if os.path.islink(os.path.join(here, d))]
    return sorted(out)


# --- the image's Python, installed for real ---------------------------------------------------


def _pip(python: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> None:
    argv = [python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def build_image_wheel(python: str, work: Path) -> Path:
    """IronLB's wheel as the image's first stage builds it: from the context files only, with the
    hashed build backend (requirements/build.txt) and no build isolation."""
    src, backend, dist = work / "context", work / "build-backend", work / "dist"
    for rel in context_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / rel).is_symlink():  # as COPY does: the link, which may dangle in the context
            os.symlink(os.readlink(ROOT / rel), src / rel)
        else:
            shutil.copy2(ROOT / rel, src / rel)
    _pip(python, "install", "--quiet", "--target", str(backend), *LOCK_FLAGS, "-r", str(BUILD_LOCK))
    env = {**os.environ, "PYTHONPATH": str(backend)}
    _pip(
        python,
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        str(dist),
        str(src),
        env=env,
    )
    (wheel,) = dist.glob("ironlb-*.whl")
    return wheel


def install_image_python(python: str, venv: Path, wheel: Path) -> int:
    """The final stage's install, with its commands: a venv created without pip, the lock then
    the wheel installed into it by ``python``'s pip (``pip --python``), ``pip check``.
    Returns the lock's installed size in bytes (before the wheel)."""
    done = subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    into = ("--python", str(venv / "bin" / "python"))
    _pip(python, *into, "install", "--quiet", *LOCK_FLAGS, "-r", str(AGENT_LOCK))
    lock_bytes = tree_size(site_packages(venv))
    _pip(python, *into, "install", "--quiet", "--no-deps", str(wheel))
    _pip(python, *into, "check")
    return lock_bytes


def site_packages(venv: Path) -> Path:
    (found,) = venv.glob("lib/python3.*/site-packages")
    return found


def tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in _files(path))


def _files(path: Path) -> Iterator[Path]:
    for here, _, files in os.walk(path):
        for f in files:
            p = Path(here) / f
            if not p.is_symlink():
                yield p


def run_in_image(venv: Path, code: str, *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the image venv's interpreter, isolated (-I: neither the working directory
    nor PYTHONPATH on ``sys.path``, so nothing of the checkout; -B: no bytecode written)."""
    return subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-B", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def run_script(venv: Path, argv: Sequence[str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run one of the venv's console scripts, as the image's PATH finds them."""
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": ""},
    )


def console_script(entry: str, argv: Sequence[str]) -> str:
    """Code that runs a ``module:function`` entry point as its console script would."""
    module, _, func = entry.partition(":")
    return f"import sys\nfrom {module} import {func} as main\nsys.argv = {list(argv)!r}\nsys.exit(main())\n"
