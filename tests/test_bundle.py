"""``ironlb bundle``: one appliable file, real secret values (never a placeholder), apply order,
schema-valid, deterministic, 0600, and every way of failing says which keys need what.

Stack files for the failure cases are written here the way Pulumi writes them
(``StackSecrets.create``/``encrypt``, the inverse of what the bundle decrypts).
"""

from __future__ import annotations

import base64
import functools
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironlb.components.manifest_check import check_all
from ironlb.components.offline import SECRET_SIG
from ironlb.components.stackconfig import REDACTED
from ironlb.components.stacksecrets import StackSecrets, open_stack_file
from ironlb.errors import ConfigError, IronLBError
from ironlb_cli.bundle import Bundle, build, placeholders, secrets_outside_secrets
from ironlb_cli.main import main
from ironlb_cli.render import render

ROOT = Path(__file__).resolve().parents[1]
STACKS = ROOT / "stacks"
RELEASE = ROOT / ".github" / "release"
#: The documented example passphrases (stack file comments, docs/pulumi.md).
PASSPHRASES = {"dev": "ironlb-dev", "prod": "ironlb-prod-example", "platform": "ironlb-platform-example"}
KEY = "k" * 40  # a membership key long enough for the NodeAgent's check
SMALL = {
    "agent": {"namespace": "ironlb-system"},
    "pools": [{"name": "lan", "addresses": ["10.1.0.10-10.1.0.20"]}],
    "peers": [
        {
            "name": "tor",
            "myASN": 64513,
            "peerASN": 64512,
            "peerAddress": "10.1.0.1",
            "passwordConfig": "torPassword",
        }
    ],
    "bgpAdvertisements": [{"name": "all", "peers": ["tor"]}],
    "services": [
        {"name": "web", "namespace": "default", "ports": [{"port": 80}], "selector": {"app": "web"}}
    ],
}


def env_for(stack: str) -> dict[str, str]:
    return {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASES[stack]} if stack in PASSPHRASES else {}


