"""The adapter runner against real nodes (``node_factory``) on the real PostgreSQL.

End to end (a feed in, a folder out), the node unreachable for a while, the runner
killed by SIGKILL in the middle of pushing, a key file others can read, the dry run,
and the health report the node keeps for monitors.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.config import load_site_config
from adapters.runner import Runner
from exchange.core.items import sign_item
from exchange.core.signing import PrivateKey, save_private_key
from exchange.errors import ConfigError, SchemaError
from exchange.http.app import make_app
from exchange.templates import template
from tests.support import wait_until

REPO = Path(__file__).resolve().parents[2]

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>杜集区人大</title>
<item><title>杜集区人大常委会开展预算联网监督</title><guid>a1</guid>
<pubDate>Thu, 28 Oct 2021 09:30:00 +0800</pubDate>
<description><![CDATA[<p>【做法】建成预算联网监督系统。</p><p>【适用条件】财政数据已联网。</p><p>【成效】执行进度提高。</p>]]></description></item>
<item><title>杜集区人大常委会开展代表活动月</title><guid>a2</guid>
<pubDate>2021-10-20</pubDate>
<description><![CDATA[<p>【做法】组织代表进站履职。</p><p>【适用条件】代表联络站已建成。</p><p>【成效】收集意见建议86条。</p>]]></description></item>
</channel></rss>"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _key_file(tmp_path: Path, key: PrivateKey) -> Path:
    path = tmp_path / "duji.key"
    save_private_key(key, path)
    return path


def _site_toml(tmp_path: Path, node_url: str, body: str, runner: str = "") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\nid = "huaibei-duji"\nkey_file = "duji.key"\nnode = "{node_url}"\n'
        f'data_dir = "adapter-data"\n\n[runner]\nbackoff_initial = 0.05\nbackoff_max = 0.2\n'
        f"request_timeout = 5\n{runner}\n{body}",
        encoding="utf-8",
    )
    return path


def _json_items(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        it = template("lesson", author="huaibei-duji", partner="xuzhou-tongshan")
        it["title"] = f"经验做法第{i + 1}号"
        it["created_at"] = f"2021-10-{1 + i % 28:02d}T09:{i % 60:02d}:00+08:00"
        (folder / f"item-{i:03d}.json").write_text(
            json.dumps(it, ensure_ascii=False), encoding="utf-8"
        )


async def _own_items(rn: Any) -> list[dict[str, Any]]:
    out = []
    async with rn.client("huaibei-duji") as c:
        async for env in c.iter_items(author="huaibei-duji"):
            out.append(env)
    return out


@pytest.fixture
async def feed_url() -> AsyncIterator[str]:
    async def rss(request: web.Request) -> web.Response:
        return web.Response(text=RSS, content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/rss.xml", rss)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/rss.xml"))
    finally:
        await server.close()


async def test_feed_in_folder_out_end_to_end(
    node_factory: Callable[..., Awaitable[Any]], tmp_path: Path, feed_url: str
) -> None:
    rn = await node_factory()
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    await rn.add_site("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",))
    _key_file(tmp_path, key)
    partner = template(
        "inspection_plan", author="xuzhou-tongshan", partner="huaibei-duji"
    )
    async with rn.client("xuzhou-tongshan") as c:
        pushed = await c.push(sign_item(partner, rn.keys["xuzhou-tongshan"]))
    cfg = load_site_config(
        _site_toml(
            tmp_path,
            rn.url,
            f"""
[[source]]
type = "feed"
name = "duji-news"
url = "{feed_url}"
defaults = {{ applicability = ["县级人大常委会"] }}

