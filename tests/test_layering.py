"""The dependency direction, as a test: schemas <- exchange.core <- the rest <- adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(pkg: str) -> list[Path]:
    return sorted((REPO / pkg).rglob("*.py"))


def _bad(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for f in files:
        for mod in _imports(f):
            if any(mod == x or mod.startswith(x + ".") for x in forbidden):
                out.append(f"{f.relative_to(REPO)} imports {mod}")
    return out


def test_schemas_import_only_stdlib_and_pydantic() -> None:
    assert (
        _bad(
            _files("schemas"),
            ("exchange", "adapters", "aiohttp", "asyncpg", "orjson", "nacl"),
        )
        == []
    )


def test_core_does_no_io() -> None:
    assert (
        _bad(
            _files("exchange/core"),
            (
                "asyncio",
                "aiohttp",
                "asyncpg",
                "exchange.storage",
                "exchange.http",
                "exchange.service",
                "exchange.node",
                "adapters",
                "socket",
                "subprocess",
            ),
        )
        == []
    )


def test_exchange_never_imports_adapters() -> None:
    assert _bad(_files("exchange"), ("adapters",)) == []


def test_adapters_do_not_reach_into_storage_or_http() -> None:
    if not (REPO / "adapters").is_dir():
        pytest.fail("adapters/ package is missing")
    assert (
        _bad(
            _files("adapters"),
            (
                "exchange.storage",
                "exchange.http",
                "exchange.service",
                "exchange.node",
                "asyncpg.pool",
            ),
        )
        == []
    )


def test_only_config_reads_the_environment() -> None:
    offenders = []
    for f in _files("exchange"):
        if f.name == "config.py":
            continue
        text = f.read_text(encoding="utf-8")
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(f.relative_to(REPO)))
    assert offenders == []
