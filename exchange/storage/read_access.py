"""Reading-view access: one read token per site, exchanged for session cookies.

Only SHA-256 hashes of tokens and session values are stored (both are 256-bit random,
so a hash lookup reveals nothing through timing). Issuing a new token for a site
replaces the old one and ends every session made with it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from .database import Database

__all__ = ["ReadAccessStore"]


def _h(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class ReadAccessStore:
    """Queries on ``read_tokens`` and ``read_sessions``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def issue_token(self, site_id: str) -> str:
        """A new read token for ``site_id`` (shown once); the old one stops working.

        Raises:
            asyncpg.ForeignKeyViolationError: no such site.
        """
        token = "rt_" + secrets.token_urlsafe(32)
        async with self.db.pool.acquire() as c, c.transaction():
            await c.execute(
                """INSERT INTO read_tokens (site_id, token_hash) VALUES ($1, $2)
                   ON CONFLICT (site_id) DO UPDATE
                   SET token_hash = EXCLUDED.token_hash, created_at = now()""",
                site_id,
                _h(token),
            )
            await c.execute("DELETE FROM read_sessions WHERE site_id = $1", site_id)
        return token

    async def revoke_token(self, site_id: str) -> bool:
        """Withdraw the site's read token and end its sessions; False if it had none."""
        async with self.db.pool.acquire() as c, c.transaction():
            done = await c.fetchval(
                "DELETE FROM read_tokens WHERE site_id = $1 RETURNING site_id", site_id
            )
            await c.execute("DELETE FROM read_sessions WHERE site_id = $1", site_id)
        return done is not None

    async def site_for_token(self, token: str) -> str | None:
        """The site holding read token ``token``, or None."""
        async with self.db.pool.acquire() as c:
            return await c.fetchval(  # type: ignore[no-any-return]
                "SELECT site_id FROM read_tokens WHERE token_hash = $1", _h(token)
            )

    async def new_session(self, site_id: str, ttl: timedelta) -> str:
        """A session for ``site_id``; returns the cookie value."""
        session = secrets.token_urlsafe(32)
        async with self.db.pool.acquire() as c:
            await c.execute(
                """INSERT INTO read_sessions (token_hash, site_id, expires_at)
                   VALUES ($1, $2, now() + $3)""",
                _h(session),
                site_id,
                ttl,
            )
            await c.execute("DELETE FROM read_sessions WHERE expires_at < now()")
        return session

    async def session_site(self, session: str) -> str | None:
        """The site of a live session, or None."""
        if not session or len(session) > 100:
            return None
        async with self.db.pool.acquire() as c:
            return await c.fetchval(  # type: ignore[no-any-return]
                "SELECT site_id FROM read_sessions WHERE token_hash = $1 AND expires_at > now()",
                _h(session),
            )

    async def end_session(self, session: str) -> None:
        """Log out."""
        async with self.db.pool.acquire() as c:
            await c.execute(
                "DELETE FROM read_sessions WHERE token_hash = $1", _h(session)
            )
