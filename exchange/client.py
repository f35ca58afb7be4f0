"""A typed client for the ``/v1`` API, for partners' systems, adapters and the CLI.

Requests are signed with RFC 9421 by the site's key (or carry a monitor's bearer token).
Error responses are turned back into the same exception classes the server raised, by
their stable code (:func:`exchange.errors.make_error`).

Example::

    async with ExchangeClient("http://127.0.0.1:8700", key=load_private_key(path)) as c:
        result = await c.push(sign_item(item, key))
"""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson
import yarl

from exchange.core import httpsig
from exchange.core.canonical import parse_json
from exchange.errors import (
    ConfigError,
    ExchangeError,
    OperationalError,
    TooLarge,
    make_error,
)
from schemas.errors import ErrorCode

from .core.signing import Signer

__all__ = ["ExchangeClient"]

_MAX_DEPTH = 64  # an item may nest 32 deep; a page wraps it in a few more levels


def _reason(exc: BaseException) -> str:
    """A short reason for a failed connection (no library-internal detail)."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        errno = exc.os_error.errno
        return os.strerror(errno).lower() if errno else "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection was closed"
    return type(exc).__name__


class ExchangeClient:
    """Async client for one node.

    Args:
        base_url: The node, e.g. ``http://127.0.0.1:8700``.
        key: A signer for site (or node) requests.
        token: A monitor's bearer token (instead of a key).
        timeout: Total seconds per request.
        lean: Send no ``User-Agent``, ``Accept`` or ``Accept-Encoding`` headers (node to
            node requests, where every byte of every request counts; the signature's
            ``keyid`` names the caller).
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: Signer | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        lean: bool = False,
    ) -> None:
        if (
            urlsplit(base_url).scheme not in ("http", "https")
            or not urlsplit(base_url).netloc
        ):
            raise ConfigError(
                f"node URL {base_url!r} must start with http:// or https://, "
                "e.g. http://127.0.0.1:8700"
            )
        self.base_url = base_url.rstrip("/")
        self._authority = urlsplit(self.base_url).netloc
        self._prefix = urlsplit(self.base_url).path.rstrip("/")
        self.key = key
        self.token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._skip = ("User-Agent", "Accept", "Accept-Encoding") if lean else ()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ExchangeClient:
        self._session = self._new_session()
        return self

    def _new_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=self._timeout, skip_auto_headers=self._skip
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The underlying session (opened lazily)."""
        if self._session is None:
            self._session = self._new_session()
        return self._session

    def signed_headers(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Headers for a request: signature (if a key is set) or bearer token."""
        out = dict(headers or {})
        if self.key is not None:
            out.update(
                httpsig.sign_request(
                    self.key,
                    method,
                    target,
                    self._authority,
                    out,
                    body,
                    created=int(time.time()),
                    nonce=secrets.token_urlsafe(16),
                    scheme=urlsplit(self.base_url).scheme or "https",
                )
            )
        elif self.token:
            out["Authorization"] = f"Bearer {self.token}"
        return out

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a request and return the decoded JSON body.

        Raises:
            ExchangeError: the node answered with an error (rebuilt from its code).
            OperationalError: the node could not be reached.
        """
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        target = self._prefix + path + (f"?{query}" if query else "")
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        hdrs = self.signed_headers(method, target, body, hdrs)
        url = f"{self.base_url.split('://')[0]}://{self._authority}{target}"
        try:
            # Large bodies go through a file-like payload so aiohttp streams them
            # instead of blocking the event loop on one big write.
            data: bytes | io.BytesIO | None = (
                io.BytesIO(body) if body and len(body) > 65536 else body
            )
            # encoded=True: send the target exactly as signed (yarl would otherwise
            # unquote characters such as %21 or %24 and break the signature).
            async with self.session.request(
                method, yarl.URL(url, encoded=True), data=data, headers=hdrs
            ) as resp:
                data = await resp.read()
                return self._decode(resp.status, data)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise OperationalError(
                f"cannot reach the node at {self.base_url} ({_reason(exc)}); is it running? "
                "check with: exchange doctor",
                code=ErrorCode.NODE_UNREACHABLE,
            ) from None
        except aiohttp.ClientError as exc:
            raise OperationalError(
                f"cannot talk to the node at {self.base_url}: {exc}",
                code=ErrorCode.NODE_UNREACHABLE,
            ) from None

    @staticmethod
    def _decode(status: int, data: bytes) -> Any:
        """The response body, parsed with the strict parser the node uses for pushes (a
        successful answer in anything else — duplicate keys, integers beyond 2^53,
        nesting deeper than 64 — raises its :class:`~exchange.errors.JsonError`)."""
        if status < 400:
            return parse_json(data, max_depth=_MAX_DEPTH) if data else None
        try:
            doc = parse_json(data, max_depth=_MAX_DEPTH) if data else None
        except ExchangeError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            e = doc["error"]
            raise make_error(str(e.get("code")), str(e.get("message")), e.get("detail"))
        raise ExchangeError(f"HTTP {status} from node", detail={"status": status})

    # -- items ---------------------------------------------------------------
    async def push(self, signed: Mapping[str, Any]) -> dict[str, Any]:
        """Push one signed item; returns its PushResult (raises on refusal)."""
        result: dict[str, Any] = await self.request(
            "POST", "/v1/items", body=orjson.dumps(signed)
        )
        return result

    async def push_batch(self, signed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Push a batch; returns the PushResponse (per-item results)."""
        result: dict[str, Any] = await self.request(
            "POST", "/v1/items", body=orjson.dumps({"items": list(signed)})
        )
        return result

    async def get_item(self, item_id: str) -> dict[str, Any]:
        """One item envelope."""
        result: dict[str, Any] = await self.request("GET", f"/v1/items/{item_id}")
        return result

    async def list_items(
        self, cursor: int = -1, limit: int = 100, **filters: Any
    ) -> dict[str, Any]:
        """One page of items after ``cursor``."""
        params = {"cursor": cursor, "limit": limit, **filters}
        result: dict[str, Any] = await self.request("GET", "/v1/items", params=params)
        return result

    async def iter_items(
        self, cursor: int = -1, **filters: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item after ``cursor``, page by page."""
        while True:
            page = await self.list_items(cursor, **filters)
            for env in page["items"]:
                yield env
                cursor = env["index"]
            if page.get("next_cursor") is None:
                return

    # -- blobs ---------------------------------------------------------------
    async def put_blob(
        self, data: bytes, media_type: str = "application/octet-stream"
    ) -> dict[str, Any]:
        """Upload a blob; returns its BlobInfo."""
        import hashlib

        sha = hashlib.sha256(data).hexdigest()
        result: dict[str, Any] = await self.request(
            "PUT", f"/v1/blobs/{sha}", body=data, headers={"Content-Type": media_type}
        )
        return result

    async def get_blob(self, sha256: str) -> bytes:
        """Download a blob."""
        return b"".join([c async for c in self.blob_chunks(sha256)])

    async def blob_chunks(
        self,
        sha256: str,
        *,
        max_bytes: int | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[bytes]:
        """Stream a blob as it arrives (memory stays bounded whatever its size).

        Args:
            sha256: The blob's hash.
            max_bytes: Refuse a blob the server says is larger (the caller still
                counts and hashes what arrives).
            read_timeout: Longest wait for the next bytes; the session's total
                timeout does not apply (a large blob may take longer than a request).

        Raises:
            ExchangeError: the server refused (its error), or announced more than
                ``max_bytes``.
        """
        target = f"{self._prefix}/v1/blobs/{sha256}"
        hdrs = self.signed_headers("GET", target, None)
        timeout = (
            aiohttp.ClientTimeout(
                total=None, sock_connect=read_timeout, sock_read=read_timeout
            )
            if read_timeout is not None
            else None
        )
        async with self.session.get(
            f"{self.base_url}/v1/blobs/{sha256}", headers=hdrs, timeout=timeout
        ) as resp:
            if resp.status >= 400:
                self._decode(resp.status, await resp.content.read(64 * 1024))
            if (
                max_bytes is not None
                and resp.content_length is not None
                and resp.content_length > max_bytes
            ):
                raise TooLarge(
                    f"blob {sha256} is {resp.content_length} bytes, more than the "
                    f"{max_bytes} expected",
                    code=ErrorCode.TOO_LARGE,
                )
            async for chunk in resp.content.iter_chunked(256 * 1024):
                yield chunk

    # -- directory and health --------------------------------------------------
    async def sites(self) -> list[dict[str, Any]]:
        """The site directory."""
        doc = await self.request("GET", "/v1/sites")
        return list(doc["sites"])

    async def health(self) -> dict[str, Any]:
        """``/readyz``."""
        result: dict[str, Any] = await self.request("GET", "/readyz")
        return result
