"""``/v1/blobs/{sha256}``: streamed, size-limited, hash-checked attachments."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator

from aiohttp import web

from exchange.errors import AuthError, InputError, NotFound, TooLarge
from schemas.errors import ErrorCode

from .auth import authenticate, require
from .keys import NODE
from .middleware import json_response

__all__ = ["routes"]

routes = web.RouteTableDef()
_SHA = re.compile(r"^[0-9a-f]{64}$")
_MEDIA = re.compile(r"^[\w.+-]{1,64}/[\w.+-]{1,128}$")


def _sha_param(request: web.Request) -> str:
    sha = request.match_info["sha256"]
    if not _SHA.match(sha):
        raise InputError(
            "a blob is named by the 64-character lowercase hex SHA-256 of its bytes",
            code=ErrorCode.BAD_REQUEST,
        )
    return sha


@routes.put("/v1/blobs/{sha256}")
async def put_blob(request: web.Request) -> web.Response:
    """Upload a blob; its ``Content-Digest`` (sha-256) must name the same hash as the URL."""
    node = request.app[NODE]
    sha = _sha_param(request)
    limit = node.config.http.max_blob_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(
            f"blob is over the limit of {limit} bytes", code=ErrorCode.TOO_LARGE
        )
    # The digest is checked while streaming (BlobStore compares the final hash with the
    # URL, and the URL's hash with the signed Content-Digest here).
    reader = await authenticate(request, None)
    require(reader, "site")
    want = "sha-256=:" + base64.b64encode(bytes.fromhex(sha)).decode() + ":"
    digest = request.headers.get("Content-Digest", "")
    if want not in [p.strip() for p in digest.split(",")]:
        raise AuthError(
            "Content-Digest must carry the blob's sha-256, matching the URL",
            code=ErrorCode.DIGEST_MISMATCH,
        )
    existing = await node.blobs.meta(sha)
    if existing is not None:
        return json_response(
            {"sha256": sha, "size": existing.size, "media_type": existing.media_type},
            200,
        )
    media = (
        request.headers.get("Content-Type", "application/octet-stream")
        .split(";")[0]
        .strip()
    )
    if not _MEDIA.match(media):
        media = "application/octet-stream"

    async def chunks() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(64 * 1024):
            yield chunk

    meta = await node.blobs.put_stream(
        sha, chunks(), media_type=media, uploader=reader.id, max_bytes=limit
    )
    return json_response(
        {"sha256": meta.sha256, "size": meta.size, "media_type": meta.media_type}, 201
    )


@routes.get("/v1/blobs/{sha256}")
async def get_blob(request: web.Request) -> web.StreamResponse:
    """Download a blob attached to an item the caller may see."""
    node = request.app[NODE]
    sha = _sha_param(request)
    reader = await authenticate(request, b"")
    require(reader, "site", "monitor", "node")
    meta = await node.blobs.meta(sha)
    visible = meta is not None and await node.items.blob_visible(sha, reader)
    if meta is not None and not visible and reader.kind == "site":
        visible = await node.blobs.uploaded_by(sha, reader.id)
    if meta is None or not visible:
        raise NotFound(f"no blob {sha} visible to you", code=ErrorCode.BLOB_MISSING)
    resp = web.StreamResponse(
        headers={
            "Content-Type": meta.media_type,
            "Content-Length": str(meta.size),
            "Digest-Sha256": sha,
            "Cache-Control": "private, max-age=31536000, immutable",
        }
    )
    await resp.prepare(request)
    async for chunk in node.blobs.stream(sha):
        await resp.write(chunk)
    await resp.write_eof()
    return resp
