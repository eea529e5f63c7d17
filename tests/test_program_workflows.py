"""The PR-preview and deploy workflows cannot run here; check that their key parts are right."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in (ROOT / "stacks").glob("Pulumi.*.yaml")
)


def load(name: str) -> dict:
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as True
    return doc


def pulumi_steps(job: dict) -> list[dict]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]


def test_preview_runs_on_pull_requests_and_may_comment():
    doc = load("preview.yml")
    assert "pull_request" in doc["on"]
    assert doc["permissions"]["pull-requests"] == "write"


def test_preview_covers_every_stack_in_a_matrix():
    job = load("preview.yml")["jobs"]["preview"]
    assert sorted(job["strategy"]["matrix"]["stack"]) == STACKS


def test_preview_tests_then_plans_into_the_summary_then_previews():
    steps = load("preview.yml")["jobs"]["preview"]["steps"]
    runs = [s.get("run", "") for s in steps]
    test_at = next(i for i, r in enumerate(runs) if r.startswith("pytest"))
    plan_at = next(i for i, r in enumerate(runs) if "ironlb plan" in r and "$GITHUB_STEP_SUMMARY" in r)
    preview_at = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions@"))
    assert test_at < plan_at < preview_at
    action = steps[preview_at]["with"]
    assert action["command"] == "preview"
    assert action["diff"] is True and action["comment-on-pr"] is True
    assert action["policyPacks"] == "policy"
    assert action["stack-name"].endswith("${{ matrix.stack }}")


def test_up_deploys_on_merge_to_main():
    doc = load("up.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    commands = {step["with"]["command"] for job in doc["jobs"].values() for step in pulumi_steps(job)}
    assert commands == {"up"}


@pytest.mark.parametrize("job", ["platform", "prod", "tenants"])
def test_production_jobs_wait_for_approval_through_an_environment(job):
    jobs = load("up.yml")["jobs"]
    assert jobs[job]["environment"] == "production"
    assert jobs[job]["needs"]


def test_up_deploys_every_stack_once():
    jobs = load("up.yml")["jobs"]
    names = set()
    for job in jobs.values():
        for step in pulumi_steps(job):
            stack = step["with"]["stack-name"].rsplit("/", 1)[-1]
            names.update(job["strategy"]["matrix"]["stack"] if "matrix" in stack else [stack])
    assert sorted(names) == STACKS


def test_policy_pack_is_a_python_pack():
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    assert "pulumi-policy==1.21.0" in (ROOT / "policy" / "requirements.txt").read_text()


def test_pulumi_project_keeps_stacks_under_stacks():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["stackConfigDir"] == "stacks" and project["runtime"]["name"] == "python"
