"""The edge reaches the platform only through `Qop`: it imports the platform's `Qop`, its errors and the record types
Qop's methods take and return, and calls Qop's own methods, never those of the parts Qop holds."""

from __future__ import annotations

import ast
from pathlib import Path

EDGE = Path(__file__).resolve().parent.parent / "qopemu" / "edge"
# Qop itself, its refusals, and the types of its methods' arguments and results (Job, JobStatus, JobFilter).
ALLOWED = {"qopemu.platform.qop", "qopemu.platform.errors", "qopemu.platform.jobs", "qopemu.platform.queue"}


def _edge_trees():
    for path in sorted(EDGE.glob("*.py")):
        yield path.name, ast.parse(path.read_text(), str(path))


def test_the_edge_imports_from_the_platform_only_qop_its_errors_and_its_record_types():
    bad = [f"{name}:{node.lineno} imports {node.module}" for name, tree in _edge_trees() for node in ast.walk(tree)
           if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qopemu.platform")
           and node.module not in ALLOWED]
    assert bad == []


def test_the_edge_calls_qop_not_the_parts_it_holds():
    # `self._qop.jobs.get(...)` reaches past Qop; `self._qop.find_job(...)` does not.
    bad = [f"{name}:{node.lineno} uses _qop.{node.value.attr}.{node.attr}" for name, tree in _edge_trees()
           for node in ast.walk(tree)
           if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
           and isinstance(node.value.value, ast.Attribute) and node.value.value.attr == "_qop"]
    assert bad == []
