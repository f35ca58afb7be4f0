"""The adapter runner: sources → signed items → spool → node; node → sinks.

One process per site, next to the site's own systems; it holds the site's private key,
which never leaves it. Three loops, each a cursor loop in the sense of the node's
federation sender:

**Sources.** Every ``poll_interval`` each source is polled from its saved state. Each
draft gets the site as author, its attachments described (name, media type, size,
SHA-256 — the bytes themselves are spooled), is checked against the item schema,
signed, and **spooled** (fsync + rename). Only after all drafts of the poll are
spooled is the source's new state saved. A draft that fails the schema is a problem
of that document: reported, not spooled, not retried until the document changes.

**Push.** Spooled items go to the node in batches, oldest first: their attachments are
uploaded as blobs (``PUT /v1/blobs``, idempotent by hash), then the items
(``POST /v1/items``). An item leaves the spool only when the node answered
``accepted`` or ``duplicate``. While the node cannot be reached (or refuses the
request itself, or rate-limits) the loop backs off exponentially, from
``backoff_initial`` to ``backoff_max`` seconds, and nothing is lost: the spool is on
disk and is re-sent after a restart. Pushes are idempotent by item id, so an item sent
twice (killed between the node's answer and the spool removal) is stored once. An
item the node refuses for good (schema, signature) moves to ``spool/rejected/`` with
the reason, so one bad item never blocks the others.

**Pull.** Every ``pull_interval``, items after the runner's own cursor are listed; each
one by another site must have an id that is its own hash and a kind of the schema, and
a signature by a key its home node vouches for (:mod:`adapters.trust`: the node, the
roster keys and the roster are pinned on first use); only then is it handed to every
sink. An item that fails is reported and skipped, never written. The cursor (a state
file) advances past an item only after every sink delivered it; a failing sink stops
the pass and it is retried after a backoff (sinks are idempotent by item id, so the
sinks that already had it are not harmed).

**Health.** Every ``health_interval`` (and at the end of ``--once``) the runner posts
its last run, backlog, rejected count, pull cursor, last error and a status per
adapter to ``POST /v1/adapters/health``; monitors read it from the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from pydantic import ValidationError

from exchange.client import ExchangeClient
from exchange.core.items import schema_error, sign_item
from exchange.core.signing import (
    PrivateKey,
    load_private_key,
    parse_key_id,
)
from exchange.errors import (
    AuthError,
    ConfigError,
    ExchangeError,
    OperationalError,
    RateLimited,
    VerificationError,
    is_retryable,
)
from schemas.items import ITEM_ADAPTER

from .base import (
    AdapterContext,
    AdapterError,
    Draft,
    Names,
    RefusedDelivery,
    Sink,
    Source,
    check_delivery,
)
from .config import SiteConfig
from .registry import load_adapter
from .spool import Spool, StateFiles
from .trust import Trust

__all__ = ["AdapterState", "PreparedDraft", "RunSummary", "Runner", "prepare_draft"]

_log = logging.getLogger("adapters.runner")

# Refusals that a later push can overcome: a key registered late or a clock ahead of the
# node's (below), and every error whose class is retryable (database unavailable, rate
# limited: exchange.errors.is_retryable). The item stays spooled; every other refusal is
# final for that item.
_REFUSED_LATER = frozenset(
    {"timestamp_in_future", "unknown_key", "key_not_yet_valid", "unknown_site"}
)
_UNREACHABLE = (OperationalError, aiohttp.ClientError, TimeoutError, OSError)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _short(text: str, limit: int = 1900) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class AdapterState:
    """Health of one source or sink (what ``AdapterStatus`` reports)."""

    name: str
    type: str
    role: str
    last_run: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    items: int = 0
    problems: list[str] = field(default_factory=list)

    def failed(self, message: str) -> None:
        """Record a failure now."""
        self.last_error, self.last_error_at = _short(message), _now()

    def report(self) -> dict[str, Any]:
        """As an ``AdapterStatus`` body."""
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "last_run": self.last_run,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "items": self.items,
            "problems": [_short(p) for p in self.problems[:20]],
        }


@dataclass(frozen=True)
class PreparedDraft:
    """A draft made ready to sign: the full item and its attachment bytes by hash."""

    item: dict[str, Any]
    blobs: dict[str, bytes]
    ref: str
    notes: tuple[str, ...] = ()


def prepare_draft(draft: Draft, site_id: str) -> PreparedDraft:
    """Fill in author and attachment entries and check the item against the schema.

    Args:
        draft: What a source produced.
        site_id: The site the runner signs for.

    Raises:
        AdapterError: the item is not valid (the message names the document and field).
    """
    item = dict(draft.item)
    if item.setdefault("author", site_id) != site_id:
        raise AdapterError(
            f"{draft.ref}: author {item['author']!r} is not this site ({site_id})"
        )
    atts = list(item.get("attachments") or [])
    blobs: dict[str, bytes] = {}
    for a in draft.attachments:
        sha = hashlib.sha256(a.data).hexdigest()
        atts.append(
            {
                "name": a.name,
                "media_type": a.media_type,
                "size": len(a.data),
                "sha256": sha,
            }
        )
        blobs[sha] = a.data
    if atts:
        item["attachments"] = atts
    try:
        ITEM_ADAPTER.validate_python(item)
    except ValidationError as exc:
        raise AdapterError(
            f"{draft.ref}: {schema_error(exc, 'item').message}"
        ) from None
    return PreparedDraft(item, blobs, draft.ref, draft.notes)


@dataclass
class RunSummary:
    """What one pass did."""

    spooled: int = 0
    pushed: int = 0
    rejected: int = 0
    delivered: int = 0
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unreachable: bool = False


class Runner:
    """Runs one site's adapters.

    Args:
        config: The loaded ``site.toml``.
        say: Where status lines for a person go (stderr in the CLI).
    """

    def __init__(
        self, config: SiteConfig, *, say: Callable[[str], None] | None = None
    ) -> None:
        self.config = config
        self.site_id = config.site.id
        self._say = say or (lambda msg: _log.info("%s", msg))
        self.key: PrivateKey | None = None
        self.sources: list[tuple[Source, AdapterState]] = []
        self.sinks: list[tuple[Sink, AdapterState]] = []
        self.started_at = _now()
        self.last_run: str | None = None
        self.last_error: str | None = None
        self._client: ExchangeClient | None = None
        self._wake_push = asyncio.Event()
        self._trust: Trust | None = None
        self.names = Names()  # shared by every sink; the trust refresh fills it

    # -- lifecycle ----------------------------------------------------------------------
    def load_key(self) -> PrivateKey:
        """Load the site key (refusing a file others can read) and check its owner.

        Raises:
            ConfigError: missing, too permissive, not a key, or another site's key.
        """
        key = load_private_key(self.config.key_path)
        if not key.key_id:
            raise ConfigError(f"{self.config.key_path} has no key id (site#kN)")
        owner, _ = parse_key_id(key.key_id)
        if owner != self.site_id:
            raise ConfigError(
                f"{self.config.key_path} is the key of {owner}, not of site.id = {self.site_id}"
            )
        return key

    def load_adapters(self) -> None:
        """Validate and construct every source and sink (no I/O yet).

        Raises:
            ConfigError: a table is invalid (names its key path).
        """
        data = self.config.data_path
        for role, tables in (
            ("source", self.config.source),
            ("sink", self.config.sink),
        ):
            for i, table in enumerate(tables):
                name = str(table["name"])
                ctx = AdapterContext(
                    self.site_id,
                    data / "adapters" / name,
                    logging.getLogger(f"adapters.{name}"),
                    self.config.base_dir,
                    self.names,
                )
                adapter = load_adapter(table, ctx, role=role, index=i)  # type: ignore[arg-type]
                st = AdapterState(name, str(table["type"]), role)
                if role == "source":
                    self.sources.append((adapter, st))  # type: ignore[arg-type]
                else:
                    self.sinks.append((adapter, st))  # type: ignore[arg-type]

    async def open(self, *, dry_run: bool = False) -> None:
        """Load the key, the adapters, the spool and the states.

        Args:
            dry_run: For :meth:`check`: create no folder and no file.

        Raises:
            ConfigError: anything wrong in the configuration or the key file.
        """
        self.key = self.load_key()
        self.load_adapters()
        data = self.config.data_path
        self.states = StateFiles(data / "state", create=not dry_run)
        if not dry_run:
            data.mkdir(parents=True, exist_ok=True)
            self.spool = Spool(data / "spool")
        self._client = ExchangeClient(
            self.config.site.node,
            key=self.key,
            timeout=self.config.runner.request_timeout,
        )

    async def close(self) -> None:
        """Close adapters and the HTTP client."""
        adapters: list[Source | Sink] = [a for a, _ in self.sources]
        adapters += [a for a, _ in self.sinks]
        for adapter in adapters:
            with contextlib.suppress(Exception):
                await adapter.close()
        if self._client is not None:
            await self._client.close()

    async def __aenter__(self) -> Runner:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def client(self) -> ExchangeClient:
        """The signed node client."""
        assert self._client is not None, "call open() first"
        return self._client

    # -- sources ------------------------------------------------------------------------
    async def poll_source(
        self, source: Source, st: AdapterState, summary: RunSummary
    ) -> None:
        """Poll one source, spool its items, then save its state."""
        assert self.key is not None
        st.last_run = _now()
        state = self.states.load(f"source-{st.name}")
        try:
            poll = await source.poll(state)
        except AdapterError as exc:
            st.failed(exc.message)
            summary.errors.append(f"{st.name}: {exc.message}")
            self._say(
                f"来源 {st.name} 读取失败 / source {st.name} failed: {exc.message}"
            )
            return
        problems = list(poll.problems)
        spooled = 0
        for draft in poll.drafts:
            try:
                prepared = prepare_draft(draft, self.site_id)
            except AdapterError as exc:
                problems.append(exc.message)
                continue
            signed = sign_item(prepared.item, self.key)
            if self.spool.add(signed, prepared.blobs):
                spooled += 1
        # The state moves only once everything it covers is safely spooled.
        self.states.save(f"source-{st.name}", poll.state)
        st.items += spooled
        st.problems = problems
        st.last_success = _now()
        summary.spooled += spooled
        summary.problems += problems
        for p in problems:
            self._say(f"  跳过 / skipped: {p}")
        if spooled:
            self._say(
                f"来源 {st.name}：{spooled} 条新条目已签名入队 / {spooled} new item(s) "
                f"signed and spooled (backlog {self.spool.backlog})"
            )
            self._wake_push.set()

    # -- push ---------------------------------------------------------------------------
    async def push_pending(self, summary: RunSummary) -> bool:
        """Push the spool until it is empty or an item must wait.

        Returns:
            True if the spool was emptied (as far as it can be now).

        Raises:
            OperationalError, AuthError, RateLimited, aiohttp.ClientError, TimeoutError:
                the node cannot take items now (nothing was removed from the spool).
        """
        uploaded: set[str] = set()
        while True:
            batch = self.spool.pending(self.config.runner.push_batch)
            if not batch:
                return True
            for entry in batch:
                for att in entry.signed["item"].get("attachments") or []:
                    sha = att["sha256"]
                    if sha in uploaded:
                        continue
                    data = self.spool.blob(sha)
                    if data is not None:
                        await self.client.put_blob(data, att["media_type"])
                    uploaded.add(sha)
            resp = await self.client.push_batch([e.signed for e in batch])
            acked, waiting = [], 0
            for entry, res in zip(batch, resp["results"], strict=True):
                if res["status"] in ("accepted", "duplicate"):
                    acked.append(entry)
                    continue
                err = res.get("error") or {}
                code, message = str(err.get("code")), str(err.get("message"))
                if code in _REFUSED_LATER or is_retryable(code):
                    waiting += 1
                    self.last_error = _short(f"{entry.id}: {code}: {message}")
                else:
                    self.spool.reject(entry, f"{code}: {message}\n")
                    summary.rejected += 1
                    self._say(
                        f"节点拒收 / refused by the node: {entry.id} {code}: {message}"
                    )
            self.spool.done(acked)
            summary.pushed += len(acked)
            if waiting:
                self._say(
                    f"{waiting} 条暂缓，稍后重试 / {waiting} item(s) must wait: "
                    f"{self.last_error}"
                )
                return False

    # -- pull ---------------------------------------------------------------------------
    @property
    def trust(self) -> Trust:
        """What the pull trusts (pinned on first use)."""
        if self._trust is None:
            self._trust = Trust(
                self.client,
                self.states,
                self.config.site.roster_keys,
                self.config.data_path / "state",
                names=self.names,
            )
        return self._trust

    async def pull_once(self, summary: RunSummary) -> None:
        """Deliver partners' items after the cursor to every sink.

        Raises:
            AdapterError: a sink failed (the cursor stays before that item).
            OperationalError, …: the node cannot be reached.
        """
        if not self.sinks or not self.config.runner.pull:
            return
        cursor = int(self.states.load("pull-cursor").get("cursor", -1))
        self.trust.stale = True  # revocations and new keys are seen once per pass
        while True:
            page = await self.client.list_items(cursor, limit=100)
            for env in page["items"]:
                signed = env.get("signed") if isinstance(env, dict) else None
                try:
                    check_delivery(signed, env)
                    assert isinstance(signed, dict)
                    if signed["item"].get("author") != self.site_id:
                        await self.trust.verify(signed)
                        await self._deliver(signed, env)
                        summary.delivered += 1
                except (RefusedDelivery, VerificationError) as exc:
                    shown = str(env.get("id"))[:80] if isinstance(env, dict) else "?"
                    msg = f"{shown}: 未投递 / not delivered: {exc.message}"
                    summary.problems.append(msg)
                    self._say(f"  {msg}")
                cursor = int(env["index"])
                self.states.save("pull-cursor", {"cursor": cursor})
            if page.get("next_cursor") is None:
                return

    async def _deliver(self, signed: dict[str, Any], env: dict[str, Any]) -> None:
        meta = {k: env[k] for k in ("index", "id", "received_at")}
        for sink, st in self.sinks:
            st.last_run = _now()
            try:
                await sink.deliver(signed, meta)
            except AdapterError as exc:  # RefusedDelivery: reported by pull_once
                st.failed(f"{env['id']}: {exc.message}")
                raise
            st.items += 1
            st.last_success = _now()

    # -- health -------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The ``AdapterHealth`` body."""
        cursor = self.states.load("pull-cursor").get("cursor") if self.sinks else None
        return {
            "started_at": self.started_at,
            "last_run": self.last_run,
            "backlog": self.spool.backlog,
            "rejected": self.spool.rejected,
            "pull_cursor": cursor if isinstance(cursor, int) and cursor >= 0 else None,
            "last_error": self.last_error,
            "adapters": [st.report() for _, st in [*self.sources, *self.sinks]],
        }

    async def report_health(self) -> bool:
        """Post the health report; False (logged) if the node cannot take it now."""
        try:
            await self.client.request(
                "POST", "/v1/adapters/health", body=orjson.dumps(self.health())
            )
        except (*_UNREACHABLE, ExchangeError) as exc:
            _log.warning("could not report health: %s", exc)
            return False
        return True

    # -- passes -------------------------------------------------------------------------
    def _note_error(self, summary: RunSummary, what: str, exc: BaseException) -> None:
        msg = (
            exc.message
            if isinstance(exc, ExchangeError)
            else f"{type(exc).__name__}: {exc}"
        )
        self.last_error = _short(f"{what}: {msg}")
        summary.errors.append(self.last_error)
        if isinstance(exc, _UNREACHABLE) and not isinstance(exc, AdapterError):
            summary.unreachable = True

    async def run_once(self) -> RunSummary:
        """Poll every source, push the spool, pull for the sinks, report health."""
        summary = RunSummary()
        for source, st in self.sources:
            await self.poll_source(source, st, summary)
        try:
            await self.push_pending(summary)
        except (*_UNREACHABLE, AuthError, RateLimited) as exc:
            self._note_error(summary, "push", exc)
            self._say(
                f"无法推送，条目保留在本地队列 / cannot push now, "
                f"{self.spool.backlog} item(s) stay spooled: {self.last_error}"
            )
        try:
            await self.pull_once(summary)
        except (*_UNREACHABLE, AuthError, RateLimited, AdapterError) as exc:
            self._note_error(summary, "pull", exc)
            self._say(f"拉取/投递失败 / pull or delivery failed: {self.last_error}")
        self.last_run = _now()
        await self.report_health()
        return summary

    async def _push_loop(self, stop: asyncio.Event) -> None:
        delay = self.config.runner.backoff_initial
        summary = RunSummary()
        while not stop.is_set():
            try:
                emptied = await self.push_pending(summary)
                delay = self.config.runner.backoff_initial
                if summary.pushed:
                    self._say(
                        f"已推送 {summary.pushed} 条 / pushed {summary.pushed} item(s); "
                        f"backlog {self.spool.backlog}"
                    )
                    summary = RunSummary()
                wait = self.config.runner.poll_interval if emptied else delay
            except RateLimited as exc:
                wait = float(exc.detail.get("retry_after", delay))
                self._note_error(summary, "push", exc)
            except (*_UNREACHABLE, AuthError) as exc:
                self._note_error(summary, "push", exc)
                self._say(
                    f"节点不可达，{delay:.1f} 秒后重试 / node unreachable, retry in "
                    f"{delay:.1f} s ({self.spool.backlog} spooled): {self.last_error}"
                )
                wait = delay
                delay = min(delay * 2, self.config.runner.backoff_max)
            summary.errors.clear()
            self._wake_push.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_any(stop, self._wake_push), wait)

    @staticmethod
    async def _wait_any(*events: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _every(
        self, stop: asyncio.Event, interval: float, step: Callable[[], Any], what: str
    ) -> None:
        delay = self.config.runner.backoff_initial
        while not stop.is_set():
            wait = interval
            try:
                await step()
                delay = self.config.runner.backoff_initial
            except (*_UNREACHABLE, AuthError, RateLimited, AdapterError) as exc:
                self._note_error(RunSummary(), what, exc)
                self._say(
                    f"{what} 失败，{delay:.1f} 秒后重试 / {what} failed, retry in "
                    f"{delay:.1f} s: {self.last_error}"
                )
                wait = min(interval, delay)
                delay = min(delay * 2, self.config.runner.backoff_max)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run the loops until ``stop`` is set."""
        r = self.config.runner

        async def poll_all() -> None:
            summary = RunSummary()
            for source, st in self.sources:
                await self.poll_source(source, st, summary)
            self.last_run = _now()

        async def pull() -> None:
            await self.pull_once(RunSummary())

        tasks = [
            asyncio.create_task(self._push_loop(stop), name="push"),
            asyncio.create_task(
                self._every(stop, r.health_interval, self.report_health, "health"),
                name="health",
            ),
        ]
        if self.sources:
            tasks.append(
                asyncio.create_task(
                    self._every(stop, r.poll_interval, poll_all, "poll"), name="poll"
                )
            )
        if self.sinks and r.pull:
            tasks.append(
                asyncio.create_task(
                    self._every(stop, r.pull_interval, pull, "pull"), name="pull"
                )
            )
        self._say(
            f"适配器已启动 / adapter runner started for {self.site_id}: "
            f"{len(self.sources)} source(s), {len(self.sinks)} sink(s), "
            f"node {self.config.site.node}, backlog {self.spool.backlog}"
        )
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            await self.report_health()

    # -- dry run ------------------------------------------------------------------------
    async def check(self) -> tuple[list[tuple[str, PreparedDraft]], list[str]]:
        """Poll each source from its saved state without spooling or saving anything.

        Returns:
            ``[(source name, prepared draft)]`` that a run would sign and push, and the
            problems (documents that would be skipped, sources that failed).
        """
        out: list[tuple[str, PreparedDraft]] = []
        problems: list[str] = []
        for source, st in self.sources:
            try:
                poll = await source.poll(self.states.load(f"source-{st.name}"))
            except AdapterError as exc:
                problems.append(f"{st.name}: {exc.message}")
                continue
            problems += [f"{st.name}: {p}" for p in poll.problems]
            for draft in poll.drafts:
                try:
                    out.append((st.name, prepare_draft(draft, self.site_id)))
                except AdapterError as exc:
                    problems.append(f"{st.name}: {exc.message}")
        return out, problems
