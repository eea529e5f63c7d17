"""Set up one container's filesystem view and identity, then exec its process (runs as root).

Run by the lab kubelet as ``ip netns exec NS unshare -m [-u] -- python -m lab.cluster.podinit
SPEC.json``: it is already in the pod's network namespace and in a mount namespace of its own
(``unshare`` makes every mount in it private), so nothing it mounts is visible outside, and
everything vanishes with the process.  Then, in order:

1. a tmpfs ("scratch") on the container's directory in the lab work dir holds the files of
   every configMap/secret/downwardAPI/projected volume, written with their modes and owners;
2. each ``volumeMount`` is bind-mounted at its exact ``mountPath`` (``subPath`` honoured):
   files volumes from scratch, emptyDir/hostPath from the host directory the kubelet gives
   (an emptyDir outlives container restarts, as in Kubernetes); read-only where Kubernetes
   makes it so.  A mountPath whose parent directories do not exist on the host gets them
   inside an overlay of its deepest existing ancestor (upper layer in scratch), so the
   host's ``/etc`` or ``/run`` is never written to;
3. the directories standing for the image's files (``image_files``: the checkout and its
   virtualenv) are bound back, read-only, where a volume mounted on a parent hid them
   (:mod:`lab.cluster.image`);
4. with ``readOnlyRootFilesystem`` every other mount becomes read-only (``/proc`` and
   ``/dev`` stay writable, as in a container): the process cannot write to "its root";
5. ``setpriv`` drops to the container's uid/gid/groups, sets the capability bounding set to
   exactly the container's capabilities (no inheritable, no ambient: a non-root process keeps
   none effective, as in Kubernetes), sets no_new_privs when privilege escalation is off,
   and execs the container's argv with exactly its env (``PATH`` lookup with the
   container's ``PATH``).  The PID stays the same through every exec.

The spec file is written 0600 by the kubelet in the lab work dir (it can hold Secret data).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

KEEP_WRITABLE = ("/proc", "/dev")


_FDS: list[int] = []


def _handle(path: Path) -> Path:
    """A path to ``path`` that stays valid when a later mount hides it (an O_PATH descriptor,
    passed to every ``mount``): the pod's scratch and emptyDirs live under the lab work dir,
    which is under /tmp, which the pod may mount over.  ``mount`` canonicalizes a source it
    can resolve, so where the hidden path's name exists again (:func:`_bind_back`) the bind
    must say ``--no-canonicalize``."""
    fd = os.open(path, os.O_PATH)
    _FDS.append(fd)
    return Path(f"/proc/self/fd/{fd}")


def _mount(*argv: str) -> None:
    proc = subprocess.run(["mount", *argv], capture_output=True, text=True, pass_fds=_FDS)
    if proc.returncode != 0:
        raise SystemExit(f"podinit: mount {' '.join(argv)}: {proc.stderr.strip()}")


def _write_files(root: Path, files: list[dict[str, Any]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for f in files:
        path = root / f["path"]
        if ".." in Path(f["path"]).parts or Path(f["path"]).is_absolute():
            raise SystemExit(f"podinit: volume file path {f['path']!r} escapes its volume")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(f["data"]))
        os.chown(path, int(f["uid"]), int(f["gid"]))
        os.chmod(path, int(f["mode"]))


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _ensure(target: str, is_dir: bool, scratch: Path, overlays: list[str]) -> None:
    """Make ``target`` exist without writing to the host: overlay its deepest existing ancestor."""
    if os.path.lexists(target):
        return
    ancestor = os.path.dirname(target.rstrip("/"))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    real = os.path.realpath(ancestor)
    if not any(_under(real, o) for o in overlays):
        if real == "/":
            raise SystemExit(f"podinit: mountPath {target}: the lab cannot add top-level directories")
        layer = scratch / f"overlay-{len(overlays)}"
        (layer / "upper").mkdir(parents=True)
        (layer / "work").mkdir()
        _mount(
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={real},upperdir={layer}/upper,workdir={layer}/work",
            real,
        )
        overlays.append(real)
        print(f"podinit: {real} overlaid (upper in the pod's scratch) to create {target}", flush=True)
    if is_dir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        Path(target).touch()


def hidden_by(path: str, targets: list[str]) -> str | None:
    """The mountPath of a volume that hides ``path`` (mounted on one of its parents), if any."""
    return next((t for t in targets if path != t.rstrip("/") and _under(path, t)), None)


def _bind_back(path: str, handle: Path, targets: list[str]) -> None:
    """Bind the image's files at ``path`` again when a volume mounted on one of its parents
    hid them (read-only, as image files are under a read-only root)."""
    volume = hidden_by(path, targets)
    if volume is None:
        return
    os.makedirs(path, exist_ok=True)  # inside that volume, as runc creates a mountPath
    # not canonicalized: mount would resolve the handle to its path, which now names the new dir
    _mount("--no-canonicalize", "--bind", str(handle), path)
    _mount("-o", "remount,bind,ro", path)
    print(f"podinit: {path} (the image's files) bound again over the volume at {volume}", flush=True)


def _mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, per-mount options, fs type) of every mount in this namespace."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        point = fields[4].encode().decode("unicode_escape")
        out.append((point, fields[5], right.split()[0]))
    return out


def _read_only_root(writable: set[str]) -> None:
    for point, options, fstype in _mountinfo():
        if fstype in ("nsfs", "proc", "sysfs") or any(_under(point, k) for k in KEEP_WRITABLE):
            continue
        if point in writable or "ro" in options.split(","):
            continue
        if not os.path.ismount(point):
            continue  # shadowed by a mount over one of its parents (an overlay above): unreachable
        flags = [o for o in options.split(",") if o in ("nosuid", "nodev", "noexec", "relatime", "noatime")]
        _mount("-o", ",".join(["remount", "bind", "ro", *flags]), point)


def setup(spec: dict[str, Any]) -> None:
    Path(spec["scratch"]).mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", spec["scratch"])
    scratch = _handle(Path(spec["scratch"]))
    for name, files in spec["files"].items():
        _write_files(scratch / "vol" / name, files)
    sources = {}
    for i, m in enumerate(spec["mounts"]):
        source = Path(m["source"]) if m["source"] else scratch / "vol" / m["volume"]
        if m["sub_path"]:
            source = source / m["sub_path"]
            if not source.exists():
                source.mkdir(parents=True)  # Kubernetes creates a missing subPath as a directory
        sources[i] = _handle(source)
    image = [(path, _handle(Path(path))) for path in spec.get("image_files", [])]
    overlays: list[str] = []
    writable: set[str] = set()
    ordered = sorted(enumerate(spec["mounts"]), key=lambda im: im[1]["target"].count("/"))
    for i, m in ordered:  # every overlay first: one made later would hide the binds below it
        _ensure(m["target"], sources[i].is_dir(), scratch, overlays)
    for i, m in ordered:
        source, target = sources[i], m["target"]
        if not os.path.lexists(target):  # inside a volume mounted just before: create it there, as runc does
            _ensure(target, source.is_dir(), scratch, [*overlays, os.path.dirname(target)])
        _mount("--bind", str(source), target)
        if m["read_only"]:
            _mount("-o", "remount,bind,ro", target)
        else:
            writable.add(os.path.realpath(target))
    for path, handle in image:
        _bind_back(path, handle, [m["target"] for m in spec["mounts"]])
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    if spec["read_only_root"]:
        _read_only_root(writable)
    for line in spec.get("log", []):
        print(f"podinit: {line}", flush=True)


def setpriv_argv(spec: dict[str, Any]) -> list[str]:
    caps = spec["caps"]
    argv = ["/usr/bin/setpriv", "--reuid", str(spec["uid"]), "--regid", str(spec["gid"])]
    argv += ["--groups", ",".join(str(g) for g in spec["groups"])] if spec["groups"] else ["--clear-groups"]
    if caps != ["ALL"]:
        argv += ["--bounding-set", ",".join(["-all", *(f"+{c.lower()}" for c in caps)])]
    argv += ["--inh-caps", "-all"]
    if spec["no_new_privs"]:
        argv.append("--no-new-privs")
    return [*argv, "--", *spec["argv"]]


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    setup(spec)
    os.chdir(spec["workdir"])
    argv = setpriv_argv(spec)
    os.execve(argv[0], argv, spec["env"])


if __name__ == "__main__":
    main()
