"""The documents' command lines are ones the ``exchange`` command accepts, written so
they work whatever the value (``--public-key=KEY``: a base64url key may start with '-'),
and their relative links lead to files of the repository."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from exchange.cli import build_parser
from tests.support import REPO

DOCS = [
    REPO / "README.md",
    REPO / "deploy" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
]
FENCE = re.compile(r"```(?:sh|bash|console)\n(.*?)```", re.S)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _command_lines(path: Path) -> list[str]:
    """``exchange …`` lines of the shell blocks (continuations joined, comments cut)."""
    out = []
    for block in FENCE.findall(path.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s{2,}#|\s#\s", line, maxsplit=1)[0].strip()
            line = line.removeprefix("sudo -u exchange ").removesuffix("&").strip()
            if line.startswith("exchange ") and "..." not in line and "…" not in line:
                out.append(line)
    return out


def _fill(arg: str) -> str:
    """Placeholders (<printed key>, PUBLIC_KEY) become a value starting with '-', the
    case that only the '--opt=VALUE' form survives."""
    arg = re.sub(r"<[^<>]+>", "-placeholder", arg)
    return re.sub(r"(?<==)[A-Z][A-Z0-9_]+$", "-PLACEHOLDER", arg)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_documented_command_parses(path: Path) -> None:
    parser = build_parser()
    lines = _command_lines(path)
    for line in lines:
        line = re.split(r"\s+(?:\d?>|\||&&|;)", line)[
            0
        ]  # the command, not the shell around it
        line = re.sub(r"<[^<>]+>", "-placeholder", line)
        line = re.sub(r"\$\([^)]*\)", "X", line)  # $(date …) is one word for the shell
        argv = [_fill(a) for a in shlex.split(line)[1:]]
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            if exc.code == 0:  # --help
                continue
            pytest.fail(
                f"{path.name}: 'exchange {' '.join(argv)}' is refused (exit {exc.code})"
            )


def test_public_keys_are_given_with_an_equals_sign() -> None:
    for path in DOCS:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not re.search(r"--public-key\s+[^\s=]", line), (
                f"{path.name}:{n}: {line}"
            )


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_lead_to_files(path: Path) -> None:
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), (
            f"{path.relative_to(REPO)} links to {target}"
        )
