"""Helpers every test folder may use: the conformance vectors and bounded waits.

Test modules import from here (``from tests.support import ...``), never from each
other's private helpers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"

T = TypeVar("T")


def vectors_dir(*parts: str) -> Path:
    """A folder or file of the conformance vectors in ``tests/vectors`` (see SOURCES.md)."""
    path = VECTORS.joinpath(*parts)
    if not path.exists():
        pytest.fail(
            f"test vector missing: {path} (see tests/vectors/SOURCES.md)", pytrace=False
        )
    return path


def wait_for(
    cond: Callable[[], T],
    timeout: float = 15.0,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Call ``cond`` until it returns something truthy, bounded by ``timeout`` seconds.

    An exception raised by ``cond`` counts as "not yet" and is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = cond()
            if last:
                return last
        except AssertionError:
            raise  # the condition found a failure (a process that exited, …)
        except Exception as exc:  # e.g. a page mid-render, a server not yet listening
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


async def wait_until(
    cond: Callable[[], Awaitable[T]],
    timeout: float = 20.0,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """Await ``cond`` until it returns something truthy, bounded by ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await cond()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what} (last: {last!r})"
            )
        await asyncio.sleep(interval)


def fill_placeholders(
    doc: Any, *, site: str = "suzhou-wuzhong", item_id: str = ""
) -> Any:
    """What an author does with ``exchange item new``'s output: replace every ``<填写…>``.

    Site-id placeholders become ``site``, item-id ones ``item_id`` (by default a
    well-formed id), prose gets a distinct line of text.
    """
    from exchange.core.placeholders import PLACEHOLDER

    ref = item_id or "sha256:" + "ab" * 32
    n = 0

    def fill(value: Any) -> Any:
        nonlocal n
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str) and PLACEHOLDER.search(value):
            if "站点 id" in value:
                return site
            if "sha256" in value:
                return ref
            n += 1
            return f"作者填写的内容{n}"
        return value

    return fill(doc)


async def wait_checkpoint(node: Any, size: int, timeout: float = 20.0) -> Any:
    """The node's latest signed checkpoint once it covers ``size`` entries.

    ``node`` is a :class:`tests.support.nodes.RunningNode` or an ``exchange.node.Node``.
    """
    log = getattr(node, "node", node).log

    async def covered() -> Any:
        cp = await log.latest_checkpoint()
        return cp if cp is not None and cp.size >= size else None

    return await wait_until(covered, timeout, f"a checkpoint of size {size}")


def need_tool(name: str, package: str) -> str:
    """The path of program ``name``; a skip (a failure under CI, whose .ci/run installs
    it) when the Debian ``package`` that brings it is missing."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not found: install Debian's {package} (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def wait_ready(
    base_url: str, proc: Any = None, timeout: float = 60.0, log: Path | None = None
) -> None:
    """Wait until ``base_url/readyz`` answers 200 while ``proc`` (a Popen) still runs;
    its ``log`` file is shown if it exits first."""
    import urllib.request

    def ready() -> bool:
        if proc is not None and proc.poll() is not None:
            shown = (
                log.read_text(errors="replace")
                if log is not None and log.exists()
                else ""
            )
            raise AssertionError(
                f"the node exited ({proc.returncode}) before it was ready\n{shown}"
            )
        with urllib.request.urlopen(base_url + "/readyz", timeout=2) as r:
            return bool(r.status == 200)

    wait_for(ready, timeout, f"{base_url} to be ready", interval=0.2)
