"""``exchange search`` (a CJK-aware table) and ``exchange site token`` as a person runs them."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from exchange.commands.discovery import display_width, fit, render_table
from exchange.core.signing import save_private_key

from .conftest import Corpus

REPO = Path(__file__).resolve().parents[2]


async def _cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exchange",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return int(proc.returncode or 0), out.decode(), err.decode()


def test_table_lines_up_with_cjk() -> None:
    assert display_width("安全生产法 APP") == 14
    assert display_width(fit("淮北市杜集区安全生产法联合执法检查方案", 12)) == 12
    assert fit("淮北市杜集区安全生产法", 12).rstrip().endswith("…")
    table = render_table(
        ["标题", "id"], [["安全生产法", "a"], ["APP热线", "b"]], [10, 2]
    )
    lines = table.splitlines()
    # The second column starts at the same terminal column on every row.
    assert [
        display_width(line[: line.rindex(c)])
        for line, c in zip(lines[2:], "ab", strict=True)
    ] == [12, 12]


async def test_search_command(shared: Corpus, tmp_path: Path) -> None:
    node = shared.node
    key = tmp_path / "suzhou.key"
    save_private_key(node.keys["suzhou-wuzhong"], key)
    code, out, err = await _cli(
        "search",
        "安全生产法",
        "--kind",
        "inspection_plan",
        "--node",
        node.url,
        "--key",
        str(key),
        "--snippets",
        cwd=tmp_path,
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("#") and "标题 title" in lines[0]
    assert "类型 kind" in lines[0] and "单位 author" in lines[0]  # headers never cut
    rows = lines[2 : lines.index("")]  # the table, before the snippets
    assert rows and all("联合执法检查方案" in r for r in rows)
    assert "<mark>" not in out and "安全生产法" in out
    code, out, err = await _cli(
        "search", "！！！", "--node", node.url, "--key", str(key), cwd=tmp_path
    )
    assert code == 1 and "query_invalid" in err and "Traceback" not in err
    code, out, err = await _cli(
        "search",
        "不存在的词语组合",
        "--node",
        node.url,
        "--key",
        str(key),
        cwd=tmp_path,
    )
    assert code == 0 and "no items found" in err


async def test_site_token_command(node: Any, tmp_path: Path) -> None:
    await node.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    cfg = tmp_path / "node.toml"
    cfg.write_text(
        f'[node]\nid = "huaihai"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[database]\nurl = "{node.node.db.url}"\n',
        encoding="utf-8",
    )
    code, out, err = await _cli(
        "site", "token", "huaibei-duji", "--config", str(cfg), cwd=tmp_path
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("rt_") and token not in err
    assert await node.node.read_access.site_for_token(token) == "huaibei-duji"
    code, out, err = await _cli(
        "site", "token", "nobody", "--config", str(cfg), cwd=tmp_path
    )
    assert code == 1 and "not registered" in err
