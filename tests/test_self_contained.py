"""The repository carries everything its code, tests and documents refer to.

A clone with nothing beside it must work, so no tracked file may point at a path outside
the repository: no relative ``../`` path that climbs above the repository root, no code
that steps from the repository root to its parent, and no absolute path of the machine
the project happens to be developed on.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support import REPO, VECTORS

# A relative path with at least one "../" that starts a token (not the tail of a URL or
# of a longer path such as "/v1/blobs/../../etc/passwd", which tests send on purpose).
RELATIVE = re.compile(r"(?<![\w/.%])((?:\.\./)+[\w\-]+(?:[./][\w\-]+)*)")
# Code that walks from the repository root to the folder that contains it.
PARENT_OF_ROOT = re.compile(
    r"\b(?:REPO|ROOT|repo|repo_root|root)\.parent\b|parents\[\d+\]\.parent\b"
)
ABSOLUTE = re.compile(r"(?<![\w.])/" + r"work/")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # an export without .git
        skip = {".venv", ".git", "demo-data", "test-artifacts", "__pycache__"}
        names = [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(REPO).parts)
        ]
    return [REPO / n for n in names if (REPO / n).is_file()]


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        return None
    return data.decode("utf-8", errors="replace")


def outside_references(path: Path, text: str) -> list[str]:
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        for m in RELATIVE.finditer(line):
            target = (path.parent / m.group(1)).resolve()
            if not target.is_relative_to(REPO):
                found.append(f"{path.relative_to(REPO)}:{lineno}: {m.group(1)}")
        for rx in (PARENT_OF_ROOT, ABSOLUTE):
            for m in rx.finditer(line):
                found.append(f"{path.relative_to(REPO)}:{lineno}: {m.group(0)}")
    return found


def test_no_tracked_file_refers_outside_the_repository() -> None:
    problems = []
    files = tracked_files()
    assert len(files) > 50
    for path in files:
        if path.is_relative_to(VECTORS) and path.suffix == ".json":
            continue  # third-party data, copied byte for byte
        text = _text(path)
        if text is not None:
            problems.extend(outside_references(path, text))
    assert not problems, "paths outside the repository:\n" + "\n".join(problems)


def test_the_check_sees_what_it_must(tmp_path: Path) -> None:
    """The patterns catch the usual ways of leaving the repository, and only those."""
    doc = REPO / "docs" / "example.md"
    bad = [
        "See `../../" + "shared/DESIGN.md` for the architecture.",
        "path = repo_root" + ".parent / 'shared' / 'vectors'",
        "VECTORS = Path(__file__).resolve().parents[2]" + ".parent / 'shared'",
        "open('/" + "work/main/README.md')",
    ]
    good = [
        "See [operations](../deploy/README.md).",
        '"/v1/blobs/../../../../etc/passwd"',
        "(``.../sm2_sign.c:NNN``)",
        "https://example.org/a/../b",
    ]
    for line in bad:
        assert outside_references(doc, line), line
    for line in good:
        assert not outside_references(doc, line), line


def test_vectors_carry_their_sources_and_licences() -> None:
    sources = (VECTORS / "SOURCES.md").read_text(encoding="utf-8")
    for folder in (
        "transparency-dev-merkle",
        "cyberphone-json-canonicalization",
        "transcribed",
    ):
        assert (VECTORS / folder).is_dir()
        assert folder in sources
    assert (VECTORS / "transparency-dev-merkle" / "LICENSE").is_file()
    assert (VECTORS / "cyberphone-json-canonicalization" / "LICENSE").is_file()
    assert (VECTORS / "transcribed" / "LICENSE-golang-mod").is_file()
    assert "samples/" in sources
