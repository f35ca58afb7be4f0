"""``/v1/blobs/{sha256}``: streamed, size-limited, hash-checked attachments."""

from __future__ import annotations

import base64
import contextlib
import re
import weakref
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote

from aiohttp import web

from exchange.errors import AuthError, InputError, NotFound, RateLimited, TooLarge
from schemas.errors import ErrorCode

from .auth import authenticate, require
from .body import body_chunks, check_declared
from .keys import NODE
from .middleware import json_response

__all__ = ["SERVED_MEDIA_TYPES", "blob_response", "routes"]

routes = web.RouteTableDef()
_SHA = re.compile(r"^[0-9a-f]{64}$")
_MEDIA = re.compile(r"^[\w.+-]{1,64}/[\w.+-]{1,128}$")

SERVED_MEDIA_TYPES = frozenset(
    {
        "application/pdf",
        "application/ofd",
        "application/zip",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/plain",
        "text/csv",
    }
)
"""Content types a blob is served with as uploaded; any other (HTML, SVG, XML, script)
goes out as ``application/octet-stream``."""


async def blob_response(
    request: web.Request, sha: str, *, filename: str, cache: str
) -> web.StreamResponse:
    """Stream a stored blob as a download that never renders in the node's origin:
    ``attachment``, ``nosniff``, ``CSP: sandbox`` and an allowed content type."""
    node = request.app[NODE]
    meta = await node.blobs.meta(sha)
    if meta is None:
        raise NotFound(f"no blob {sha} visible to you", code=ErrorCode.BLOB_MISSING)
    safe = (
        "".join(c for c in filename[:255] if c.isprintable() and c not in '"\\/;')
        or sha
    )
    media = (
        meta.media_type
        if meta.media_type in SERVED_MEDIA_TYPES
        else ("application/octet-stream")
    )
    resp = web.StreamResponse(
        headers={
            "Content-Type": media,
            "Content-Length": str(meta.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(safe)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Digest-Sha256": sha,
            "Cache-Control": cache,
        }
    )
    await resp.prepare(request)
    async for chunk in node.blobs.stream(sha):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


def _sha_param(request: web.Request) -> str:
    sha = request.match_info["sha256"]
    if not _SHA.match(sha):
        raise InputError(
            "a blob is named by the 64-character lowercase hex SHA-256 of its bytes",
            code=ErrorCode.BAD_REQUEST,
        )
    return sha


_uploads: weakref.WeakKeyDictionary[object, Counter[str]] = weakref.WeakKeyDictionary()
"""Uploads in flight per node (this process) and site."""


@contextlib.contextmanager
def _upload_slot(node: object, site: str, cap: int) -> Iterator[None]:
    """Hold one of ``site``'s ``cap`` concurrent upload slots.

    Raises:
        RateLimited: the site has ``cap`` uploads in flight already.
    """
    counts = _uploads.setdefault(node, Counter())
    if counts[site] >= cap:
        raise RateLimited(
            f"站点上传过多 / {site} already has {cap} blob uploads in flight; "
            "finish them first",
            code=ErrorCode.RATE_LIMITED,
            detail={"retry_after": 5},
        )
    counts[site] += 1
    try:
        yield
    finally:
        counts[site] -= 1
        if counts[site] <= 0:
            del counts[site]


@routes.put("/v1/blobs/{sha256}")
async def put_blob(request: web.Request) -> web.Response:
    """Upload a blob; its ``Content-Digest`` (sha-256) must name the same hash as the URL.

    Signature, site, digest header, size, the site's concurrent uploads and its quota
    are all checked from the headers before a byte of the body is read; the body is
    then spooled and hashed with the body deadlines (no database connection held)."""
    node = request.app[NODE]
    sha = _sha_param(request)
    http = node.config.http
    limit = http.max_blob_bytes
    check_declared(request, limit)
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
    with _upload_slot(node, reader.id, http.blob_uploads_per_site):
        # The answer depends only on what this site sent before, never on whether
        # another site stored the same bytes (that would confirm a guessed document):
        # same quota check, same status, the media type this site declared.
        existing = await node.blobs.meta(sha)
        mine = existing is not None and await node.blobs.uploaded_by(sha, reader.id)
        quota = node.config.limits.blob_quota_bytes
        if quota and not mine:
            used = await node.blobs.uploaded_bytes(reader.id)
            if used + (request.content_length or 0) > quota:
                raise TooLarge(
                    f"超出站点附件配额 / {reader.id} has {used} bytes of blobs; this upload "
                    f"would pass its quota of {quota} bytes",
                    code=ErrorCode.TOO_LARGE,
                )
        media = (
            request.headers.get("Content-Type", "application/octet-stream")
            .split(";")[0]
            .strip()
        )
        if not _MEDIA.match(media):
            media = "application/octet-stream"
        if existing is not None:  # stored already: the caller proves it holds the bytes
            await node.blobs.add_uploader(
                sha,
                body_chunks(request, limit),
                uploader=reader.id,
                max_bytes=limit,
            )
            size = existing.size
        else:
            size = (
                await node.blobs.put_stream(
                    sha,
                    body_chunks(request, limit),
                    media_type=media,
                    uploader=reader.id,
                    max_bytes=limit,
                    spool_dir=node.config.data_path / "uploads",
                )
            ).size
    return json_response(
        {"sha256": sha, "size": size, "media_type": media}, 200 if mine else 201
    )


@routes.get("/v1/blobs/{sha256}")
async def get_blob(request: web.Request) -> web.StreamResponse:
    """Download a blob attached to an item the caller may see."""
    node = request.app[NODE]
    sha = _sha_param(request)
    reader = await authenticate(request, b"")
    require(reader, "site", "monitor", "node")
    visible = await node.items.blob_visible(sha, reader)
    if not visible and reader.kind == "site":
        visible = await node.blobs.uploaded_by(sha, reader.id)
    if not visible:  # the same answer whether or not the blob is stored
        raise NotFound(f"no blob {sha} visible to you", code=ErrorCode.BLOB_MISSING)
    return await blob_response(
        request, sha, filename=sha, cache="private, max-age=31536000, immutable"
    )
