"""The corpora through both front doors: ``ironlb validate`` and the components' preview path.

Every file of ``tests/data/invalid`` starts with ``# expect: <fragment>``: ``ironlb validate``
must exit 1 printing that fragment and no traceback, and the Pulumi program's parse
(``ironlb.components.program.checked``, what ``pulumi preview`` runs before registering anything)
must raise its clean InvalidConfigError carrying the same fragment.  Valid files pass both.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ironlb.crds import crd_manifests
from ironlb_cli.main import main
from ironlb_cli.validate import load_documents, summary

DATA = Path(__file__).parent / "data"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
VALID = sorted((DATA / "valid").glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <fragment>'"
    return first.removeprefix("# expect: ")


def test_the_corpora_are_not_empty() -> None:
    assert len(INVALID) >= 100
    assert len(VALID) >= 5


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_an_invalid_file_fails_with_its_expected_message(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert expected(path) in err
    assert "Traceback" not in err


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_an_invalid_file_fails_the_components_preview_with_the_same_message(path: Path) -> None:
    from ironlb.components.base import InvalidConfigError
    from ironlb.components.program import checked

    docs, problems = load_documents([str(path)])
    if problems:  # YAML that does not load: the stack file's own loader reports it, not parse
        assert any(expected(path) in p for p in problems)
        return
    with pytest.raises(InvalidConfigError) as info:
        checked(docs)
    assert expected(path) in str(info.value)
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_a_valid_file_passes_the_components_preview(path: Path) -> None:
    from ironlb.components.program import checked

    docs, problems = load_documents([str(path)])
    assert not problems
    assert checked(docs).pools


def test_all_invalid_files_together_report_every_expected_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, INVALID)]) == 1
    err = capsys.readouterr().err
    missing = [p.name for p in INVALID if expected(p) not in err]
    assert not missing


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_a_valid_file_passes_with_a_summary(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--allocate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid: ")
    assert "not allocated" not in out


def test_a_directory_stands_for_its_yaml_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(DATA / "valid")]) == 0
    assert "8 pools" in capsys.readouterr().out


def test_a_missing_file_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_warnings_are_printed_but_do_not_fail(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "w.yaml"
    f.write_text(
        "apiVersion: ironlb.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: p}\n"
        "spec: {myASN: 23456, peerASN: 64513, peerAddress: 192.0.2.1}\n"
    )
    assert main(["validate", str(f)]) == 0
    assert 'warning: BGPPeer "p": myASN "23456": is AS_TRANS' in capsys.readouterr().err


def test_crds_subcommand_prints_every_crd(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    assert main(["crds"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = sorted(d["spec"]["names"]["kind"] for d in docs)
    assert {"BGPAdvertisement", "BGPPeer", "Community", "IPPool", "L2Advertisement", "Tenant"} <= set(kinds)
    assert len(kinds) == len(set(kinds)) == len(crd_manifests())


def test_the_console_command_exits_1_on_the_invalid_corpus() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ironlb_cli.main", "validate", str(INVALID[0])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert expected(INVALID[0]) in proc.stderr


# --- stack files and what is neither an object nor a stack ----------------------------------

STACKS = Path(__file__).parent.parent / "stacks"


@pytest.mark.parametrize("stack", ["dev", "prod", "platform", "team-a"])
def test_a_stack_file_is_checked_as_the_program_reads_it(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironlb.components.offline import load_stack

    config = load_stack(stack, STACKS).config
    assert main(["validate", str(STACKS / f"Pulumi.{stack}.yaml")]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == summary(config)
    assert "warning" not in captured.err  # the shipped stacks are clean examples
    assert len(config.pools) > 0


def test_a_stack_files_own_errors_name_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(
        "config:\n  ironlb:pools:\n    - name: p\n      addresses: [10.0.0.1-10.0.0.9]\n  ironlb:poolz: []\n"
    )
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "poolz" in err and "unknown key" in err
    assert "Traceback" not in err


def test_a_document_that_is_no_object_nor_stack_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "values.yaml"
    path.write_text("replicas: 3\n")
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: document 1: not a Kubernetes object" in err
    assert "Traceback" not in err
