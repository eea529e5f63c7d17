"""The example programs in examples/ agree with the package schema the provider serves.

No Pulumi CLI (and so no SDK generation) runs here, so the examples are checked against
the schema itself: the YAML program fully (every IronLB resource's properties: known
names, required ones present, value types, literal-only inputs not interpolated, nested
objects against their types); the TypeScript program structurally (components exist,
every argument key and every output it reads is in the schema).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironlb.components.provider import schema

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PREFIX = "ironlb:index:"


@pytest.fixture(scope="module")
def package() -> dict[str, Any]:
    return schema()


def check(value: Any, prop: dict[str, Any], where: str, package: dict[str, Any]) -> list[str]:
    """Problems of ``value`` against schema property ``prop`` (interpolations are type-unknown)."""
    if isinstance(value, str) and value.startswith("${"):
        return (
            [f"{where}: must be a literal value (plain in the schema), not {value}"]
            if prop.get("plain")
            else []
        )
    if "$ref" in prop:
        target = package["types"][prop["$ref"].removeprefix("#/types/")]
        if not isinstance(value, dict):
            return [f"{where}: must be an object ({prop['$ref']})"]
        problems = [
            f"{where}.{k}: not a property of {prop['$ref']}" for k in value if k not in target["properties"]
        ]
        for key, item in value.items():
            if key in target["properties"]:
                problems += check(item, target["properties"][key], f"{where}.{key}", package)
        return problems
    kind = prop.get("type")
    checks = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if kind in checks and not checks[kind](value):
        return [f"{where}: must be {kind}, got {value!r}"]
    if kind == "array":
        return [
            p for i, item in enumerate(value) for p in check(item, prop["items"], f"{where}[{i}]", package)
        ]
    if kind == "object" and "additionalProperties" in prop:
        return [
            p
            for k, v in value.items()
            for p in check(v, prop["additionalProperties"], f"{where}.{k}", package)
        ]
    return []


def yaml_problems(program: dict[str, Any], package: dict[str, Any]) -> list[str]:
    problems = []
    for name, res in (program.get("resources") or {}).items():
        typ = res.get("type", "")
        if not typ.startswith(PREFIX):
            continue
        spec = package["resources"].get(typ)
        if spec is None:
            problems.append(f"{name}: {typ} is not in the schema")
            continue
        props = res.get("properties") or {}
        inputs = spec["inputProperties"]
        problems += [f"{name}.{k}: not an input of {typ}" for k in props if k not in inputs]
        problems += [
            f"{name}: required input {k} missing" for k in spec.get("requiredInputs", []) if k not in props
        ]
        for key, value in props.items():
            if key in inputs:
                problems += check(value, inputs[key], f"{name}.{key}", package)
    for expr in re.findall(r"\$\{(\w+)\.(\w+)\}", yaml.safe_dump(program)):
        res = (program.get("resources") or {}).get(expr[0])
        if res and str(res.get("type", "")).startswith(PREFIX):
            outputs = package["resources"][res["type"]].get("properties", {})
            if expr[1] not in outputs:
                problems.append(f"${{{expr[0]}.{expr[1]}}}: {res['type']} has no output {expr[1]}")
    return problems


def test_the_yaml_example_fits_the_schema(package):
    program = yaml.safe_load((EXAMPLES / "yaml" / "Pulumi.yaml").read_text())
    used = [r for r in program["resources"].values() if r["type"].startswith(PREFIX)]
    assert len(used) >= 4, "the example must exercise the components"
    assert program["packages"]["ironlb"] == "../../provider"
    assert yaml_problems(program, package) == []


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        ({"type": "ironlb:index:IpPool", "properties": {"adresses": ["10.0.0.0/24"]}}, "not an input"),
        ({"type": "ironlb:index:IpPool", "properties": {"addresses": "10.0.0.0/24"}}, "must be array"),
        ({"type": "ironlb:index:Tenant", "properties": {"namespaces": "${ns}"}}, "must be a literal"),
        ({"type": "ironlb:index:Pool", "properties": {}}, "not in the schema"),
        (
            {"type": "ironlb:index:LoadBalancerService", "properties": {"ports": [{"port": "80"}]}},
            "ports[0].port: must be integer",
        ),
    ],
    ids=[
        "a misspelt input",
        "a string for a list",
        "an Output for a literal-only input",
        "an unknown type",
        "a nested type",
    ],
)
def test_the_checker_catches_mistakes(package, resource, problem):
    problems = yaml_problems({"resources": {"x": resource}}, package)
    assert any(problem in p for p in problems), problems


def _calls(source: str) -> list[tuple[str, str]]:
    """(component, argument object text) for every ``new ironlb.X("name", {...})``."""
    found = []
    for match in re.finditer(r"new ironlb\.(\w+)\(\s*\"[^\"]+\",\s*\{", source):
        depth, start = 1, match.end()
        end = start
        while depth:
            depth += {"{": 1, "}": -1}.get(source[end], 0)
            end += 1
        found.append((match.group(1), source[start : end - 1]))
    return found


def _top_level_keys(body: str) -> list[str]:
    keys, depth = [], 0
    for token in re.finditer(r"[{}\[\]()]|\"[^\"]*\"\s*:|(\w+)\s*:", body):
        text = token.group(0)
        if text in "{[(":
            depth += 1
        elif text in "}])":
            depth -= 1
        elif depth == 0:
            keys.append(text.rstrip(": ").strip('"'))
    return keys


def test_the_typescript_example_uses_only_what_the_schema_has(package):
    source = (EXAMPLES / "typescript" / "index.ts").read_text()
    calls = _calls(source)
    assert len(calls) >= 6
    for component, body in calls:
        spec = package["resources"][PREFIX + component]
        unknown = [k for k in _top_level_keys(body) if k not in spec["inputProperties"]]
        assert unknown == [], f"{component}: {unknown} are not inputs"
        assert set(spec.get("requiredInputs", [])) <= set(_top_level_keys(body))
    variables = dict(re.findall(r"const (\w+) = new ironlb\.(\w+)\(", source))
    for var, attr in re.findall(r"\b(\w+)\.(\w+)\b", source):
        if var in variables:
            outputs = package["resources"][PREFIX + variables[var]].get("properties", {})
            assert attr in outputs, f"{var}.{attr}: {variables[var]} has no output {attr}"
