"""The OpenAPI 3.1 document, generated from the same pydantic models the node uses.

Each operation names its request and response models; their JSON Schemas are collected
under ``components/schemas``. A test checks every mounted route is described here and
every described route is mounted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from exchange.core.plan_doc import lifecycle_markdown

__all__ = ["OPERATIONS", "Operation", "build_openapi"]


@dataclass(frozen=True)
class Operation:
    """One documented endpoint."""

    method: str
    path: str
    summary: str
    auth: tuple[str, ...]  # "site", "monitor", "node", or () for public
    request: str | None = None
    response: str | None = None
    status: int = 200
    params: tuple[tuple[str, str, str], ...] = ()  # (name, in, description)
    raw: str | None = None  # media type of a raw (non-JSON) body
    description: str = ""  # long text (Markdown), e.g. the plan lifecycle


_ITEM_FILTERS = (
    ("cursor", "query", "Return items with index greater than this (default -1)"),
    (
        "limit",
        "query",
        "Page size, 1–1000 (default 100); pages are also capped by bytes",
    ),
    ("kind", "query", "Only this kind"),
    ("author", "query", "Only this author site"),
    ("tag", "query", "Only items carrying this tag"),
    ("circle", "query", "Only items addressed to this circle"),
    ("since", "query", "Only items created at or after this ISO 8601 time"),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/v1/items",
        "Push one signed item, or a batch {items: [...]}",
        ("site",),
        "SignedItem",
        "PushResult",
        201,
    ),  # 200 added in build_openapi
    Operation(
        "get",
        "/v1/items",
        "List items visible to the caller, by log index",
        ("site", "monitor", "node"),
        None,
        "ItemPage",
        params=_ITEM_FILTERS,
    ),
    Operation(
        "get",
        "/v1/items/{id}",
        "One item by id",
        ("site", "monitor", "node"),
        None,
        "ItemEnvelope",
        params=(("id", "path", "sha256:<hex> item id"),),
    ),
    Operation(
        "put",
        "/v1/blobs/{sha256}",
        "Upload an attachment (streamed, hash-checked)",
        ("site",),
        None,
        "BlobInfo",
        201,
        params=(("sha256", "path", "hex SHA-256 of the bytes"),),
        raw="application/octet-stream",
    ),
    Operation(
        "get",
        "/v1/blobs/{sha256}",
        "Download an attachment",
        ("site", "monitor", "node"),
        None,
        None,
        params=(("sha256", "path", "hex SHA-256 of the bytes"),),
        raw="*/*",
    ),  # served with the media type it was uploaded with
    Operation(
        "get", "/v1/sites", "The site directory with public keys", (), None, "SiteList"
    ),
    Operation(
        "get",
        "/v1/sites/{id}",
        "One site",
        (),
        None,
        "SiteInfo",
        params=(("id", "path", "site id"),),
    ),
    Operation("get", "/healthz", "Liveness", (), None, "Health"),
    Operation("get", "/readyz", "Readiness (database reachable)", (), None, "Health"),
    Operation("get", "/openapi.json", "This document", (), None, None),
    Operation(
        "get",
        "/v1/log/checkpoint",
        "Latest signed checkpoint (C2SP tlog-checkpoint)",
        (),
        None,
        "Checkpoint",
        params=(("format", "query", "text: the bare signed note"),),
        raw="text/plain",
    ),  # with ?format=text
    Operation(
        "get",
        "/v1/log/proof/inclusion",
        "Inclusion proof of an entry",
        (),
        None,
        "InclusionProof",
        params=(
            ("index", "query", "entry index"),
            ("size", "query", "tree size (default: latest checkpoint)"),
        ),
    ),
    Operation(
        "get",
        "/v1/log/proof/consistency",
        "Consistency proof between two sizes",
        (),
        None,
        "ConsistencyProof",
        params=(("size1", "query", "older size"), ("size2", "query", "newer size")),
    ),
    Operation(
        "get",
        "/v1/log/entries",
        "Log entries: item ids and acceptance times",
        (),
        None,
        "LogEntryPage",
        params=(
            ("start", "query", "first index"),
            ("end", "query", "end (exclusive), at most start+1000"),
        ),
    ),
    Operation(
        "get",
        "/v1/items/{id}/receipt",
        "Receipt: signed checkpoint + inclusion proof",
        ("site", "monitor", "node"),
        None,
        "Receipt",
        params=(
            ("id", "path", "item id"),
            ("wait", "query", "seconds to wait for integration (≤ 30)"),
        ),
    ),
    Operation(
        "post",
        "/v1/federation/batch",
        "A peer node delivers items and site records (formats 1 and 2, docs/api.md)",
        ("node",),
        "FederationBatch",
        "FederationBatchResponse",
    ),
    Operation(
        "get",
        "/v1/federation/log",
        "Locally authored items a peer serves, after a cursor",
        ("node",),
        None,
        None,
        params=(("after", "query", "cursor"), ("limit", "query", "page size")),
    ),
    Operation(
        "get",
        "/v1/federation/site-records",
        "Signed records of this node's sites",
        (),
        None,
        None,
    ),
    Operation(
        "get",
        "/v1/federation/peers",
        "Per-peer backlog, last success, last error, backoff",
        ("monitor", "node"),
        None,
        None,
    ),
    Operation(
        "post",
        "/v1/federation/cosign",
        "A peer returns its cosignature of our checkpoint",
        ("node",),
        None,
        None,
    ),
    Operation(
        "get",
        "/v1/federation/witnessed/{node_id}",
        "The latest checkpoint of a node's log this node witnessed",
        (),
        None,
        None,
        params=(("node_id", "path", "node id"),),
    ),
    Operation(
        "get", "/v1/roster", "The installed signed roster", (), None, "SignedDocument"
    ),
    Operation(
        "get",
        "/v1/node",
        "This node's id, name, base URL and public keys",
        (),
        None,
        None,
    ),
    Operation(
        "get",
        "/v1/activity",
        "Exchange activity of the sites in the monitor's scope",
        ("monitor",),
        None,
        None,
        params=(
            ("days", "query", "days of daily counts (default 30)"),
            ("inactive_days", "query", "inactivity threshold in days (default 14)"),
        ),
    ),
    Operation(
        "post",
        "/v1/adapters/health",
        "A site's adapter runner reports its health",
        ("site",),
        "AdapterHealth",
        "AdapterHealthReport",
    ),
    Operation(
        "get",
        "/v1/adapters/health",
        "Latest adapter health of the sites in scope (a site sees its own)",
        ("monitor", "site"),
        None,
        "AdapterHealthList",
    ),
    Operation(
        "get",
        "/v1/plans",
        "Joint inspection plans visible to the caller, with their "
        "computed state and overdue flag",
        ("site", "monitor", "node"),
        None,
        "PlanList",
        params=(
            ("cursor", "query", "Log index of the last plan of the previous page"),
            ("limit", "query", "Page size 1–200 (default 50)"),
            (
                "today",
                "query",
                "Day for overdue flags, YYYY-MM-DD (default: today, CST)",
            ),
        ),
    ),
    Operation(
        "get",
        "/v1/plans/{id}",
        "One plan: state computed from the signed items, "
        "timeline, who has and has not endorsed or filed, deadlines",
        ("site", "monitor", "node"),
        None,
        "PlanView",
        params=(
            ("id", "path", "sha256:<hex> id of the inspection_plan item"),
            (
                "today",
                "query",
                "Day for overdue flags, YYYY-MM-DD (default: today, CST)",
            ),
        ),
        description=lifecycle_markdown(),
    ),
    Operation(
        "get",
        "/metrics",
        "Prometheus metrics (text exposition format)",
        (),
        None,
        None,
        raw="text/plain",
    ),
    # discovery: search and saved queries
    *(
        Operation(
            "get",
            "/v1/search",
            "Full-text search (Chinese and Latin) over items the "
            "caller may see, best first",
            ("site", "monitor", "node"),
            None,
            "SearchPage",
            params=(
                (
                    "q",
                    "query",
                    "Query, ≤ 200 characters, ≤ 12 terms (all must match); "
                    '"…" for an exact phrase',
                ),
                ("kind", "query", "Only this kind"),
                ("author", "query", "Only this author"),
                ("circle", "query", "Only items addressed to this circle"),
                ("tag", "query", "Only items with this tag"),
                ("since", "query", "Created on or after (ISO date or time)"),
                (
                    "until",
                    "query",
                    "Created before the end of (ISO date) or before (time)",
                ),
                ("cursor", "query", "next_cursor of the previous page"),
                ("limit", "query", "Page size 1–50 (default 20)"),
            ),
        ),
        Operation(
            "post",
            "/v1/subscriptions",
            "Save a query (q/kind/tag/author); matches from now on",
            ("site",),
            "SubscriptionRequest",
            "Subscription",
            201,
        ),
        Operation(
            "get",
            "/v1/subscriptions",
            "The calling site's saved queries",
            ("site",),
            None,
            "SubscriptionList",
        ),
        Operation(
            "delete",
            "/v1/subscriptions/{id}",
            "Delete a saved query",
            ("site",),
            None,
            None,
            204,
            params=(("id", "path", "subscription id"),),
        ),
        Operation(
            "get",
            "/v1/subscriptions/{id}/matches",
            "New matches after a cursor; after= acknowledges up to it",
            ("site",),
            None,
            "MatchPage",
            params=(
                ("id", "path", "subscription id"),
                ("after", "query", "Last index received (default: the durable cursor)"),
                ("limit", "query", "Page size 1–500 (default 100)"),
            ),
        ),
        Operation(
            "get",
            "/v1/subscriptions/{id}/events",
            "Server-sent events of new matches "
            "(id = log index; resume with Last-Event-ID)",
            ("site",),
            None,
            None,
            params=(("id", "path", "subscription id"),),
            raw="text/event-stream",
        ),
    ),
)


def _models() -> dict[str, type[BaseModel]]:
    import schemas

    names = {op.request for op in OPERATIONS} | {op.response for op in OPERATIONS}
    names |= {"ErrorBody"}
    return {n: getattr(schemas, n) for n in sorted(x for x in names if x)}


@lru_cache(maxsize=1)
def _components() -> dict[str, Any]:
    models = _models()
    _, top = models_json_schema(
        [(m, "validation") for m in models.values()],
        ref_template="#/components/schemas/{model}",
    )
    return dict(top.get("$defs", {}))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def build_openapi(app: web.Application | None = None) -> dict[str, Any]:
    """The OpenAPI document."""
    paths: dict[str, dict[str, Any]] = {}
    err = {"content": {"application/json": {"schema": _ref("ErrorBody")}}}
    for op in OPERATIONS:
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '').replace('.', '_')}",
            "responses": {"4XX": {"description": "Refused; see error.code", **err}},
        }
        if op.response:
            entry["responses"][str(op.status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": _ref(op.response)}},
            }
            if op.method == "post" and op.path == "/v1/items":
                # One item: 201 (new) or 200 (already stored); a batch: 200 with a result
                # per item.
                entry["responses"]["200"] = {
                    "description": "Already stored (one item), or a batch's per-item results",
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [_ref("PushResult"), _ref("PushResponse")]
                            }
                        }
                    },
                }
            if op.method == "put" and op.path == "/v1/blobs/{sha256}":
                entry["responses"]["200"] = {
                    "description": "This site sent these bytes before (201 otherwise, "
                    "whether or not another site did)",
                    "content": {"application/json": {"schema": _ref("BlobInfo")}},
                }
            if op.raw:  # the same result in another form (e.g. ?format=text)
                entry["responses"][str(op.status)]["content"][op.raw] = {
                    "schema": {"type": "string"}
                }
        elif op.raw:
            entry["responses"][str(op.status)] = {
                "description": "OK",
                "content": {op.raw: {"schema": {"type": "string", "format": "binary"}}},
            }
        else:
            entry["responses"][str(op.status)] = {"description": "OK"}
        if op.request:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(op.request)}},
            }
        elif op.raw and op.method == "put":
            entry["requestBody"] = {
                "required": True,
                "content": {op.raw: {"schema": {"type": "string", "format": "binary"}}},
            }
        if op.description:
            entry["description"] = op.description
        if op.params:
            entry["parameters"] = [
                {
                    "name": n,
                    "in": where,
                    "required": where == "path",
                    "description": d,
                    "schema": {"type": "string"},
                }
                for n, where, d in op.params
            ]
        sec: list[dict[str, list[str]]] = []
        if "site" in op.auth or "node" in op.auth:
            sec.append({"httpSignature": []})
        if "monitor" in op.auth:
            sec.append({"monitorToken": []})
        if sec:
            entry["security"] = sec
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Congress Exchange node API",
            "version": "1",
            "description": "Signed items between county people's congress standing committees. "
            'Errors are {"error": {"code", "message"}} with stable codes.',
        },
        "paths": paths,
        "components": {
            "schemas": _components(),
            "securitySchemes": {
                "httpSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Signature",
                    "description": "RFC 9421 HTTP Message Signature (Ed25519) by a site or node key; "
                    "see docs/api.md for the covered components",
                },
                "monitorToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }
