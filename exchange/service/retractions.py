"""Retractions withdraw an item this node holds.

A site may retract only one of its own items, and only one this node has: accepted here
or replicated from the author's home node. A retraction of an id nobody ever pushed (a
template's placeholder, a typo) is refused at push time instead of being kept forever.
"""

from __future__ import annotations

from exchange.core.trust import Reader
from exchange.errors import ExchangeError, Forbidden, NotFound
from exchange.storage.items import ItemStore
from schemas.errors import ErrorCode

from .ingest import VerifiedItem

__all__ = ["RetractionGuard"]


class RetractionGuard:
    """Ingest guard (:data:`exchange.service.ingest.Guard`) for ``retraction`` items."""

    def __init__(self, items: ItemStore) -> None:
        self.items = items

    async def __call__(
        self, items: list[VerifiedItem], pusher: Reader
    ) -> dict[int, ExchangeError]:
        todo = [(i, v) for i, v in enumerate(items) if v.row.kind == "retraction"]
        if not todo:
            return {}
        targets = sorted({str(v.parsed.item["body"]["target"]) for _, v in todo})
        authors = await self.items.authors_of(targets)
        out: dict[int, ExchangeError] = {}
        for i, v in todo:
            # Items earlier in the same batch count as held.
            authors.update({w.row.id: w.row.author for w in items[:i]})
            target = str(v.parsed.item["body"]["target"])
            author = authors.get(target)
            if author is None:
                out[i] = NotFound(
                    f"body.target {target} is not an item this node holds; retract one of your "
                    "items accepted here (or replicated from your home node)",
                    code=ErrorCode.NOT_FOUND,
                )
            elif author != v.row.author:
                out[i] = Forbidden(
                    f"body.target {target} is by {author}; a site retracts only its own items",
                    code=ErrorCode.FORBIDDEN,
                )
        return out
