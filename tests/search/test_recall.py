"""Recall on a fixed query set over the generated corpus (relevance known by construction).

The bound is stated here and asserted per query: every query must find at least
:data:`RECALL_BOUND` of the relevant items the reader may see. The measured figures are
printed (``pytest -s``) and written to ``test-artifacts/search/recall.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exchange.core.trust import Reader, audience_allows

from .conftest import Corpus
from .corpus import QUERIES, SITES

pytestmark = pytest.mark.asyncio

RECALL_BOUND = 0.9
"""Minimum recall of each query in :data:`corpus.QUERIES`."""

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "search"


async def _hits(node: Any, site: str, q: str) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = []
    cursor = None
    async with node.client(site) as c:
        for _ in range(20):  # bounded: 20 pages of 50
            page = await c.request(
                "GET", "/v1/search", params={"q": q, "limit": 50, "cursor": cursor}
            )
            hits += page["hits"]
            cursor = page["next_cursor"]
            if cursor is None:
                return hits
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("site", ["huaibei-duji", "hangzhou-xihu"])
async def test_recall_on_fixed_queries(shared: Corpus, site: str) -> None:
    reader = Reader("site", site, circles=frozenset(SITES[site][1]))
    figures: dict[str, dict[str, float]] = {}
    for q, concepts in QUERIES.items():
        relevant = {
            c.id
            for c in shared.items
            if concepts <= c.concepts
            and audience_allows(
                reader,
                c.item["author"],
                c.item["audience"]["circles"],
                c.item["audience"]["sites"],
            )
        }
        hits = await _hits(shared.node, site, q)
        got = [h["id"] for h in hits]
        found = relevant & set(got)
        top10 = got[:10]
        figures[q] = {
            "relevant": len(relevant),
            "retrieved": len(got),
            "recall": round(len(found) / len(relevant), 3) if relevant else 1.0,
            "precision": round(len(found) / len(got), 3) if got else 1.0,
            "precision_at_10": round(
                sum(1 for i in top10 if i in relevant) / len(top10), 3
            )
            if top10
            else 1.0,
        }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"recall-{site}.json").write_text(
        json.dumps(figures, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    for q, f in figures.items():
        print(
            f"{site:16} {q:14} relevant {f['relevant']:3}  retrieved {f['retrieved']:3}  "
            f"recall {f['recall']:.3f}  precision {f['precision']:.3f}  P@10 {f['precision_at_10']:.2f}"
        )
    low = {q: f["recall"] for q, f in figures.items() if f["recall"] < RECALL_BOUND}
    assert not low, f"recall below {RECALL_BOUND}: {low}"
    assert all(f["relevant"] >= 10 for f in figures.values()), "query set too thin"
