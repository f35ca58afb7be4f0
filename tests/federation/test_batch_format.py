"""The federation batch formats on the wire (real nodes over HTTP on 127.0.0.1, a
recording proxy in front of the receiver): site records cross once per version, acks are
compact, a peer that lost a record gets it again, and old and new peers interoperate."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from exchange.core.items import sign_item
from exchange.core.roster import sign_document
from exchange.core.signing import CONTEXT_ROSTER, generate_key
from tests.support.federation import Federation, build, item_ids, wait_until
from tests.support.reliability import SwitchProxy, lesson, node_entry, roster

# The receiver pulls nothing itself: what it holds came through the pushes.
QUIET = {"yangtze-delta": {"federation": {"replicate": False}}}


async def _behind_proxy(fed: Federation, node_id: str) -> SwitchProxy:
    """Put a recording proxy in front of ``node_id``: roster version 2 names it."""
    proxy = await SwitchProxy(fed.nodes[node_id].url).start()
    doc = fed.roster_doc(version=2)
    for entry in doc["nodes"]:
        if entry["id"] == node_id:
            entry["base_url"] = proxy.url
    signed = sign_document(doc, fed.roster_key, CONTEXT_ROSTER)
    for rn in fed.nodes.values():
        await rn.node.federation.install(signed)
    return proxy


async def _two_nodes_behind_proxy(node_factory: Any) -> tuple[Any, Any, SwitchProxy]:
    """huaihai pushing to yangtze-delta through a recording proxy."""
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), per_node=QUIET
    )
    proxy = await _behind_proxy(fed, "yangtze-delta")
    return fed.nodes["huaihai"], fed.nodes["yangtze-delta"], proxy


def _batches(proxy: SwitchProxy) -> list[tuple[dict[str, Any], int, dict[str, Any]]]:
    """The federation batches that crossed, with their answers."""
    return [
        (orjson.loads(req), status, orjson.loads(resp))
        for path, req, status, resp in proxy.exchanges
        if path == "/v1/federation/batch"
    ]


async def _push(rn: Any, site: str, titles: list[str], key: Any = None) -> set[str]:
    async with rn.client(site) as c:
        res = await c.push_batch(
            [sign_item(lesson(site, t), key or rn.keys[site]) for t in titles]
        )
    return {r["id"] for r in res["results"]}


async def _arrived(rn: Any, ids: set[str], what: str) -> None:
    async def done() -> bool:
        return ids <= set(await item_ids(rn))

    await wait_until(done, what=what)


def _records(doc: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (r["document"]["id"], r["document"]["version"])
        for r in doc.get("site_records", [])
    ]


async def test_site_records_cross_once_per_version_and_acks_are_compact(
    node_factory: Any,
) -> None:
    hh, yd, proxy = await _two_nodes_behind_proxy(node_factory)
    try:
        for n in range(3):
            ids = await _push(hh, "huaibei-duji", [f"格式{n}-{i}" for i in range(3)])
            await _arrived(yd, ids, f"round {n}")
        sent = _batches(proxy)
        # The first batch is in format 1 (the sender does not know the peer yet): one
        # result per item, and the peer says it reads format 2.
        first, status, answer = sent[0]
        assert status == 200 and "format" not in first
        assert len(answer["results"]) == len(first["items"])
        assert answer["batch_format"] == 2
        assert [s for s, _ in _records(first)] == ["huaibei-duji"]
        (_, version), later = _records(first)[0], sent[1:]
        # Then format 2: the record's version named, the record itself not sent again,
        # and counts instead of a result per item.
        assert later and all(doc["format"] == 2 for doc, _, _ in later)
        assert all(
            doc["site_versions"] == {"huaibei-duji": version} for doc, _, _ in later
        )
        assert all("site_records" not in doc for doc, _, _ in later)
        assert all(
            ans == {"accepted": len(doc["items"]), "duplicates": 0, "refused": 0}
            for doc, _, ans in later
        )
        # A new key makes a new version: it crosses once, with the next batch, and
        # items signed with the new key are accepted by the peer.
        k2 = generate_key(key_id="huaibei-duji#k2")
        await hh.node.sites.add_key(
            k2.key_id, "huaibei-duji", k2.alg, k2.public_key.raw
        )
        before = len(_batches(proxy))
        for n in range(2):
            ids = await _push(hh, "huaibei-duji", [f"新钥{n}"], key=k2)
            await _arrived(yd, ids, f"items signed with the new key, round {n}")
        carried = [r for doc, _, _ in _batches(proxy)[before:] for r in _records(doc)]
        assert len(carried) == 1 and carried[0][1] > version
        peer = await hh.node.federation.store.peer("yangtze-delta")
        assert peer is not None and peer.refused_total == 0
    finally:
        await proxy.stop()


async def test_a_peer_that_lost_a_site_record_asks_for_it_again(
    node_factory: Any,
) -> None:
    hh, yd, proxy = await _two_nodes_behind_proxy(node_factory)
    try:
        for n in range(2):  # the sender now knows the peer holds the record
            await _arrived(yd, await _push(hh, "huaibei-duji", [f"前{n}"]), "before")
        # The peer loses the record and the keys it brought (a restore, a mistake).
        async with yd.node.db.pool.acquire() as c:
            await c.execute("DELETE FROM site_records")
            await c.execute("DELETE FROM site_keys WHERE site_id = 'huaibei-duji'")
        yd.node.sites.invalidate_keys()
        before = len(_batches(proxy))
        ids = await _push(hh, "huaibei-duji", ["丢失之后"])
        await _arrived(yd, ids, "the item after the peer lost the record")
        after = _batches(proxy)[before:]
        wanted = [ans for _, _, ans in after if "site_records_wanted" in ans]
        assert wanted and wanted[0]["site_records_wanted"] == ["huaibei-duji"]
        assert any(_records(doc) for doc, _, _ in after)
        peer = await hh.node.federation.store.peer("yangtze-delta")
        assert peer is not None and peer.refused_total == 0
    finally:
        await proxy.stop()


async def test_a_format_1_batch_is_answered_with_a_result_per_item(
    node_factory: Any,
) -> None:
    """An older sender (format 1, every record, no format field) is served as before."""
    from .test_replication import _node_post

    fed = await build(node_factory, regions=("huaihai", "yangtze-delta"))
    hh = fed.nodes["huaihai"]
    signed = [
        sign_item(lesson("huaibei-duji", f"旧{i}"), hh.keys["huaibei-duji"])
        for i in range(2)
    ]
    records = await hh.node.federation.local_site_records()
    status, body = await _node_post(
        fed, "huaihai", "yangtze-delta", {"items": signed, "site_records": records}
    )
    assert status == 200
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted"]
    assert (body["accepted"], body["duplicates"], body["refused"]) == (2, 0, 0)
    # The same again in format 2, with a refusal: only the refused item is listed.
    bad = dict(signed[0], sig=dict(signed[0]["sig"], value=signed[1]["sig"]["value"]))
    status, body = await _node_post(
        fed,
        "huaihai",
        "yangtze-delta",
        {"format": 2, "items": [signed[1], bad], "site_versions": {}},
    )
    assert status == 200 and "results" not in body
    assert (body["accepted"], body["duplicates"], body["refused"]) == (0, 1, 1)
    assert [(r["position"], r["error"]["code"]) for r in body["refusals"]] == [
        (1, "bad_signature")
    ]


class _OldPeer:
    """A peer that reads format 1 only, as a node before format 2 did: any other field
    is a 400 ``schema_invalid``. ``claims_2``: it says it reads format 2 all the same
    (a node downgraded after it said so)."""

    def __init__(self, claims_2: bool) -> None:
        self.claims_2 = claims_2
        self.formats: list[int] = []
        self.ids: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _batch(self, request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read())
        self.formats.append(doc.get("format", 1))
        if set(doc) - {"items", "site_records", "log_range"}:
            return web.json_response(
                {"error": {"code": "schema_invalid", "message": "unknown field"}},
                status=400,
            )
        results = []
        for n, _ in enumerate(doc["items"]):
            item_id = f"sha256:{len(self.ids):064x}"
            self.ids.append(item_id)
            results.append(
                {"id": item_id, "status": "accepted", "index": n, "error": None}
            )
        body: dict[str, Any] = {
            "results": results,
            "accepted": len(results),
            "duplicates": 0,
            "refused": 0,
        }
        if self.claims_2:
            body["batch_format"] = 2
        return web.json_response(body)

    async def _other(self, request: web.Request) -> web.Response:
        await request.read()
        if request.path == "/v1/federation/log":
            return web.json_response(
                {"items": [], "next_cursor": -1, "site_records": []}
            )
        return web.json_response(
            {"error": {"code": "not_found", "message": "-"}}, status=404
        )

    async def start(self) -> _OldPeer:
        app = web.Application()
        app.router.add_post("/v1/federation/batch", self._batch)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self


async def test_old_peers_get_format_1_and_a_downgraded_peer_is_served_again(
    node_factory: Any,
) -> None:
    roster_key = generate_key(key_id="roster#k1")
    pinned = [f"roster#k1 ed25519 {roster_key.public_key.b64()}"]
    a = await node_factory(
        "huaihai",
        federation={
            "roster_keys": pinned,
            "backoff_base_ms": 50,
            "backoff_max_s": 1.0,
            "pull_interval_ms": 600_000,
            "witness_interval_ms": 600_000,
        },
    )
    duji = await a.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("all",))
    old, downgraded = await _OldPeer(False).start(), await _OldPeer(True).start()
    try:
        signed = roster(
            [
                node_entry("huaihai", a.url, a.node.key, ["huaibei-duji"]),
                node_entry("old", old.url, generate_key(key_id="old#k1")),
                node_entry(
                    "downgraded", downgraded.url, generate_key(key_id="downgraded#k1")
                ),
            ],
            {"all": ["huaibei-duji"]},
            roster_key,
        )
        await a.node.federation.install(signed)
        total = 0
        for n in range(3):
            async with a.client("huaibei-duji") as c:
                await c.push_batch(
                    [
                        sign_item(lesson("huaibei-duji", f"互通{n}-{i}"), duji)
                        for i in range(4)
                    ]
                )
            total += 4

            async def delivered(total: int = total) -> bool:
                return len(old.ids) >= total and len(downgraded.ids) >= total

            await wait_until(delivered, what=f"round {n} at both old peers")
        # The old peer only ever saw format 1; the downgraded one was tried in format 2
        # after it claimed it, refused it, and got format 1 again at once.
        assert set(old.formats) == {1} and len(old.ids) == total
        assert 2 in downgraded.formats and len(downgraded.ids) == total
        for peer in ("old", "downgraded"):
            row = await a.node.federation.store.peer(peer)
            assert row is not None and row.pushed_total == total and row.attempts == 0
    finally:
        for p in (old, downgraded):
            if p.runner is not None:
                await p.runner.cleanup()
