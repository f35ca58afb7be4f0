"""``exchange demo``: a two-region federation on one machine, ready to explore.

Starts **one** embedded PostgreSQL in ``demo-data/pg`` and, in this process, two nodes —
``huaihai`` (淮海经济区) on ``listen`` and ``yangtze-delta`` (长三角) on the next port —
each with its own database on that server, its own data folder and node key, and a
``node.toml`` the CLI can use
(``exchange peer status --config demo-data/huaihai/node.toml``).
A roster key kept in ``demo-data/roster.key`` is pinned by both nodes and signs the
roster that names them, their sites and the two circles. Partner congresses get keys in
``demo-data/keys/`` (mode 0600, as a site keeps them); each pushes its demo items to its
home node over HTTP exactly as a site would, and the demo shows an item pushed on one
node being read, with its signature checked, on the other.

Re-running is safe: keys are kept, the roster is re-signed only when the nodes' URLs or
keys change, and the demo items have fixed contents, so pushing them again is
idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from exchange.client import ExchangeClient
from exchange.config import load_config
from exchange.core.items import sign_item, verify_item
from exchange.core.roster import sign_document
from exchange.core.signing import (
    CONTEXT_ROSTER,
    PrivateKey,
    generate_key,
    load_private_key,
    save_private_key,
)
from exchange.errors import ExchangeError
from exchange.http.app import make_app
from exchange.joint_demo import run_joint_inspection
from exchange.node import Node
from exchange.storage.database import ensure_database
from exchange.storage.embedded import EmbeddedPostgres
from exchange.templates import template

__all__ = [
    "CROSS_NODE_MARK",
    "DEMO_HOMES",
    "DEMO_NODES",
    "DEMO_SITES",
    "demo_items",
    "run_demo",
]

DEMO_SITES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")),
    ("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",)),
    ("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",)),
    ("jiaxing-nanhu", "嘉兴市南湖区人大常委会", ("yangtze-delta",)),
)
"""(site id, display name, circles) of the demo's partner congresses."""

DEMO_NODES: dict[str, str] = {
    "huaihai": "淮海经济区节点",
    "yangtze-delta": "长三角节点",
}
"""Node id → display name; the first listens on ``listen``, the second on port + 1."""

DEMO_HOMES: dict[str, str] = {
    "huaibei-duji": "huaihai",
    "xuzhou-tongshan": "huaihai",
    "suzhou-wuzhong": "yangtze-delta",
    "jiaxing-nanhu": "yangtze-delta",
}
"""Site id → home node id."""

CROSS_NODE_MARK = "跨节点可读 / readable on the other node:"
"""The start of the line that shows an item pushed on one node read on the other."""

_CIRCLES = {"huaihai": "淮海经济区", "yangtze-delta": "长三角"}
_CST = timezone(timedelta(hours=8))
_FEDERATION = "congress-exchange-demo"
_NODE_TOML = """\
# Written by 'exchange demo' on every start; use it with the CLI while the demo runs,
# e.g. exchange peer status --config {path}
[node]
id = "{id}"
name = "{name}"
base_url = "{url}"
data_dir = "data"

[http]
listen = "{listen}"

[database]
url = "{db}"
pool_min = 1
pool_max = 5

[log]
checkpoint_interval_ms = 500

[federation]
roster_keys = ["{pin}"]
backoff_max_s = 10
pull_interval_ms = 3000
"""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _shown(path: Path) -> str:
    """``path`` as a reader types it: relative to the current folder when inside it."""
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def next_steps(
    data_dir: Path,
    urls: dict[str, str],
    monitor_token: str,
    read_token: str,
    plan_id: str,
) -> list[str]:
    """What to try next, as commands to copy; every file they write is under data_dir."""
    hh, yd = urls["huaihai"], urls["yangtze-delta"]
    d = _shown(data_dir)
    keys, cfg, cfg_yd = (
        f"{d}/keys",
        f"{d}/huaihai/node.toml",
        f"{d}/yangtze-delta/node.toml",
    )
    activate = Path(sys.executable).parent / "activate"
    lines = []
    if activate.exists():
        lines.append(
            f"  先激活环境 / first:      . {_shown(activate)}    "
            "(puts 'exchange' on PATH)"
        )
    return lines + [
        f"  监督看板 / dashboard:   {hh}/dashboard   监督令牌 / monitor token: {monitor_token}",
        f"  阅读视图 / reading:     {yd}/read   苏州市吴中区 read token: {read_token}",
        f"  阅读令牌 / read token:  exchange site token suzhou-wuzhong --config {cfg_yd}",
        f"  站点目录 / sites:       curl {yd}/v1/sites",
        f"  联邦名册 / roster:      exchange roster show --config {cfg}",
        f"  对端状态 / peers:       exchange peer status --config {cfg}",
        f"  拉取条目 / pull:        exchange pull --node {yd} --key {keys}/jiaxing-nanhu.key "
        f"--out {d}/pulled/",
        f"  离线验签 / verify:      exchange verify {d}/pulled/",
        f"  方案状态 / plan:        exchange plan status {plan_id} --node {yd} "
        f"--key {keys}/suzhou-wuzhong.key",
        f"  新建条目 / new item:    exchange item new --kind lesson --author xuzhou-tongshan "
        f"--out {d}/my.json   (then replace every <填写…> in it)",
        f"  签名推送 / sign+push:   exchange item sign {d}/my.json --key "
        f"{keys}/xuzhou-tongshan.key --out {d}/my.signed.json && exchange push "
        f"{d}/my.signed.json --node {hh} --key {keys}/xuzhou-tongshan.key",
    ]