@functools.cache
def bundle_of(stack: str) -> Bundle:
    return build(stack, STACKS, env=env_for(stack))


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def write_stack(
    folder: Path,
    name: str,
    secrets: Mapping[str, str],
    *,
    passphrase: str | None = "pw",
    values: Mapping[str, Any] = SMALL,
    provider: str | None = None,
) -> Path:
    """A stack file as Pulumi writes it: passphrase provider (or ``provider``, values unopenable)."""
    doc: dict[str, Any] = {"config": {f"ironlb:{k}": v for k, v in values.items()}}
    if passphrase is not None:
        sealer, salt = StackSecrets.create(name, passphrase)
        doc["encryptionsalt"] = salt
        doc["config"].update({f"ironlb:{k}": {"secure": sealer.encrypt(v)} for k, v in secrets.items()})
    else:
        doc.update(secretsprovider=provider, encryptedkey="Y2lwaGVydGV4dA==")
        doc["config"].update({f"ironlb:{k}": {"secure": "v1:AAAAAAAAAAAAAAAA:AAAA"} for k in secrets})
    path = folder / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def secret_values(objects: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    out = {}
    for m in objects:
        if m["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (m.get("data") or {}).items()}
            out[m["metadata"]["name"]] = {**data, **(m.get("stringData") or {})}
    return out


# --- what a bundle holds --------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod", "platform", "team-a"])
def test_the_bundle_holds_every_object_the_stack_renders_in_render_order(stack: str) -> None:
    rendered = [yaml.safe_load(text) for _, text in render(stack, STACKS)]
    bundled = docs(bundle_of(stack).text)
    assert [(m["kind"], m["metadata"]) for m in bundled] == [(m["kind"], m["metadata"]) for m in rendered]
    assert bundle_of(stack).objects == len(bundled)


@pytest.mark.parametrize("stack", ["dev", "prod", "platform"])
def test_secrets_carry_the_stacks_decrypted_values_and_no_placeholder(stack: str) -> None:
    text = bundle_of(stack).text
    assert REDACTED not in text and SECRET_SIG not in text
    path = STACKS / f"Pulumi.{stack}.yaml"
    opened = open_stack_file(path, stack, PASSPHRASES[stack])
    config = yaml.safe_load(path.read_text())["config"]
    expected = {opened.decrypt(v["secure"]) for v in config.values() if isinstance(v, dict) and "secure" in v}
    found = {v for values in secret_values(docs(text)).values() for v in values.values()}
    assert expected and found == expected
    assert all(placeholders(m) == [] for m in docs(text))


@pytest.mark.parametrize("stack", ["dev", "prod", "team-a"])
def test_the_bundle_passes_the_kubernetes_and_crd_schemas(stack: str) -> None:
    assert check_all(docs(bundle_of(stack).text)) == []


def test_the_program_decides_the_kinds_namespaces_and_crds_come_first() -> None:
    objects = docs(bundle_of("prod").text)
    kinds = [m["kind"] for m in objects]
    assert {"DaemonSet", "Deployment", "CustomResourceDefinition", "Secret", "Service", "IPPool"} <= set(
        kinds
    )
    first_other = next(i for i, k in enumerate(kinds) if k not in ("Namespace", "CustomResourceDefinition"))
    assert all(k not in ("Namespace", "CustomResourceDefinition") for k in kinds[first_other:])
    seen_ns: set[str] = set()
    seen_crd: set[tuple[str, str]] = set()
    for m in objects:
        if m["kind"] == "Namespace":
            seen_ns.add(m["metadata"]["name"])
        if m["kind"] == "CustomResourceDefinition":
            seen_crd.add((m["spec"]["group"], m["spec"]["names"]["kind"]))
        ns = m["metadata"].get("namespace")
        assert ns is None or ns in seen_ns or ns == "default", f"{m['kind']} {ns}/{m['metadata']['name']}"
        group = m["apiVersion"].split("/")[0] if "/" in m["apiVersion"] else ""
        if group.endswith("ironlb.io"):
            assert (group, m["kind"]) in seen_crd


def test_the_same_stack_gives_the_same_bytes() -> None:
    assert build("dev", STACKS, env=env_for("dev")).text == bundle_of("dev").text


def test_crds_only_and_skip_crds_split_the_bundle_in_two() -> None:
    crds = docs(build("prod", STACKS, part="crds").text)  # needs no passphrase: no Secret in it
    rest = docs(build("prod", STACKS, part="rest", env=env_for("prod")).text)
    assert {m["kind"] for m in crds} == {"CustomResourceDefinition"}
    assert "CustomResourceDefinition" not in {m["kind"] for m in rest}
    everything = docs(bundle_of("prod").text)
    assert crds == [m for m in everything if m["kind"] == "CustomResourceDefinition"]
    assert rest == [m for m in everything if m["kind"] != "CustomResourceDefinition"]
    with pytest.raises(IronLBError, match="team-a installs no CRDs"):
        build("team-a", STACKS, part="crds")


def test_omit_secrets_reads_no_value_and_says_how_to_create_each_secret() -> None:
    bundle = build("prod", STACKS, omit_secrets=True, env={})
    objects = docs(bundle.text)
    assert "Secret" not in {m["kind"] for m in objects} and REDACTED not in bundle.text
    assert bundle.omitted == (
        "ironlb-system/ironlb-bgp-tor-a",
        "ironlb-system/ironlb-bgp-tor-b",
        "ironlb-system/ironlb-membership",
    )
    assert (
        "#   kubectl -n ironlb-system create secret generic ironlb-membership --from-file=key=PATH"
        in bundle.text
    )
    assert [m for m in docs(bundle_of("prod").text) if m["kind"] != "Secret"] == objects


def test_the_release_base_stack_bundles_the_install_without_site_config_or_a_key() -> None:
    bundle = build("base", RELEASE, omit_secrets=True, env={})
    kinds = {m["kind"] for m in docs(bundle.text)}
    assert {"Namespace", "CustomResourceDefinition", "DaemonSet", "Deployment", "ConfigMap"} <= kinds
    assert not kinds & {"Secret", "IPPool", "BGPPeer", "Service", "Tenant"}
    assert bundle.omitted == ("ironlb-system/ironlb-membership",)
    with pytest.raises(ConfigError, match="ironlb:membershipKey: secret values needed"):
        build("base", RELEASE, env={})  # nobody can open its key: only --omit-secrets bundles it


def test_the_base_stack_with_your_own_key_from_a_file_is_a_complete_install(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    bundle = build("base", RELEASE, secret_files={"ironlb:membershipKey": tmp_path / "key"}, env={})
    assert secret_values(docs(bundle.text)) == {"ironlb-membership": {"key": KEY}}


# --- where secret values come from, and every way that fails ----------------------------------


def test_values_come_from_files_first_then_the_passphrase(tmp_path: Path) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "from-stack"})
    (tmp_path / "tor").write_text("from-file\n")
    bundle = build(
        "s",
        tmp_path,
        secret_files={"ironlb:torPassword": tmp_path / "tor"},
        env={"PULUMI_CONFIG_PASSPHRASE": "pw"},
    )
    assert secret_values(docs(bundle.text)) == {
        "ironlb-membership": {"key": KEY},
        "ironlb-bgp-tor": {"password": "from-file"},
    }


def test_without_a_passphrase_every_key_that_needs_one_is_listed(tmp_path: Path) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    with pytest.raises(ConfigError) as err:
        build("s", tmp_path, env={})
    text = str(err.value)
    assert 'stack "s": ironlb:membershipKey, ironlb:torPassword: secret values needed' in text
    assert "PULUMI_CONFIG_PASSPHRASE" in text and "--secret-file" in text


def test_a_kms_stack_needs_a_file_per_key_and_says_so(tmp_path: Path) -> None:
    write_stack(
        tmp_path,
        "kms",
        {"membershipKey": "", "torPassword": ""},
        passphrase=None,
        provider="awskms://alias/ironlb",
    )
    with pytest.raises(ConfigError) as err:
        build("kms", tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "irrelevant"})
    assert "ironlb:membershipKey, ironlb:torPassword" in str(err.value)
    assert "secrets provider (awskms://alias/ironlb)" in str(err.value)
    with pytest.raises(ConfigError, match=r"^stack \"kms\": ironlb:torPassword: secret values needed"):
        (tmp_path / "key").write_text(KEY)
        build("kms", tmp_path, secret_files={"ironlb:membershipKey": tmp_path / "key"}, env={})
    (tmp_path / "tor").write_text("md5-pass")
    files = {"ironlb:membershipKey": tmp_path / "key", "ironlb:torPassword": tmp_path / "tor"}
    assert secret_values(docs(build("kms", tmp_path, secret_files=files, env={}).text))["ironlb-bgp-tor"] == {
        "password": "md5-pass"
    }


