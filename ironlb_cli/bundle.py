"""``ironlb bundle --stack ENV``: one kubectl-appliable YAML file with everything a stack installs.

The install without Pulumi.  The stack's program runs exactly as for ``ironlb render``
(Pulumi's mock runtime, ``ironlb.components.offline``), and every Kubernetes object it creates --
whatever kinds the program renders: Namespaces, CRDs, RBAC, ConfigMaps, Secrets, the
workloads, IronLB's custom resources, Services -- goes into one multi-document file, in
the render's apply order (Namespaces and CRDs first, custom resources after their CRDs),
keys sorted, so the same stack always gives the same bytes.

Secrets carry their real values, never a placeholder.  Each secret config key of the stack
gets its value from ``--secret-file KEY=PATH`` (any secrets provider: a cloud KMS, say),
else from the stack's passphrase provider with the passphrase in ``$PULUMI_CONFIG_PASSPHRASE``
or ``$PULUMI_CONFIG_PASSPHRASE_FILE`` (``ironlb.components.stacksecrets``).  A key neither source
can give fails the bundle, naming every such key and what to provide; a wrong passphrase or
a damaged value fails it too.  Before anything is written, the bundle is checked: no
``[secret]`` placeholder, unknown value or secret wrapper anywhere (Secret ``data`` decoded),
no secret value outside a Secret, and every object valid against the Kubernetes schemas and
our CRDs (``ironlb.components.manifest_check``; messages never show a secret value).

The file is written 0600 (atomically: a private temporary file, then a rename) and nothing
secret reaches stderr; to stdout only when stdout is not a terminal.  ``--omit-secrets``
leaves every Secret out instead (no value is read) and lists them in the header with the
``kubectl create secret`` line for each: for a bundle that is published or committed.
``--crds-only`` / ``--skip-crds`` split the install in two, for clusters where ``kubectl
apply`` would race the CRDs' establishment (docs/install-yaml.md).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from ironlb.errors import ConfigError, IronLBError, Issue
from ironlb_cli.render import default_stacks_dir, dump

PREFIX = "ironlb:"
CRD = "CustomResourceDefinition"
PARTS = ("all", "crds", "rest")


@dataclass(frozen=True)
class Bundle:
    """A built bundle: the file's text and what it holds (names only, never values)."""

    stack: str
    text: str
    objects: int
    secrets: tuple[str, ...]  # "namespace/name" of the Secrets carried with their values
    omitted: tuple[str, ...]  # "namespace/name" of the Secrets left out (--omit-secrets)


def config_key(key: str) -> str:
    """``membershipKey`` or ``ironlb:membershipKey`` -> ``ironlb:membershipKey``."""
    return key if key.startswith(PREFIX) else PREFIX + key


def secret_file_arg(text: str) -> tuple[str, Path]:
    """argparse type of ``--secret-file KEY=PATH``."""
    key, sep, path = text.partition("=")
    if not sep or not key or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: must be KEY=PATH, e.g. membershipKey=./membership.key")
    return config_key(key), Path(path)