def _key(path: Path, key_id: str) -> PrivateKey:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_private_key(generate_key(key_id=key_id), path)
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


def _roster_body(nodes: dict[str, Node], urls: dict[str, str]) -> dict[str, Any]:
    """The roster without version and issue time (compared to decide on re-signing)."""
    entries = []
    for nid, n in nodes.items():
        assert n.key is not None  # loaded by Node.start()
        key = {
            "key_id": n.key.key_id,
            "alg": n.key.alg,
            "public_key": n.key.public_key.b64(),
            "valid_from": "2026-01-01T00:00:00+00:00",
        }
        sites = [s for s, home in DEMO_HOMES.items() if home == nid]
        entries.append(
            {"id": nid, "base_url": urls[nid], "keys": [key], "sites": sites}
        )
    return {
        "federation": _FEDERATION,
        "nodes": entries,
        "circles": [
            {
                "id": c,
                "name": name,
                "members": [s for s, _n, cs in DEMO_SITES if c in cs],
            }
            for c, name in _CIRCLES.items()
        ],
    }


async def _install_roster(
    nodes: dict[str, Node], urls: dict[str, str], key: PrivateKey
) -> int:
    """Sign and install a roster on every node unless the installed one matches."""
    body = _roster_body(nodes, urls)
    versions = []
    current = True
    for n in nodes.values():
        row = await n.federation.store.roster()
        versions.append(row[0] if row else 0)
        doc = dict(row[1]["document"]) if row else {}
        doc.pop("version", None)
        doc.pop("issued_at", None)
        current = current and n.federation.view is not None and doc == body
    if current:
        return max(versions)
    version = max(versions) + 1
    doc = {
        **body,
        "version": version,
        "issued_at": datetime.now(UTC).isoformat(),
    }
    signed = sign_document(doc, key, CONTEXT_ROSTER)
    for n in nodes.values():
        await n.federation.install(signed)
    return version


async def _exchange_site_records(nodes: dict[str, Node], urls: dict[str, str]) -> None:
    """Each node fetches its peer's signed site records (names, keys), verifies them."""
    for nid, n in nodes.items():
        for peer, url in urls.items():
            if peer != nid:
                async with ExchangeClient(url) as c:
                    doc = await c.request("GET", "/v1/federation/site-records")
                problems = await n.federation.accept_site_records(doc["records"], peer)
                for p in problems:
                    _say(f"  site record from {peer} refused: {p}")


async def _read_across(
    urls: dict[str, str],
    keys: dict[str, PrivateKey],
    author: str,
    item: dict[str, Any],
    item_id: str,
    reader: str,
) -> str:
    """Wait (bounded) until ``reader``'s node serves the item; the line to print."""
    there = DEMO_HOMES[reader]
    deadline = time.monotonic() + 60
    async with ExchangeClient(urls[there], key=keys[reader]) as c:
        while True:
            try:
                env = await c.get_item(item_id)
                break
            except ExchangeError:
                if time.monotonic() > deadline:
                    return (
                        f"  (not yet replicated to {there} after 60 s — "
                        "see: exchange peer status)"
                    )
                await asyncio.sleep(0.2)
    verify_item(env["signed"], keys[author].public_key)
    return (
        f"{CROSS_NODE_MARK} 《{item['title']}》 {author} → {DEMO_HOMES[author]} "
        f"({urls[DEMO_HOMES[author]]}); read on {there} ({urls[there]}) by {reader}, "
        f"signature {env['signed']['sig']['key']} verified / 签名已验证"
    )


