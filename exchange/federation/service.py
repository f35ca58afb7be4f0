"""The federation state of one node: installed roster, peers, site records.

The roster (signed by a pinned roster key) is the trust root: it names every node with
its keys and URL, the sites each node is home to, and the circles. This node signs a
**site record** for each of its own sites (keys, validity, revocations); peers accept a
record only when it is signed by the node the roster names as the site's home, and keep
the newest version. Records travel with every replicated batch and every catch-up page,
so a peer always has the keys it needs to verify what it receives, and revocations
propagate with the next delivery.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exchange.core.canonical import parse_json
from exchange.core.roster import (
    RosterView,
    sign_document,
    verify_roster,
    verify_site_record,
)
from exchange.core.signing import (
    CONTEXT_SITE_RECORD,
    PublicKey,
    b64u_decode,
)
from exchange.core.trust import Reader
from exchange.errors import ConfigError, ExchangeError, JsonError
from exchange.service.loop import cancel_and_wait
from exchange.storage.federation import FederationStore
from exchange.wire import site_record_doc

if TYPE_CHECKING:
    from exchange.node import Node
    from exchange.storage.directory import SiteRecordRow

__all__ = ["PULL_CHANNEL", "Federation", "parse_pinned_keys", "peer_problem"]

_log = logging.getLogger(__name__)

PULL_CHANNEL = "exchange_peer_pulls"
"""Notifications ``"1 <peer>"`` (it pulls pages from us) and ``"0 <peer>"`` (its pull
reached the end), so the worker that pushes to it holds back, whichever one served."""


def parse_pinned_keys(entries: list[str]) -> dict[str, PublicKey]:
    """Parse ``"key_id alg base64url"`` entries of ``federation.roster_keys``.

    Raises:
        ConfigError: an entry is malformed.
    """
    out: dict[str, PublicKey] = {}
    for i, e in enumerate(entries):
        parts = e.split()
        if len(parts) != 3:
            raise ConfigError(
                f"federation.roster_keys[{i}]: expected 'KEY_ID ALG PUBLIC_KEY', got {e!r}"
            )
        try:
            out[parts[0]] = PublicKey(parts[1], b64u_decode(parts[2]), parts[0])
        except ValueError:
            raise ConfigError(
                f"federation.roster_keys[{i}]: public key is not base64url"
            ) from None
    return out


def _ts(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


_PROBLEMS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("refused", re.compile(r"^refused \d+ item")),
    ("busy", re.compile(r"could not store|database_unavailable|rate_limited", re.I)),
    ("timeout", re.compile(r"timeout|timed out", re.I)),
    (
        "unreachable",
        re.compile(
            r"connect|unreachable|ServerDisconnected|ClientOSError|ClientPayload", re.I
        ),
    ),
    ("records", re.compile(r"site records")),
    ("signature", re.compile(r"signature|unknown_key|revoked_key|node_not_in_roster")),
)


def peer_problem(error: str | None) -> str | None:
    """What a peer's last delivery error means, as a code the dashboard words for
    people (``unreachable``, ``timeout``, ``busy``, ``refused``, ``records``,
    ``signature``, else ``other``); None when there is no error."""
    if not error:
        return None
    return next((code for code, pat in _PROBLEMS if pat.search(error)), "other")


class Federation:
    """Roster, peers and site records of a node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.store = FederationStore(node.db)  # type: ignore[arg-type]
        self.pinned = parse_pinned_keys(node.config.federation.roster_keys)
        self.view: RosterView | None = None
        self._wakers: set[asyncio.Event] = set()
        # Per peer: when it last pulled a page of ours that was not empty (it is
        # catching up by pulling: the sender holds its pushes back). Every worker
        # hears of it (mark_pulling notifies on PULL_CHANNEL).
        self.pulling_since: dict[str, float] = {}
        self._listen: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] = lambda: None
        self._file_mtime: float | None = None

    # -- roster --------------------------------------------------------------------------
    async def load(self) -> None:
        """Load the installed roster; install the configured roster file if newer."""
        row = await self.store.roster()
        if row is not None and self.pinned:
            try:
                self.view = RosterView(verify_roster(row[1], self.pinned, 0))
            except ExchangeError as exc:
                _log.error(
                    "installed roster no longer verifies with the pinned keys: %s",
                    exc.message,
                )
        p = self._roster_path()
        if p is not None:
            self._file_mtime = p.stat().st_mtime if p.exists() else None
            await self._install_file(p)

    def _roster_path(self) -> Path | None:
        path = self.node.config.federation.roster_file
        if not path:
            return None
        p = Path(path)
        return p if p.is_absolute() else Path(self.node.config.config_dir or ".") / p

    async def _install_file(self, p: Path) -> None:
        """Install the roster in file ``p`` if it is newer than the one in use."""
        try:
            signed = parse_json(p.read_bytes(), max_depth=64, allow_floats=False)
        except OSError as exc:
            raise ConfigError(
                f"federation.roster_file {p}: cannot read a signed roster from it ({exc})"
            ) from None
        except JsonError as exc:  # the trust root: read as strictly as a push
            raise ConfigError(
                f"federation.roster_file {p}: not a signed roster in strict JSON "
                f"({exc.code.value}: {exc.message})"
            ) from None
        if not isinstance(signed, dict):
            raise ConfigError(
                f"federation.roster_file {p}: not a signed roster (a JSON object)"
            )
        current = self.view.version if self.view else 0
        if int(signed.get("document", {}).get("version", 0)) > current:
            await self.install(signed)

    async def install(self, signed: dict[str, Any]) -> RosterView:
        """Verify and install a newer roster; sync peers and the site directory.

        Raises:
            ConfigError: no roster keys are pinned.
            VerificationError: ``roster_invalid`` / ``roster_stale``.
        """
        if not self.pinned:
            raise ConfigError(
                "no roster keys are pinned: set federation.roster_keys in node.toml"
            )
        current = self.view.version if self.view else 0
        roster = verify_roster(signed, self.pinned, current)
        view = RosterView(roster)
        sites = self.node.sites
        async with self.node.db.pool.acquire() as conn, conn.transaction():  # type: ignore[union-attr]
            if not await self.store.install_roster_txn(
                conn, roster.version, dict(signed)
            ):
                from exchange.errors import VerificationError
                from schemas.errors import ErrorCode

                raise VerificationError(
                    "a newer roster is already installed", code=ErrorCode.ROSTER_STALE
                )
            await self.store.sync_peers_txn(
                conn, [(n.id, str(n.base_url)) for n in view.peers(self.node.id)]
            )
            for n in roster.nodes:
                for site in n.sites:
                    await sites.place_site_txn(
                        conn, site, n.id, view.circles_of_site(site)
                    )
        self.view = view
        self.wake_all()
        return view

    def check_site(self, site_id: str, home: str, circles: list[str]) -> list[str]:
        """The circles ``site add`` may give a site, checked against the installed roster.

        The roster is the single source of circles: a roster site keeps its roster home
        and circles (none given: the roster's); a site absent from the roster may not
        join a roster circle. Without a roster anything goes.

        Raises:
            ConfigError: the site or circles contradict the roster (the message says what
                the roster has).
        """
        view = self.view
        if view is None:
            return circles
        roster_home = view.home_of(site_id)
        if roster_home is not None:
            want = sorted(view.circles_of_site(site_id))
            if home != roster_home:
                raise ConfigError(
                    f"与名册不符 / contradicts the roster: site {site_id}'s home node is "
                    f"{roster_home} in roster version {view.version}, not {home}"
                )
            if circles and sorted(set(circles)) != want:
                raise ConfigError(
                    f"与名册不符 / contradicts the roster: site {site_id} is in circles "
                    f"{', '.join(want) or '(none)'} in roster version {view.version}; "
                    "change the roster (exchange roster add-circle ...) to change them"
                )
            return want
        in_roster = sorted({c.id for c in view.roster.circles} & set(circles))
        if in_roster:
            raise ConfigError(
                f"与名册不符 / contradicts the roster: site {site_id} is not in roster "
                f"version {view.version}, so it cannot join its circle(s) "
                f"{', '.join(in_roster)}; add the site to the roster (exchange roster "
                "add-node ... --site) and publish it first"
            )
        return circles

    async def refresh(self) -> bool:
        """Pick up a roster published since this view was loaded: installed in the
        database by another process, or a newer ``roster_file``. True if it changed."""
        before = self.view.version if self.view else 0
        row = await self.store.roster()
        if row is not None and self.pinned and int(row[0]) > before:
            try:
                self.view = RosterView(verify_roster(row[1], self.pinned, 0))
            except ExchangeError as exc:
                _log.error(
                    "installed roster does not verify with the pinned keys: %s",
                    exc.message,
                )
        path = self._roster_path()
        if path is not None:
            try:
                mtime = path.stat().st_mtime
            except OSError:
                mtime = None
            if mtime is not None and mtime != self._file_mtime:
                self._file_mtime = mtime
                try:
                    await self._install_file(path)
                except ExchangeError as exc:
                    _log.error("roster file %s not installed: %s", path, exc.message)
        changed = (self.view.version if self.view else 0) != before
        if changed:
            _log.info(
                "roster version %s is now in use", self.view.version if self.view else 0
            )
            self.wake_all()
        return changed

    async def watch_roster(self, interval: float = 2.0) -> None:
        """Pick up newly published rosters while serving (:meth:`refresh` every
        ``interval`` seconds), so a new roster needs no restart."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh()

    def node_reader(self, node_id: str) -> Reader:
        """The principal of a peer node: it reads what its sites' audiences allow."""
        assert self.view is not None
        return Reader(
            "node",
            node_id,
            circles=frozenset(self.view.served_circles(node_id)),
            sites=frozenset(self.view.sites_of(node_id)),
        )

    def is_node(self, owner: str) -> bool:
        """Whether a key owner is a node of the installed roster."""
        return self.view is not None and self.view.node(owner) is not None

    # -- site records --------------------------------------------------------------------
    async def local_site_records(
        self, only: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """Signed records for this node's own sites (optionally only some)."""
        return [self.sign_site_record(s) for s in await self.own_sites(only)]

    async def own_sites(self, only: set[str] | None = None) -> list[SiteRecordRow]:
        """This node's own sites that have keys (optionally only some), by id."""
        rows = await self.node.sites.list_sites(None if only is None else sorted(only))
        return [s for s in rows if s.home_node == self.node.id and s.keys]

    def sign_site_record(self, site: SiteRecordRow) -> dict[str, Any]:
        """The signed record of one of this node's sites, as it is now."""
        assert self.node.key is not None
        return sign_document(site_record_doc(site), self.node.key, CONTEXT_SITE_RECORD)

    async def site_records_wanted(
        self, versions: dict[str, int], supplied: set[str]
    ) -> list[str]:
        """Sites whose record a peer's batch names at ``versions`` while this node holds
        an older one (or none), and the batch did not carry it (``supplied``): the
        batch cannot be checked until they come (a node restored from a backup, or one
        that lost its records, asks again this way)."""
        need = sorted(set(versions) - supplied)
        if not need:
            return []
        have = await self.store.site_record_versions(need)
        return [s for s in need if have.get(s, 0) < versions[s]]

    async def accept_site_records(self, records: list[Any], source: str) -> list[str]:
        """Verify and store site records received from ``source``; returns problems.

        A record signed by a node that is not the site's home is refused and recorded as
        a security event.
        """
        problems: list[str] = []
        if self.view is None:
            return ["no roster installed"]
        for signed in records[:1000]:
            try:
                rec = verify_site_record(signed, self.view)
            except ExchangeError as exc:
                problems.append(f"{exc.code.value}: {exc.message}")
                await self.node.activity.event(
                    "security",
                    "",
                    exc.code.value,
                    f"site record from {source} refused: {exc.message}",
                )
                self.node.metrics.security_events.labels(exc.code.value).inc()
                continue
            if rec.home_node == self.node.id:
                continue  # our own sites: this node is the authority
            if rec.version <= await self.store.site_record_version(rec.id):
                continue
            async with self.node.db.pool.acquire() as conn, conn.transaction():  # type: ignore[union-attr]
                await self.node.sites.apply_site_record_txn(
                    conn, rec, self.view.circles_of_site(rec.id)
                )
                await self.store.store_site_record_txn(
                    conn, rec.id, rec.version, dict(signed), source
                )
            self.node.sites.invalidate_keys()
        return problems

    async def peer_status(self) -> list[dict[str, Any]]:
        """Per-peer backlog, cursors, last success/error and current backoff."""
        out = []
        now = datetime.now(UTC)
        for p in await self.store.peers():
            backlog = (
                await self.store.backlog(
                    p.node_id, self.node_reader(p.node_id), p.push_cursor
                )
                if self.view is not None
                else None
            )
            out.append(
                {
                    "peer": p.node_id,
                    "base_url": p.base_url,
                    "backlog": backlog,
                    "push_cursor": p.push_cursor,
                    "pull_cursor": p.pull_cursor,
                    "pushed_total": p.pushed_total,
                    "pulled_total": p.pulled_total,
                    "refused_total": p.refused_total,
                    "last_success": _ts(p.last_success),
                    "last_error": p.last_error,
                    "last_error_at": _ts(p.last_error_at),
                    "attempts": p.attempts,
                    "backoff_s": max(
                        0.0, round((p.next_attempt_at - now).total_seconds(), 1)
                    ),
                }
            )
        return out

    # -- wake-ups for the sender ---------------------------------------------------------
    def waker(self) -> asyncio.Event:
        """A private event for one peer loop, set whenever new items may be waiting."""
        ev = asyncio.Event()
        self._wakers.add(ev)
        return ev

    def drop_waker(self, ev: asyncio.Event) -> None:
        """Forget a peer loop's event."""
        self._wakers.discard(ev)

    def wake_all(self) -> None:
        """Wake every peer loop."""
        for ev in self._wakers:
            ev.set()

    async def mark_pulling(self, peer: str, pulling: bool) -> None:
        """Note that ``peer`` is catching up by pulling pages from us (its sender holds
        its pushes back) or that its pull reached the end (pushes go on at once), in
        this process and, through a notification, in every worker of this node."""
        self._set_pulling(peer, pulling)
        async with self.store.db.pool.acquire() as c:
            await c.execute(
                "SELECT pg_notify($1, $2)", PULL_CHANNEL, f"{int(pulling)} {peer}"
            )

    def _set_pulling(self, peer: str, pulling: bool) -> None:
        if pulling:
            self.pulling_since[peer] = time.monotonic()
        elif self.pulling_since.pop(peer, None) is not None:
            self.wake_all()

    def _on_pull_note(self, payload: str) -> None:
        flag, _, peer = payload.partition(" ")
        if peer:  # "" is the notifier's nudge after a reconnect
            self._set_pulling(peer, flag == "1")

    def start_listener(self) -> None:
        """Wake the peer senders on every new item (through the node's notifier), and
        every 2 s anyway (retries and catch-up); hear which peers pull (any worker)."""
        if self._listen is None:
            items = self.node.notifier.subscribe(
                "exchange_items", lambda _: self.wake_all()
            )
            pulls = self.node.notifier.subscribe(
                PULL_CHANNEL, self._on_pull_note, nudge=False
            )

            def unsubscribe() -> None:
                items()
                pulls()

            self._unsubscribe = unsubscribe
            self._listen = asyncio.create_task(
                self._nudge_loop(), name="federation-nudge"
            )

    async def stop(self) -> None:
        """Stop the wake-ups."""
        task, self._listen = self._listen, None
        if task is not None:
            self._unsubscribe()
            await cancel_and_wait(task)

    async def _nudge_loop(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            self.wake_all()
