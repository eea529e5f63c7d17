"""The metrics documentation cannot drift from what is exported.

``docs/metrics.md`` is generated from agent/metric_catalog.py (the table the registries are
built from; tests/test_metrics_conventions.py checks they agree): this test fails when the
file differs.  Regenerate with ``IRONLB_UPDATE_GOLDEN=1 .venv/bin/pytest -q
tests/test_metrics_docs.py`` and review the diff.  Every ``ironlb_*`` name the operator docs
mention must exist, so a rename cannot leave a stale query in them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ironlb.agent.metric_catalog import BY_NAME, CATALOG, markdown

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "metrics.md"
UPDATE = os.environ.get("IRONLB_UPDATE_GOLDEN") == "1"
#: Operator documents whose metric names must exist (ADRs are history and keep old names).
OPERATOR_DOCS = ("docs/metrics.md", "docs/troubleshooting.md", "README.md", "docs/benchmarks.md")


def test_docs_metrics_md_is_generated_from_the_catalog() -> None:
    text = markdown()
    if UPDATE:
        DOC.write_text(text)
    assert DOC.is_file(), "no docs/metrics.md; run with IRONLB_UPDATE_GOLDEN=1"
    assert DOC.read_text() == text, "docs/metrics.md is stale: IRONLB_UPDATE_GOLDEN=1, then review the diff"
    for spec in CATALOG:
        assert f"| `{spec.name}` | {spec.kind} |" in text


def test_every_metric_name_in_the_operator_docs_exists() -> None:
    known = set(BY_NAME)
    histograms = {s.name for s in CATALOG if s.kind == "histogram"}
    for doc in OPERATOR_DOCS:
        path = ROOT / doc
        if not path.exists():
            continue
        for name in sorted(set(re.findall(r"\bironlb_(?!cli\b)[a-z0-9_]+", path.read_text()))):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert name in known or base in histograms, f"{doc} mentions {name}, which is not exported"
