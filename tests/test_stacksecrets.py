"""Stack secrets (passphrase provider) are decrypted only when asked, and a wrong passphrase is a
clear error naming the stack; the default offline render stays redacted."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ironlb.components.offline import evaluate_stack, load_stack, manifests
from ironlb.components.stackconfig import REDACTED
from ironlb.components.stacksecrets import StackSecrets, open_stack_file, passphrase_from_env
from ironlb.errors import ConfigError

STACKS = Path(__file__).resolve().parents[1] / "stacks"
#: The documented example passphrases (stack file comments, docs/pulumi.md).
PASSPHRASES = {"dev": "ironlb-dev", "prod": "ironlb-prod-example", "platform": "ironlb-platform-example"}


def _secure(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _encrypt(key: bytes, plaintext: bytes) -> str:
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, plaintext, None)
    return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(ct).decode()}"


def make_stack(tmp_path: Path, passphrase: str, secrets: dict[str, str]) -> Path:
    """A stack file written the way Pulumi's passphrase provider writes one."""
    salt = os.urandom(8)
    key = PBKDF2HMAC(hashes.SHA256(), 32, salt, 1_000_000).derive(passphrase.encode())
    check = _encrypt(key, b"pulumi")
    doc = {
        "encryptionsalt": f"v1:{base64.b64encode(salt).decode()}:{check}",
        "config": {f"ironlb:{k}": {"secure": _encrypt(key, v.encode())} for k, v in secrets.items()},
    }
    path = tmp_path / "Pulumi.mine.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_value_encrypted_as_pulumi_does_decrypts_to_its_plaintext(tmp_path: Path) -> None:
    path = make_stack(tmp_path, "correct horse", {"membershipKey": "k" * 40})
    secure = yaml.safe_load(path.read_text())["config"]["ironlb:membershipKey"]["secure"]
    assert open_stack_file(path, "mine", "correct horse").decrypt(secure) == "k" * 40


@pytest.mark.parametrize("stack", ["dev", "prod", "platform"])
def test_the_documented_passphrase_opens_each_example_stack(stack: str) -> None:
    path = STACKS / f"Pulumi.{stack}.yaml"
    secrets = open_stack_file(path, stack, PASSPHRASES[stack])
    config = yaml.safe_load(path.read_text())["config"]
    values = {k: secrets.decrypt(v["secure"], k) for k, v in config.items() if _secure(v)}
    assert values and all(v and v != REDACTED for v in values.values()), sorted(values)
    assert len(values["ironlb:membershipKey"]) >= 32


def test_a_wrong_passphrase_names_the_stack_and_says_what_to_give() -> None:
    with pytest.raises(ConfigError) as err:
        open_stack_file(STACKS / "Pulumi.prod.yaml", "prod", "not-the-passphrase")
    text = str(err.value)
    assert 'stack "prod": passphrase' in text and "PULUMI_CONFIG_PASSPHRASE" in text
    assert "not-the-passphrase" not in text


def test_a_damaged_value_names_its_key_and_shows_no_plaintext(tmp_path: Path) -> None:
    path = make_stack(tmp_path, "pw", {"torAPassword": "s3cret-value"})
    secrets = open_stack_file(path, "mine", "pw")
    secure = yaml.safe_load(path.read_text())["config"]["ironlb:torAPassword"]["secure"]
    v, nonce, ct = secure.split(":")
    flipped = base64.b64encode(bytes([base64.b64decode(ct)[0] ^ 1]) + base64.b64decode(ct)[1:]).decode()
    with pytest.raises(ConfigError, match='stack "mine": ironlb:torAPassword: secure value does not decrypt'):
        secrets.decrypt(f"{v}:{nonce}:{flipped}", "ironlb:torAPassword")
    with pytest.raises(ConfigError, match="must be v1:<nonce>:<ciphertext>"):
        secrets.decrypt("v2:abc", "ironlb:torAPassword")


@pytest.mark.parametrize(
    "salt", ["", "v1:abc", "v1:!!notbase64:v1:AAAA:AAAA", "v2:AAAA:v1:AAAA:AAAA"], ids=repr
)
def test_a_malformed_encryption_salt_is_a_config_error(salt: str) -> None:
    with pytest.raises(ConfigError, match='stack "s": encryptionsalt'):
        StackSecrets.open("s", salt, "pw")


def test_the_passphrase_comes_from_pulumis_variables(tmp_path: Path) -> None:
    assert passphrase_from_env({}) is None
    assert passphrase_from_env({"PULUMI_CONFIG_PASSPHRASE": "a"}) == "a"
    file = tmp_path / "pass"
    file.write_text("from-file\n")
    assert passphrase_from_env({"PULUMI_CONFIG_PASSPHRASE_FILE": str(file)}) == "from-file"


def _secret_values(stack: str, passphrase: str | None) -> list[str]:
    found = manifests(
        evaluate_stack(load_stack(stack, STACKS, passphrase=passphrase)),
        reveal_secrets=passphrase is not None,
    )
    secrets = [m for m in found if m["kind"] == "Secret"]
    assert secrets, "the stack renders no Secret"
    return [str(v) for m in secrets for v in (m.get("stringData") or m.get("data") or {}).values()]


def test_the_offline_render_reveals_secrets_only_when_asked() -> None:
    assert set(_secret_values("prod", None)) == {REDACTED}
    revealed = _secret_values("prod", PASSPHRASES["prod"])
    secrets = open_stack_file(STACKS / "Pulumi.prod.yaml", "prod", PASSPHRASES["prod"])
    config = yaml.safe_load((STACKS / "Pulumi.prod.yaml").read_text())["config"]
    expected = {
        secrets.decrypt(v["secure"]) for v in config.values() if isinstance(v, dict) and "secure" in v
    }
    assert set(revealed) == expected


def test_loading_with_a_wrong_passphrase_fails_before_rendering() -> None:
    with pytest.raises(ConfigError, match='stack "dev": passphrase'):
        load_stack("dev", STACKS, passphrase="wrong")
