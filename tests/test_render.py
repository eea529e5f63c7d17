"""``ironlb render`` and ``ironlb plan``: golden output, schema validity, redaction, exit codes.

Golden files live in tests/golden/<stack>/.  After an intended change, regenerate them with
``IRONLB_UPDATE_GOLDEN=1 pytest tests/test_render.py`` and review the diff.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironlb.components.manifest_check import check_all, problems, problems_via_library
from ironlb.components.offline import evaluate, evaluate_stack, load_stack, manifests
from ironlb.components.stackconfig import REDACTED, read_stack_file
from ironlb.config import parse
from ironlb_cli.main import main
from ironlb_cli.render import render

ROOT = Path(__file__).resolve().parents[1]
STACKS = ROOT / "stacks"
GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("IRONLB_UPDATE_GOLDEN") == "1"
ALL_STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in STACKS.glob("Pulumi.*.yaml")
)


def test_there_are_stacks_to_render():
    assert {"dev", "prod", "platform", "team-a"} <= set(ALL_STACKS)


@pytest.mark.parametrize("stack", ["dev", "prod", "platform", "team-a"])
def test_render_matches_golden(stack):
    files = render(stack, STACKS)
    target = GOLDEN / stack
    if UPDATE:
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name, text in files:
            (target / name).write_text(text)
    golden = sorted(p.name for p in target.glob("*.yaml"))
    assert golden, f"no golden files in {target}; run with IRONLB_UPDATE_GOLDEN=1"
    assert [name for name, _ in files] == golden
    for name, text in files:
        assert text == (target / name).read_text(), f"{stack}/{name} differs from golden"


def test_render_is_deterministic():
    assert render("prod", STACKS) == render("prod", STACKS)


@functools.cache
def _manifests(stack: str) -> list[dict[str, Any]]:
    return manifests(evaluate_stack(load_stack(stack, STACKS)))


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_every_rendered_manifest_validates_against_kubernetes_and_crd_schemas(stack):
    found = _manifests(stack)
    assert found
    assert check_all(found) == []


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        (
            {
                "apiVersion": "ironlb.io/v1alpha1",
                "kind": "IPPool",
                "metadata": {"name": "p"},
                "spec": {"adresses": ["a"]},
            },
            'IPPool "p"',
        ),
        (
            {
                "apiVersion": "ironlb.io/v1alpha1",
                "kind": "BGPPeer",
                "metadata": {"name": "r"},
                "spec": {"myASN": "x", "peerASN": 1, "peerAddress": "10.0.0.1"},
            },
            "spec.myASN",
        ),
        (
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "s", "namespace": "a"},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "colour": "red"},
            },
            "colour",
        ),
        (
            {"apiVersion": "ironlb.io/v1alpha1", "kind": "Gadget", "metadata": {"name": "g"}},
            "no CRD defines kind",
        ),
    ],
    ids=[
        "a CR with a misspelt field fails the CRD schema",
        "a CR with a wrongly typed field fails",
        "a Service with an unknown field fails the Kubernetes schema",
        "an unknown kind of ours fails",
    ],
)
def test_schema_check_catches(manifest, fragment):
    found = problems(manifest)
    assert found and fragment in found[0]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cached_kubernetes_validators_agree_with_the_library(stack):
    for manifest in _manifests(stack):
        if manifest["apiVersion"] != "ironlb.io/v1alpha1":
            assert problems(manifest) == problems_via_library(manifest) == []
    broken = copy.deepcopy(next(m for m in _manifests(stack) if m["kind"] == "DaemonSet"))
    broken["spec"]["template"]["spec"]["hostNetwork"] = "yes"
    assert problems(broken) and problems_via_library(broken)


def test_secrets_are_redacted_in_manifests_and_never_present():
    values, _ = read_stack_file(STACKS / "Pulumi.prod.yaml")
    values = copy.deepcopy(values)
    values.update(
        membershipKey="k3y-plaintext-k3y-plaintext-k3y-plaintext",
        torAPassword="tor-a-plaintext",
        torBPassword="tor-b-plaintext",
    )
    ev = evaluate(values, {"membershipKey", "torAPassword", "torBPassword"}, stack="prod")
    text = json.dumps(manifests(ev)) + json.dumps(ev.outputs)
    for secret in ("k3y-plaintext", "tor-a-plaintext", "tor-b-plaintext"):  # nor any part of one
        assert secret not in text
    secrets = [m for m in manifests(ev) if m["kind"] == "Secret"]
    assert len(secrets) == 3 and all(set(m["stringData"].values()) == {REDACTED} for m in secrets)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_render_directory_is_a_standalone_agent_source(stack, tmp_path):
    assert main(["render", "--stack", stack, "--out", str(tmp_path), "--stacks-dir", str(STACKS)]) == 0
    docs = [yaml.safe_load(p.read_text()) for p in sorted(tmp_path.glob("*.yaml"))]
    read_back = parse(docs)
    expected = load_stack(stack, STACKS).config
    assert sorted(read_back.pools) == sorted(expected.pools)
    assert sorted(read_back.peers) == sorted(expected.peers)
    assert sorted(s.key for s in read_back.services) == sorted(s.key for s in expected.services)
    assert sorted(read_back.tenants) == sorted(expected.tenants)


def test_render_replaces_its_old_files_and_keeps_others(tmp_path):
    (tmp_path / "999-stale-thing.yaml").write_text("{}\n")
    (tmp_path / "README").write_text("keep me\n")
    assert main(["render", "--stack", "team-a", "--out", str(tmp_path), "--stacks-dir", str(STACKS)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000-service-team-a-prod.shop.yaml",
        "001-service-team-a-staging.shop-admin.yaml",
        "README",
    ]


def _broken_stacks(tmp_path: Path, edit) -> Path:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    raw = yaml.safe_load((stacks / "Pulumi.dev.yaml").read_text())
    edit(raw["config"])
    (stacks / "Pulumi.dev.yaml").write_text(yaml.safe_dump(raw))
    return stacks


@pytest.mark.parametrize("command", ["render", "plan"])
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["ironlb:pools"][0].update(addresses=["10.77.0.300"]),
            'IPPool "lab-l2": addresses[0] "10.77.0.300"',
        ),
        (lambda c: c["ironlb:services"][0].update(pool="missing"), 'no IPPool named "missing"'),
        (lambda c: c.update({"ironlb:peer": []}), 'stack config "ironlb:peer": unknown key'),
    ],
    ids=["a bad address", "an unknown pool", "a misspelt key"],
)
def test_invalid_stack_exits_1_with_the_schema_message_and_no_traceback(
    tmp_path, capsys, command, edit, message
):
    stacks = _broken_stacks(tmp_path, edit)
    extra = ["--out", str(tmp_path / "out")] if command == "render" else []
    assert main([command, "--stack", "dev", "--stacks-dir", str(stacks), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unknown_stack_names_the_stacks_there(capsys):
    assert main(["plan", "--stack", "nope", "--stacks-dir", str(STACKS)]) == 1
    assert "stacks here: dev" in capsys.readouterr().err


def test_plan_shows_every_tenant_pool_peer_and_service(capsys):
    assert main(["plan", "--stack", "prod", "--stacks-dir", str(STACKS)]) == 0
    out = capsys.readouterr().out
    config = load_stack("prod", STACKS).config
    for name in [*config.tenants, *config.pools, *config.peers, *(s.key for s in config.services)]:
        assert name in out
    assert "10.100.1.10" in out and "1/30" in out  # a pinned address; team-c: .0-.30 less .0 (avoidBuggyIPs)


def test_plan_json_gives_addresses_and_reasons(tmp_path, capsys):
    stacks = _broken_stacks(
        tmp_path,
        lambda c: c["ironlb:services"].append(
            {
                "name": "greedy",
                "namespace": "default",
                "ports": [{"port": 1}],
                "pool": "lab-l2",
                "ipFamilyPolicy": "RequireDualStack",
                "ipFamilies": ["IPv4", "IPv6"],
                "ips": ["10.77.0.201", "10.77.0.202"],
            }
        ),
    )
    code = main(["plan", "--stack", "dev", "--stacks-dir", str(stacks), "--format", "json", "--strict"])
    plan = json.loads(capsys.readouterr().out)
    services = {s["service"]: s for s in plan["services"]}
    assert services["default/web"]["addresses"] == ["10.77.0.200", "fd77::200"]
    assert services["default/dns"]["addresses"] == ["10.78.0.53"]
    greedy = services["default/greedy"]
    assert (code, greedy["addresses"]) == (3, []) and greedy["reason"] and greedy["error"]
    lab = next(p for p in plan["pools"] if p["name"] == "lab-l2")
    assert lab["size"] == {"IPv4": 21, "IPv6": 33} and lab["used"] == {"IPv4": 1, "IPv6": 1}


def test_plan_markdown_is_tables_for_the_job_summary(capsys):
    assert main(["plan", "--stack", "team-a", "--stacks-dir", str(STACKS), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## IronLB plan: Stack team-a")
    assert "| SERVICE | ADDRESSES | POOL | STATUS |" in out
    assert re.search(r"pools granted by \S*platform\b", out), "the platform stack the grants come from"