[[sink]]
type = "folder"
name = "inbox"
path = "收件箱"
""",
        )
    )
    lines: list[str] = []
    async with Runner(cfg, say=lines.append) as runner:
        s = await runner.run_once()
        assert (s.spooled, s.pushed, s.rejected, s.delivered) == (2, 2, 0, 1), lines
        assert s.errors == [] and s.problems == []
        assert runner.spool.backlog == 0
        again = await runner.run_once()
        assert (again.spooled, again.pushed, again.delivered) == (0, 0, 0)
    mine = await _own_items(rn)
    assert sorted(e["signed"]["item"]["title"] for e in mine) == [
        "杜集区人大常委会开展代表活动月",
        "杜集区人大常委会开展预算联网监督",
    ]
    inbox = tmp_path / "收件箱"
    hexid = pushed["id"].removeprefix("sha256:")
    assert {p.name for p in inbox.iterdir()} == {f"{hexid}.md", f"{hexid}.json"}
    md = (inbox / f"{hexid}.md").read_text(encoding="utf-8")
    assert "联合执法检查方案" in md
    # People read names: the author and the partner as their signed site records
    # name them, never the site ids.
    assert "| 作者 Author | 徐州市铜山区人大常委会 |" in md
    assert "淮北市杜集区人大常委会" in md
    assert "xuzhou-tongshan" not in md and "huaibei-duji" not in md, md
    # The health report, as a monitor in scope sees it.
    token = await rn.add_monitor("huaibei-municipal", circles=("huaihai",))
    async with rn.client(token=token) as c:
        doc = await c.request("GET", "/v1/adapters/health")
    (rep,) = doc["reports"]
    assert rep["site"] == "huaibei-duji"
    h = rep["health"]
    assert h["backlog"] == 0 and h["pull_cursor"] is not None
    status = {a["name"]: a for a in h["adapters"]}
    assert status["duji-news"]["role"] == "source" and status["duji-news"]["items"] == 2
    assert status["inbox"]["role"] == "sink" and status["inbox"]["items"] == 1
    # A monitor of another circle sees nothing; a malformed report is refused.
    other = await rn.add_monitor("suzhou-municipal", circles=("yangtze-delta",))
    async with rn.client(token=other) as c:
        assert (await c.request("GET", "/v1/adapters/health"))["reports"] == []
    async with rn.client("huaibei-duji") as c:
        with pytest.raises(SchemaError, match="backlog"):
            await c.request(
                "POST",
                "/v1/adapters/health",
                body=json.dumps({"started_at": "2021-10-28T00:00:00+08:00"}).encode(),
            )


async def test_node_unreachable_then_items_delivered_once(
    node_factory: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    port = _free_port()
    rn = await node_factory()
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    _key_file(tmp_path, key)
    _json_items(tmp_path / "share", 5)
    cfg = load_site_config(
        _site_toml(
            tmp_path,
            f"http://127.0.0.1:{port}",
            '[[source]]\ntype = "folder"\nname = "share"\npath = "share"\nsettle_seconds = 0\n',
            runner="poll_interval = 0.2\nhealth_interval = 0.2\n",
        )
    )
    stop = asyncio.Event()
    runner = Runner(cfg, say=lambda m: None)
    await runner.open()
    task = asyncio.create_task(runner.run_forever(stop))
    server = None
    try:

        async def spooled_and_failing() -> bool:
            return runner.spool.backlog == 5 and runner.last_error is not None

        await wait_until(
            spooled_and_failing, 15, "items spooled while the node is down"
        )
        assert "cannot reach" in (runner.last_error or "")
        # The node comes up on the port the runner has been trying.
        server = TestServer(make_app(rn.node), host="127.0.0.1", port=port)
        await server.start_server()

        async def drained() -> bool:
            return runner.spool.backlog == 0

        await wait_until(drained, 15, "the spool to drain once the node is up")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await runner.close()
        if server is not None:
            await server.close()
    mine = await _own_items(rn)
    assert len(mine) == 5 and len({e["id"] for e in mine}) == 5


async def _run_cli(
    *args: str, log: Path, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exchange",
            *args,
            cwd=str(REPO),
            stdout=out,
            stderr=out,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
        )


async def test_killed_mid_push_loses_nothing_and_duplicates_nothing(
    node_factory: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    n = 400  # enough that the runner is still pushing when it is killed
    rn = await node_factory()
    key = await rn.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    _key_file(tmp_path, key)
    _json_items(tmp_path / "share", n)
    toml = _site_toml(
        tmp_path,
        rn.url,
        '[[source]]\ntype = "folder"\nname = "share"\npath = "share"\nsettle_seconds = 0\n',
        runner="push_batch = 2\n",
    )
    log = tmp_path / "runner.log"
    proc = await _run_cli("adapter", "run", str(toml), log=log)
    try:

        async def started_pushing() -> bool:
            return len(await _own_items(rn)) >= 2 or proc.returncode is not None

        await wait_until(started_pushing, 20, "the runner to start pushing")
        await asyncio.sleep(random.uniform(0.0, 0.3))  # a random moment mid-push
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
    before = len(await _own_items(rn))
    assert before < n, f"the runner finished before it was killed ({before} items)"
    again = await _run_cli("adapter", "run", "--once", str(toml), log=log)
    code = await asyncio.wait_for(again.wait(), 60)
    assert code == 0, log.read_text(encoding="utf-8")
    mine = await _own_items(rn)
    titles = sorted(e["signed"]["item"]["title"] for e in mine)
    assert titles == sorted(
        f"经验做法第{i + 1}号" for i in range(n)
    )  # each exactly once
    assert list((tmp_path / "adapter-data" / "spool" / "items").iterdir()) == []


async def test_key_file_readable_by_others_is_refused(
    node_factory: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    rn = await node_factory()
    key = await rn.add_site("huaibei-duji")
    path = _key_file(tmp_path, key)
    path.chmod(0o644)
    toml = _site_toml(tmp_path, rn.url, "")
    with pytest.raises(
        ConfigError, match=r"accessible by other users \(mode 644\); run: chmod 600"
    ):
        await Runner(load_site_config(toml)).open()
    log = tmp_path / "cli.log"
    proc = await _run_cli("adapter", "run", "--once", str(toml), log=log)
    assert await asyncio.wait_for(proc.wait(), 60) == 1
    out = log.read_text(encoding="utf-8")
    assert "chmod 600" in out
    secret = json.loads(path.read_text())["private_key"]
    assert secret not in out
    assert not (tmp_path / "adapter-data").exists()


async def test_check_shows_what_would_be_pushed_and_pushes_nothing(
    node_factory: Callable[..., Awaitable[Any]], tmp_path: Path, feed_url: str
) -> None:
    rn = await node_factory()
    key = await rn.add_site("huaibei-duji")
    _key_file(tmp_path, key)
    toml = _site_toml(
        tmp_path,
        rn.url,
        f'[[source]]\ntype = "feed"\nname = "news"\nurl = "{feed_url}"\n'
        'defaults = { applicability = ["县级人大常委会"] }\n',
    )
    out = tmp_path / "check.out"
    proc = await _run_cli("adapter", "check", str(toml), log=out)
    assert await asyncio.wait_for(proc.wait(), 60) == 0, out.read_text(encoding="utf-8")
    text = out.read_text(encoding="utf-8")
    assert "杜集区人大常委会开展预算联网监督" in text and "sha256:" in text
    assert "key registered" in text and "nothing was pushed" in text
    assert await _own_items(rn) == []
    assert not (tmp_path / "adapter-data").exists()


def test_site_toml_errors_name_the_key(tmp_path: Path) -> None:
    p = tmp_path / "site.toml"
    p.write_text(
        '[site]\nid = "Huaibei"\nkey_file = "k"\nnode = "ftp://x"\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"site\.id: .*lowercase.*site\.node: .*http"):
        load_site_config(p)
    p.write_text(
        '[site]\nid = "a"\nkey_file = "k"\nnode = "http://127.0.0.1:1"\n'
        '[[source]]\ntype = "feed"\nname = "x"\n[[sink]]\ntype = "folder"\nname = "x"\n',
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"sink\[0\]\.name: 'x' is also the name of source\[0\]"
    ):
        load_site_config(p)
