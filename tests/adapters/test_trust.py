"""The runner against a malicious node: crafted ids and kinds, invented keys.

The node here is a hand-made aiohttp app on 127.0.0.1 that answers what a compromised
node (or someone in the path of a plain-http node URL) would: envelopes whose ``id`` or
``kind`` is a path (``../../x``), an id that is not the item's hash, and items of a
partner site signed by a key the node invented and "vouched for" with a site record
it signed itself although the roster names another node as the site's home. Nothing of
that may be written, and nothing may appear outside the sink folder; the one genuine
item (its record signed by its real home node) is delivered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.base import AdapterContext, RefusedDelivery
from adapters.config import load_site_config
from adapters.registry import load_adapter
from adapters.runner import Runner, RunSummary
from adapters.trust import TrustError
from exchange.core.canonical import item_id
from exchange.core.items import sign_item
from exchange.core.roster import sign_document
from exchange.core.signing import (
    CONTEXT_ROSTER,
    CONTEXT_SITE_RECORD,
    PrivateKey,
    generate_key,
    save_private_key,
)
from exchange.templates import template

T0 = "2026-01-01T00:00:00+00:00"


def _key_entry(k: PrivateKey) -> dict[str, Any]:
    return {
        "key_id": k.key_id,
        "alg": "ed25519",
        "public_key": k.public_key.b64(),
        "valid_from": T0,
    }


class EvilNode:
    """Node ``node-a`` (home of huaibei-duji) turned hostile; ``node-b`` is honest."""

    def __init__(self) -> None:
        self.roster_key = generate_key(key_id="roster#k1")
        self.node_a = generate_key(key_id="node-a#k1")
        self.node_b = generate_key(key_id="node-b#k1")
        self.duji = generate_key(key_id="huaibei-duji#k1")
        self.tongshan = generate_key(key_id="xuzhou-tongshan#k1")
        self.invented = generate_key(key_id="xuzhou-tongshan#k9")
        self.node_id = "node-a"
        self.items: list[dict[str, Any]] = []
        self.url = ""
        self.tongshan_revoked: str | None = None

    def roster(self) -> dict[str, Any]:
        doc = {
            "federation": "huaihai-test",
            "version": 1,
            "issued_at": T0,
            "nodes": [
                {
                    "id": "node-a",
                    "base_url": "http://127.0.0.1:1",
                    "keys": [_key_entry(self.node_a)],
                    "sites": ["huaibei-duji"],
                },
                {
                    "id": "node-b",
                    "base_url": "http://127.0.0.1:2",
                    "keys": [_key_entry(self.node_b)],
                    "sites": ["xuzhou-tongshan"],
                },
            ],
            "circles": [
                {
                    "id": "huaihai",
                    "name": "淮海经济区",
                    "members": ["huaibei-duji", "xuzhou-tongshan"],
                }
            ],
            "monitors": [],
        }
        return sign_document(doc, self.roster_key, CONTEXT_ROSTER)

    @staticmethod
    def record(
        site: str,
        home: str,
        key: PrivateKey,
        signer: PrivateKey,
        revoked: str | None = None,
    ) -> Any:
        doc = {
            "id": site,
            "name": site,
            "home_node": home,
            "circles": ["huaihai"],
            "keys": [{**_key_entry(key), "revoked_at": revoked}],
            "version": 2 if key.key_id.endswith("k9") else 1,
            "issued_at": T0,
        }
        return sign_document(doc, signer, CONTEXT_SITE_RECORD)

    def records(self) -> list[Any]:
        return [
            self.record("huaibei-duji", "node-a", self.duji, self.node_a),
            # Relayed from node-b, signed by node-b: genuine.
            self.record(
                "xuzhou-tongshan",
                "node-b",
                self.tongshan,
                self.node_b,
                self.tongshan_revoked,
            ),
            # Invented by node-a for a site it is not home to.
            self.record("xuzhou-tongshan", "node-a", self.invented, self.node_a),
        ]

    def add(self, signed: dict[str, Any], *, env_id: str | None = None) -> None:
        self.items.append(
            {
                "index": len(self.items),
                "id": env_id if env_id is not None else item_id(signed["item"]),
                "received_at": "2026-11-20T01:30:00+00:00",
                "signed": signed,
            }
        )

    def app(self) -> web.Application:
        async def node(_: web.Request) -> web.Response:
            return web.json_response(
                {
                    "id": self.node_id,
                    "name": "A",
                    "base_url": self.url,
                    "keys": [
                        {
                            "key_id": self.node_a.key_id,
                            "alg": "ed25519",
                            "public_key": self.node_a.public_key.b64(),
                        }
                    ],
                    "roster_keys": [
                        f"roster#k1 ed25519 {self.roster_key.public_key.b64()}"
                    ],
                }
            )

        async def sites(_: web.Request) -> web.Response:
            # The directory a node keeps unsigned: it lists the invented key too.
            keys = {
                "huaibei-duji": [self.duji],
                "xuzhou-tongshan": [self.tongshan, self.invented],
            }
            return web.json_response(
                {
                    "sites": [
                        {"id": sid, "keys": [_key_entry(k) for k in ks]}
                        for sid, ks in keys.items()
                    ]
                }
            )

        async def roster(_: web.Request) -> web.Response:
            return web.json_response(self.roster())

        async def records(_: web.Request) -> web.Response:
            return web.json_response({"records": self.records()})

        async def items(request: web.Request) -> web.Response:
            after = int(request.query.get("cursor", "-1"))
            page = [e for e in self.items if e["index"] > after]
            return web.json_response({"items": page, "next_cursor": None})

        app = web.Application()
        app.router.add_get("/v1/node", node)
        app.router.add_get("/v1/roster", roster)
        app.router.add_get("/v1/sites", sites)
        app.router.add_get("/v1/federation/site-records", records)
        app.router.add_get("/v1/items", items)
        return app


@pytest.fixture
async def evil() -> AsyncIterator[EvilNode]:
    n = EvilNode()
    server = TestServer(n.app(), host="127.0.0.1", port=0)
    await server.start_server()
    n.url = str(server.make_url("")).rstrip("/")
    try:
        yield n
    finally:
        await server.close()


def _tongshan_item(title: str, kind: str = "case_study") -> dict[str, Any]:
    it = template("case_study", author="xuzhou-tongshan", partner="huaibei-duji")
    it["title"] = title
    it["kind"] = kind
    return it


def _config(tmp_path: Path, n: EvilNode, extra: str = "") -> Any:
    save_private_key(n.duji, tmp_path / "duji.key")
    (tmp_path / "site.toml").write_text(
        f'[site]\nid = "huaibei-duji"\nkey_file = "duji.key"\nnode = "{n.url}"\n{extra}\n'
        "[runner]\nrequest_timeout = 5\n\n"
        '[[sink]]\ntype = "folder"\nname = "inbox"\npath = "inbox"\nby_kind = true\n',
        encoding="utf-8",
    )
    return load_site_config(tmp_path / "site.toml")


async def _first_pull(evil: EvilNode, tmp_path: Path) -> Any:
    """Pin on a first pull that delivers one genuine item; returns the config."""
    evil.add(sign_item(_tongshan_item("铜山区经验"), evil.tongshan))
    cfg = _config(tmp_path, evil)
    async with Runner(cfg, say=lambda _: None) as runner:
        s = RunSummary()
        await runner.pull_once(s)
    assert (s.delivered, s.problems) == (1, [])
    return cfg


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


async def test_crafted_ids_kinds_and_invented_keys_are_refused(
    evil: EvilNode, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    good = sign_item(
        _tongshan_item("铜山区人大常委会安全生产执法检查案例"), evil.tongshan
    )
    evil.add(good, env_id="../../x")  # a path for an id
    evil.add(good, env_id="sha256:" + "0" * 64)  # well-formed, not the item's hash
    bad_kind = sign_item(_tongshan_item("路径作类型", kind="../../x"), evil.tongshan)
    evil.add(bad_kind)
    forged = sign_item(_tongshan_item("节点伪造的案例"), evil.invented)
    evil.add(forged)
    evil.add(good)  # the genuine one, under its real id
    before = _files(tmp_path)
    async with Runner(_config(site, evil), say=lambda _: None) as runner:
        s = RunSummary()
        await runner.pull_once(s)
    assert s.delivered == 1, s.problems
    assert len(s.problems) == 4
    assert "../../x" in s.problems[0] and "sha256:<64 hex>" in s.problems[0]
    assert "hash" in s.problems[1]
    assert "kind" in s.problems[2]
    assert "xuzhou-tongshan#k9" in s.problems[3]
    hexid = item_id(good["item"]).removeprefix("sha256:")
    written = _files(tmp_path) - before
    assert {w for w in written if w.startswith("site/inbox/")} == {
        f"site/inbox/case_study/{hexid}.md",
        f"site/inbox/case_study/{hexid}.json",
    }
    assert all(w.startswith("site/") for w in written), written
    assert not (tmp_path / "x").exists() and not (site / "x").exists()
    stored = json.loads(
        (site / "inbox" / "case_study" / f"{hexid}.json").read_text("utf-8")
    )
    assert stored == good


async def test_a_node_that_changes_its_identity_is_refused(
    evil: EvilNode, tmp_path: Path
) -> None:
    cfg = await _first_pull(evil, tmp_path)
    pinned = json.loads((tmp_path / "adapter-data/state/trust.json").read_text())
    assert pinned["node"]["id"] == "node-a" and pinned["roster_version"] == 1
    evil.node_id = "node-z"
    evil.add(sign_item(_tongshan_item("铜山区经验（二）"), evil.tongshan))
    async with Runner(cfg, say=lambda _: None) as runner:
        with pytest.raises(TrustError, match="node-z.*pinned.*delete"):
            await runner.pull_once(RunSummary())


async def test_items_signed_after_a_revocation_are_refused(
    evil: EvilNode, tmp_path: Path
) -> None:
    before = _tongshan_item("撤销前签名的案例")
    before["created_at"] = "2021-10-28T09:30:00+08:00"
    after = _tongshan_item("撤销后签名的案例")
    after["created_at"] = "2026-06-02T09:30:00+08:00"
    evil.tongshan_revoked = "2026-06-01T00:00:00+00:00"
    evil.add(sign_item(before, evil.tongshan))
    evil.add(sign_item(after, evil.tongshan))
    async with Runner(_config(tmp_path, evil), say=lambda _: None) as runner:
        s = RunSummary()
        await runner.pull_once(s)
    assert s.delivered == 1
    (problem,) = s.problems
    assert "revoked" in problem


async def test_roster_keys_in_site_toml_win_over_what_the_node_announces(
    evil: EvilNode, tmp_path: Path
) -> None:
    other = generate_key(key_id="roster#k1")
    cfg = _config(
        tmp_path,
        evil,
        f'roster_keys = ["roster#k1 ed25519 {other.public_key.b64()}"]\n',
    )
    evil.add(sign_item(_tongshan_item("铜山区经验"), evil.tongshan))
    async with Runner(cfg, say=lambda _: None) as runner:
        with pytest.raises(TrustError, match="roster"):
            await runner.pull_once(RunSummary())
    assert not (tmp_path / "inbox").exists()


@pytest.mark.parametrize(
    "env_id",
    ["../../x", "sha256:../../x", "sha256:" + "A" * 64, "/etc/passwd", ""],
)
async def test_folder_sink_refuses_ids_that_are_not_item_hashes(
    tmp_path: Path, env_id: str
) -> None:
    ctx = AdapterContext(
        "huaibei-duji", tmp_path / "d", logging.getLogger("t"), tmp_path
    )
    sink = load_adapter(
        {"type": "folder", "name": "inbox", "path": "inbox", "by_kind": True},
        ctx,
        role="sink",
    )
    key = generate_key(key_id="xuzhou-tongshan#k1")
    signed = sign_item(_tongshan_item("铜山区案例"), key)
    with pytest.raises(RefusedDelivery):
        await sink.deliver(signed, {"index": 1, "id": env_id, "received_at": T0})
    crafted = sign_item(_tongshan_item("铜山区案例", kind="../../x"), key)
    with pytest.raises(RefusedDelivery, match="kind"):
        await sink.deliver(
            crafted, {"index": 2, "id": item_id(crafted["item"]), "received_at": T0}
        )
    assert _files(tmp_path) == set()


async def test_partner_item_from_another_node_is_verified_by_its_home_record(
    node_factory: Any, tmp_path: Path
) -> None:
    """Real nodes: a Wuzhong item pushed on the Yangtze-delta node reaches the Huaihai
    node; Duji's runner there pins the roster key from site.toml and verifies the item
    against the record the Yangtze-delta node signed (relayed by its own node)."""
    from tests.support import federation as fedhelp

    fed = await fedhelp.build(node_factory, ("huaihai", "yangtze-delta"))
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    item = template("lesson", author="suzhou-wuzhong", partner="huaibei-duji")
    item["title"] = "吴中区人大常委会推行代表履职积分制"
    async with yd.client("suzhou-wuzhong") as c:
        pushed = await c.push(sign_item(item, yd.keys["suzhou-wuzhong"]))

    async def arrived() -> bool:
        return pushed["id"] in await fedhelp.item_ids(hh)

    await fedhelp.wait_until(arrived, what="replication to the Huaihai node")
    save_private_key(hh.keys["huaibei-duji"], tmp_path / "duji.key")
    roster_key = f"roster#k1 ed25519 {fed.roster_key.public_key.b64()}"
    (tmp_path / "site.toml").write_text(
        f'[site]\nid = "huaibei-duji"\nkey_file = "duji.key"\nnode = "{hh.url}"\n'
        f'roster_keys = ["{roster_key}"]\n\n[runner]\nrequest_timeout = 5\n\n'
        '[[sink]]\ntype = "folder"\nname = "inbox"\npath = "inbox"\n',
        encoding="utf-8",
    )
    async with Runner(
        load_site_config(tmp_path / "site.toml"), say=lambda _: None
    ) as r:
        s = RunSummary()
        await r.pull_once(s)
    assert s.problems == [] and s.delivered == 1
    hexid = pushed["id"].removeprefix("sha256:")
    assert (tmp_path / "inbox" / f"{hexid}.json").is_file()
    pinned = json.loads((tmp_path / "adapter-data/state/trust.json").read_text())
    assert pinned["node"]["id"] == "huaihai" and pinned["roster_version"] == 1


async def test_a_node_key_rotation_the_roster_announces_is_followed(
    evil: EvilNode, tmp_path: Path
) -> None:
    """The operator rotates node-a's key and the federation publishes a roster naming
    only the new one: the runner used to refuse every pull from then on ("the roster
    names other keys") until someone deleted trust.json on every site. The roster is
    signed with the pinned roster keys, which the node does not hold, so its word on
    the node's keys is followed and pinned."""
    cfg = await _first_pull(evil, tmp_path)
    state = tmp_path / "adapter-data/state/trust.json"
    assert list(json.loads(state.read_text())["node"]["keys"]) == ["node-a#k1"]
    old_roster = evil.roster
    rotated = generate_key(key_id="node-a#k2")

    def roster_v2() -> dict[str, Any]:
        doc = json.loads(json.dumps(old_roster()["document"]))
        doc["version"] = 2
        doc["nodes"][0]["keys"] = [_key_entry(rotated)]
        return sign_document(doc, evil.roster_key, CONTEXT_ROSTER)

    evil.roster = roster_v2  # type: ignore[method-assign]
    evil.node_a = rotated  # the node signs its sites' records with the new key
    evil.add(sign_item(_tongshan_item("铜山区经验（二）"), evil.tongshan))
    async with Runner(cfg, say=lambda _: None) as runner:
        again = RunSummary()
        await runner.pull_once(again)
    assert (again.delivered, again.problems) == (1, [])
    pinned = json.loads(state.read_text())
    assert pinned["roster_version"] == 2
    assert list(pinned["node"]["keys"]) == ["node-a#k2"]
    # A roster the pinned roster keys did not sign still changes nothing.
    stranger = generate_key(key_id="roster#k1")

    def forged() -> dict[str, Any]:
        doc = json.loads(json.dumps(old_roster()["document"]))
        doc["version"] = 3
        return sign_document(doc, stranger, CONTEXT_ROSTER)

    evil.roster = forged  # type: ignore[method-assign]
    evil.add(sign_item(_tongshan_item("铜山区经验（三）"), evil.tongshan))
    async with Runner(cfg, say=lambda _: None) as runner:
        with pytest.raises(TrustError, match="roster"):
            await runner.pull_once(RunSummary())
    assert list(json.loads(state.read_text())["node"]["keys"]) == ["node-a#k2"]
