"""Committed JSON Schema files match the models and are valid; the surface is pinned."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

import schemas
from schemas import export

Json = dict[str, Any]
Factory = Callable[[], Json]

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILES = sorted(export.DEFAULT_DEST.glob("*.schema.json"))


# ------------------------------------------------------------------------- drift


def test_committed_files_equal_a_fresh_export() -> None:
    drifted = export.check()
    assert not drifted, (
        f"schemas/json is out of date for {drifted}; run `python -m schemas.export`"
    )


def test_every_model_has_exactly_one_file() -> None:
    names = {path.name.removesuffix(".schema.json") for path in SCHEMA_FILES}
    assert names == set(export.all_models())


def test_export_writes_identical_files(tmp_path: Path) -> None:
    written = export.export(tmp_path)
    assert [path.name for path in written] == [path.name for path in SCHEMA_FILES]
    for path in written:
        committed = export.DEFAULT_DEST / path.name
        assert path.read_bytes() == committed.read_bytes(), path.name


def test_check_names_drifted_missing_and_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export.export(tmp_path)
    assert export.main(["--check", "--dest", str(tmp_path)]) == 0
    (tmp_path / "roster.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "health.schema.json").unlink()
    (tmp_path / "old_name.schema.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert export.main(["--check", "--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    for name in ("roster.schema.json", "health.schema.json", "old_name.schema.json"):
        assert name in err
    assert "item.schema.json" not in err
    export.export(tmp_path)
    assert not (tmp_path / "old_name.schema.json").exists()
    assert export.check(tmp_path) == []


def test_module_entry_point_runs_cleanly() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "schemas.export", "--check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_files_are_deterministic_utf8() -> None:
    for path in SCHEMA_FILES:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert "\\u" not in text.replace("\\\\u", ""), path.name  # no ASCII escapes
        loaded = json.loads(text)
        again = json.dumps(loaded, indent=2, ensure_ascii=False, sort_keys=True)
        assert text == again + "\n", path.name


# -------------------------------------------------------- valid JSON Schema

_KEYWORDS = {
    # core and applicator vocabularies
    "$schema", "$id", "$ref", "$defs", "$comment", "$anchor", "$dynamicRef",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "properties",
    "patternProperties", "additionalProperties", "propertyNames", "items",
    "prefixItems", "contains", "unevaluatedItems", "unevaluatedProperties",
    # validation vocabulary
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum",
    "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern",
    "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
    "maxProperties", "minProperties", "required", "dependentRequired",
    # format and meta-data vocabularies
    "format", "title", "description", "default", "deprecated", "readOnly",
    "writeOnly", "examples",
    # OpenAPI's discriminator, emitted by pydantic (an annotation to JSON Schema)
    "discriminator",
}  # fmt: skip
_TYPES = {"object", "array", "string", "integer", "boolean", "null"}
_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames")


def _subschemas(schema: Json, path: str = "#") -> Iterator[tuple[str, Json]]:
    yield path, schema
    for key in _SCHEMA_MAPS:
        for name, child in schema.get(key, {}).items():
            yield from _subschemas(child, f"{path}/{key}/{name}")
    for key in _SCHEMA_LISTS:
        for n, child in enumerate(schema.get(key, [])):
            yield from _subschemas(child, f"{path}/{key}/{n}")
    for key in _SCHEMA_ONE:
        child = schema.get(key)
        if isinstance(child, dict):
            yield from _subschemas(child, f"{path}/{key}")


def _structural_problems(root: Json) -> list[str]:
    problems = []
    if root.get("$schema") != export.JSON_SCHEMA_DIALECT:
        problems.append("#: $schema is not draft 2020-12")
    if not root.get("title"):
        problems.append("#: no title")
    defs = root.get("$defs", {})
    for path, node in _subschemas(root):
        if not isinstance(node, dict):
            problems.append(f"{path}: not an object")
            continue
        for keyword in node.keys() - _KEYWORDS:
            problems.append(f"{path}: unknown keyword {keyword!r}")
        kinds = node.get("type", [])
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            if kind not in _TYPES:  # "number" would mean a float slipped in
                problems.append(f"{path}: type {kind!r}")
        if "$ref" in node:
            target = node["$ref"].removeprefix("#/$defs/")
            if target not in defs:
                problems.append(f"{path}: dangling $ref {node['$ref']}")
        if "pattern" in node:
            pattern = node["pattern"]
            re.compile(pattern)
            if re.search(r"\(\?<?[=!]", pattern):
                problems.append(f"{path}: look-around is not portable")
        for low, high in (
            ("minLength", "maxLength"),
            ("minItems", "maxItems"),
            ("minimum", "maximum"),
        ):
            if low in node and high in node and node[low] > node[high]:
                problems.append(f"{path}: {low} > {high}")
        props = node.get("properties")
        if props is not None:
            missing = set(node.get("required", [])) - set(props)
            if missing:
                problems.append(f"{path}: required but undefined {sorted(missing)}")
            if node.get("additionalProperties") is not False:
                problems.append(f"{path}: unknown fields are not refused")
    return problems


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_file_is_a_valid_json_schema(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert _structural_problems(schema) == []
    try:
        import jsonschema
    except ImportError:
        return
    jsonschema.Draft202012Validator.check_schema(schema)


def test_structural_check_catches_problems() -> None:
    bad = {
        "$schema": export.JSON_SCHEMA_DIALECT,
        "title": "Bad",
        "type": "object",
        "properties": {"x": {"type": "number", "$ref": "#/$defs/Nope"}},
        "required": ["y"],
        "minLength": 3,
        "maxLength": 2,
        "bogus": True,
    }
    problems = "\n".join(_structural_problems(bad))
    for needle in ("number", "dangling", "required but", "minLength", "bogus"):
        assert needle in problems
    assert "unknown fields" in problems


def test_examples_validate_against_the_files(
    every_item: dict[str, Factory], sig: Json
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    item_schema = json.loads((export.DEFAULT_DEST / "item.schema.json").read_text())
    signed_schema = json.loads(
        (export.DEFAULT_DEST / "signed_item.schema.json").read_text()
    )
    for build in every_item.values():
        jsonschema.validate(build(), item_schema)
        jsonschema.validate({"item": build(), "sig": sig}, signed_schema)
    bad = every_item["inspection_plan"]()
    bad["body"]["lead_site"] = "Huaibei"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, item_schema)


# ---------------------------------------------------------------- the surface

_SUBMODULES = [
    "_base",
    "api",
    "errors",
    "items",
    "kinds",
    "log",
    "plans",
    "roster",
    "search",
]


def _submodule(name: str) -> ModuleType:
    return importlib.import_module(f"schemas.{name}")


def test_all_is_sorted_unique_and_exists() -> None:
    names = schemas.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(schemas, name), name
        assert not name.startswith("_"), name


def test_all_is_the_union_of_the_submodules() -> None:
    union: set[str] = set()
    for name in _SUBMODULES:
        module = _submodule(name)
        union.update(module.__all__)
    assert union == set(schemas.__all__)


def test_nothing_private_or_foreign_leaks() -> None:
    exported = set(schemas.__all__)
    for name, value in vars(schemas).items():
        if name.startswith("_") or isinstance(value, ModuleType):
            continue
        assert name in exported, f"schemas.{name} is public but not in __all__"
    for name in exported:
        value = getattr(schemas, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("schemas."), name


def test_export_covers_every_public_model() -> None:
    models = export.all_models()
    public = {
        value
        for name in schemas.__all__
        if inspect.isclass(value := getattr(schemas, name))
        and issubclass(value, BaseModel)
        and value is not schemas.StrictModel
    }
    covered = {model for model in models.values() if not isinstance(model, TypeAdapter)}
    assert covered == public
    assert models["item"] is schemas.ITEM_ADAPTER
    for name in models:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name


def test_every_public_name_is_documented() -> None:
    for name in schemas.__all__:
        value = getattr(schemas, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
    for path in (REPO / "schemas").glob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), path


def test_schemas_imports_only_stdlib_and_pydantic() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "pydantic_core"}
    for path in sorted((REPO / "schemas").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                assert root in allowed, f"{path.name} imports {root}"