def test_a_wrong_passphrase_fails_naming_the_stack(tmp_path: Path) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    with pytest.raises(ConfigError, match='stack "s": passphrase'):
        build("s", tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "wrong"})


def test_a_damaged_value_never_reaches_the_output(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    doc = yaml.safe_load(path.read_text())
    v, nonce, _ = doc["config"]["ironlb:torPassword"]["secure"].split(":")
    doc["config"]["ironlb:torPassword"]["secure"] = f"{v}:{nonce}:{base64.b64encode(b'x' * 20).decode()}"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="ironlb:torPassword: secure value does not decrypt"):
        build("s", tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "pw"})


def test_a_value_that_is_the_placeholder_itself_fails_the_bundle(tmp_path: Path) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": REDACTED})
    with pytest.raises(
        IronLBError, match=r'Secret "ironlb-system/ironlb-bgp-tor": stringData.password: holds no real value'
    ):
        build("s", tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "pw"})


def test_a_short_membership_key_fails_without_showing_it(tmp_path: Path) -> None:
    write_stack(tmp_path, "s", {"membershipKey": "short-key-xyz", "torPassword": "pw1"})
    with pytest.raises(ConfigError) as err:
        build("s", tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "pw"})
    assert "membership_key: must be at least 32 bytes" in str(err.value)
    assert "short-key-xyz" not in str(err.value)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"ironlb:pools": "x"},
            "ironlb:pools: --secret-file: not a secret key of this stack; its secret keys: "
            "ironlb:membershipKey, ironlb:torPassword",
        ),
        ({"ironlb:torPassword": ""}, "ironlb:torPassword: --secret-file .*: is empty"),
        ({"ironlb:torPassword": None}, "ironlb:torPassword: --secret-file .*: cannot read it"),
    ],
    ids=["not a secret key", "empty file", "missing file"],
)
def test_bad_secret_files_are_named(tmp_path: Path, files: dict[str, str | None], message: str) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    paths = {}
    for key, content in files.items():
        paths[key] = tmp_path / "value"
        if content is not None:
            paths[key].write_text(content)
    with pytest.raises(ConfigError, match=message):
        build("s", tmp_path, secret_files=paths, env={"PULUMI_CONFIG_PASSPHRASE": "pw"})


