"""``/v1/federation/*`` (node to node) and ``/v1/roster``."""

from __future__ import annotations

import logging
import time

import orjson
from aiohttp import web

from exchange.core.canonical import MAX_SAFE_INTEGER
from exchange.errors import InputError, NotFound, SchemaError, TooLarge
from exchange.service.ingest import outcome_counts
from exchange.storage.items import json_list
from schemas.errors import ErrorCode

from .auth import authenticate, require
from .body import read_json, signed_body
from .keys import NODE
from .middleware import json_response

__all__ = ["routes"]

routes = web.RouteTableDef()
_log = logging.getLogger(__name__)


_FORMAT_1 = frozenset({"items", "site_records", "log_range"})
_FORMAT_2 = _FORMAT_1 | {"format", "site_versions"}
BATCH_FORMAT = 2  # the newest batch format this node reads (docs/api.md, Federation)


@routes.post("/v1/federation/batch")
async def batch(request: web.Request) -> web.Response:
    """A peer delivers items (and its sites' current records); each is verified here.

    Format 1 is answered with a result per item and ``batch_format`` (the newest format
    this node reads); format 2 (``"format": 2``) with counts and the refused items only,
    or with ``site_records_wanted`` (nothing stored) when it names a site record version
    this node does not hold and did not carry it. See docs/api.md, "Federation"."""
    node = request.app[NODE]
    reader, body = await signed_body(request, "node")
    doc = read_json(request, body)
    fmt = doc.get("format", 1) if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("items"), list)
        or fmt not in (1, 2)
        or type(fmt) is not int
        or set(doc) - (_FORMAT_2 if fmt == 2 else _FORMAT_1)
    ):
        raise SchemaError(
            'a batch is {"items": [...], "site_records": [...], "log_range": {...}}, '
            'or in format 2 {"format": 2, "items": [...], "site_versions": {...}, ...}',
            code=ErrorCode.SCHEMA_INVALID,
        )
    if len(doc["items"]) > 2000:
        raise TooLarge(
            "at most 2000 items per federation batch", code=ErrorCode.BATCH_TOO_LARGE
        )
    log_range = _log_range(doc.get("log_range"))
    versions = _site_versions(doc.get("site_versions")) if fmt == 2 else {}
    records = doc.get("site_records") or []
    if not isinstance(records, list):
        raise SchemaError("site_records is a list", code=ErrorCode.SCHEMA_INVALID)
    fed = node.federation
    problems = await fed.accept_site_records(list(records), reader.id)
    for problem in problems:
        _log.warning("site record from %s refused: %s", reader.id, problem)
    if versions:
        supplied = {s for s in map(_record_site, records) if s is not None}
        wanted = await fed.site_records_wanted(versions, supplied)
        if wanted:
            return json_response(
                {
                    "accepted": 0,
                    "duplicates": 0,
                    "refused": 0,
                    "site_records_wanted": wanted,
                }
            )
    outcomes = await node.ingestor.push_delivered(
        doc["items"], reader, origin=reader.id, max_depth=node.config.limits.max_depth
    )
    if log_range is not None and not any(
        o.error is not None and o.error.retryable for o in outcomes
    ):
        # Everything the sender serves us in this range of its log is now here: the
        # catch-up pull starts after it (it is the sender's word about its own log, as
        # the pull's next_cursor is).
        await fed.store.pushed_through(reader.id, *log_range)
    counts = outcome_counts(outcomes)
    if fmt == 2:
        refusals = [
            {"position": i, "id": o.id, "error": o.to_json()["error"]}
            for i, o in enumerate(outcomes)
            if o.status == "refused"
        ]
        return json_response({**counts, "refusals": refusals} if refusals else counts)
    results = [o.to_json() for o in outcomes]
    return json_response({"results": results, **counts, "batch_format": BATCH_FORMAT})


def _record_site(record: object) -> str | None:
    """The site a (possibly malformed) signed site record is about."""
    doc = record.get("document") if isinstance(record, dict) else None
    site = doc.get("id") if isinstance(doc, dict) else None
    return site if isinstance(site, str) else None


def _site_versions(value: object) -> dict[str, int]:
    """``{"site": version, ...}``: the record versions a format 2 batch's items need."""
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > 1000
        or not all(type(v) is int and 0 < v <= MAX_SAFE_INTEGER for v in value.values())
    ):
        raise SchemaError(
            'site_versions is {"site id": version} with 0 < version <= 2**53-1 '
            "(at most 1000 sites)",
            code=ErrorCode.SCHEMA_INVALID,
        )
    return dict(value)


