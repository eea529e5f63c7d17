"""Decrypt a stack file's Pulumi secrets (passphrase provider), for the places that need the values.

Stack files keep secrets as Pulumi writes them with the passphrase secrets provider::

    encryptionsalt: v1:<b64 salt>:v1:<b64 nonce>:<b64 ciphertext of b"pulumi">
    config:
      ironlb:membershipKey:
        secure: v1:<b64 nonce>:<b64 ciphertext>

The key is PBKDF2-HMAC-SHA256(passphrase, salt, 1,000,000 iterations, 32 bytes); every
value is AES-256-GCM under that key with its own 12-byte nonce (the tag is the last 16
bytes of the ciphertext).  The salt's own ciphertext must decrypt to ``b"pulumi"``: that
is how a wrong passphrase is told apart from a damaged value, and it gives a clear
:class:`~ironlb.errors.ConfigError` naming the stack instead of a crypto traceback.

:meth:`StackSecrets.create` and :meth:`StackSecrets.encrypt` are the inverse, as ``pulumi
stack init`` and ``pulumi config set --secret`` write them: for stack files made by tools,
benchmarks and tests (``pulumi`` opens them).

This module owns the ``cryptography`` dependency and nothing else reads passphrases.
Callers decide when plaintext is allowed: ``ironlb render`` never asks (its output stays
redacted); the lab's cluster mode asks, and keeps what it renders in its own work dir.
The passphrase comes from the caller, or from Pulumi's own variables
(:data:`PASSPHRASE_ENV`, :data:`PASSPHRASE_FILE_ENV`) as the Pulumi CLI reads them.
Nothing here logs or prints a value.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ironlb.errors import ConfigError, Issue

PASSPHRASE_ENV = "PULUMI_CONFIG_PASSPHRASE"
PASSPHRASE_FILE_ENV = "PULUMI_CONFIG_PASSPHRASE_FILE"
ITERATIONS = 1_000_000
_CHECK = b"pulumi"


def _issue(stack: str, field: str, message: str) -> ConfigError:
    return ConfigError([Issue("stack", stack, field, None, message)])


def _b64(text: str, stack: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _issue(stack, field, "is not valid base64 (was the stack file edited by hand?)") from None


@dataclass(frozen=True)
class StackSecrets:
    """An opened passphrase provider: decrypts the ``secure:`` values of one stack."""

    stack: str
    _aead: AESGCM

    @classmethod
    def open(cls, stack: str, encryption_salt: str, passphrase: str) -> StackSecrets:
        """Derive the key from ``passphrase`` and check it against ``encryption_salt``."""
        parts = str(encryption_salt).split(":")
        if len(parts) != 5 or parts[0] != "v1" or parts[2] != "v1":
            raise _issue(
                stack,
                "encryptionsalt",
                "must be v1:<salt>:v1:<nonce>:<ciphertext> (the passphrase provider's format)",
            )
        salt = _b64(parts[1], stack, "encryptionsalt")
        secrets = cls(stack, _aead(passphrase, salt))
        try:
            check = secrets._open(parts[3], parts[4], "encryptionsalt")
        except InvalidTag:
            check = None
        if check != _CHECK:
            raise _issue(
                stack,
                "passphrase",
                "does not decrypt this stack's secrets (the encryptionsalt check failed); "
                f"give the stack's passphrase (${PASSPHRASE_ENV} or ${PASSPHRASE_FILE_ENV})",
            )
        return secrets

    @classmethod
    def create(cls, stack: str, passphrase: str) -> tuple[StackSecrets, str]:
        """A new passphrase provider (fresh salt): the provider and the stack file's ``encryptionsalt``."""
        salt = os.urandom(8)
        secrets = cls(stack, _aead(passphrase, salt))
        return secrets, f"v1:{base64.b64encode(salt).decode()}:{secrets._seal(_CHECK)}"

    def encrypt(self, plaintext: str) -> str:
        """The ``secure:`` value of ``plaintext`` (``v1:<nonce>:<ciphertext>``, a fresh nonce each time)."""
        return self._seal(plaintext.encode())

    def _seal(self, plaintext: bytes) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext, None)
        return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"

    def _open(self, nonce: str, ciphertext: str, field: str) -> bytes:
        return self._aead.decrypt(_b64(nonce, self.stack, field), _b64(ciphertext, self.stack, field), None)

    def decrypt(self, secure: str, field: str = "") -> str:
        """Plaintext of one ``secure:`` value (``v1:<nonce>:<ciphertext>``); ``field`` names it in errors."""
        parts = str(secure).split(":")
        if len(parts) != 3 or parts[0] != "v1":
            raise _issue(self.stack, field, "secure value must be v1:<nonce>:<ciphertext>")
        try:
            return self._open(parts[1], parts[2], field).decode()
        except InvalidTag:
            raise _issue(
                self.stack, field, "secure value does not decrypt with this stack's key (damaged or copied?)"
            ) from None
        except UnicodeDecodeError:
            raise _issue(self.stack, field, "secure value is not UTF-8 text") from None


def _aead(passphrase: str, salt: bytes) -> AESGCM:
    return AESGCM(PBKDF2HMAC(hashes.SHA256(), 32, salt, ITERATIONS).derive(passphrase.encode()))


def passphrase_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """The passphrase as the Pulumi CLI finds it: ``$PULUMI_CONFIG_PASSPHRASE`` or the file named by
    ``$PULUMI_CONFIG_PASSPHRASE_FILE`` (trailing newline dropped); None when neither is set."""
    env = os.environ if env is None else env
    if env.get(PASSPHRASE_ENV):
        return env[PASSPHRASE_ENV]
    if env.get(PASSPHRASE_FILE_ENV):
        return Path(env[PASSPHRASE_FILE_ENV]).read_text().rstrip("\n")
    return None


def open_stack_file(path: Path, stack: str, passphrase: str) -> StackSecrets:
    """Open the passphrase provider of the stack file at ``path`` (checks the passphrase)."""
    raw: Any = yaml.safe_load(path.read_text()) or {}
    salt = raw.get("encryptionsalt") if isinstance(raw, Mapping) else None
    if not salt:
        raise _issue(stack, "encryptionsalt", "is missing: this stack has no passphrase-provider secrets")
    return StackSecrets.open(stack, str(salt), passphrase)
