"""A static web server on 127.0.0.1 for the portal and feed tests.

``web_pages`` serves whatever the test puts in its ``pages`` mapping: path →
``(body bytes, Content-Type header)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class WebPages:
    """The server's pages and its base URL (``http://127.0.0.1:<port>``)."""

    base: str = ""
    pages: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """The absolute URL of ``path``."""
        return self.base + path


@pytest.fixture
async def web_pages() -> AsyncIterator[WebPages]:
    site = WebPages()

    async def handler(request: web.Request) -> web.StreamResponse:
        site.hits[request.path] = site.hits.get(request.path, 0) + 1
        got = site.pages.get(request.path)
        if got is None:
            return web.Response(status=404, text="not found")
        body, ctype = got
        return web.Response(body=body, headers={"Content-Type": ctype})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    site.base = str(server.make_url("")).rstrip("/")
    try:
        yield site
    finally:
        await server.close()
