"""Saved queries: create/list/delete, pull with acknowledgement, live SSE with resume."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from exchange.core.items import sign_item
from exchange.errors import InputError, NotFound, SchemaError
from exchange.templates import template

pytestmark = pytest.mark.asyncio


async def _sites(node: Any) -> None:
    await node.add_site(
        "huaibei-duji", "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")
    )
    await node.add_site("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",))
    await node.add_site("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",))


def _plan(
    author: str, title: str, circles: list[str] | None = None, n: int = 0
) -> dict[str, Any]:
    it = template(
        "inspection_plan",
        author,
        "suzhou-wuzhong" if author != "suzhou-wuzhong" else "huaibei-duji",
    )
    it["title"] = title
    it["summary"] = f"第{n}批"
    it["audience"] = {"circles": circles or [], "sites": []}
    return it


async def _push(node: Any, site: str, item: dict[str, Any]) -> int:
    async with node.client(site) as c:
        return int((await c.push(sign_item(item, node.keys[site])))["index"])


async def _req(
    node: Any, site: str, method: str, path: str, body: Any = None, **params: Any
) -> Any:
    async with node.client(site) as c:
        return await c.request(
            method,
            path,
            params=params,
            body=orjson.dumps(body) if body is not None else None,
        )


async def test_create_list_delete_and_bad_input(node: Any) -> None:
    await _sites(node)
    sub = await _req(
        node,
        "huaibei-duji",
        "POST",
        "/v1/subscriptions",
        {"q": "安全生产法", "kind": "inspection_plan", "tag": "安全生产法"},
    )
    assert (
        sub["id"].startswith("sub_")
        and sub["cursor"] == -1
        and sub["site"] == "huaibei-duji"
    )
    listed = await _req(node, "huaibei-duji", "GET", "/v1/subscriptions")
    assert [s["id"] for s in listed["subscriptions"]] == [sub["id"]]
    # Another site neither sees nor deletes it.
    assert (await _req(node, "suzhou-wuzhong", "GET", "/v1/subscriptions"))[
        "subscriptions"
    ] == []
    with pytest.raises(NotFound):
        await _req(node, "suzhou-wuzhong", "DELETE", f"/v1/subscriptions/{sub['id']}")
    with pytest.raises(NotFound):
        await _req(
            node, "suzhou-wuzhong", "GET", f"/v1/subscriptions/{sub['id']}/matches"
        )
    for bad, err in [
        ({}, SchemaError),
        ({"q": "!!!"}, InputError),
        ({"q": "安" * 201}, SchemaError),
        ({"kind": "poem"}, SchemaError),
        ({"q": "x", "extra": 1}, SchemaError),
        ({"author": "Not A Slug"}, SchemaError),
    ]:
        with pytest.raises(err):
            await _req(node, "huaibei-duji", "POST", "/v1/subscriptions", bad)
    assert (
        len(
            (await _req(node, "huaibei-duji", "GET", "/v1/subscriptions"))[
                "subscriptions"
            ]
        )
        == 1
    )
    with pytest.raises(InputError):
        await _req(
            node,
            "huaibei-duji",
            "GET",
            f"/v1/subscriptions/{sub['id']}/matches",
            after="x",
        )
    with pytest.raises(InputError):
        await _req(
            node,
            "huaibei-duji",
            "GET",
            f"/v1/subscriptions/{sub['id']}/matches",
            after=10**9,
        )
    await _req(node, "huaibei-duji", "DELETE", f"/v1/subscriptions/{sub['id']}")
    assert (await _req(node, "huaibei-duji", "GET", "/v1/subscriptions"))[
        "subscriptions"
    ] == []


async def test_pull_each_match_once_from_a_durable_cursor(node: Any) -> None:
    await _sites(node)
    await _push(
        node, "xuzhou-tongshan", _plan("xuzhou-tongshan", "旧的安全生产法方案", n=0)
    )
    sub = await _req(
        node,
        "suzhou-wuzhong",
        "POST",
        "/v1/subscriptions",
        {"q": "安全生产法", "kind": "inspection_plan"},
    )
    sid = sub["id"]
    want = []
    for n in range(6):
        want.append(
            await _push(
                node,
                "huaibei-duji",
                _plan("huaibei-duji", f"安全生产法联合执法检查方案{n}", n=n),
            )
        )
        await _push(
            node, "huaibei-duji", template("lesson", "huaibei-duji")
        )  # not a match
    # Audience: suzhou (yangtze-delta) never gets a huaihai-only plan.
    hidden = await _push(
        node,
        "xuzhou-tongshan",
        _plan("xuzhou-tongshan", "安全生产法方案（淮海）", ["huaihai"], 9),
    )
    page = await _req(
        node, "suzhou-wuzhong", "GET", f"/v1/subscriptions/{sid}/matches", limit=4
    )
    got = [m["index"] for m in page["matches"]]
    assert got == want[:4] and page["next_after"] == want[3]
    # Not acknowledged yet: asking again from the cursor repeats them.
    again = await _req(
        node, "suzhou-wuzhong", "GET", f"/v1/subscriptions/{sid}/matches", limit=4
    )
    assert [m["index"] for m in again["matches"]] == got
    # after=N acknowledges up to N; the rest follow, the hidden plan never does.
    page2 = await _req(
        node,
        "suzhou-wuzhong",
        "GET",
        f"/v1/subscriptions/{sid}/matches",
        after=page["next_after"],
    )
    assert [m["index"] for m in page2["matches"]] == want[4:]
    assert hidden not in [m["index"] for m in page2["matches"]]
    assert page2["next_after"] >= hidden
    listed = (await _req(node, "suzhou-wuzhong", "GET", "/v1/subscriptions"))[
        "subscriptions"
    ][0]
    assert listed["cursor"] == want[3]
    done = await _req(
        node,
        "suzhou-wuzhong",
        "GET",
        f"/v1/subscriptions/{sid}/matches",
        after=page2["next_after"],
    )
    assert done["matches"] == [] and done["next_after"] == page2["next_after"]
    # The cursor survives a restart of the reader: the default start is the durable cursor.
    resumed = await _req(
        node, "suzhou-wuzhong", "GET", f"/v1/subscriptions/{sid}/matches"
    )
    assert resumed["matches"] == []


async def _sse(
    node: Any,
    site: str,
    sid: str,
    want: int,
    last: str | None = None,
    timeout: float = 20.0,
) -> list[tuple[str, dict[str, Any]]]:
    """Read ``want`` match events (bounded by ``timeout``); returns (id, envelope)."""
    path = f"/v1/subscriptions/{sid}/events"
    async with node.client(site) as c:
        hdrs = c.signed_headers("GET", path, None)
    if last is not None:
        hdrs["Last-Event-ID"] = last
    out: list[tuple[str, dict[str, Any]]] = []

    async def read() -> None:
        async with (
            aiohttp.ClientSession() as s,
            s.get(node.url + path, headers=hdrs) as r,
        ):
            assert r.status == 200 and r.headers["Content-Type"].startswith(
                "text/event-stream"
            )
            ev: dict[str, str] = {}
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    if ev.get("event") == "match":
                        out.append((ev["id"], orjson.loads(ev["data"])))
                        if len(out) >= want:
                            return
                    ev = {}
                    continue
                k, _, v = line.partition(": ")
                ev[k] = v

    await asyncio.wait_for(read(), timeout)
    return out


async def test_live_events_and_resume_with_last_event_id(node: Any) -> None:
    await _sites(node)
    sub = await _req(
        node, "suzhou-wuzhong", "POST", "/v1/subscriptions", {"tag": "执法检查"}
    )
    sid = sub["id"]
    first = await _push(
        node, "huaibei-duji", _plan("huaibei-duji", "安全生产法方案A", n=1)
    )
    listener = asyncio.create_task(_sse(node, "suzhou-wuzhong", sid, want=3))
    await asyncio.sleep(0.3)
    live = [
        await _push(node, "huaibei-duji", _plan("huaibei-duji", f"方案{n}", n=n + 2))
        for n in range(2)
    ]
    events = await listener
    assert [int(i) for i, _ in events] == [first, *live]
    assert events[0][1]["id"].startswith("sha256:") and events[0][1]["signed"]["sig"]
    # Reconnect with Last-Event-ID: acknowledged, nothing repeats; a new match follows.
    after = await _push(node, "huaibei-duji", _plan("huaibei-duji", "方案后", n=9))
    resumed = await _sse(node, "suzhou-wuzhong", sid, want=1, last=events[-1][0])
    assert [int(i) for i, _ in resumed] == [after]
    listed = (await _req(node, "suzhou-wuzhong", "GET", "/v1/subscriptions"))[
        "subscriptions"
    ][0]
    assert listed["cursor"] == live[-1]
    async with node.client("suzhou-wuzhong") as c:
        hdrs = c.signed_headers("GET", f"/v1/subscriptions/{sid}/events", None)
    hdrs["Last-Event-ID"] = "'; DROP"
    async with (
        aiohttp.ClientSession() as s,
        s.get(node.url + f"/v1/subscriptions/{sid}/events", headers=hdrs) as r,
    ):
        assert r.status == 400


async def test_index_lag_never_skips_a_match(node_factory: Any) -> None:
    """With the indexer stopped, items are acknowledged but not yet searchable: a search
    answers (from what is indexed) after a short wait, and a saved query's cursor stays
    before the unindexed items; once the indexer runs, they are found and delivered."""
    node = await node_factory(search={"indexer": False, "fresh_wait_s": 0.2})
    node.node.subscriptions.fresh_wait = 0.2
    await _sites(node)
    sub = await _req(
        node, "suzhou-wuzhong", "POST", "/v1/subscriptions", {"q": "安全生产法"}
    )
    idx = await _push(
        node, "huaibei-duji", _plan("huaibei-duji", "安全生产法联合执法检查方案")
    )
    assert await node.node.search.store.lag() == (idx + 1, 0)
    found = await _req(node, "suzhou-wuzhong", "GET", "/v1/search", q="安全生产法")
    assert found["hits"] == []
    page = await _req(
        node, "suzhou-wuzhong", "GET", f"/v1/subscriptions/{sub['id']}/matches"
    )
    assert page["matches"] == [] and page["next_after"] < idx
    node.node.indexer.start()
    try:
        assert await node.node.search.store.wait_fresh(30) == (idx + 1, idx + 1)
        found = await _req(node, "suzhou-wuzhong", "GET", "/v1/search", q="安全生产法")
        page = await _req(
            node, "suzhou-wuzhong", "GET", f"/v1/subscriptions/{sub['id']}/matches"
        )
    finally:
        await node.node.indexer.stop()
    assert [h["index"] for h in found["hits"]] == [idx]
    assert [m["index"] for m in page["matches"]] == [idx]
    assert node.node.indexer.indexed_total == idx + 1
