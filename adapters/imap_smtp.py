"""``mail``: IMAP in (a dedicated mailbox), SMTP out (one mail per item, or digests).

In (:class:`ImapSource`)
------------------------
Each poll opens one IMAP session, ``EXAMINE``s the mailbox (read-only: flags such as
``\\Seen`` are never changed, so people can keep using the mailbox), asks for UIDs
above the last one read, and fetches at most ``batch`` messages with ``BODY.PEEK[]``.
The state is ``{"uidvalidity": V, "last_uid": U}``. If the server reports a different
UIDVALIDITY (the mailbox was recreated) the mailbox is read again from the start; the
items come out identical, so the node sees duplicates, not new items.

A message becomes an item: subject → title, Date → created_at, plain text (or HTML
turned into text) → body sections by heading (:mod:`adapters.extract.fields`),
attachments → :class:`~adapters.base.Attachment`. Kind rules may look at ``title``,
``text``, ``from`` and ``to``. A message with no usable body, no subject, or from a
sender not in ``allow_from`` is reported as a problem and nothing is pushed for it.

Out (:class:`SmtpSink`)
-----------------------
``mode = "each"``: one mail per received item. ``mode = "digest"``: items are queued
durably in the adapter's data folder and sent together when ``digest_size`` have
gathered or ``digest_minutes`` after the first one. Subjects and bodies are UTF-8
(RFC 2047 encoded words in headers, base64 bodies), and the signed item travels as a
``.json`` attachment so a reader can verify it offline (``exchange verify``).

Idempotence: ids of items already mailed are appended (and fsynced) to ``sent.txt`` in
the data folder after the server accepted the mail; a redelivered item is skipped.
A crash between the server's acceptance and that write can mail an item twice; the
``Message-ID`` is derived from the item id, so mail clients show it once.

Both directions use the standard library clients (``imaplib``, ``smtplib``) in a worker
thread: they are complete, and a mail poll a minute needs no async protocol stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import imaplib
import json
import os
import re
import smtplib
import ssl
import time
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

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
    shape_item,
)
from adapters.extract.mail import imap_utf7, parse_mail
from adapters.extract.readable import item_text
from adapters.sentlog import SentLog
from schemas.labels import kind_label as _kind_name

__all__ = ["ImapSource", "ImapSourceConfig", "SmtpSink", "SmtpSinkConfig"]

Security = Literal["ssl", "starttls", "plain"]


def _read_secret(password: str, password_file: str, ctx: AdapterContext) -> str:
    if password_file:
        path = ctx.path(password_file)
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AdapterError(
                f"cannot read password_file {path}: {exc.strerror}"
            ) from None
    return password


def _tls(ca_file: str, ctx: AdapterContext) -> ssl.SSLContext:
    return ssl.create_default_context(
        cafile=str(ctx.path(ca_file)) if ca_file else None
    )


class ImapSourceConfig(AdapterConfig, ItemRules):
    """``[[source]] type = "mail"``."""

    host: str
    port: int = Field(993, ge=1, le=65535)
    security: Security = "ssl"
    ca_file: str = Field("", description="CA bundle for a server with a private CA")
    username: str
    password: str = ""
    password_file: str = ""
    mailbox: str = Field("INBOX", description="The dedicated mailbox, e.g. 工作交流")
    allow_from: list[str] = Field(
        default_factory=list,
        description="Accepted senders: addresses or @domain; empty accepts all",
    )
    batch: int = Field(50, ge=1, le=1000)
    timeout: float = Field(30, gt=0)


_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")
_INTERNALDATE = re.compile(rb'INTERNALDATE "([^"]+)"')


class ImapSource:
    """Reads new messages of one mailbox (see the module docstring).

    Args:
        config: The validated ``[[source]]`` section.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = ImapSourceConfig

    def __init__(self, config: ImapSourceConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self.where = (
            f"imap://{config.username}@{config.host}:{config.port}/{config.mailbox}"
        )

    def _open(self) -> imaplib.IMAP4:
        cfg = self.config
        if cfg.security == "ssl":
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                cfg.host,
                cfg.port,
                ssl_context=_tls(cfg.ca_file, self.ctx),
                timeout=cfg.timeout,
            )
        else:
            conn = imaplib.IMAP4(cfg.host, cfg.port, timeout=cfg.timeout)
            if cfg.security == "starttls":
                conn.starttls(_tls(cfg.ca_file, self.ctx))
        try:
            conn.login(
                cfg.username, _read_secret(cfg.password, cfg.password_file, self.ctx)
            )
        except imaplib.IMAP4.error as exc:
            with contextlib.suppress(Exception):
                conn.logout()
            raise AdapterError(
                f"the IMAP server refused the login of {cfg.username}: {exc}; check "
                "username and password",
                retryable=False,
            ) from None
        return conn

    def _read(self, state: dict[str, Any]) -> tuple[int, list[tuple[int, bytes, str]]]:
        """Blocking: the mailbox's UIDVALIDITY and up to ``batch`` new messages."""
        cfg = self.config
        conn = self._open()
        try:
            name = '"' + imap_utf7(cfg.mailbox).replace('"', '\\"') + '"'
            typ, _ = conn.select(name, readonly=True)
            if typ != "OK":
                raise AdapterError(
                    f"mailbox {cfg.mailbox!r} does not exist on {cfg.host}; create it "
                    "or fix 'mailbox'",
                    retryable=False,
                )
            validity = 0
            for line in conn.untagged_responses.get("UIDVALIDITY", []):
                if isinstance(line, bytes) and line.strip().isdigit():
                    validity = int(line)
            if not validity:
                typ, data = conn.status(name, "(UIDVALIDITY)")
                raw = data[0] if data and isinstance(data[0], bytes) else b""
                m = _UIDVALIDITY.search(raw)
                validity = int(m.group(1)) if m else 0
            last = (
                int(state.get("last_uid", 0))
                if state.get("uidvalidity") == validity
                else 0
            )
            typ, data = conn.uid("SEARCH", f"UID {last + 1}:*")
            uids = sorted(int(u) for u in (data[0] or b"").split() if int(u) > last)
            out: list[tuple[int, bytes, str]] = []
            for uid in uids[: cfg.batch]:
                typ, parts = conn.uid(
                    "FETCH", str(uid), "(UID INTERNALDATE BODY.PEEK[])"
                )
                for part in parts:
                    if isinstance(part, tuple) and _FETCH_UID.search(part[0]):
                        m = _INTERNALDATE.search(part[0])
                        out.append((uid, part[1], m.group(1).decode() if m else ""))
            return validity, out
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def _allowed(self, sender: str) -> bool:
        allow = [a.lower() for a in self.config.allow_from]
        if not allow:
            return True
        return any(
            sender == a or (a.startswith("@") and sender.endswith(a)) for a in allow
        )

    def _draft(self, uid: int, raw: bytes, internal: str) -> Draft:
        mail = parse_mail(raw)
        ref = f"{self.config.mailbox} UID {uid}" + (
            f" <{mail.message_id}>" if mail.message_id else ""
        )
        if not self._allowed(mail.sender):
            raise ShapeError(
                f"{ref}: sender {mail.sender or '(none)'} is not in allow_from"
            )
        if not mail.text.strip():
            raise ShapeError(
                f"{ref}: the mail from {mail.sender or '(unknown)'} has no usable body "
                "(no text/plain or text/html part with text)"
            )
        created: datetime | None = mail.date
        if created is None and internal:
            with contextlib.suppress(TypeError, ValueError):
                created = datetime.strptime(internal, "%d-%b-%Y %H:%M:%S %z")
        fields = DocumentFields(
            ref=ref,
            title=mail.subject,
            created_at=created,
            text=mail.text,
            match={"from": mail.sender, "to": ",".join(mail.recipients)},
        )
        item = shape_item(fields, self.config, self.ctx.site_id)
        check_item(item, ref)
        files = tuple(
            Attachment(p.name, p.media_type, p.data) for p in mail.attachments
        )
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            raise ShapeError(f"{ref}: two attachments share a name; rename one")
        return Draft(item=item, ref=ref, attachments=files)

    async def poll(self, state: dict[str, Any]) -> Poll:
        """Fetch new messages.

        Raises:
            AdapterError: retryable if the server cannot be reached; not retryable for a
                refused login or a missing mailbox.
        """
        try:
            validity, messages = await asyncio.to_thread(self._read, state)
        except AdapterError:
            raise
        except (OSError, EOFError, imaplib.IMAP4.abort, imaplib.IMAP4.error) as exc:
            raise AdapterError(
                f"cannot read {self.where}: {type(exc).__name__}: {exc}; will retry",
                retryable=True,
            ) from None
        problems: list[str] = []
        if state.get("uidvalidity") not in (None, validity):
            problems.append(
                f"{self.where}: UIDVALIDITY changed ({state.get('uidvalidity')} → "
                f"{validity}); the mailbox was recreated; reading it again from the "
                "start"
            )
        last = (
            int(state.get("last_uid", 0)) if state.get("uidvalidity") == validity else 0
        )
        drafts: list[Draft] = []
        for uid, raw, internal in messages:
            try:
                drafts.append(self._draft(uid, raw, internal))
            except ShapeError as exc:
                problems.append(f"{exc}; nothing pushed for it")
            except (ValueError, LookupError, UnicodeError) as exc:
                # A message the email package cannot make sense of: report, move on.
                problems.append(
                    f"{self.config.mailbox} UID {uid}: unreadable message "
                    f"({type(exc).__name__}: {exc}); nothing pushed for it"
                )
            last = max(last, uid)
        return Poll(drafts, {"uidvalidity": validity, "last_uid": last}, problems)

    async def close(self) -> None:
        """Nothing to release: each poll opens and closes its own session."""


class SmtpSinkConfig(AdapterConfig):
    """``[[sink]] type = "mail"``."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Security = "starttls"
    ca_file: str = ""
    username: str = ""
    password: str = ""
    password_file: str = ""
    from_addr: str = Field(
        description="Sender address, e.g. exchange@rd.example.gov.cn"
    )
    from_name: str = "人大工作交流平台"
    to: list[str] = Field(min_length=1, description="Recipient addresses")
    mode: Literal["each", "digest"] = "each"
    digest_size: int = Field(20, ge=1, le=500, description="Send a digest at this many")
    digest_minutes: float = Field(60, gt=0, description="…or this long after the first")
    subject_prefix: str = "【人大工作交流】"
    attach_signed: bool = Field(True, description="Attach the signed item as .json")
    timeout: float = Field(30, gt=0)


def _short(item_id: str) -> str:
    return item_id.removeprefix("sha256:")[:16]


class SmtpSink:
    """Mails received items to configured addresses (see the module docstring).

    Args:
        config: The validated ``[[sink]]`` section.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = SmtpSinkConfig

    def __init__(self, config: SmtpSinkConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self.dir = ctx.data_dir
        self._pending_path = self.dir / "pending.json"
        self.sent = SentLog(self.dir)
        self.pending: list[dict[str, Any]] = []
        self._loaded = False
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    def _load(self) -> None:
        """Read the digest queue earlier runs left (first delivery only)."""
        if self._loaded:
            return
        if self._pending_path.exists():
            self.pending = json.loads(self._pending_path.read_text("utf-8"))
        self._loaded = True

    # -- building mails ---------------------------------------------------------------

    def _base(self, subject: str, message_id: str) -> EmailMessage:
        cfg = self.config
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = Address(display_name=cfg.from_name, addr_spec=cfg.from_addr)
        msg["To"] = ", ".join(cfg.to)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = message_id
        msg["X-Congress-Exchange-Site"] = self.ctx.site_id
        return msg

    def _attach_signed(
        self, msg: EmailMessage, signed: dict[str, Any], item_id: str
    ) -> None:
        if self.config.attach_signed:
            data = json.dumps(signed, ensure_ascii=False, indent=2).encode("utf-8")
            msg.add_attachment(
                data,
                maintype="application",
                subtype="json",
                filename=f"item-{_short(item_id)}.json",
            )

    def _domain(self) -> str:
        return self.config.from_addr.rpartition("@")[2] or "congress-exchange"

    def _single(self, signed: dict[str, Any], envelope: dict[str, Any]) -> EmailMessage:
        item = signed.get("item", {})
        kind = _kind_name(str(item.get("kind", "")))
        subject = f"{self.config.subject_prefix}{kind}：{item.get('title', '')}"
        msg = self._base(subject, f"<{_short(envelope['id'])}.item@{self._domain()}>")
        msg.set_content(
            item_text(item, item_id=envelope["id"], names=self.ctx.names),
            charset="utf-8",
            cte="base64",
        )
        self._attach_signed(msg, signed, envelope["id"])
        return msg

    def _digest(self, entries: list[dict[str, Any]]) -> EmailMessage:
        ids = [e["envelope"]["id"] for e in entries]
        digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
        subject = f"{self.config.subject_prefix}新交流内容摘要（{len(entries)} 条）"
        msg = self._base(subject, f"<{digest}.digest@{self._domain()}>")
        parts = [f"本期共 {len(entries)} 条 / {len(entries)} new item(s)\n"]
        for n, e in enumerate(entries, 1):
            parts.append(f"==== {n}. ====")
            parts.append(
                item_text(
                    e["signed"].get("item", {}),
                    item_id=e["envelope"]["id"],
                    names=self.ctx.names,
                )
            )
        msg.set_content("\n".join(parts), charset="utf-8", cte="base64")
        for e in entries:
            self._attach_signed(msg, e["signed"], e["envelope"]["id"])
        return msg

    # -- sending ----------------------------------------------------------------------

    def _send_blocking(self, msg: EmailMessage) -> None:
        cfg = self.config
        smtp: smtplib.SMTP
        if cfg.security == "ssl":
            smtp = smtplib.SMTP_SSL(
                cfg.host,
                cfg.port,
                timeout=cfg.timeout,
                context=_tls(cfg.ca_file, self.ctx),
            )
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            if cfg.security == "starttls":
                smtp.starttls(context=_tls(cfg.ca_file, self.ctx))
            if cfg.username:
                smtp.login(
                    cfg.username,
                    _read_secret(cfg.password, cfg.password_file, self.ctx),
                )
            smtp.send_message(msg, from_addr=cfg.from_addr, to_addrs=list(cfg.to))
        finally:
            with contextlib.suppress(Exception):
                smtp.quit()

    async def _send(self, msg: EmailMessage, what: str) -> None:
        where = f"smtp://{self.config.host}:{self.config.port}"
        try:
            await asyncio.to_thread(self._send_blocking, msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            raise AdapterError(
                f"{where} refused the recipients of {what}: {exc.recipients}",
                retryable=all(400 <= c < 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise AdapterError(
                f"{where} refused {what}: {exc.smtp_code} {exc.smtp_error!r}",
                retryable=400 <= exc.smtp_code < 500,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise AdapterError(
                f"cannot send {what} through {where}: {type(exc).__name__}: {exc}; "
                "will retry",
                retryable=True,
            ) from None

    def _save_pending(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._pending_path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(self.pending, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._pending_path)

    async def flush(self) -> int:
        """Send the queued digest now (if any); returns how many items it held.

        Raises:
            AdapterError: the mail could not be sent (the queue is kept).
        """
        self._load()
        async with self._lock:
            if not self.pending:
                return 0
            entries = list(self.pending)
            await self._send(self._digest(entries), f"a digest of {len(entries)} items")
            self.sent.add([e["envelope"]["id"] for e in entries])
            self.pending = []
            self._save_pending()
            return len(entries)

    async def _flush_later(self) -> None:
        try:
            while self.pending:
                first = min(float(e.get("queued_at", 0)) for e in self.pending)
                delay = first + self.config.digest_minutes * 60 - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    await self.flush()
                except AdapterError as exc:
                    self.ctx.log.warning("digest not sent yet: %s", exc.message)
                    await asyncio.sleep(min(300.0, self.config.digest_minutes * 60))
        finally:
            self._timer = None

    def _arm(self) -> None:
        if self._timer is None and self.pending:
            self._timer = asyncio.create_task(self._flush_later(), name="smtp-digest")

    async def deliver(self, signed: dict[str, Any], envelope: dict[str, Any]) -> None:
        """Mail the item (``each``) or queue it for the digest (``digest``).

        Raises:
            AdapterError: the mail server refused or could not be reached (``each``).
        """
        self._load()
        item_id = envelope["id"]
        if self.config.mode == "digest":
            self._arm()  # a digest left queued by an earlier run gets its timer back
        if item_id in self.sent:
            return
        if self.config.mode == "each":
            async with self._lock:
                if item_id in self.sent:
                    return
                await self._send(self._single(signed, envelope), f"item {item_id}")
                self.sent.add([item_id])
            return
        async with self._lock:
            if any(e["envelope"]["id"] == item_id for e in self.pending):
                return
            self.pending.append(
                {"signed": signed, "envelope": dict(envelope), "queued_at": time.time()}
            )
            self._save_pending()
        if len(self.pending) >= self.config.digest_size:
            try:
                await self.flush()
            except AdapterError as exc:
                # The item is queued durably; the timer will try again.
                self.ctx.log.warning("digest not sent yet: %s", exc.message)
        self._arm()

    async def close(self) -> None:
        """Stop the digest timer; queued items stay in the data folder for next time."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
