"""What the lab runs for a container image: the image's config, read from its Dockerfile.

No image is built or pulled here (no container engine runs on these machines).  The lab
runs a container's process on the host's filesystem, with the project's virtualenv standing
in for the image's one, and takes the image *config* -- ``ENV``, ``USER``, ``WORKDIR``,
``ENTRYPOINT`` and ``CMD`` of the final stage -- from the Dockerfile that builds it, so a
pod spec that relies on the image's defaults (``command`` omitted, the image's ``PATH``,
its user) runs as it would in the cluster.

Path remapping, explicit and logged by the kubelet: the image installs IronLB into
:data:`IMAGE_VENV` (``/opt/ironlb``); the lab maps that prefix to this checkout's
virtualenv (``sys.prefix``), in ``PATH`` and in ``command``/``args``.  Nothing else is
remapped.  The base image's own environment is taken as Debian's python image sets it
(:data:`BASE_ENV`).

An image's files stay visible whatever a pod mounts (only a mount over the image's own
path could hide them).  The directories that stand for them here -- the checkout and its
virtualenv (:func:`image_files`) -- may lie under a path a pod mounts a volume on (a clone
in ``/tmp``, and the speaker's ``emptyDir`` at ``/tmp``), so the container's setup binds
them back over such a volume, and logs it.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: image repository -> the Dockerfile that builds it (relative to the repository root)
DOCKERFILES = {"ghcr.io/ironlb/agent": "agent/Dockerfile", "ghcr.io/ironlb/controller": "agent/Dockerfile"}
IMAGE_VENV = "/opt/ironlb"
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}


class ImageError(ValueError):
    """The lab cannot run this image; the message names it and says what it can run."""


@dataclass(frozen=True)
class ImageConfig:
    image: str
    env: dict[str, str] = field(default_factory=dict)
    user: str = "0"
    workdir: str = "/"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    remaps: tuple[tuple[str, str], ...] = ()  # (image path prefix, host path prefix)

    def remap(self, text: str) -> str:
        for image_path, host_path in self.remaps:
            text = re.sub(rf"(^|[:=\s]){re.escape(image_path)}(?=/|$|:)", rf"\g<1>{host_path}", text)
        return text


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)


def _words(rest: str) -> tuple[str, ...]:
    rest = rest.strip()
    if rest.startswith("["):
        return tuple(str(x) for x in json.loads(rest))
    return ("/bin/sh", "-c", rest)


def _logical_lines(text: str) -> list[str]:
    lines, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        lines.append(cur + line)
        cur = ""
    return lines


def parse_dockerfile(text: str, image: str, venv: str = sys.prefix) -> ImageConfig:
    """The final stage's config; ``$VAR`` expanded as the builder does; image venv -> ``venv``."""
    stage: list[str] = []
    args: dict[str, str] = {}
    for line in _logical_lines(text):
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            stage = []
        elif word.upper() == "ARG" and not stage:
            key, _, default = rest.partition("=")
            args[key.strip()] = default.strip()
        stage.append(line.strip())
    env, user, workdir = dict(BASE_ENV), "0", "/"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    for line in stage:
        word, _, rest = line.partition(" ")
        key = word.upper()
        if key == "ENV":
            parts = shlex.split(rest)
            pairs = (
                [p.partition("=") for p in parts]
                if "=" in parts[0]
                else [(parts[0], "=", " ".join(parts[1:]))]
            )
            updates = {k: _expand(v, {**args, **env}) for k, _, v in pairs}
            env.update(updates)
        elif key == "USER":
            user = rest.strip()
        elif key == "WORKDIR":
            workdir = _expand(rest.strip(), env)
        elif key == "ENTRYPOINT":
            entrypoint, cmd = _words(rest), ()  # a new ENTRYPOINT resets CMD
        elif key == "CMD":
            cmd = _words(rest)
    config = ImageConfig(image, env, user, workdir, entrypoint, cmd, ((IMAGE_VENV, venv),))
    return ImageConfig(
        image,
        {k: config.remap(v) for k, v in env.items()},
        user,
        config.remap(workdir),
        tuple(config.remap(a) for a in entrypoint),
        tuple(config.remap(a) for a in cmd),
        config.remaps,
    )


def image_files(venv: str = sys.prefix) -> list[str]:
    """The host directories that stand for the image's files: the checkout (the virtualenv's
    editable install imports from it) and the virtualenv, when it lies outside the checkout."""
    roots = [str(REPO), str(Path(venv).resolve())]
    return [r for r in roots if r == roots[0] or not r.startswith(roots[0] + "/")]


def image_config(image: str, venv: str = sys.prefix) -> ImageConfig:
    """The config of ``image`` (raises ImageError for an image the lab does not know)."""
    repo = image.split("@", 1)[0].rsplit(":", 1)[0] if "/" in image else image
    dockerfile = DOCKERFILES.get(repo)
    if dockerfile is None:
        raise ImageError(
            f'image "{image}": the lab runs only images built from this repository '
            f"({', '.join(sorted(DOCKERFILES))}); it has no container engine to pull others"
        )
    return parse_dockerfile((REPO / dockerfile).read_text(), image, venv)