async def _serve(data_dir: Path, listen: str) -> int:
    host, _, port_s = listen.rpartition(":")
    ports = {nid: int(port_s) + i for i, nid in enumerate(DEMO_NODES)}
    urls = {nid: f"http://{host}:{p}" for nid, p in ports.items()}
    data_dir.mkdir(parents=True, exist_ok=True)
    if not logging.getLogger().isEnabledFor(
        logging.DEBUG
    ):  # keep the demo's story readable
        for name in ("exchange.access", "exchange.storage.migrate"):
            logging.getLogger(name).setLevel(logging.WARNING)
    pg = EmbeddedPostgres(data_dir / "pg")
    _say("启动嵌入式 PostgreSQL / starting the embedded PostgreSQL …")
    await asyncio.to_thread(pg.start)
    nodes: dict[str, Node] = {}
    runners: list[web.AppRunner] = []
    try:
        roster_key = _key(data_dir / "roster.key", "roster#k1")
        pin = f"{roster_key.key_id} {roster_key.alg} {roster_key.public_key.b64()}"
        for nid, name in DEMO_NODES.items():
            db = pg.url(f"demo_{nid.replace('-', '_')}")
            await ensure_database(db)
            path = data_dir / nid / "node.toml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                _NODE_TOML.format(
                    path=path,
                    id=nid,
                    name=name,
                    url=urls[nid],
                    db=db,
                    listen=f"{host}:{ports[nid]}",
                    pin=pin,
                ),
                encoding="utf-8",
            )
            node = Node(load_config(path, environ={}))
            await node.start()
            nodes[nid] = node
            runner = web.AppRunner(make_app(node), access_log=None, shutdown_timeout=5)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, host, ports[nid], reuse_address=True).start()
            _say(
                f"  节点 / node {nid} ({name}): {urls[nid]}, database "
                f"{urlsplit(db).path.lstrip('/')}"
            )
        version = await _install_roster(nodes, urls, roster_key)
        _say(
            f"  名册 / roster version {version}, signed by {roster_key.key_id} "
            f"(key {data_dir / 'roster.key'}), pinned by both nodes"
        )

        keys_dir = data_dir / "keys"
        keys: dict[str, PrivateKey] = {}
        for site_id, name, circles in DEMO_SITES:
            home = nodes[DEMO_HOMES[site_id]]
            keys[site_id] = _key(keys_dir / f"{site_id}.key", f"{site_id}#k1")
            await home.sites.add_site(site_id, name, home.id, list(circles))
            await home.sites.add_key(
                keys[site_id].key_id,
                site_id,
                keys[site_id].alg,
                keys[site_id].public_key.raw,
            )
        await _exchange_site_records(nodes, urls)
        token_path = data_dir / "monitor.token"
        if not token_path.exists():
            token_path.write_text(secrets.token_urlsafe(32))
            token_path.chmod(0o600)
        await nodes["huaihai"].sites.add_monitor(
            "huaibei-municipal",
            "淮北市人大常委会（监督）",
            token_path.read_text().strip(),
            ["huaihai"],
            [],
        )

        pushed: dict[str, tuple[str, dict[str, Any]]] = {}
        for author, item in demo_items():
            at = DEMO_HOMES[author]
            async with ExchangeClient(urls[at], key=keys[author]) as c:
                res = await c.push(sign_item(item, keys[author]))
            pushed[item["title"]] = (res["id"], item)
            _say(
                f"  {res['status']:9} {at:13} #{res['index']} {item['title']}  "
                f"({author})"
            )
        lesson_id, lesson = pushed["杜集区践行全过程人民民主的做法"]
        case_id, case = pushed["吴中区预算联网监督助推预算绩效管理"]
        _say("")
        _say(
            await _read_across(
                urls, keys, "huaibei-duji", lesson, lesson_id, "suzhou-wuzhong"
            )
        )
        _say(
            await _read_across(
                urls, keys, "suzhou-wuzhong", case, case_id, "huaibei-duji"
            )
        )
        _say(
            "  仅淮海经济区可见的检查方案不会复制到长三角节点 / "
            "the huaihai-only inspection plan is never sent to the yangtze-delta node "
            "(it serves no huaihai member)"
        )
        _say("")
        plan_id = await run_joint_inspection(urls, DEMO_HOMES, keys, _say)
        hh, yd = urls["huaihai"], urls["yangtze-delta"]
        read_token = await nodes["yangtze-delta"].read_access.issue_token(
            "suzhou-wuzhong"
        )
        _say("")
        _say(f"联邦已就绪 / federation ready: huaihai {hh}  ·  yangtze-delta {yd}")
        for line in next_steps(
            data_dir, urls, token_path.read_text().strip(), read_token, plan_id
        ):
            _say(line)
        _say("按 Ctrl-C 停止 / press Ctrl-C to stop")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        _say("正在停止 / stopping …")
    finally:
        for runner in runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        for node in nodes.values():
            with contextlib.suppress(Exception):
                await node.stop()
        await asyncio.to_thread(pg.stop)
    return 0


def run_demo(data_dir: Path, listen: str = "127.0.0.1:8700") -> int:
    """Run the two-node demo federation until interrupted (SIGINT/SIGTERM).

    Args:
        data_dir: Folder for the embedded PostgreSQL, node data, keys and ``node.toml``
            files (created if missing; reused on the next run).
        listen: ``HOST:PORT`` of the ``huaihai`` node; ``yangtze-delta`` uses port + 1.

    Returns:
        The exit code (0 after a clean stop).
    """
    return asyncio.run(_serve(Path(data_dir).resolve(), listen))
