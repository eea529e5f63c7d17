"""The CI workflows cannot run here: lint them, and check the rules that make them work.

- Every workflow validates against the GitHub workflow JSON schema (SchemaStore's, as
  vendored by check-jsonschema, pinned): unknown keys, wrong shapes, bad ``on:`` blocks.
- Secret names are legal (letters, digits, underscores; not ``GITHUB_``), and every
  secret a workflow reads by a computed name exists for every stack.
- One stack per job; ``upsert`` so a new stack is created; the organization comes from
  the ``PULUMI_ORG`` variable (no ``organization/...`` anywhere); the policy pack gets the
  stack's policy config; a kubeconfig comes from the stack's secret.
- No two stacks own the same objects in the same cluster (``kubernetes:context``): the
  rendered objects of stacks sharing a context are disjoint (decision 0073).
- Each stack's policy config fits the policies' config schema, and the stack passes the
  pack with it.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pulumi_policy import ResourceValidationPolicy

from ironlb.components.offline import evaluate_stack, load_stack, manifests
from policy import policies

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)
SECRET_NAME = re.compile(r"^(?!GITHUB_)[A-Za-z_][A-Za-z0-9_]*$")


def stack_id(stack: str) -> str:
    return stack.upper().replace("-", "_")


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return dict(doc)


@pytest.fixture(scope="module")
def workflow_schema() -> dict[str, Any]:
    text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("github-workflows.json")
        .read_text()
    )
    return dict(json.loads(text))


def test_the_stack_list_is_whole() -> None:
    """Every test below loops over STACKS: a glob that matched nothing would make them pass."""
    assert {"dev", "prod", "platform", "team-a", "team-b"} <= set(STACKS), STACKS


def all_workflows() -> list[Path]:
    found = sorted(WORKFLOWS.glob("*.yml"))
    assert found, "no workflows found"
    return found


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_workflow_is_valid_against_the_schema(path, workflow_schema):
    validator = jsonschema.Draft7Validator(workflow_schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(load(path))
    ]
    assert errors == []


def test_the_schema_check_catches_a_broken_workflow(workflow_schema):
    broken = {"on": {"push": {}}, "jobs": {"x": {"runs-on": "ubuntu-24.04", "stepz": []}}}
    assert list(jsonschema.Draft7Validator(workflow_schema).iter_errors(broken))


def _steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def _pulumi_steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _steps(doc) if str(s.get("uses", "")).startswith("pulumi/actions@")]


@pytest.mark.parametrize("path", all_workflows(), ids=lambda p: p.name)
def test_secret_names_are_legal_and_exist_for_every_stack(path):
    text = path.read_text()
    for name in set(re.findall(r"secrets\.([A-Za-z0-9_-]+)", text)) - {"GITHUB_TOKEN"}:  # GitHub's own
        assert SECRET_NAME.match(name), f"{path.name}: secret name {name} is not legal"
    for prefix in re.findall(r"secrets\[format\('([A-Za-z0-9_]+)\{0\}'", text):
        for stack in STACKS:
            assert SECRET_NAME.match(prefix + stack_id(stack)), f"{prefix}{stack_id(stack)}"
    assert "organization/" not in text, "the organization comes from vars.PULUMI_ORG"


def test_preview_covers_every_stack_once_with_its_secret_id():
    job = load(WORKFLOWS / "preview.yml")["jobs"]["preview"]
    include = job["strategy"]["matrix"]["include"]
    assert sorted(i["stack"] for i in include) == STACKS
    assert all(i["id"] == stack_id(i["stack"]) for i in include)


def test_preview_plans_the_diff_then_previews_with_policy_config():
    doc = load(WORKFLOWS / "preview.yml")
    steps = doc["jobs"]["preview"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0, "the base revision must be there for --diff"
    runs = [s.get("run", "") for s in steps]
    plan_at = next(i for i, r in enumerate(runs) if "ironlb plan" in r and "--diff" in r)
    preview_at = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions@"))
    assert plan_at < preview_at
    action = steps[preview_at]["with"]
    assert action["command"] == "preview" and action["upsert"] is True
    assert action["policyPacks"] == "policy"
    assert action["policyPackConfigs"] == "policy/config/${{ matrix.stack }}.json"
    assert action["stack-name"] == "${{ vars.PULUMI_ORG }}/ironlb/${{ matrix.stack }}"
    assert "gh pr comment" in doc["jobs"]["comment"]["steps"][-1]["run"]


def test_up_runs_one_stack_per_job_with_its_own_concurrency_group():
    up = load(WORKFLOWS / "up.yml")
    calls = {name: job["with"] for name, job in up["jobs"].items()}
    assert sorted(c["stack"] for c in calls.values()) == STACKS
    assert all(c["id"] == stack_id(c["stack"]) for c in calls.values())
    assert all(c["environment"] == "production" for n, c in calls.items() if n != "dev")
    assert up["jobs"]["team-a"]["needs"] == "platform" and up["jobs"]["team-b"]["needs"] == "platform"
    reusable = load(WORKFLOWS / "up-stack.yml")
    job = reusable["jobs"]["up"]
    assert job["concurrency"]["group"] == "pulumi-stack-${{ inputs.stack }}"
    (action,) = _pulumi_steps(reusable)
    assert action["with"]["command"] == "up" and action["with"]["upsert"] is True
    assert action["with"]["policyPackConfigs"] == "policy/config/${{ inputs.stack }}.json"
    kubeconfig = next(s for s in job["steps"] if "KUBECONFIG_DATA" in s.get("env", {}))
    assert "umask 077" in kubeconfig["run"]


def test_no_two_stacks_own_the_same_objects_in_one_cluster():
    owned: dict[str, tuple[str, set[tuple[str, str, str]]]] = {}
    for stack in STACKS:
        raw = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
        context = raw["config"].get("kubernetes:context", "")
        objects = {
            (m["kind"], m["metadata"].get("namespace", ""), m["metadata"]["name"])
            for m in manifests(evaluate_stack(load_stack(stack, ROOT / "stacks")))
        }
        owned[stack] = (context, objects)
    shared = [(a, b) for a, b in combinations(owned.items(), 2) if a[1][0] == b[1][0]]
    assert shared, "no two stacks share a cluster: this test would check nothing"
    for (a, (ctx_a, objs_a)), (b, (_, objs_b)) in shared:
        assert not objs_a & objs_b, f"{a} and {b} both own {sorted(objs_a & objs_b)[:3]} in {ctx_a}"


def test_every_stack_has_a_policy_config_that_fits_and_passes():
    from tests.test_policy import stack_resources

    by_name = {p.name: p for p in policies.POLICIES}
    for stack in STACKS:
        config = json.loads((ROOT / "policy" / "config" / f"{stack}.json").read_text())
        for name, values in config.items():
            declared = by_name[name].config_schema
            assert declared is not None, f"{name} takes no config"
            schema = {"type": "object", "properties": declared.properties, "additionalProperties": False}
            jsonschema.validate(values, schema)
        ev = evaluate_stack(load_stack(stack, ROOT / "stacks"))
        found: list[str] = []
        for policy in policies.POLICIES:
            if isinstance(policy, ResourceValidationPolicy):
                from tests.test_policy import validate_resource

                for res in stack_resources(ev):
                    found += validate_resource(
                        policy, res.resource_type, dict(res.props), config.get(policy.name, {})
                    )
        assert found == [], f"{stack}: {found}"


def test_pulumi_project_keeps_stacks_under_stacks_and_the_pack_is_python():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["stackConfigDir"] == "stacks" and project["runtime"]["name"] == "python"
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    assert "pulumi-policy==1.21.0" in (ROOT / "policy" / "requirements.txt").read_text()
