"""Joint inspection plans and the items that reference them.

Plans are ``inspection_plan`` items; their workflow items are found through
``item_refs`` (written with each item, see :mod:`exchange.storage.search`), so no
state is stored: :mod:`exchange.core.plans` computes it from what these queries
return. Every query applies the reader's audience rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from exchange.core.trust import Reader

from .database import Database
from .items import StoredItem, _stored, _visibility

__all__ = ["PlanStore"]


class PlanStore:
    """Queries for plans and their related items."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def plans(
        self,
        reader: Reader,
        *,
        after: int = -1,
        limit: int = 100,
        read_replica: bool = True,
    ) -> tuple[list[StoredItem], int | None]:
        """Plans visible to ``reader`` after log index ``after``.

        Returns:
            The plans and the cursor of the next page (None at the end).
        """
        args: list[Any] = [after]
        cond = _visibility(reader, args)
        args.append(limit + 1)
        pool = self.db.read_pool if read_replica else self.db.pool
        async with pool.acquire() as c:
            rows = await c.fetch(
                f"""SELECT * FROM items WHERE kind = 'inspection_plan' AND idx > $1 AND {cond}
                    ORDER BY idx LIMIT ${len(args)}""",
                *args,
            )
        out = [_stored(r) for r in rows[:limit]]
        return out, (out[-1].idx if len(rows) > limit and out else None)

    async def by_ids(
        self, ids: Sequence[str], reader: Reader, *, read_replica: bool = True
    ) -> dict[str, StoredItem]:
        """The items among ``ids`` that ``reader`` may see."""
        if not ids:
            return {}
        args: list[Any] = [list(ids)]
        cond = _visibility(reader, args)
        pool = self.db.read_pool if read_replica else self.db.pool
        async with pool.acquire() as c:
            rows = await c.fetch(
                f"SELECT * FROM items WHERE id = ANY($1::text[]) AND {cond}", *args
            )
        return {r["id"]: _stored(r) for r in rows}

    async def related(
        self, plan_ids: Sequence[str], reader: Reader, *, read_replica: bool = True
    ) -> dict[str, list[StoredItem]]:
        """Items visible to ``reader`` that reference each plan, by plan id."""
        out: dict[str, list[StoredItem]] = {p: [] for p in plan_ids}
        if not plan_ids:
            return out
        args: list[Any] = [list(plan_ids)]
        cond = _visibility(reader, args)
        pool = self.db.read_pool if read_replica else self.db.pool
        async with pool.acquire() as c:
            rows = await c.fetch(
                f"""SELECT DISTINCT ON (r.dst, i.idx) r.dst AS plan_id, i.*
                    FROM item_refs r JOIN items i ON i.idx = r.src
                    WHERE r.dst = ANY($1::text[]) AND {cond}
                    ORDER BY r.dst, i.idx""",
                *args,
            )
        for r in rows:
            out[r["plan_id"]].append(_stored(r))
        return out
