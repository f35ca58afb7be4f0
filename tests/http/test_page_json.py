"""A page of items assembled by PostgreSQL from the stored bytes equals, byte for byte,
the page built item by item in Python (the envelope format of ``exchange.wire``)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from typing import Any

import orjson

from exchange.core.items import sign_item
from exchange.core.trust import Reader
from exchange.storage.items import _STORED_COLUMNS, ItemFilter, NewItem, _page_window
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


def _fake_items(start: int, n: int) -> list[NewItem]:
    """Items as stored (no valid signature: the page query does not look)."""
    now = datetime.now(UTC)
    return [
        NewItem(
            id=f"sha256:{hashlib.sha256(str(i).encode()).hexdigest()}",
            kind="lesson",
            author="huaibei-duji" if i % 10 == 0 else "suzhou-wuzhong",
            created_at=now,
            audience_circles=["huaihai"] if i % 10 == 1 else [],
            audience_sites=["xuzhou-tongshan"] if i % 10 == 2 else [],
            tags=[],
            title=f"条目 {i}",
            key_id="huaibei-duji#k1",
            alg="ed25519",
            sig=bytes(64),
            canonical=b'{"n":%d,"text":"%b"}' % (i, "案例".encode() * 100),
            origin="huaihai",
        )
        for i in range(start, start + n)
    ]


def _scanned_rows(plan: Any) -> list[tuple[str, int]]:
    """(node type, actual rows) of each scan of ``items`` in an EXPLAIN JSON plan."""
    out = []
    if plan.get("Relation Name") == "items":
        out.append((plan["Node Type"], plan["Actual Rows"]))
    for sub in plan.get("Plans", ()):
        out += _scanned_rows(sub)
    return out


async def test_a_page_reads_only_its_rows_in_index_order(node: Any) -> None:
    """A page looks at ``limit`` + 1 visible rows after the cursor, in index order: not
    every visible row after it, sorted (which makes a full pull quadratic). Checked on a
    table without statistics and after ANALYZE, for a reader who sees nearly every item
    (public ones) though it wrote few: the planner cannot tell that from the audience."""
    db = node.node.db
    async with db.pool.acquire() as c:
        for start in range(0, 6000, 1000):
            await node.node.items.append(c, _fake_items(start, 1000), datetime.now(UTC))
    readers = [
        Reader("site", "huaibei-duji", circles=frozenset()),
        Reader("site", "xuzhou-tongshan", circles=frozenset({"huaihai"})),
        Reader("monitor", "m", sites=frozenset({"suzhou-wuzhong"})),
    ]
    for analyzed in (False, True):
        if analyzed:
            async with db.pool.acquire() as c:
                await c.execute("ANALYZE items")
        for reader, after, limit in itertools.product(readers, (-1, 2500), (10, 100)):
            args, window = _page_window(
                reader, ItemFilter(after=after), limit, 8 << 20, _STORED_COLUMNS
            )
            async with db.pool.acquire() as c:
                plan = await c.fetchval(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM ({window}) w",
                    *args,
                )
            scans = _scanned_rows(plan[0]["Plan"])
            assert scans and all(rows <= limit + 1 for _, rows in scans), (
                analyzed,
                reader,
                after,
                limit,
                scans,
            )
