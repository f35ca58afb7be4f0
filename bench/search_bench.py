"""Search latency at scale: fill a node with N generated Chinese items, time queries.

    python bench/search_bench.py [--items 100000] [--runs 30] [--out bench/results/search.json]

Builds a node on the embedded PostgreSQL (or ``EXCHANGE_DATABASE_URL``) in a temporary
folder, pushes ``--items`` items from the seeded corpus generator of the tests
(``tests/search/corpus.py``, the same eight sites, two circles and topics) through the
real ingest path (verify, index in the same transaction, group commit), then times each
query of the fixed set (plus a one-character query, filtered and paged queries) ``--runs``
times as a site reader, through :class:`exchange.service.search.SearchService` — SQL,
ranking and snippets, without HTTP. Prints ingest rate with the index, p50/p95/max per
query and overall, the index size, and writes everything as JSON.

Not a test: nothing here asserts a time. Run it when the index or its queries change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exchange.config import load_config  # noqa: E402
from exchange.core.items import sign_item  # noqa: E402
from exchange.core.signing import generate_key  # noqa: E402
from exchange.core.trust import Reader  # noqa: E402
from exchange.node import Node  # noqa: E402
from exchange.storage.search import SearchFilter  # noqa: E402
from tests.search.corpus import QUERIES, SITES, generate  # noqa: E402

EXTRA: dict[str, dict[str, Any]] = {
    "法 (one character, prefix)": {"q": "法"},
    "安全生产法 kind=inspection_plan": {"q": "安全生产法", "kind": "inspection_plan"},
    "执法检查 author=xuzhou-tongshan": {"q": "执法检查", "author": "xuzhou-tongshan"},
    '"执法检查 方案" (phrase)': {"q": '"执法检查 方案"'},
    "browse, no query, kind=lesson": {"q": "", "kind": "lesson"},
    "rare: 不存在的词": {"q": "不存在的词"},
}


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "search.json"))
    ap.add_argument(
        "--keep", metavar="DIR", help="data folder to use and keep (reruns reuse it)"
    )
    args = ap.parse_args()
    data = (
        Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="search-bench-"))
    )
    cfg = load_config(
        None,
        overrides={
            "node": {"id": "bench", "data_dir": str(data)},
            "federation": {"replicate": False},
        },
    )
    node = Node(cfg)
    await node.start()
    try:
        have = await node.items.size()
        keys = {s: generate_key(key_id=f"{s}#k1") for s in SITES}
        if have < args.items:
            # Fresh keys per run (a rerun with --keep adds items under new key ids).
            for s, (name, circles) in SITES.items():
                await node.sites.add_site(s, name, node.id, list(circles))
                keys[s] = generate_key(key_id=f"{s}#k{have + 1}")
                await node.sites.add_key(
                    keys[s].key_id, s, "ed25519", keys[s].public_key.raw
                )
            print(f"generating {args.items - have} items …", flush=True)
            corpus = generate(args.items - have, seed=have + 11)
            t0 = time.perf_counter()
            done = refused = 0
            by_author: dict[str, list[dict[str, Any]]] = {}
            # Plans and the rest first, endorsements after (they need their plan stored).
            for phase in (False, True):
                by_author.clear()
                for c in corpus:
                    if (c.item["kind"] == "endorsement") == phase:
                        a = c.item["author"]
                        by_author.setdefault(a, []).append(sign_item(c.item, keys[a]))
                for a, signed in by_author.items():
                    pusher = Reader("site", a, circles=frozenset(SITES[a][1]))
                    for i in range(0, len(signed), 500):
                        res = await node.ingestor.push(signed[i : i + 500], pusher)
                        refused += sum(1 for o in res if o.status == "refused")
                        done += len(res)
                        print(f"  pushed {done}/{len(corpus)}", end="\r", flush=True)
            ingest_s = time.perf_counter() - t0
            print(
                f"\ningest with search index: {len(corpus)} items in {ingest_s:.1f} s "
                f"({len(corpus) / ingest_s:.0f} items/s, one process; {refused} refused "
                "by workflow rules)"
            )
        else:
            ingest_s = 0.0
        async with node.db.pool.acquire() as c:
            await c.execute("VACUUM ANALYZE item_search")
            n = await c.fetchval("SELECT count(*) FROM item_search")
            size = await c.fetchval("SELECT pg_total_relation_size('item_search')")
            items_size = await c.fetchval("SELECT pg_total_relation_size('items')")
        print(
            f"items indexed: {n}; item_search {size / 2**20:.0f} MiB "
            f"(items table {items_size / 2**20:.0f} MiB)"
        )
        reader = Reader(
            "site", "suzhou-wuzhong", circles=frozenset(SITES["suzhou-wuzhong"][1])
        )
        cases = {q: {"q": q} for q in QUERIES} | EXTRA
        results: dict[str, Any] = {}
        allt: list[float] = []
        for name, p in cases.items():
            flt = SearchFilter(kind=p.get("kind"), author=p.get("author"))
            times: list[float] = []
            hits = 0
            for r in range(args.runs + 2):
                t = time.perf_counter()
                res = await node.search.search(reader, p["q"], flt, limit=20)
                dt = (time.perf_counter() - t) * 1000
                if r >= 2:  # two warm-up runs
                    times.append(dt)
                hits = len(res.hits)
            # Page 2 via the cursor, as a reader paging on.
            res = await node.search.search(reader, p["q"], flt, limit=20)
            page2 = None
            if res.next_cursor:
                t = time.perf_counter()
                await node.search.search(
                    reader, p["q"], flt, limit=20, cursor=res.next_cursor
                )
                page2 = (time.perf_counter() - t) * 1000
            allt += times
            results[name] = {
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(_pct(times, 0.95), 1),
                "max_ms": round(max(times), 1),
                "page2_ms": round(page2, 1) if page2 else None,
                "hits_page1": hits,
            }
            f = results[name]
            print(
                f"{name:38} p50 {f['p50_ms']:7.1f} ms  p95 {f['p95_ms']:7.1f} ms  "
                f"max {f['max_ms']:7.1f} ms  page2 {f['page2_ms'] or 0:6.1f} ms  hits {hits}"
            )
        overall = {
            "p50_ms": round(statistics.median(allt), 1),
            "p95_ms": round(_pct(allt, 0.95), 1),
        }
        print(
            f"{'ALL QUERIES':38} p50 {overall['p50_ms']:7.1f} ms  p95 {overall['p95_ms']:7.1f} ms"
        )
        out = {
            "items": n,
            "runs": args.runs,
            "ingest_seconds": round(ingest_s, 1),
            "index_bytes": size,
            "overall": overall,
            "queries": results,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(
            json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8"
        )
        print(f"wrote {args.out}")
    finally:
        await node.stop()


if __name__ == "__main__":
    asyncio.run(main())
