"""The OpenAPI document describes exactly the routes the app mounts."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.http.openapi import build_openapi

pytestmark = pytest.mark.asyncio


async def test_every_route_is_documented(node: Any) -> None:
    app = node.server.app
    mounted = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method in ("HEAD", "OPTIONS") or path is None:
            continue
        mounted.add((route.method.lower(), path))
    doc = build_openapi(app)
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    undocumented = {
        r
        for r in mounted
        if r not in documented
        and not r[1].startswith(("/dashboard", "/read", "/static"))
    }
    assert undocumented == set(), (
        f"routes missing from exchange/http/openapi.py: {sorted(undocumented)}"
    )
    stale = documented - mounted
    assert stale == set(), f"documented but not mounted: {sorted(stale)}"
    assert doc["openapi"].startswith("3.1")
    for _p, ops in doc["paths"].items():
        for op in ops.values():
            for resp in op["responses"].values():
                for media in resp.get("content", {}).values():
                    ref = media["schema"].get("$ref")
                    if ref:
                        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
