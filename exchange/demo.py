"""``exchange demo``: a node with demo sites and items, ready to explore.

Starts a node on the embedded PostgreSQL in ``demo-data/``, registers partner congresses
of both regions with keys kept in ``demo-data/keys/`` (mode 0600, as a site would keep
them), pushes a handful of realistic signed items over HTTP exactly as a site would, and
prints what to try next. Re-running it is safe: the demo items have fixed contents, so
pushing them again is idempotent.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from exchange.client import ExchangeClient
from exchange.config import load_config
from exchange.core.items import sign_item
from exchange.core.signing import PrivateKey, generate_key, load_private_key, save_private_key
from exchange.http.app import make_app
from exchange.node import Node
from exchange.templates import template

__all__ = ["DEMO_SITES", "run_demo"]

DEMO_SITES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")),
    ("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",)),
    ("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",)),
    ("jiaxing-nanhu", "嘉兴市南湖区人大常委会", ("yangtze-delta",)),
)

_CST = timezone(timedelta(hours=8))


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _site_key(keys_dir: Path, site_id: str) -> PrivateKey:
    path = keys_dir / f"{site_id}.key"
    if not path.exists():
        save_private_key(generate_key(key_id=f"{site_id}#k1"), path)
    return load_private_key(path)


def demo_items() -> list[tuple[str, dict[str, Any]]]:
    """The demo items: (author, item) with fixed creation times."""
    base = datetime(2026, 11, 20, 9, 30, tzinfo=_CST)
    out: list[tuple[str, dict[str, Any]]] = []
    plan = template("inspection_plan", "huaibei-duji", "xuzhou-tongshan", now=base)
    plan["audience"] = {"circles": ["huaihai"], "sites": []}
    plan["title"] = "淮海经济区安全生产法联合执法检查方案（杜集—铜山）"
    out.append(("huaibei-duji", plan))
    case = template("case_study", "suzhou-wuzhong", now=base + timedelta(hours=2))
    case["title"] = "吴中区预算联网监督助推预算绩效管理"
    case["audience"] = {"circles": ["yangtze-delta"], "sites": []}
    out.append(("suzhou-wuzhong", case))
    lesson = template("lesson", "jiaxing-nanhu", now=base + timedelta(days=1))
    lesson["title"] = "南湖区代表联络站“周二接待日”工作法"
    out.append(("jiaxing-nanhu", lesson))
    lesson2 = template("lesson", "huaibei-duji", now=base + timedelta(days=2))
    lesson2["title"] = "杜集区践行全过程人民民主的做法"
    lesson2["body"]["practice"] = (
        "聚焦区委中心工作和群众关心的热点难点问题，听取审议园区承载能力建设等专项报告，"
        "组织代表开展专题调研，推动审议意见落实。"
    )
    out.append(("huaibei-duji", lesson2))
    return out


async def _serve(data_dir: Path, listen: str) -> int:
    cfg = load_config(None, overrides={
        "node": {"id": "huaihai", "name": "淮海经济区节点", "data_dir": str(data_dir / "huaihai"),
                 "base_url": f"http://{listen}"},
        "http": {"listen": listen},
    })
    node = Node(cfg)
    _say("启动嵌入式 PostgreSQL / starting the embedded PostgreSQL …")
    await node.start()
    keys_dir = data_dir / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys: dict[str, PrivateKey] = {}
    for site_id, name, circles in DEMO_SITES:
        await node.sites.add_site(site_id, name, node.id, circles)
        keys[site_id] = _site_key(keys_dir, site_id)
        await node.sites.add_key(keys[site_id].key_id, site_id, "ed25519", keys[site_id].public_key.raw)
    token_path = data_dir / "monitor.token"
    if not token_path.exists():
        token_path.write_text(secrets.token_urlsafe(32))
        token_path.chmod(0o600)
    await node.sites.add_monitor("huaibei-municipal", "淮北市人大常委会（监督）",
                                 token_path.read_text().strip(), ["huaihai"], [])
    runner = web.AppRunner(make_app(node), access_log=None)
    await runner.setup()
    host, port = cfg.listen_host_port
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    url = f"http://{host}:{port}"
    for author, item in demo_items():
        async with ExchangeClient(url, key=keys[author]) as c:
            res = await c.push(sign_item(item, keys[author]))
        _say(f"  {res['status']:9} #{res['index']} {item['title']}  ({author})")
    _say("")
    _say(f"节点已就绪 / node ready: {url}")
    _say(f"  站点目录 / sites:     curl {url}/v1/sites")
    _say(f"  接口文档 / API:       curl {url}/openapi.json")
    _say(f"  拉取条目 / pull:      exchange pull --node {url} --key {keys_dir}/xuzhou-tongshan.key --out pulled/")
    _say("  离线验签 / verify:    exchange verify pulled/00000000-*.json")
    _say(f"  新建条目 / new item:  exchange item new --kind lesson --author xuzhou-tongshan > my.json")
    _say(f"  签名推送 / sign+push: exchange item sign my.json --key {keys_dir}/xuzhou-tongshan.key --out my.signed.json"
         f" && exchange push my.signed.json --node {url} --key {keys_dir}/xuzhou-tongshan.key")
    _say("按 Ctrl-C 停止 / press Ctrl-C to stop")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await node.stop()
    return 0


def run_demo(data_dir: Path, listen: str = "127.0.0.1:8700") -> int:
    """Run the demo until interrupted."""
    return asyncio.run(_serve(Path(data_dir).resolve(), listen))
