"""A page of items assembled by PostgreSQL from the stored bytes equals, byte for byte,
the page built item by item in Python (the envelope format of ``exchange.wire``)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from exchange.core.items import sign_item
from exchange.core.trust import Reader
from exchange.storage.items import ItemFilter
from exchange.templates import template
from exchange.wire import item_envelope

READERS = [
    Reader("site", "huaibei-duji", circles=frozenset({"huaihai", "yangtze-delta"})),
    Reader("site", "suzhou-wuzhong", circles=frozenset({"yangtze-delta"})),
    Reader("site", "xuzhou-tongshan", circles=frozenset({"huaihai"})),
    Reader("monitor", "m", sites=frozenset({"huaibei-duji"})),
    Reader(
        "node",
        "zhejiang",
        circles=frozenset({"yangtze-delta"}),
        sites=frozenset({"jiaxing-nanhu"}),
    ),
    Reader("operator"),
]
FILTERS = [
    ItemFilter(),
    ItemFilter(after=3),
    ItemFilter(kind="inspection_plan"),
    ItemFilter(tag="安全生产法"),
    ItemFilter(circle="huaihai"),
    ItemFilter(author="suzhou-wuzhong"),
]


async def _mixed_items(node: Any) -> None:
    for sid, name, circles in (
        ("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")),
        ("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",)),
        ("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",)),
    ):
        await node.add_site(sid, name, circles)
    audiences = [
        None,
        {"circles": ["huaihai"], "sites": []},
        {"circles": [], "sites": ["suzhou-wuzhong"]},
        {"circles": ["yangtze-delta"], "sites": ["xuzhou-tongshan"]},
    ]
    n = 0
    for author, kind in (
        ("huaibei-duji", "lesson"),
        ("huaibei-duji", "inspection_plan"),
        ("suzhou-wuzhong", "lesson"),
        ("xuzhou-tongshan", "lesson"),
    ):
        batch = []
        for aud in audiences:
            it = template(kind, author=author, partner="suzhou-wuzhong")
            it["title"] = f'条目 {n} «引号"与\\反斜杠» 𠮷 \u2028'
            it["tags"] = ["安全生产法"] if n % 3 == 0 else ["其他"]
            if aud is not None:
                it["audience"] = aud
            batch.append(sign_item(it, node.keys[author]))
            n += 1
        async with node.client(author) as c:
            await c.push_batch(batch)
    # Some items received on a whole second (isoformat then has no fraction).
    async with node.node.db.pool.acquire() as c:
        await c.execute(
            "UPDATE items SET received_at = date_trunc('second', received_at)"
            " WHERE idx % 3 = 0"
        )


async def test_assembled_page_equals_the_page_built_in_python(node: Any) -> None:
    await _mixed_items(node)
    items = node.node.items
    checked = 0
    for reader, flt, (limit, max_bytes) in itertools.product(
        READERS, FILTERS, ((1000, 8 << 20), (3, 8 << 20), (1000, 5000), (2, 1))
    ):
        old, old_next = await items.page(reader, flt, limit=limit, max_bytes=max_bytes)
        body, n, nxt = await items.page_json(
            reader, flt, limit=limit, max_bytes=max_bytes
        )
        assert body == orjson.dumps([item_envelope(i) for i in old]), (
            reader,
            flt,
            limit,
        )
        assert (n, nxt) == (len(old), old_next), (reader, flt, limit, max_bytes)
        checked += n
    assert checked > 100  # the mix is not empty for most readers


async def test_pull_over_http_reads_the_same_items_page_by_page(node: Any) -> None:
    await _mixed_items(node)
    seen, cursor = [], -1
    async with node.client("suzhou-wuzhong") as c:
        while True:
            page = await c.list_items(cursor=cursor, limit=3)
            seen += [e["id"] for e in page["items"]]
            if page["next_cursor"] is None:
                break
            cursor = page["next_cursor"]
    reader = Reader("site", "suzhou-wuzhong", circles=frozenset({"yangtze-delta"}))
    everything, _ = await node.node.items.page(
        reader, ItemFilter(), limit=1000, max_bytes=8 << 20
    )
    assert seen == [i.id for i in everything] and len(seen) > 3
