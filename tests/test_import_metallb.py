"""``ironlb import metallb``: the corpus in tests/data/metallb/ converted, checked, reported.

Each corpus file says in its ``# expect-unsupported:`` line which (object, field) pairs
must be reported as not converted; everything else must convert, and the converted stack
must pass the same checks as ``pulumi preview``.  A coverage test makes sure the corpus
exercises every MetalLB field the importer knows (converted or reported), so no field is
silently dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironlb.components.stackconfig import documents, spec_from_values
from ironlb.config import parse
from ironlb.metallb import ANNOTATIONS, FIELDS, UNSUPPORTED, convert, duration_seconds, foreign_issues
from ironlb_cli.import_metallb import check, stack_text
from ironlb_cli.main import main

CORPUS = sorted((Path(__file__).resolve().parent / "data" / "metallb").glob("*.yaml"))


def docs_of(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def expected(path: Path) -> set[str]:
    line = next(x for x in path.read_text().splitlines() if x.startswith("# expect-unsupported:"))
    body = line.split(":", 1)[1].strip()
    return set() if body == "none" else {p.strip() for p in body.split(";")}


def test_the_corpus_is_there():
    assert len(CORPUS) >= 3, "tests/data/metallb/*.yaml matched too few files"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_exactly_the_expected_fields_are_reported_unsupported(path):
    _, notes = convert(docs_of(path))
    reported = {f'{n.kind} "{n.name}": {n.field}' for n in notes if not n.converted and n.field}
    assert reported == expected(path)
    assert all(n.message for n in notes)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_the_converted_stack_passes_the_preview_checks(path):
    values, _ = convert(docs_of(path))
    check(values)  # raises ConfigError with the schema's messages


def _config(path: Path) -> Any:
    values, _ = convert(docs_of(path))
    secrets = {p["passwordConfig"]: "[secret]" for p in values.get("peers", []) if "passwordConfig" in p}
    return parse(documents(spec_from_values({**values, "membershipKey": "[secret]", **secrets})))


def test_layer2_objects_keep_their_meaning():
    config = _config(CORPUS[0])
    lan = config.pools["lan"].pool
    assert lan.spec.addresses == ("192.168.50.240-192.168.50.250", "fd50::240-fd50::250")
    assert (lan.spec.autoAssign, lan.spec.avoidBuggyIPs, dict(lan.metadata.labels)) == (
        True,
        True,
        {"zone": "a"},
    )
    team = config.pools["team-web"].pool.spec
    assert (team.autoAssign, team.serviceAllocation.priority, team.serviceAllocation.namespaces) == (
        False,
        50,
        ("web",),
    )
    assert team.serviceAllocation.serviceSelector is not None
    assert config.pools["by-label"].pool.spec.serviceAllocation.namespaceSelector is not None
    l2 = config.l2_advertisements["lan"].spec
    assert (l2.ipPools, l2.interfaces) == (("lan",), ("eth0",))
    assert l2.ipPoolSelector is not None and l2.nodeSelector is not None
    web = next(r for r in config.services if r.key == "web/web")
    assert (web.requested_ips, web.pool, web.sharing_key, web.traffic_policy) == (
        ("192.168.60.5",),
        "team-web",
        "web-share",
        "Local",
    )
    legacy = next(r for r in config.services if r.key == "default/legacy")
    assert (legacy.requested_ips, legacy.pool) == (("192.168.50.245",), "lan")
    assert "default/internal" not in {r.key for r in config.services}


def test_bgp_objects_keep_their_meaning():
    config = _config(CORPUS[1])
    a = config.peers["tor-a"].spec
    assert (a.holdTime, a.keepaliveTime, a.connectTime) == (540, 180, 10)
    assert (a.sourceAddress, a.routerID, a.peerPort, a.bfdProfile) == (
        "10.20.0.10",
        "10.20.0.10",
        179,
        "fast",
    )
    assert a.enableGracefulRestart is True and a.passwordSecretRef is not None
    b = config.peers["tor-b"].spec
    assert (
        b.ebgpMultiHop is True and b.passwordSecretRef is not None and b.passwordSecretRef.name == "tor-b-md5"
    )
    adv = config.bgp_advertisements["public"].spec
    assert (adv.localPref, adv.aggregationLength, adv.aggregationLengthV6) == (200, 32, 128)
    assert (adv.communities, adv.peers) == (("no-export", "64512:100"), ("tor-a", "tor-b"))
    assert config.bfd_profiles["fast"].spec.receiveInterval == 100
    assert dict(config.communities) == {"no-export": "65535:65281", "big": "large:64512:1:2"}


def test_a_password_is_never_written_to_the_stack():
    values, notes = convert(docs_of(CORPUS[1]))
    assert "never-written-to-the-stack" not in stack_text(values)
    assert any("pulumi config set --secret torAPassword" in str(n) for n in notes)


def test_the_corpus_covers_every_field_the_importer_knows():
    seen: dict[str, set[str]] = {}
    annotations: set[str] = set()
    for path in CORPUS:
        for doc in docs_of(path):
            seen.setdefault(doc["kind"], set()).update(doc.get("spec") or {})
            for key in (doc.get("metadata") or {}).get("annotations") or {}:
                annotations.add(re.sub(r"^metallb\.(io|universe\.tf)/", "", key))
    for kind, fields in FIELDS.items():
        assert set(fields) <= seen.get(kind, set()), (
            f"{kind}: {set(fields) - seen.get(kind, set())} not in corpus"
        )
    for kind, unsupported in UNSUPPORTED.items():
        assert set(unsupported) <= seen.get(kind, set()), (
            f"{kind}: {set(unsupported) - seen.get(kind, set())} not in corpus"
        )
    assert set(ANNOTATIONS) <= annotations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("9m0s", 540), ("1m30s", 90), ("1h", 3600), ("1500ms", 2), (3, 3)],
)
def test_durations(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["90", "ninety", "1d", "-5s", ""])
def test_not_durations(text):
    with pytest.raises(ValueError, match="is not a duration"):
        duration_seconds(text)


def test_the_command_writes_a_stack_and_exits_3_when_something_was_not_converted(tmp_path, capsys):
    out = tmp_path / "Pulumi.migrated.yaml"
    code = main(["import", "metallb", *map(str, CORPUS[:2]), "--out", str(out)])
    assert code == 3
    err = capsys.readouterr().err
    assert 'BGPPeer "tor-b": vrf: not converted' in err
    config = yaml.safe_load(out.read_text())["config"]
    assert {"ironlb:pools", "ironlb:peers", "ironlb:services"} <= set(config)


def test_the_command_exits_0_when_everything_converted(tmp_path, capsys):
    doc = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p"},
        "spec": {"addresses": ["10.0.0.0/29"]},
    }
    src = tmp_path / "pool.yaml"
    src.write_text(yaml.safe_dump(doc))
    assert main(["import", "metallb", str(src)]) == 0
    assert "ironlb:pools" in capsys.readouterr().out


def test_validate_reports_metallb_objects_and_annotations_instead_of_ignoring_them():
    issues, kept = foreign_issues(docs_of(CORPUS[0]))
    assert sum("is a MetalLB object" in str(i) for i in issues) == 4
    assert all(d["apiVersion"] == "v1" for d in kept)
    ours = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "s",
            "namespace": "default",
            "annotations": {"metallb.io/loadBalancerIPs": "10.0.0.1"},
        },
        "spec": {"type": "LoadBalancer", "loadBalancerClass": "ironlb.io/ironlb", "ports": [{"port": 1}]},
    }
    (issue,) = foreign_issues([ours])[0]
    assert 'Service "default/s": metadata.annotations[metallb.io/loadBalancerIPs]' in str(issue)


def test_validate_exits_1_on_a_metallb_file(capsys):
    assert main(["validate", str(CORPUS[1])]) == 1
    assert 'BGPPeer "tor-a": apiVersion "metallb.io/v1beta2": is a MetalLB object' in capsys.readouterr().err
