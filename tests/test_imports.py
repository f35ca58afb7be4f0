"""Every module imports alone, and no two packages import each other.

* Each module of ``exchange``, ``schemas`` and ``adapters`` is imported alone in a fresh
  interpreter (a forked child of one that has loaded only the libraries they use, none
  of our modules), with warnings as errors: an import that only works after another module was loaded, or that
  warns, fails here.
* The import graph between the packages of ``exchange`` (``exchange.http``,
  ``exchange.federation``, ...; each top-level module such as ``exchange.node`` counts as
  its own unit) has no cycle; nor has the graph between modules. Imports made only for
  type checking (under ``if TYPE_CHECKING:``) do not count; imports inside functions do.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("exchange", "schemas", "adapters")

_CHILD = r"""
import os, sys, warnings, importlib
ours = ("exchange", "schemas", "adapters")
names = sys.stdin.read().split()
# Load every library our modules use (found by importing them all in a throwaway child),
# but none of our modules: each forked child then imports one of ours from scratch.
r, w = os.pipe()
if os.fork() == 0:
    os.close(r)
    warnings.simplefilter("ignore")
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:
            pass
    libs = [m for m in list(sys.modules) if m.split(".")[0] not in ours]
    os.write(w, " ".join(libs).encode())
    os._exit(0)
os.close(w)
chunks = []
while True:
    chunk = os.read(r, 1 << 16)
    if not chunk:
        break
    chunks.append(chunk)
os.wait()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for lib in b"".join(chunks).decode().split():
        try:
            importlib.import_module(lib)
        except BaseException:
            pass
assert not any(m.split(".")[0] in ours for m in sys.modules), "our modules preloaded"
failed = []
# ``schemas`` imports nothing of ours (tests/test_layering.py): its modules are checked
# first, then kept loaded for the others, which saves building its models in each child.
names.sort(key=lambda n: not n.startswith("schemas"))
for name in names:
    if not name.startswith("schemas") and "schemas" not in sys.modules:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for m in [n for n in names if n.startswith("schemas")]:
                importlib.import_module(m)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            warnings.simplefilter("error")
            importlib.import_module(name)
        except BaseException as exc:
            print(f"{name}: {type(exc).__name__}: {exc}", flush=True)
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status:
        failed.append(name)
print("FAILED", " ".join(failed))
"""


def _modules() -> list[str]:
    out = []
    for root in ROOTS:
        for f in sorted((REPO / root).rglob("*.py")):
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[-1] == "__main__":
                continue
            out.append(".".join(parts))
    return out


def test_every_module_imports_alone_without_warnings() -> None:
    mods = _modules()
    assert len(mods) > 100
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=" ".join(mods),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last == "FAILED", f"modules that do not import alone:\n{done.stdout}"


def _imports(path: Path, module: str) -> set[str]:
    """Modules imported by ``path`` at run time (not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # submodules
    return found


def _graph(unit_of: dict[str, str]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for mod in unit_of:
        path = REPO / Path(*mod.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        for target in _imports(path, mod):
            if target in unit_of and unit_of[target] != unit_of[mod]:
                edges.setdefault(unit_of[mod], set()).add(unit_of[target])
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def _package_unit(mod: str) -> str:
    parts = mod.split(".")
    return ".".join(parts[:2])  # exchange.http, exchange.node, schemas.errors, ...


def test_no_import_cycle_between_packages() -> None:
    mods = [m for m in _modules() if m.startswith("exchange")]
    cycles = _cycles(_graph({m: _package_unit(m) for m in mods}))
    assert cycles == [], f"packages that import each other: {cycles}"


def test_no_import_cycle_between_modules() -> None:
    mods = [m for m in _modules() if m.startswith(("exchange", "schemas"))]
    cycles = _cycles(_graph({m: m for m in mods}))
    assert cycles == [], f"modules that import each other: {cycles}"