def test_a_file_cannot_stand_in_for_secure_values_inside_a_structure(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    doc = yaml.safe_load(path.read_text())
    sealer = StackSecrets.open("s", doc["encryptionsalt"], "pw")
    doc["config"]["ironlb:pools"][0]["labels"] = {"site": {"secure": sealer.encrypt("dc1")}}
    path.write_text(yaml.safe_dump(doc))
    (tmp_path / "v").write_text("x")
    with pytest.raises(
        ConfigError, match="ironlb:pools: --secret-file: holds secure values inside a structure"
    ):
        build(
            "s",
            tmp_path,
            secret_files={"ironlb:pools": tmp_path / "v"},
            env={"PULUMI_CONFIG_PASSPHRASE": "pw"},
        )


def test_an_error_about_a_secret_value_never_quotes_it(tmp_path: Path) -> None:
    path = write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    doc = yaml.safe_load(path.read_text())
    sealer = StackSecrets.open("s", doc["encryptionsalt"], "pw")
    doc["config"]["ironlb:pools"][0]["addresses"] = [{"secure": sealer.encrypt("10.9.9.9/33-secretish")}]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        build("s", tmp_path, env={"PULUMI_CONFIG_PASSPHRASE": "pw"})
    assert str(err.value) == f'IPPool "lan": addresses[0] "{REDACTED}": prefix length must be 0-32 for IPv4'


def test_the_guards_see_placeholders_in_data_and_secrets_outside_secrets() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "n"},
        "data": {"k": base64.b64encode(REDACTED.encode()).decode()},
    }
    assert placeholders(secret) == ['Secret "n/s": data.k: holds no real value (a placeholder)']
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": REDACTED}}
    assert secrets_outside_secrets([config, secret]) == [
        'ConfigMap "c": data.x: holds a secret value outside a Secret'
    ]


# --- the command ------------------------------------------------------------------------------


def test_the_file_is_0600_even_over_a_readable_one_and_stderr_shows_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "tor-secret-value"})
    out = tmp_path / "out" / "bundle.yaml"
    out.parent.mkdir()
    out.write_text("old")
    out.chmod(0o644)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "pw")
    assert main(["bundle", "--stack", "s", "--stacks-dir", str(tmp_path), "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "tor-secret-value" in out.read_text() and KEY in out.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle.yaml"]  # no temporary file left
    captured = capsys.readouterr()
    assert "bundle of stack s: " in captured.err
    assert "tor-secret-value" not in captured.err + captured.out and KEY not in captured.err + captured.out


def test_a_failed_bundle_writes_nothing_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    out = tmp_path / "bundle.yaml"
    assert main(["bundle", "--stack", "s", "--stacks-dir", str(tmp_path), "--out", str(out)]) == 1
    assert not out.exists()
    assert "ironlb:membershipKey, ironlb:torPassword: secret values needed" in capsys.readouterr().err


def test_the_passphrase_file_variable_works_and_a_missing_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "nope"))
    argv = ["bundle", "--stack", "s", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "b.yaml")]
    assert main(argv) == 1
    assert f"$PULUMI_CONFIG_PASSPHRASE_FILE: cannot read {tmp_path / 'nope'}" in capsys.readouterr().err
    (tmp_path / "nope").write_text("pw\n")
    assert main(argv) == 0


def test_stdout_is_refused_for_secret_values_when_it_is_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_stack(tmp_path, "s", {"membershipKey": KEY, "torPassword": "pw1"})
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "pw")
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert main(["bundle", "--stack", "s", "--stacks-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "write it with --out FILE" in captured.err and KEY not in captured.out
    assert main(["bundle", "--stack", "s", "--stacks-dir", str(tmp_path), "--omit-secrets"]) == 0
    assert capsys.readouterr().out.startswith('# IronLB install bundle of stack "s"')


def test_conflicting_flags_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bundle", "--stack", "dev", "--omit-secrets", "--secret-file", f"membershipKey={tmp_path}/k"]
    assert main(argv) == 1
    assert "--omit-secrets reads no secret value" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bundle", "--stack", "dev", "--crds-only", "--skip-crds"])
    with pytest.raises(SystemExit):
        main(["bundle", "--stack", "dev", "--secret-file", "no-equals-sign"])


def test_the_release_publishes_the_base_bundle_without_secrets_after_the_image() -> None:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    job = doc["jobs"]["bundle"]
    assert job["needs"] == "image" and job["permissions"] == {"contents": "write"}
    assert doc["jobs"]["image"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    bundles = [line.strip() for line in runs.splitlines() if line.strip().startswith("ironlb bundle")]
    assert bundles and all("--stack base" in b for b in bundles)
    assert all("--omit-secrets" in b or "--crds-only" in b for b in bundles), bundles
    assert ".github/release/Pulumi.base.yaml" in runs and (RELEASE / "Pulumi.base.yaml").is_file()
    assert "pytest -q tests/test_bundle.py" in runs
    assert "gh release upload" in runs and "PULUMI_CONFIG_PASSPHRASE" not in runs


def test_the_install_guide_examples_are_valid() -> None:
    from ironlb.config import parse

    text = (ROOT / "docs" / "install-yaml.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    examples = [d for b in blocks for d in yaml.safe_load_all(b) if isinstance(d, dict) and "apiVersion" in d]
    assert {d["kind"] for d in examples} == {"IPPool", "L2Advertisement", "Service"}
    assert check_all(examples) == []
    config = parse(examples)
    assert set(config.pools) == {"lan"} and set(config.l2_advertisements) == {"lan"}
