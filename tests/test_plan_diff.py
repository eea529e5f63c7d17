"""``ironlb plan``: live versus predicted, order independence, and ``--diff`` (golden output).

Stacks are written into a temporary stacks directory from :data:`BASE`, so each test
states the change it makes.  The diff goldens live in ``tests/golden/plan/``; regenerate
with ``IRONLB_UPDATE_GOLDEN=1`` after an intended change and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironlb.errors import IronLBError
from ironlb_cli.livestate import export_document, read_export
from ironlb_cli.main import main
from ironlb_cli.plan import build_plan
from lab.manifests import service

GOLDEN = Path(__file__).resolve().parent / "golden" / "plan"
UPDATE = os.environ.get("IRONLB_UPDATE_GOLDEN") == "1"

BASE: dict[str, Any] = {
    "ironlb:membershipKey": {"secure": "v1:abc"},
    "ironlb:pools": [
        {"name": "lan", "addresses": ["10.77.0.200-10.77.0.220"], "allowUntenanted": True},
        {"name": "team-a-bgp", "addresses": ["10.100.0.0/29"]},
    ],
    "ironlb:tenants": [
        {"name": "team-a", "namespaces": ["team-a"], "pools": ["team-a-bgp"], "maxAddresses": 4}
    ],
    "ironlb:peers": [
        {"name": "tor", "myASN": 64513, "peerASN": 64512, "peerAddress": "10.77.0.1", "holdTime": 90}
    ],
    "ironlb:l2Advertisements": [{"name": "lan", "ipPools": ["lan"]}],
    "ironlb:bgpAdvertisements": [{"name": "team-a", "ipPools": ["team-a-bgp"], "peers": ["tor"]}],
    "ironlb:services": [
        {"name": "web", "namespace": "default", "ports": [{"port": 80}], "pool": "lan"},
        {"name": "api", "namespace": "team-a", "ports": [{"port": 443}]},
    ],
}


def write(stacks: Path, values: dict[str, Any], name: str = "dev") -> Path:
    stacks.mkdir(parents=True, exist_ok=True)
    path = stacks / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": values}, sort_keys=False))
    return path


def changed(**edits: Any) -> dict[str, Any]:
    values = copy.deepcopy(BASE)
    for key, value in edits.items():
        values[f"ironlb:{key}"] = value
    return values


def with_service(*extra: dict[str, Any]) -> dict[str, Any]:
    return changed(services=[*BASE["ironlb:services"], *extra])


AAA = {"name": "aaa", "namespace": "default", "ports": [{"port": 8080}], "pool": "lan"}


def addresses(plan: dict[str, Any]) -> dict[str, list[str]]:
    return {s["service"]: s["addresses"] for s in plan["services"]}


def origins(plan: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {s["service"]: s["origin"] for s in plan["services"]}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def plan_diff(capsys: pytest.CaptureFixture[str], stacks: Path, base: str, fmt: str) -> tuple[int, str]:
    """``ironlb plan`` of the dev stack in ``stacks``, diffed against ``base``, in ``fmt``."""
    return run(capsys, "plan", "--stack", "dev", "--stacks-dir", str(stacks), "--diff", base, "--format", fmt)


# --- prediction ----------------------------------------------------------------------------


def test_without_a_base_or_live_state_every_address_is_predicted(tmp_path):
    write(tmp_path, BASE)
    plan = build_plan("dev", tmp_path)
    assert addresses(plan) == {"default/web": ["10.77.0.200"], "team-a/api": ["10.100.0.0"]}
    assert origins(plan)["default/web"] == {"10.77.0.200": "predicted"}


def test_the_order_of_the_services_list_does_not_matter(tmp_path):
    write(tmp_path, with_service(AAA), "a")
    write(tmp_path, changed(services=[AAA, *reversed(BASE["ironlb:services"])]), "b")
    assert addresses(build_plan("a", tmp_path)) == addresses(build_plan("b", tmp_path))


def test_live_addresses_are_kept_and_marked_live(tmp_path):
    write(tmp_path, with_service(AAA))
    live = {"default/web": ("10.77.0.205",)}
    plan = build_plan("dev", tmp_path, live=live)
    assert addresses(plan)["default/web"] == ["10.77.0.205"]
    assert origins(plan)["default/web"] == {"10.77.0.205": "live"}
    assert origins(plan)["default/aaa"] == {"10.77.0.200": "predicted"}


def test_adding_a_service_never_moves_another(tmp_path, capsys):
    base = write(tmp_path / "base", BASE)
    write(tmp_path / "head", with_service(AAA))
    code, out = plan_diff(capsys, tmp_path / "head", str(base), "json")
    assert code == 0
    result = json.loads(out)
    assert addresses(result["plan"])["default/web"] == ["10.77.0.200"], "web keeps the address it had"
    assert addresses(result["plan"])["default/aaa"] == ["10.77.0.201"]
    assert [(r["change"], r["name"]) for r in result["diff"]["sections"]["Services"]] == [
        ("added", "default/aaa")
    ]


def test_a_live_address_the_new_config_no_longer_allows_is_reported_and_replaced(tmp_path):
    small = {"name": "lan", "addresses": ["10.77.0.200-10.77.0.202"], "allowUntenanted": True}
    write(tmp_path, changed(pools=[small, BASE["ironlb:pools"][1]]))
    plan = build_plan("dev", tmp_path, live={"default/web": ("10.77.0.210",)})
    web = next(s for s in plan["services"] if s["service"] == "default/web")
    assert web["addresses"] == ["10.77.0.200"] and web["origin"] == {"10.77.0.200": "predicted"}
    assert web["dropped"] == ["live address 10.77.0.210 is in no IPPool; it will be withdrawn"]


def test_a_service_without_an_address_fails_the_plan_unless_allowed(tmp_path, capsys):
    values = with_service({"name": "db", "namespace": "team-a", "ports": [{"port": 5432}]})
    values["ironlb:tenants"] = [{**BASE["ironlb:tenants"][0], "maxAddresses": 1}]  # api and db: only one fits
    write(tmp_path, values)
    code, out = run(capsys, "plan", "--stack", "dev", "--stacks-dir", str(tmp_path))
    assert code == 3 and "(1 without an address)" in out
    code, out = run(capsys, "plan", "--stack", "dev", "--stacks-dir", str(tmp_path), "--allow-unassigned")
    assert code == 0 and "team-a/db" in out


# --- live state files ----------------------------------------------------------------------


def test_an_export_holds_only_ironlbs_services_from_their_status(tmp_path):
    doc = export_document(
        [
            service("web", "default", "10.77.0.205"),
            service("other", "default", "192.0.2.1", cls="example.com/other"),
            service("classless", "default", "192.0.2.2", cls=None),
            service("pending", "default"),
        ]
    )
    path = tmp_path / "live.json"
    path.write_text(json.dumps(doc))
    assert read_export(path) == {"default/web": ("10.77.0.205",)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{", "not JSON"),
        ('{"kind": "Other"}', 'kind must be "AssignmentExport"'),
        ('{"kind": "AssignmentExport", "services": {"web": ["10.0.0.1"]}}', '"web" must be namespace/name'),
        (
            '{"kind": "AssignmentExport", "services": {"a/web": "10.0.0.1"}}',
            "must be a list of address strings",
        ),
    ],
    ids=["not JSON", "another kind", "a key without a namespace", "addresses not a list"],
)
def test_a_bad_export_file_is_named_with_what_is_expected(tmp_path, body, message):
    path = tmp_path / "live.json"
    path.write_text(body)
    with pytest.raises(IronLBError) as err:
        read_export(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_plan_reads_an_export_file(tmp_path, capsys):
    write(tmp_path, BASE)
    live = tmp_path / "live.json"
    live.write_text(json.dumps(export_document([service("web", "default", "10.77.0.207")])))
    code, out = run(capsys, "plan", "--stack", "dev", "--stacks-dir", str(tmp_path), "--live", str(live))
    assert code == 0 and "10.77.0.207 (live)" in out and "10.100.0.0 (predicted)" in out


# --- the diff ------------------------------------------------------------------------------


def _head() -> dict[str, Any]:
    """A change touching every section: a service added and one moved, a pool added and
    one grown, a peer's timers changed, a tenant's quota raised and a namespace added."""
    values = with_service(AAA, {"name": "db", "namespace": "team-a-dev", "ports": [{"port": 5432}]})
    values["ironlb:services"][0] = {**values["ironlb:services"][0], "pool": "lan-v6", "ipFamilies": ["IPv6"]}
    values["ironlb:pools"] = [
        {"name": "lan", "addresses": ["10.77.0.200-10.77.0.230"], "allowUntenanted": True},
        {"name": "lan-v6", "addresses": ["fd77::200-fd77::220"], "allowUntenanted": True},
        BASE["ironlb:pools"][1],
    ]
    values["ironlb:peers"] = [{**BASE["ironlb:peers"][0], "holdTime": 9}]
    values["ironlb:tenants"] = [
        {**BASE["ironlb:tenants"][0], "namespaces": ["team-a", "team-a-dev"], "maxAddresses": 8}
    ]
    values["ironlb:l2Advertisements"] = [{"name": "lan", "ipPools": ["lan", "lan-v6"]}]
    return values


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_diff_output_matches_the_golden(tmp_path, capsys, fmt):
    base = write(tmp_path / "base", BASE)
    write(tmp_path / "head", _head())
    code, out = plan_diff(capsys, tmp_path / "head", str(base), fmt)
    assert code == 0
    out = out.replace(str(base), "BASE")
    golden = GOLDEN / f"diff.{'md' if fmt == 'markdown' else 'txt'}"
    if UPDATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(out)
    assert golden.is_file(), "no golden; run with IRONLB_UPDATE_GOLDEN=1"
    assert out == golden.read_text()


def test_diff_against_a_saved_plan_equals_diff_against_its_stack(tmp_path, capsys):
    base = write(tmp_path / "base", BASE)
    write(tmp_path / "head", _head())
    _, saved = run(
        capsys, "plan", "--stack", "dev", "--stacks-dir", str(tmp_path / "base"), "--format", "json"
    )
    (tmp_path / "base.json").write_text(saved)
    head = ["plan", "--stack", "dev", "--stacks-dir", str(tmp_path / "head"), "--format", "json", "--diff"]
    _, from_file = run(capsys, *head, str(tmp_path / "base.json"))
    _, from_stack = run(capsys, *head, str(base))
    assert json.loads(from_file)["diff"]["sections"] == json.loads(from_stack)["diff"]["sections"]


def test_diff_against_a_git_revision(tmp_path, capsys):
    repo = tmp_path / "repo"
    write(repo / "stacks", BASE)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "base")
    write(repo / "stacks", with_service(AAA))
    code, out = run(capsys, "plan", "--stack", "dev", "--stacks-dir", str(repo / "stacks"), "--diff", "HEAD")
    assert code == 0
    assert "IronLB plan for stack dev against HEAD: services: 1 added" in out
    assert "+ default/aaa  10.77.0.201 (predicted)" in out


def test_an_unknown_base_is_named(tmp_path, capsys):
    write(tmp_path, BASE)
    code = main(["plan", "--stack", "dev", "--stacks-dir", str(tmp_path), "--diff", "no-such-revision"])
    assert code == 1
    assert '--diff "no-such-revision": not a file and not a git revision' in capsys.readouterr().err
