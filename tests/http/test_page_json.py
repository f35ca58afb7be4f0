"""A page of items assembled by PostgreSQL from the stored bytes equals, byte for byte,
the page built item by item in Python (the envelope format of ``exchange.wire``)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime
from typing import Any

import orjson

from exchange.core.items import sign_item
from exchange.core.trust import Reader, audience_allows
from exchange.storage.items import (
    _STORED_COLUMNS,
    ItemFilter,
    NewItem,
    _page_window,
    json_list,
)
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


def _expected(old: list[Any], nxt: int | None) -> bytes:
    return orjson.dumps({"items": [item_envelope(i) for i in old], "next_cursor": nxt})


async def test_assembled_page_equals_the_page_built_in_python(node: Any) -> None:
    await _mixed_items(node)
    items = node.node.items
    checked = 0
    for reader, flt, (limit, max_bytes) in itertools.product(
        [*READERS, Reader("anonymous")],
        [*FILTERS, ItemFilter(after=10**6)],
        ((1000, 8 << 20), (3, 8 << 20), (1000, 5000), (2, 1)),
    ):
        old, old_next = await items.page(reader, flt, limit=limit, max_bytes=max_bytes)
        body, n, nxt = await items.page_json(
            reader, flt, limit=limit, max_bytes=max_bytes
        )
        assert body == _expected(old, old_next), (reader, flt, limit)
        assert (n, nxt) == (len(old), old_next), (reader, flt, limit, max_bytes)
        checked += n
    assert checked > 100  # the mix is not empty for most readers


# Text columns of the envelope that PostgreSQL escapes (to_json) where orjson did.
AWKWARD = [
    'quote " and backslash \\ and slash /',
    "".join(chr(c) for c in range(1, 32)) + "\x7f",
    "CJK 淮北市杜集区 𠮷 emoji 🙂 separators \u2028\u2029 bom \ufeff nbsp \xa0",
    "\u00e9\u0301 combining, \U0010ffff last plane",
]


def _awkward_items() -> list[NewItem]:
    """Stored rows no push would make (ids, key ids and algorithms with characters
    JSON escapes), large ones stored out of line (TOAST), CJK and escapes in the
    canonical bytes, and audiences of every shape."""
    out = []
    audiences = [([], []), (["huaihai"], []), ([], ["xuzhou-tongshan"]), (["z"], ["z"])]
    for i in range(24):
        text = AWKWARD[i % len(AWKWARD)]
        circles, sites = audiences[i % len(audiences)]
        size = (300_000, 40, 5000, 1)[i % 4]  # characters of the body
        body = orjson.dumps({"n": i, "text": text, "body": ("案" * size)})
        out.append(
            NewItem(
                id=f"sha256:{i:064x}" if i % 3 else f"awkward {i} {text}",
                kind="lesson",
                author=("huaibei-duji", "suzhou-wuzhong", "xuzhou-tongshan")[i % 3],
                created_at=datetime.now(UTC),
                audience_circles=circles,
                audience_sites=sites,
                tags=[],
                title=text,
                key_id=f"{text}#k{i}",
                alg=text if i % 2 else "ed25519",
                sig=bytes(range(i, i + (64, 0, 1, 2, 3, 65)[i % 6])),
                canonical=body,
                origin="local" if i % 5 else "huaihai",
            )
        )
    return out


async def test_awkward_rows_give_the_same_bytes_and_the_same_readers(node: Any) -> None:
    """Every envelope column PostgreSQL writes (escapes, times, base64url of every
    length), items stored out of line, pages cut by bytes and by count, empty pages;
    and each reader gets exactly the items audience_allows lets it see."""
    store = node.node.items
    async with node.node.db.pool.acquire() as c:
        await store.append(c, _awkward_items(), datetime.now(UTC))
        # received_at on a whole second, on one microsecond, on a tenth, and as stored
        await c.execute(
            "UPDATE items SET received_at = date_trunc('second', received_at)"
            " + (ARRAY[0, 1, 100000, 999999])[idx % 4 + 1] * interval '1 microsecond'"
            " WHERE idx % 5 <> 0"
        )
    everything = await store.range(0, 1000)
    assert len(everything) == 24
    for reader in [*READERS, Reader("anonymous")]:
        visible = [
            i.idx
            for i in everything
            if audience_allows(reader, i.author, i.audience_circles, i.audience_sites)
        ]
        for limit, max_bytes in (
            (1000, 8 << 20),
            (5, 8 << 20),
            (1000, 700_000),
            (1, 1),
        ):
            seen, cursor = [], -1
            while True:
                flt = ItemFilter(after=cursor)
                old, old_next = await store.page(
                    reader, flt, limit=limit, max_bytes=max_bytes
                )
                body, n, nxt = await store.page_json(
                    reader, flt, limit=limit, max_bytes=max_bytes
                )
                assert body == _expected(old, old_next), (reader, cursor, limit)
                assert (n, nxt) == (len(old), old_next)
                assert orjson.loads(body)["next_cursor"] == nxt
                seen += [e["index"] for e in orjson.loads(body)["items"]]
                if nxt is None:
                    break
                cursor = nxt
            assert seen == visible, (reader, limit, max_bytes)


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


async def test_federation_log_pages_give_the_same_bytes_and_the_same_items(
    node: Any,
) -> None:
    """``GET /v1/federation/log``'s envelopes written by PostgreSQL equal the Python
    ones, page by page (by count and by bytes), with the same authors and cursor; a
    peer gets exactly the local items audience_allows lets it see."""
    store = node.node.items
    fed = node.node.federation.store
    async with node.node.db.pool.acquire() as c:
        await store.append(c, _awkward_items(), datetime.now(UTC))
    everything = await store.range(0, 1000)
    peers = [
        Reader("node", "zhejiang", circles=frozenset(), sites=frozenset()),
        Reader("node", "anhui", circles=frozenset({"huaihai"}), sites=frozenset()),
        Reader(
            "node", "jiangsu", circles=frozenset(), sites=frozenset({"xuzhou-tongshan"})
        ),
        Reader("node", "all", circles=frozenset({"z"}), sites=frozenset()),
    ]
    for peer in peers:
        served = [
            i.idx
            for i in everything
            if i.origin == "local"
            and audience_allows(peer, i.author, i.audience_circles, i.audience_sites)
        ]
        for limit, max_bytes in ((500, 4 << 20), (3, 4 << 20), (500, 700_000), (1, 1)):
            seen, cursor = [], -1
            while True:
                old, old_examined = await fed.local_after(
                    peer, cursor, limit, max_bytes
                )
                envs, authors, examined = await fed.local_after_json(
                    peer, cursor, limit, max_bytes
                )
                assert envs == [orjson.dumps(item_envelope(i)) for i in old]
                assert (authors, examined) == ({i.author for i in old}, old_examined)
                seen += [i.idx for i in old]
                if examined <= cursor or examined == everything[-1].idx:
                    break
                cursor = examined
            assert seen == served, (peer, limit, max_bytes)


def test_json_list_joins_like_orjson() -> None:
    for n in range(4):
        elements = [orjson.dumps({"n": i, "t": "案"}) for i in range(n)]
        body = json_list(b'{"items":[', elements, b'],"next_cursor":null}')
        assert body == orjson.dumps(
            {"items": [orjson.loads(e) for e in elements], "next_cursor": None}
        )
