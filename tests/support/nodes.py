"""Nodes as tests run them: a node with its HTTP server on 127.0.0.1 (``node_factory``
in tests/conftest.py makes them), and database URLs of the test server."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from aiohttp.test_utils import TestServer

from exchange.client import ExchangeClient
from exchange.core.signing import PrivateKey, generate_key
from exchange.node import Node

__all__ = ["RunningNode", "with_db"]


def with_db(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class RunningNode:
    """A node with its HTTP server on 127.0.0.1."""

    node: Node
    server: TestServer
    keys: dict[str, PrivateKey] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def add_site(
        self,
        site_id: str,
        name: str = "",
        circles: tuple[str, ...] = (),
        key_no: int = 1,
    ) -> PrivateKey:
        """Register a site with a fresh key; returns the private key."""
        await self.node.sites.add_site(
            site_id, name or site_id, self.node.id, list(circles)
        )
        key = generate_key(key_id=f"{site_id}#k{key_no}")
        await self.node.sites.add_key(key.key_id, site_id, key.alg, key.public_key.raw)
        self.keys[site_id] = key
        return key

    def client(
        self, site_id: str | None = None, *, token: str | None = None
    ) -> ExchangeClient:
        """A client signing as ``site_id`` (or with a monitor token, or anonymous)."""
        key = self.keys[site_id] if site_id else None
        return ExchangeClient(self.url, key=key, token=token)

    async def add_monitor(
        self,
        monitor_id: str,
        circles: tuple[str, ...] = (),
        sites: tuple[str, ...] = (),
        name: str = "",
    ) -> str:
        token = secrets.token_urlsafe(32)
        await self.node.sites.add_monitor(
            monitor_id, name or monitor_id, token, list(circles), list(sites)
        )
        return token
