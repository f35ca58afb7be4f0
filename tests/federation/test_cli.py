"""``exchange roster …`` and ``exchange peer status`` through the real command line.

Every command runs as a subprocess (``python -m exchange``) against a fresh database
(``EXCHANGE_DATABASE_URL``), exactly as an operator would type it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

from exchange.cli import main
from exchange.commands._table import display_width, render


def _env(db_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    if db_url:
        env["EXCHANGE_DATABASE_URL"] = db_url
    return env


def _cli(
    *args: str, env: dict[str, str], cwd: Path, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "exchange", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if ok and done.returncode != 0:
        raise AssertionError(
            f"exchange {' '.join(args)} -> "
            f"{done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done


def _fails(done: subprocess.CompletedProcess[str], code: str, *words: str) -> str:
    """The command failed with one error line naming ``code`` (and ``words``)."""
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error")]
    assert len(errors) == 1 and done.stderr.rstrip().endswith(errors[0]), done.stderr
    assert errors[0].startswith(f"error[{code}]: "), errors[0]
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


class _Cli:
    """Runs ``exchange`` commands in ``cwd``: as subprocesses, or (for commands that
    only touch files) in this process through the same ``main()``, which is faster."""

    def __init__(self, cwd: Path, env: dict[str, str], capsys: Any = None) -> None:
        self.cwd, self.env, self.capsys = cwd, env, capsys

    def __call__(
        self, *args: str, ok: bool = True, inproc: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if not inproc:
            return _cli(*args, env=self.env, cwd=self.cwd, ok=ok)
        assert self.capsys is not None
        self.capsys.readouterr()
        old = Path.cwd()
        os.chdir(self.cwd)
        try:
            rc = main(list(args))
        finally:
            os.chdir(old)
        out = self.capsys.readouterr()
        done = subprocess.CompletedProcess(list(args), rc, out.out, out.err)
        if ok and rc != 0:
            raise AssertionError(
                f"exchange {' '.join(args)} -> {rc}\n{out.out}\n{out.err}"
            )
        return done


def _draft(cli: _Cli, inproc: bool = False) -> str:
    """Roster key, a huaihai node (node init) and a two-node, two-circle draft, signed;
    returns the pin line printed by ``roster sign``."""
    # Keys and node.toml: made in-process (other tests cover these commands).
    cli("keys", "new", "--key-id", "roster#k1", "--out", "roster.key", inproc=True)
    cli(
        "node",
        "init",
        "--region",
        "huaihai",
        "--name",
        "淮海经济区节点",
        "--dir",
        "hh",
        "--listen",
        "127.0.0.1:18700",
        inproc=True,
    )
    yd = json.loads(
        cli(
            "keys",
            "new",
            "--key-id",
            "yangtze-delta#k1",
            "--out",
            "yd.key",
            inproc=True,
        ).stdout
    )
    cli(
        "roster",
        "new",
        "--federation",
        "congress-exchange",
        "--out",
        "roster.json",
        inproc=inproc,
    )
    cli(
        "roster",
        "add-node",
        "roster.json",
        "--id",
        "huaihai",
        "--url",
        "http://127.0.0.1:18700",
        "--node-key",
        "hh/data/node.key",
        "--site",
        "huaibei-duji",
        "--site",
        "xuzhou-tongshan",
        inproc=inproc,
    )
    cli(
        "roster",
        "add-node",
        "roster.json",
        "--id",
        "yangtze-delta",
        "--url",
        "http://127.0.0.1:18701",
        f"--public-key={yd['public_key']}",  # '=': a key may start with '-'
        "--site",
        "suzhou-wuzhong",
        "--site",
        "jiaxing-nanhu",
        inproc=inproc,
    )
    cli(
        "roster",
        "add-circle",
        "roster.json",
        "--id",
        "huaihai",
        "--name",
        "淮海经济区",
        "--member",
        "huaibei-duji",
        "--member",
        "xuzhou-tongshan",
        inproc=inproc,
    )
    cli(
        "roster",
        "add-circle",
        "roster.json",
        "--id",
        "yangtze-delta",
        "--name",
        "长三角",
        "--member",
        "huaibei-duji",
        "--member",
        "suzhou-wuzhong",
        "--member",
        "jiaxing-nanhu",
        inproc=inproc,
    )
    signed = cli(
        "roster",
        "sign",
        "roster.json",
        "--key",
        "roster.key",
        "--out",
        "roster.signed.json",
        inproc=inproc,
    )
    pin = signed.stdout.strip()
    assert pin.startswith('roster_keys = ["roster#k1 ed25519 ') and pin.endswith(
        '"]'
    ), signed
    return pin


def _pin(work: Path, line: str) -> None:
    toml = work / "hh" / "node.toml"
    text = toml.read_text(encoding="utf-8")
    assert "roster_keys = []" in text  # node init writes the [federation] section
    toml.write_text(text.replace("roster_keys = []", line, 1), encoding="utf-8")


async def test_roster_workflow_end_to_end(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path, capsys: Any
) -> None:
    db_url = await fresh_db()
    cli = _Cli(tmp_path, _env(db_url), capsys)
    pin = _draft(cli)
    signed = json.loads((tmp_path / "roster.signed.json").read_text(encoding="utf-8"))
    assert signed["sig"]["key"] == "roster#k1" and signed["document"]["version"] == 1
    hh_pub = json.loads((tmp_path / "hh" / "data" / "node.key").read_text())[
        "public_key"
    ]
    key = signed["document"]["nodes"][0]["keys"][0]
    assert (key["key_id"], key["public_key"]) == ("huaihai#k1", hh_pub)
    assert (
        json.loads((tmp_path / "roster.json").read_text())["version"] == 2
    )  # next signature is newer
    _pin(tmp_path, pin)

    out = cli("roster", "publish", "roster.signed.json", "--config", "hh/node.toml")
    assert (
        "roster installed on node huaihai" in out.stderr
        and "yangtze-delta" in out.stderr
    )
    assert "warning" not in out.stderr  # this node and its key are in the roster

    shown = cli("roster", "show", "--config", "hh/node.toml").stdout
    assert "congress-exchange version 1" in shown and "signed by roster#k1" in shown
    assert "淮海经济区" in shown and "jiaxing-nanhu" in shown
    table = cli("peer", "status", "--config", "hh/node.toml").stdout
    lines = table.splitlines()
    assert lines[1].startswith("对端 peer") and "积压 backlog" in lines[1]
    assert lines[3].split()[:2] == ["yangtze-delta", "0"], table
    assert "从未 never" in lines[3]  # nothing delivered yet

    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT version FROM roster") == 1
        assert (
            await conn.fetchval(
                "SELECT base_url FROM peers WHERE node_id='yangtze-delta'"
            )
            == "http://127.0.0.1:18701"
        )
        row = await conn.fetchrow(
            "SELECT home_node, circles FROM sites WHERE id='huaibei-duji'"
        )
        assert (row["home_node"], sorted(row["circles"])) == (
            "huaihai",
            ["huaihai", "yangtze-delta"],
        )
    finally:
        await conn.close()


async def test_bad_roster_inputs_fail_with_one_line(
    fresh_db: Callable[[], Awaitable[str]], tmp_path: Path, capsys: Any
) -> None:
    db_url = await fresh_db()
    w = tmp_path
    cli = _Cli(w, _env(db_url), capsys)
    pin = _draft(cli, inproc=True)
    before = (w / "roster.json").read_bytes()

    # Editing mistakes: refused with one line, and the draft is left exactly as it was.
    _fails(
        cli(
            "roster",
            "add-circle",
            "roster.json",
            "--id",
            "huaihai-plus",
            "--name",
            "淮海+",
            "--member",
            "huaibei-duji",
            "--member",
            "linyi-lanshan",
            ok=False,
        ),
        "schema_invalid",
        "linyi-lanshan",
        "no home node",
    )
    _fails(
        cli(
            "roster",
            "add-node",
            "roster.json",
            "--id",
            "huaihai",
            "--url",
            "http://127.0.0.1:1",
            "--node-key",
            "hh/data/node.key",
            ok=False,
            inproc=True,
        ),
        "schema_invalid",
        "node huaihai is already in roster.json",
    )
    _fails(
        cli(
            "roster",
            "add-node",
            "roster.json",
            "--id",
            "zhejiang",
            "--url",
            "http://127.0.0.1:2",
            "--node-key",
            "yd.key",
            "--key-id",
            "zhejiang#k1",
            "--site",
            "suzhou-wuzhong",
            ok=False,
            inproc=True,
        ),
        "schema_invalid",
        "suzhou-wuzhong already has home node yangtze-delta",
    )
    _fails(
        cli(
            "roster",
            "add-node",
            "roster.json",
            "--id",
            "zhejiang",
            "--url",
            "ftp://x",
            "--public-key="
            + json.loads((w / "hh/data/node.key").read_text())["public_key"],
            ok=False,
            inproc=True,
        ),
        "schema_invalid",
        "base_url",
    )
    _fails(
        cli(
            "roster",
            "add-node",
            "roster.json",
            "--id",
            "zhejiang",
            "--url",
            "http://x",
            "--public-key",
            "AAAA",
            ok=False,
            inproc=True,
        ),
        "config_invalid",
        "32",
    )
    _fails(
        cli(
            "roster",
            "add-circle",
            "roster.json",
            "--id",
            "huaihai",
            "--name",
            "淮海经济区",
            ok=False,
            inproc=True,
        ),
        "schema_invalid",
        "circle huaihai is already",
    )
    assert (w / "roster.json").read_bytes() == before
    cli(
        "roster", "new", "--federation", "empty-fed", "--out", "empty.json", inproc=True
    )
    _fails(
        cli(
            "roster",
            "sign",
            "empty.json",
            "--key",
            "roster.key",
            "--out",
            "e.signed.json",
            ok=False,
            inproc=True,
        ),
        "schema_invalid",
        "nodes",
    )
    assert not (w / "e.signed.json").exists()
    _fails(
        cli("roster", "publish", "roster.json", ok=False, inproc=True),
        "schema_invalid",
        "not a signed roster",
    )

    # Publishing: no pinned key, another roster key, an impostor key, a stale version.
    _fails(
        cli(
            "roster",
            "publish",
            "roster.signed.json",
            "--config",
            "hh/node.toml",
            ok=False,
        ),
        "config_invalid",
        "no roster keys are pinned",
        "roster_keys",
    )
    _pin(w, pin)
    cli("keys", "new", "--key-id", "roster#k2", "--out", "other.key", inproc=True)
    cli(
        "roster",
        "sign",
        "roster.json",
        "--key",
        "other.key",
        "--out",
        "other.json",
        inproc=True,
    )
    done = cli("roster", "publish", "other.json", "--config", "hh/node.toml", ok=False)
    assert done.returncode == 3
    _fails(done, "roster_invalid", "roster#k2", "pins roster#k1")
    cli("keys", "new", "--key-id", "roster#k1", "--out", "impostor.key", inproc=True)
    cli(
        "roster",
        "sign",
        "roster.json",
        "--key",
        "impostor.key",
        "--out",
        "impostor.json",
        inproc=True,
    )
    _fails(
        cli("roster", "publish", "impostor.json", "--config", "hh/node.toml", ok=False),
        "bad_signature",
        "does not verify",
    )

    cli(
        "roster",
        "sign",
        "roster.json",
        "--key",
        "roster.key",
        "--out",
        "v5.json",
        "--version",
        "5",
        inproc=True,
    )
    cli("roster", "publish", "v5.json", "--config", "hh/node.toml")
    _fails(
        cli(
            "roster",
            "publish",
            "roster.signed.json",
            "--config",
            "hh/node.toml",
            ok=False,
        ),
        "roster_stale",
        "version 1 is not newer than the installed 5",
    )
    conn = await asyncpg.connect(db_url)
    try:
        assert await conn.fetchval("SELECT version FROM roster") == 5
        assert (
            json.loads(await conn.fetchval("SELECT signed FROM roster"))["sig"]["key"]
            == "roster#k1"
        )
    finally:
        await conn.close()


def test_table_pads_by_display_width() -> None:
    text = render(
        ["节点 node", "积压 backlog"], [["huaihai", "12"], ["长三角", "3"]], right=(1,)
    )
    lines = text.splitlines()
    assert {display_width(ln) for ln in lines} == {display_width(lines[0])}
    assert lines[2].endswith(" 12") and lines[3].startswith("长三角 ")


def test_peer_table_shows_errors_backoff_and_ages() -> None:
    from datetime import UTC, datetime

    from exchange.commands.peer import status_table

    now = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
    peers = [
        {
            "peer": "yangtze-delta",
            "backlog": 40,
            "last_success": "2026-11-27T09:58:55+00:00",
            "last_error": "database_unavailable: cannot reach http://127.0.0.1:18701: "
            + "x" * 80,
            "last_error_at": "2026-11-27T09:59:58+00:00",
            "attempts": 4,
            "backoff_s": 3.2,
            "pushed_total": 7,
            "pulled_total": 2,
            "refused_total": 3,
        },
        {
            "peer": "zhejiang",
            "backlog": None,
            "last_success": None,
            "last_error": None,
            "last_error_at": None,
            "attempts": 0,
            "backoff_s": 0.0,
        },
    ]
    lines = status_table(peers, now).splitlines()
    assert lines[0].startswith("对端 peer")
    row = lines[2]
    assert row.split()[:2] == ["yangtze-delta", "40"] and "1m05s ago" in row
    assert "2s ago: database_unavailable" in row and "…" in row  # clipped to 60 columns
    assert "3.2s (4 tries)" in row and row.split()[-2:] == [
        "7/2",
        "3",
    ]  # refused by the peer
    assert lines[3].split()[:2] == ["zhejiang", "?"] and "从未 never" in lines[3]
