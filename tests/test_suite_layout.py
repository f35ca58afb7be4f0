"""The suite's own rules: shared test code lives in tests/support, and a test module
imports nothing else of the suite (no other folder's modules, no conftest)."""

from __future__ import annotations

import ast

from tests.support import REPO

TESTS = REPO / "tests"


def test_tests_import_only_tests_support() -> None:
    bad = []
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS)
        if rel.parts[0] in ("support", "vectors"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                if node.level > 1 or (
                    node.level == 0
                    and mod.startswith("tests")
                    and not mod.startswith("tests.support")
                ):
                    bad.append(f"{rel}: from {'.' * node.level}{mod} import …")
            elif isinstance(node, ast.Import):
                bad += [
                    f"{rel}: import {a.name}"
                    for a in node.names
                    if a.name.startswith("tests")
                    and not a.name.startswith("tests.support")
                ]
    assert not bad, "import shared test code from tests.support:\n" + "\n".join(bad)
