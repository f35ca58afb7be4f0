"""``webhook``: an HTTP endpoint the site's own system posts documents to (in), and
HTTP POSTs of received items to the site's system (out).

In (:class:`WebhookSource`)
---------------------------
For systems that can call out but cannot be read from: the adapter serves
``POST <path>`` on ``listen`` (aiohttp). Each accepted document is checked, shaped into
an item, and **queued durably** in the adapter's data folder (``inbox/``: one file per
document, written to a temporary name, fsynced, renamed, folder fsynced) *before* the
caller gets ``202 Accepted``; :meth:`WebhookSource.poll` returns the queue in order.

Accepted bodies (JSON, UTF-8):

* **an item draft** — ``{"kind": "lesson", "title": …, "body": {…}, …}``: an item
  without ``v``/``author`` (filled in); ``created_at`` defaults to the time of receipt;
* **a simple document** — ``{"title": …, "text": "一、主要做法 …", "kind"?: …,
  "summary"?: …, "tags"?: […], "created_at"?: "2021年10月28日"}``: the text is split
  into body fields at headings, like mail (:mod:`adapters.extract.fields`).

Either may carry ``"files": [{"name", "media_type", "content_base64"}]`` for
attachments. The answer is ``202 {"status": "queued", "seq": N, "id": "sha256:…"}``
(the id the item will have once signed) or a 4xx ``{"error": {"code", "message"}}``
that names the problem, with nothing queued.

Authentication (at least one, unless ``allow_unauthenticated``): a shared ``token``
(``Authorization: Bearer <token>``) and/or an ``hmac_secret``
(``X-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, as GitHub sends).

State is ``{"after": N}``: the last queue number handed out. Files up to ``after`` are
deleted on the next poll (the runner has stored that state by then), so a crash between
a poll and the runner's checkpoint re-reads them — same items, same ids. A counter file
keeps numbers increasing across restarts even when the queue is empty.

The server starts on the first :meth:`~WebhookSource.poll` (or an explicit
:meth:`~WebhookSource.start`) and stops on :meth:`~WebhookSource.close`.

Out (:class:`WebhookSink`)
--------------------------
Each item the runner pulled is POSTed to ``url`` as
``{"index", "id", "received_at", "signed": {"item", "sig"}}`` with the same
``token``/``hmac_secret`` headers, so the site's system knows it came from its own
adapter (the item itself carries its author's signature). 2xx is success; a refused
connection, a timeout, 408, 425, 429 and 5xx are retried by the runner; any other
answer is reported as not retryable. Delivered ids are remembered in ``sent.txt``.
Use this when the site's system sits next to the adapter; when a site runs no adapter
at all, the node can push to it directly, signed with the node key
(``exchange webhook add``, :mod:`exchange.service.webhooks`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from aiohttp import web
from pydantic import Field, field_validator

from adapters.base import (
    AdapterConfig,
    AdapterContext,
    AdapterError,
    Attachment,
    Draft,
    Poll,
)
from adapters.extract.fields import (
    DocumentFields,
    ItemRules,
    ShapeError,
    check_item,
    parse_when,
    shape_item,
    to_timestamp,
)
from adapters.extract.mail import safe_filename
from adapters.sentlog import SentLog
from exchange.core.canonical import parse_json
from exchange.core.items import item_id
from exchange.errors import JsonError

__all__ = ["WebhookSink", "WebhookSinkConfig", "WebhookSource", "WebhookSourceConfig"]

_SIMPLE_KEYS = {
    "title",
    "text",
    "body",
    "kind",
    "summary",
    "tags",
    "created_at",
    "files",
}


def _secret(value: str, path: str, what: str, ctx: AdapterContext) -> str:
    if path:
        file = ctx.path(path)
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AdapterError(
                f"cannot read {what}_file {file}: {exc.strerror}"
            ) from None
    return value


class WebhookSourceConfig(AdapterConfig, ItemRules):
    """``[[source]] type = "webhook"``."""

    listen: str = Field("127.0.0.1:8710", description="HOST:PORT to serve on")
    path: str = Field("/documents", description="The POST path")
    token: str = Field("", description="Shared secret: Authorization: Bearer <token>")
    token_file: str = ""
    hmac_secret: str = Field("", description="X-Signature-256: sha256=<hex HMAC>")
    hmac_secret_file: str = ""
    allow_unauthenticated: bool = False
    max_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    batch: int = Field(100, ge=1, le=5000)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8710")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9/_.-]*", v):
            raise ValueError("must be a URL path such as /documents")
        return v


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WebhookSource:
    """Serves the endpoint and hands queued documents to the runner.

    Args:
        config: The validated ``[[source]]`` section.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = WebhookSourceConfig

    def __init__(self, config: WebhookSourceConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        secrets = (
            config.token,
            config.token_file,
            config.hmac_secret,
            config.hmac_secret_file,
        )
        if not (any(secrets) or config.allow_unauthenticated):
            raise AdapterError(
                "the webhook source needs a token or an hmac_secret (or "
                "allow_unauthenticated = true on a trusted network)"
            )
        self.token = ""
        self.hmac_key = ""
        self.inbox = ctx.data_dir / "inbox"
        self._counter = self.inbox / "seq"
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- the server ----------------------------------------------------------------

    async def start(self) -> None:
        """Start serving (idempotent).

        Raises:
            AdapterError: the address is in use or cannot be bound (retryable).
        """
        if self._runner is not None:
            return
        cfg, ctx = self.config, self.ctx
        self.token = _secret(cfg.token, cfg.token_file, "token", ctx)
        self.hmac_key = _secret(
            cfg.hmac_secret, cfg.hmac_secret_file, "hmac_secret", ctx
        )
        if not (self.token or self.hmac_key or cfg.allow_unauthenticated):
            raise AdapterError(f"{cfg.token_file or cfg.hmac_secret_file} is empty")
        app = web.Application(client_max_size=self.config.max_bytes)
        app.router.add_post(self.config.path, self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, _, port = self.config.listen.rpartition(":")
        site = web.TCPSite(runner, host.strip("[]"), int(port))
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise AdapterError(
                f"cannot listen on {self.config.listen}: {exc.strerror}", retryable=True
            ) from None
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else int(port)
        self.ctx.log.info(
            "webhook source listening on %s:%s%s", host, self.port, self.config.path
        )

    def _check_auth(self, request: web.Request, body: bytes) -> None:
        if self.token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                raise _Refused(
                    401,
                    "unauthenticated",
                    "missing or wrong token (Authorization: Bearer <token>)",
                )
        if self.hmac_key:
            given = request.headers.get("X-Signature-256", "")
            want = (
                "sha256="
                + hmac.new(self.hmac_key.encode(), body, hashlib.sha256).hexdigest()
            )
            if not hmac.compare_digest(given.encode(), want.encode()):
                raise _Refused(
                    401,
                    "bad_signature",
                    "X-Signature-256 is missing or does not match the body "
                    "(sha256=<hex HMAC-SHA256 of the raw body>)",
                )

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise _Refused(
                    413,
                    "too_large",
                    f"the body is larger than {self.config.max_bytes} bytes",
                ) from None
            self._check_auth(request, body)
            try:
                # The project's strict parser, as for a push to the node: duplicate
                # keys, floats, huge integers, invalid UTF-8 and deep nesting are
                # refused here rather than read differently later.
                doc = parse_json(body, allow_floats=False)
            except JsonError as exc:
                raise _Refused(
                    400, "bad_json", f"the body is not strict UTF-8 JSON: {exc.message}"
                ) from None
            if not isinstance(doc, dict):
                raise _Refused(400, "bad_json", "the body must be a JSON object")
            received = datetime.now(UTC).astimezone(self.config.tz)
            item, files = self._shape(doc, received)
            seq = self._enqueue(item, files, received)
        except _Refused as r:
            return web.json_response(
                {"error": {"code": r.code, "message": r.message}}, status=r.status
            )
        return web.json_response(
            {"status": "queued", "seq": seq, "id": item_id(item)}, status=202
        )

    # -- shaping -------------------------------------------------------------------

    def _files(self, raw: Any) -> list[dict[str, Any]]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise _Refused(400, "schema_invalid", "files must be a list")
        out = []
        for n, f in enumerate(raw):
            if not isinstance(f, dict) or set(f) - {
                "name",
                "media_type",
                "content_base64",
            }:
                raise _Refused(
                    400,
                    "schema_invalid",
                    f"files[{n}] must be {{name, media_type, content_base64}}",
                )
            try:
                data = base64.b64decode(str(f.get("content_base64", "")), validate=True)
            except binascii.Error:
                raise _Refused(
                    400, "schema_invalid", f"files[{n}].content_base64 is not base64"
                ) from None
            name = safe_filename(str(f.get("name", "")), f"attachment-{n + 1}")
            out.append(
                {
                    "name": name,
                    "media_type": str(
                        f.get("media_type") or "application/octet-stream"
                    ),
                    "content_base64": base64.b64encode(data).decode(),
                }
            )
        return out

    def _shape(
        self, doc: dict[str, Any], received: datetime
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        cfg, site = self.config, self.ctx.site_id
        files = self._files(doc.pop("files", None))
        ref = f"webhook post ({str(doc.get('title', ''))[:40]})"
        try:
            if isinstance(doc.get("body"), dict):
                if doc.get("author", site) != site:
                    raise _Refused(
                        400,
                        "schema_invalid",
                        f"author must be this site ({site}) or left out",
                    )
                item = {"v": 1, "author": site, "lang": cfg.lang, **doc}
                item["created_at"] = to_timestamp(
                    parse_when(doc.get("created_at") or received, cfg.tz)
                )
                if "audience" not in doc and (cfg.circles or cfg.sites):
                    item["audience"] = {
                        "circles": list(cfg.circles),
                        "sites": list(cfg.sites),
                    }
            else:
                unknown = sorted(set(doc) - _SIMPLE_KEYS)
                if unknown:
                    raise _Refused(
                        400,
                        "schema_invalid",
                        f"unknown field(s) {', '.join(unknown)}; a simple document "
                        "has title, text, kind, summary, tags, created_at, files",
                    )
                text = doc.get("text", doc.get("body"))
                if not isinstance(text, str) or not text.strip():
                    raise _Refused(
                        400,
                        "schema_invalid",
                        "text is missing or empty: nothing to make an item from",
                    )
                fields = DocumentFields(
                    ref=ref,
                    title=str(doc.get("title") or ""),
                    created_at=doc.get("created_at") or received,
                    text=text,
                    summary=doc.get("summary"),
                    tags=doc.get("tags"),
                    kind=doc.get("kind"),
                )
                item = shape_item(fields, cfg, site)
            check_item(item, ref)
        except ShapeError as exc:
            raise _Refused(422, "schema_invalid", str(exc)) from None
        names = [f["name"] for f in files]
        if len(set(names)) != len(names):
            raise _Refused(400, "schema_invalid", "two files share a name")
        return item, files

    # -- the durable queue ---------------------------------------------------------

    def _next_seq(self) -> int:
        last = int(self._counter.read_text()) if self._counter.exists() else 0
        for p in self.inbox.glob("*.json"):
            if p.stem.isdigit():
                last = max(last, int(p.stem))
        return last + 1

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _enqueue(
        self, item: dict[str, Any], files: list[dict[str, Any]], received: datetime
    ) -> int:
        # Runs on the event loop without awaiting, so numbers never interleave.
        self.inbox.mkdir(parents=True, exist_ok=True)
        seq = self._next_seq()
        entry = {
            "seq": seq,
            "received_at": received.isoformat(),
            "item": item,
            "files": files,
        }
        self._write(
            self.inbox / f"{seq:012d}.json",
            json.dumps(entry, ensure_ascii=False).encode("utf-8"),
        )
        self._write(self._counter, str(seq).encode())
        _fsync_dir(self.inbox)
        return seq

    def _queued(self) -> list[Path]:
        if not self.inbox.is_dir():
            return []
        return sorted(p for p in self.inbox.glob("*.json") if p.stem.isdigit())

    async def poll(self, state: dict[str, Any]) -> Poll:
        """Return queued documents after ``state["after"]``; forget those before it.

        If the endpoint cannot be served (the port is taken, perhaps by a running
        runner while ``exchange adapter check`` looks), that is reported as a problem
        and the queue is still read; the next poll tries to listen again.

        Raises:
            AdapterError: a token or secret file cannot be read.
        """
        problems: list[str] = []
        try:
            await self.start()
        except AdapterError as exc:
            if not exc.retryable:
                raise
            problems.append(
                f"{exc.message}; documents cannot be posted until it is free"
            )
        after = int(state.get("after", 0))
        drafts: list[Draft] = []
        last = after
        for path in self._queued():
            seq = int(path.stem)
            if seq <= after:
                path.unlink(missing_ok=True)
                continue
            if len(drafts) >= self.config.batch:
                break
            try:
                entry = parse_json(path.read_bytes())
                files = tuple(
                    Attachment(
                        f["name"],
                        f["media_type"],
                        base64.b64decode(f["content_base64"]),
                    )
                    for f in entry.get("files", [])
                )
                drafts.append(
                    Draft(item=entry["item"], ref=f"webhook #{seq}", attachments=files)
                )
            except (OSError, ValueError, KeyError, TypeError, JsonError) as exc:
                problems.append(
                    f"webhook #{seq}: queued file {path.name} is unreadable "
                    f"({exc}); skipped"
                )
            last = seq
        return Poll(drafts, {"after": last}, problems)

    async def close(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class WebhookSinkConfig(AdapterConfig):
    """``[[sink]] type = "webhook"``."""

    url: str = Field(description="Where to POST each item, e.g. http://oa.local/hook")
    token: str = Field("", description="Sent as Authorization: Bearer <token>")
    token_file: str = ""
    hmac_secret: str = Field("", description="Sent as X-Signature-256: sha256=<hex>")
    hmac_secret_file: str = ""
    timeout: float = Field(30, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as http://oa.local/exchange")
        return v


_RETRY_STATUS = {408, 425, 429}


class WebhookSink:
    """POSTs each received item to the site's system (see the module docstring).

    Args:
        config: The validated ``[[sink]]`` section.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = WebhookSinkConfig

    def __init__(self, config: WebhookSinkConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self.sent = SentLog(ctx.data_dir)
        self._session: aiohttp.ClientSession | None = None

    def _headers(self, body: bytes) -> dict[str, str]:
        cfg, ctx = self.config, self.ctx
        headers = {"Content-Type": "application/json", "X-Exchange-Site": ctx.site_id}
        token = _secret(cfg.token, cfg.token_file, "token", ctx)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        key = _secret(cfg.hmac_secret, cfg.hmac_secret_file, "hmac_secret", ctx)
        if key:
            digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Signature-256"] = f"sha256={digest}"
        return headers

    async def deliver(self, signed: dict[str, Any], envelope: dict[str, Any]) -> None:
        """POST the item unless it was delivered before.

        Raises:
            AdapterError: retryable for network errors, timeouts, 408/425/429/5xx;
                not retryable for other answers.
        """
        item_id_ = str(envelope["id"])
        if item_id_ in self.sent:
            return
        body = json.dumps(
            {
                "index": envelope.get("index"),
                "id": item_id_,
                "received_at": envelope.get("received_at"),
                "signed": signed,
            },
            ensure_ascii=False,
        ).encode("utf-8")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout)
            )
        url = self.config.url
        try:
            async with self._session.post(
                url, data=body, headers=self._headers(body), allow_redirects=False
            ) as resp:
                text = (await resp.text(errors="replace"))[:200]
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AdapterError(
                f"cannot POST item {item_id_} to {url}: {type(exc).__name__}: {exc}; "
                "will retry",
                retryable=True,
            ) from None
        if not 200 <= status < 300:
            raise AdapterError(
                f"{url} answered HTTP {status} to item {item_id_}: {text!r}",
                retryable=status >= 500 or status in _RETRY_STATUS,
            )
        self.sent.add([item_id_])

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