def read_secret_file(stack: str, key: str, path: Path) -> str:
    """The value in ``path`` (UTF-8; one trailing newline dropped, as ``echo`` adds one)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _issue(stack, key, f"--secret-file {path}: cannot read it ({exc.strerror})") from None
    try:
        value = raw.decode().removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise _issue(stack, key, f"--secret-file {path}: is not UTF-8 text") from None
    if not value:
        raise _issue(stack, key, f"--secret-file {path}: is empty")
    return value


def _issue(stack: str, key: str, message: str) -> ConfigError:
    return ConfigError([Issue("stack", stack, key, None, message)])


class Revealer:
    """``reveal(ciphertext, key)`` for ``load_stack``: files first, then the passphrase provider.

    Opens the provider only when some key needs it; remembers every value it handed out, so
    messages can be scrubbed of them.
    """

    def __init__(self, stack: str, path: Path, files: Mapping[str, Path]) -> None:
        from ironlb.components.stackconfig import REDACTED, load_yaml, read_stack_file

        self.stack = stack
        values, secret = read_stack_file(path)
        self.secret_keys = sorted(config_key(k) for k in secret)
        nested = {config_key(k) for k in secret if values[k] != REDACTED}  # secure values inside a structure
        unknown = sorted(set(files) - set(self.secret_keys))
        issues = [
            _issue(
                stack,
                k,
                f"--secret-file: not a secret key of this stack; its secret keys: "
                f"{', '.join(self.secret_keys) or 'none'}",
            )
            for k in unknown
        ] + [
            _issue(
                stack,
                k,
                "--secret-file: holds secure values inside a structure; only the "
                "stack's passphrase can open it",
            )
            for k in sorted(set(files) & nested)
        ]
        if issues:
            raise ConfigError([i for e in issues for i in e.issues])
        self.files = {k: read_secret_file(stack, k, p) for k, p in sorted(files.items())}
        raw = load_yaml(path.read_text())
        raw = raw if isinstance(raw, Mapping) else {}
        self.salt = str(raw.get("encryptionsalt") or "")
        self.provider_name = str(raw.get("secretsprovider") or ("passphrase" if self.salt else "none"))
        self.values: list[str] = list(self.files.values())
        self._decrypt: Callable[[str, str], str] | None = None

    def open(self, env: Mapping[str, str] | None = None) -> None:
        """Check that every secret key has a source; open the passphrase provider if one needs it."""
        from ironlb.components.stacksecrets import (
            PASSPHRASE_ENV,
            PASSPHRASE_FILE_ENV,
            StackSecrets,
            passphrase_from_env,
        )

        needed = [k for k in self.secret_keys if k not in self.files]
        if not needed:
            return
        try:
            passphrase = passphrase_from_env(env) if self.salt else None
        except OSError as exc:
            raise IronLBError(
                f"${PASSPHRASE_FILE_ENV}: cannot read {exc.filename} ({exc.strerror})"
            ) from None
        if passphrase is None:
            how = (
                f"this stack uses the passphrase provider: set ${PASSPHRASE_ENV} (or "
                f"${PASSPHRASE_FILE_ENV}), or give each with --secret-file KEY=PATH"
                if self.salt
                else f"ironlb cannot open this stack's secrets provider ({self.provider_name}): give each "
                f"with --secret-file KEY=PATH (e.g. from `pulumi config get -s {self.stack} KEY`)"
            )
            raise _issue(self.stack, ", ".join(needed), f"secret values needed; {how}")
        self._decrypt = StackSecrets.open(self.stack, self.salt, passphrase).decrypt

    def __call__(self, ciphertext: str, key: str) -> str:
        if key in self.files:
            return self.files[key]
        if self._decrypt is None:  # open() was not called, or found this key a file
            raise _issue(self.stack, key, "secret value needed; nothing given for it")
        value = self._decrypt(ciphertext, key)
        self.values.append(value)
        return value

    def scrub(self, text: str) -> str:
        from ironlb.components.stackconfig import REDACTED

        for value in sorted({v for v in self.values if v}, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


def _where(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f'{manifest.get("kind")} "{ns}{meta.get("name")}"'


def _name(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def placeholders(manifest: Mapping[str, Any]) -> list[str]:
    """Fields of ``manifest`` holding a redacted, unknown or still-wrapped secret value."""
    from pulumi.runtime.rpc import UNKNOWN

    from ironlb.components.offline import SECRET_SIG
    from ironlb.components.stackconfig import REDACTED

    bad = []
    for path, value in _leaves(manifest):
        text = str(value)
        if manifest.get("kind") == "Secret" and path.startswith("data."):
            try:
                text = base64.b64decode(text, validate=True).decode(errors="replace")
            except (binascii.Error, ValueError):
                bad.append(f"{_where(manifest)}: {path}: is not base64")
                continue
        if text == REDACTED or SECRET_SIG in text or UNKNOWN in text:
            bad.append(f"{_where(manifest)}: {path}: holds no real value (a placeholder)")
    return bad


def secrets_outside_secrets(redacted: Sequence[Mapping[str, Any]]) -> list[str]:
    """Non-Secret objects holding a value the program marked secret (seen redacted)."""
    from ironlb.components.stackconfig import REDACTED

    return [
        f"{_where(m)}: {path}: holds a secret value outside a Secret"
        for m in redacted
        if m.get("kind") != "Secret"
        for path, value in _leaves(m)
        if value == REDACTED
    ]


def build(
    stack: str,
    stacks_dir: Path,
    *,
    secret_files: Mapping[str, Path] | None = None,
    omit_secrets: bool = False,
    part: str = "all",
    env: Mapping[str, str] | None = None,
) -> Bundle:
    """The bundle of ``stack``; raises ConfigError / IronLBError (never showing a secret value)."""
    from ironlb.components.base import InvalidConfigError
    from ironlb.components.manifest_check import check_all
    from ironlb.components.offline import evaluate_stack, load_stack, manifests, stack_path

    if part not in PARTS:
        raise IronLBError(f"part {part!r}: must be one of {', '.join(PARTS)}")
    path = stack_path(stacks_dir, stack)
    revealer = None
    try:
        if omit_secrets or part == "crds":  # nothing secret is emitted: read no value
            loaded = load_stack(stack, stacks_dir)
        else:
            if not path.is_file():
                load_stack(stack, stacks_dir)  # raises FileNotFoundError naming the stacks there
            revealer = Revealer(stack, path, secret_files or {})
            revealer.open(env)
            loaded = load_stack(stack, stacks_dir, reveal=revealer)
        evaluation = evaluate_stack(loaded)
    except FileNotFoundError as exc:
        raise IronLBError(str(exc)) from None
    except (InvalidConfigError, ConfigError) as exc:  # a message may quote a value: scrub them all
        scrub = revealer.scrub if revealer else str
        raise ConfigError(
            [
                replace(
                    i,
                    value=scrub(str(i.value)) if isinstance(i.value, str) else i.value,
                    message=scrub(i.message),
                )
                for i in [*exc.issues, *getattr(exc, "warnings", [])]
            ]
        ) from None
    redacted = manifests(evaluation)
    scrub = revealer.scrub if revealer else str
    leaks = secrets_outside_secrets(redacted)
    if leaks:
        raise IronLBError("secret values would leave their Secrets:\n  " + "\n  ".join(leaks))
    if revealer is None:
        found = [m for m in redacted if m.get("kind") != "Secret"]
        omitted = [m for m in redacted if m.get("kind") == "Secret"]
    else:
        found, omitted = manifests(evaluation, reveal_secrets=True), []
    if part == "crds":
        found, omitted = [m for m in found if m.get("kind") == CRD], []
        if not found:
            raise IronLBError(f"stack {stack} installs no CRDs (a tenant stack, or agent.installCrds false)")
    elif part == "rest":
        found = [m for m in found if m.get("kind") != CRD]
    bad = [p for m in found for p in placeholders(m)] + check_all(found)
    if bad:
        raise IronLBError("the bundle is not appliable:\n  " + "\n  ".join(scrub(b) for b in bad))
    secrets = tuple(_name(m) for m in found if m.get("kind") == "Secret")
    header = _header(stack, len(found), secrets, omitted)
    text = header + "".join(f"---\n{dump(m)}" for m in found)
    return Bundle(stack, text, len(found), secrets, tuple(_name(m) for m in omitted))


def _header(stack: str, count: int, secrets: Sequence[str], omitted: Sequence[Mapping[str, Any]]) -> str:
    try:
        version = metadata.version("ironlb")
    except metadata.PackageNotFoundError:
        version = "unknown"
    lines = [
        f'# IronLB install bundle of stack "{stack}": {count} objects in apply order (ironlb {version}).',
        "# Apply: kubectl apply -f FILE. On a fresh cluster apply the CRDs first: docs/install-yaml.md.",
    ]
    if secrets:
        lines.append(
            f"# Holds the values of {len(secrets)} Secret(s) ({', '.join(secrets)}): keep it private."
        )
    if omitted:
        lines.append("# Secrets left out (--omit-secrets): create each before the pods can start:")
        for m in omitted:
            meta = m.get("metadata") or {}
            data = [d for d in (m.get("stringData"), m.get("data")) if d]
            keys = sorted({k for d in data if isinstance(d, Mapping) for k in d}) or ["KEY"]
            files = " ".join(f"--from-file={k}=PATH" for k in keys)
            lines.append(
                f"#   kubectl -n {meta.get('namespace')} create secret generic {meta.get('name')} {files}"
            )
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically (never a readable partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:  # interrupted too: never leave a partial secret file behind, then re-raise
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    if args.omit_secrets and args.secret_file:
        raise IronLBError("--omit-secrets reads no secret value: drop --secret-file")
    files: dict[str, Path] = {}
    for key, path in args.secret_file or []:
        if key in files:
            raise IronLBError(f"--secret-file {key}: given twice")
        files[key] = path
    part = "crds" if args.crds_only else "rest" if args.skip_crds else "all"
    bundle = build(
        args.stack,
        Path(args.stacks_dir) if args.stacks_dir else default_stacks_dir(),
        secret_files=files,
        omit_secrets=args.omit_secrets,
        part=part,
    )
    if args.out == "-":
        if bundle.secrets and sys.stdout.isatty():
            raise IronLBError("the bundle holds Secret values: write it with --out FILE (0600), or pipe it")
        sys.stdout.write(bundle.text)
        sys.stdout.flush()
        where = "stdout"
    else:
        try:
            write_private(Path(args.out), bundle.text)
        except OSError as exc:
            raise IronLBError(f"--out {args.out}: cannot write it ({exc.strerror})") from None
        where = f"{args.out} (mode 0600)"
    held = f", {len(bundle.secrets)} Secret(s) with their values" if bundle.secrets else ""
    left = f", {len(bundle.omitted)} Secret(s) left out (see the header)" if bundle.omitted else ""
    print(f"bundle of stack {args.stack}: {bundle.objects} objects{held}{left} -> {where}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="write one kubectl-appliable YAML file with everything a stack installs (real secrets)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stack", required=True, help="stack name (stacks/Pulumi.<stack>.yaml)")
    parser.add_argument("--out", default="-", help="file to write (mode 0600), or - for stdout (default)")
    parser.add_argument("--stacks-dir", help="directory holding the stack files (default: ./stacks)")
    parser.add_argument(
        "--secret-file",
        action="append",
        type=secret_file_arg,
        metavar="KEY=PATH",
        help="value of the secret config KEY from PATH (repeatable; for any secrets provider)",
    )
    parser.add_argument(
        "--omit-secrets",
        action="store_true",
        help="leave every Secret out (the header says how to create them); reads no secret value",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--crds-only", action="store_true", help="only the CustomResourceDefinitions")
    which.add_argument(
        "--skip-crds", action="store_true", help="everything but the CustomResourceDefinitions"
    )
    parser.set_defaults(func=run)
