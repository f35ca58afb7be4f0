"""The README's "Using it" block runs top to bottom on a fresh node, command by command.

Each line runs in bash as written, in the folder the block moves to, with the project's
``exchange`` on PATH. Only what a reader does by hand is filled in: ``<printed key>``
(the public key the preceding ``exchange keys new`` printed), the editor step (every
``<填写…>`` replaced, as an author would), and the port (a free one instead of 8700, so
the test never meets another node). The database is a fresh one on the test server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.support import REPO, fill_placeholders

BLOCK = re.compile(r"## Using it\n.*?```sh\n(.*?)```", re.S)


def readme_commands() -> list[str]:
    """The block's commands: one per line, comments and blank lines left out."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = BLOCK.search(text)
    assert m, "README.md has no '## Using it' block"
    out = []
    for line in m.group(1).splitlines():
        # A comment starts at "  # " (two spaces); "#k1" in key ids is not one.
        cmd = re.split(r"\s{2,}#|^#", line, maxsplit=1)[0].strip()
        if cmd:
            out.append(cmd)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_block_is_what_this_test_expects() -> None:
    """The steps the runner below treats specially are all there, in order."""
    cmds = readme_commands()
    assert cmds[0] == ". .venv/bin/activate"
    assert any(c.endswith("&") and "node up" in c for c in cmds)
    assert cmds[-1].startswith("kill %1")
    assert sum("<printed key>" in c for c in cmds) == 2
    assert any(c.startswith("${EDITOR") for c in cmds)


@pytest.mark.asyncio
async def test_using_it_runs_top_to_bottom(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    port = str(_free_port())
    db_url = await fresh_db()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["EXCHANGE_DATABASE_URL"] = db_url
    # The block starts at the repository root; here a copy of the root's relevant shape.
    root = tmp_path / "checkout"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "activate").write_text(
        f'export PATH="{Path(sys.executable).parent}:$PATH"\n'
    )
    cwd = root
    node: subprocess.Popen[bytes] | None = None
    printed_key = ""
    ran: list[tuple[str, int]] = []
    try:
        for cmd in readme_commands():
            cmd = cmd.replace("8700", port)
            if "<printed key>" in cmd:
                assert printed_key, f"no key printed before: {cmd}"
                cmd = cmd.replace("<printed key>", printed_key)
            if cmd.startswith("${EDITOR"):
                target = cwd / cmd.split()[-1]
                doc = json.loads(target.read_text(encoding="utf-8"))
                assert "<填写" in json.dumps(doc, ensure_ascii=False)
                target.write_text(
                    json.dumps(fill_placeholders(doc), ensure_ascii=False),
                    encoding="utf-8",
                )
                ran.append((cmd, 0))
                continue
            if cmd.startswith("kill %1"):
                assert node is not None and node.poll() is None, (
                    "the node is not running"
                )
                os.killpg(node.pid, signal.SIGTERM)  # what 'kill %1' sends to the job
                rc = node.wait(timeout=60)
                ran.append((cmd, rc))
                assert rc == 0, (cwd / "node.log").read_text()
                node = None
                continue
            if cmd.endswith("&"):
                assert node is None
                # As a shell job: its own process group, the command itself the leader.
                node = subprocess.Popen(
                    ["bash", "-c", "exec " + cmd[:-1]],
                    cwd=cwd,
                    env=env,
                    start_new_session=True,
                )
                ran.append((cmd, 0))
                continue
            done = subprocess.run(
                ["bash", "-c", cmd], cwd=cwd, env=env, capture_output=True, timeout=180
            )
            ran.append((cmd, done.returncode))
            assert done.returncode == 0, (
                f"README command failed ({done.returncode}): {cmd}\n"
                f"{done.stdout.decode()}\n{done.stderr.decode()}"
            )
            assert b"Traceback" not in done.stderr, done.stderr.decode()
            if " && cd " in cmd or cmd.startswith("cd "):
                cwd = cwd / cmd.rsplit("cd ", 1)[1].strip()
            if cmd.startswith("exchange keys new"):
                printed_key = json.loads(done.stdout)["public_key"]
    finally:
        if node is not None and node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=30)
    assert [c for c, rc in ran if rc != 0] == []
    assert len(ran) == len(readme_commands())
    pulled = list((cwd / "inbox").glob("00000000-*.json"))
    assert len(pulled) == 1  # the lesson came back and 'verify inbox/' checked it