def _log_range(value: object) -> tuple[int, int] | None:
    """``{"after": A, "through": T}``: the sender's log positions this batch completes."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"after", "through"}
        or not all(type(value[k]) is int for k in ("after", "through"))
        or not -1 <= value["after"] <= value["through"] <= MAX_SAFE_INTEGER
    ):
        raise SchemaError(
            'log_range is {"after": A, "through": T} with -1 <= A <= T <= 2**53-1',
            code=ErrorCode.SCHEMA_INVALID,
        )
    return value["after"], value["through"]


@routes.get("/v1/federation/log")
async def log(request: web.Request) -> web.Response:
    """This node's locally authored items after ``after`` that the calling node serves."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "node")
    try:
        after = int(request.query.get("after", "-1"))
        limit = min(max(int(request.query.get("limit", "500")), 1), 1000)
    except ValueError:
        raise InputError(
            "after and limit must be integers", code=ErrorCode.BAD_REQUEST
        ) from None
    if not -1 <= after <= 2**62:
        raise InputError(
            "after must be between -1 and 2**62", code=ErrorCode.BAD_REQUEST
        )
    # The caller stores before it moves its cursor, so it has everything it serves up to
    # ``after``: pushes to it start after that (nothing pulled is pushed again).
    # The caller is catching up by pulling until a page comes empty (its round ends
    # with one); the skip below ends the sender's backoff, and it must not push
    # meanwhile: it would send what the pages carry.
    node.federation.pulling_since[reader.id] = time.monotonic()
    await node.federation.store.skip_to(reader.id, after, delivered=True)
    # PostgreSQL writes each envelope from the stored bytes; the page is joined once.
    items, authors, examined = await node.federation.store.local_after_json(
        reader, after, limit, 4 << 20
    )
    records = await node.federation.local_site_records(authors)
    # Every worker hears it: the one that pushes to the caller may not be this one.
    # An empty page: the caller has everything; pushes go on from its cursor, at once.
    await node.federation.mark_pulling(reader.id, bool(items))
    tail = b'],"next_cursor":%d,"site_records":%b}' % (
        max(examined, after),
        orjson.dumps(records),
    )
    return web.Response(
        body=json_list(b'{"items":[', items, tail), content_type="application/json"
    )


@routes.get("/v1/federation/site-records")
async def site_records(request: web.Request) -> web.Response:
    """Signed records of this node's own sites (public keys, validity, revocations);
    with ``?relayed=1`` also those of other nodes' sites it received (each still signed
    by the site's home node), for the site adapters that verify partners' items."""
    fed = request.app[NODE].federation
    records = await fed.local_site_records()
    if request.query.get("relayed") == "1":
        records += await fed.store.site_records()
    return json_response({"records": records})


@routes.get("/v1/federation/peers")
async def peers(request: web.Request) -> web.Response:
    """Per-peer delivery state: backlog, last success, last error, current backoff."""
    node = request.app[NODE]
    reader = await authenticate(request, b"")
    require(reader, "monitor", "node")
    return json_response({"peers": await node.federation.peer_status()})


@routes.post("/v1/federation/cosign")
async def cosign(request: web.Request) -> web.Response:
    """A peer returns its cosignature of one of our checkpoints."""
    from exchange.core.logleaf import log_origin
    from exchange.core.note import verify_cosignature

    node = request.app[NODE]
    reader, body = await signed_body(request, "node")
    doc = read_json(request, body)
    try:
        size, note, line = int(doc["size"]), str(doc["note"]), str(doc["cosignature"])
    except (KeyError, TypeError, ValueError):
        raise SchemaError(
            "expected {size, note, cosignature}", code=ErrorCode.SCHEMA_INVALID
        ) from None
    ours = await node.log.checkpoint_of_size(size)
    if ours is None or ours.note != note:
        raise NotFound(
            f"no checkpoint of size {size} with that note here",
            code=ErrorCode.NOT_FOUND,
        )
    view = node.federation.view
    if view is None:
        raise NotFound("no roster installed here", code=ErrorCode.NOT_FOUND)
    key = next(iter(view.node_keys(reader.id).values()))
    verify_cosignature(note + line, log_origin(reader.id), key)
    await node.witness.store.add_cosignature(size, reader.id, line)
    return json_response({"ok": True})


@routes.get("/v1/federation/witnessed/{node_id}")
async def witnessed(request: web.Request) -> web.Response:
    """The latest checkpoint of ``node_id``'s log that this node verified and cosigned."""
    row = await request.app[NODE].witness.store.last_seen(request.match_info["node_id"])
    if row is None:
        raise NotFound("not witnessed here", code=ErrorCode.NOT_FOUND)
    return json_response({"size": row[0], "note": row[2]})


@routes.get("/v1/roster")
async def roster(request: web.Request) -> web.Response:
    """The installed signed roster."""
    row = await request.app[NODE].federation.store.roster()
    if row is None:
        raise NotFound("no roster is installed on this node", code=ErrorCode.NOT_FOUND)
    return json_response(row[1])
