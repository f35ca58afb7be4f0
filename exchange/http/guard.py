"""The listener's guard against hostile clients: deadlines and connection caps.

aiohttp's server has no header deadline of its own and accepts every connection. The
node's listener (:class:`GuardedSite`, used by ``exchange node up``) adds:

* **Header and idle deadline** (``http.idle_timeout_s``): a connection must deliver
  complete request headers within this time of connecting or of its last response
  (slow-loris, idle keep-alive); otherwise it is closed.
* **Connection caps**: at most ``http.max_connections`` open connections in all (also
  kept below the process's fd limit) and ``http.max_connections_per_address`` from one
  address (a ``http.trusted_proxies`` address counts toward the total only). A
  connection over a cap is answered ``503`` with ``Retry-After`` and closed,
  and it gets a short header deadline: never silence, never a held descriptor.
* **Handler deadline** (:func:`deadline_middleware`): a request may take
  ``http.handler_timeout_s`` plus the time its declared body needs at
  ``http.body_min_rate``; event streams and downloads are free once they started
  answering.
* **fd soft limit** (:func:`raise_fd_limit`): raised to the hard limit at start; the
  listen backlog is 1024 (the kernel caps it at ``net.core.somaxconn``).

Body deadlines (stall and minimum rate) are applied where bodies are read
(:mod:`exchange.http.body`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from exchange.config import HttpConfig
from exchange.errors import OperationalError, RequestTimeout
from schemas.errors import ErrorCode

from .keys import NODE

__all__ = [
    "ConnectionLimits",
    "GuardedSite",
    "deadline_middleware",
    "fd_limits",
    "raise_fd_limit",
    "runner_options",
]

_log = logging.getLogger(__name__)
FD_RESERVE = 256
"""Descriptors kept for everything but client connections (database pool, files)."""
OVER_CAP_DEADLINE = 2.0
"""Seconds an over-cap connection has to send its request before it is closed."""
RETRY_AFTER = 5
LISTEN_BACKLOG = 1024
"""Connections the kernel queues before the node accepts them (aiohttp's default is 128):
a burst past the queue is dropped by the kernel, and a client that sent nothing yet never
learns it (the node never sees the connection to answer or close it)."""


def fd_limits() -> tuple[int, int]:
    """The process's (soft, hard) limit on open file descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return int(soft), int(hard)


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft fd limit to the hard one (no privilege needed); returns the
    limits in force afterwards."""
    soft, hard = fd_limits()
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):  # a container may refuse: keep what we have
            _log.warning(
                "could not raise the open-file limit from %d to %d", soft, hard
            )
    return fd_limits()


def runner_options(cfg: HttpConfig) -> dict[str, Any]:
    """Keyword arguments for :class:`aiohttp.web.AppRunner`: aiohttp's keep-alive timer
    also runs from connect until the first request's headers, so it is the header
    deadline too; a refused body is drained for at most a second."""
    return {
        "keepalive_timeout": cfg.idle_timeout_s,
        "lingering_time": 0.25,
        "read_bufsize": 16384,
    }


class ConnectionLimits:
    """Counts of open connections, in all and per client address."""

    def __init__(
        self, total: int, per_address: int, proxies: tuple[str, ...] = ()
    ) -> None:
        self.total_cap = total
        self.per_address_cap = per_address
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in proxies]
        self._is_proxy: dict[str, bool] = {}
        self.total = 0
        self.by_address: dict[str, int] = {}
        self.refused = 0

    @classmethod
    def from_config(cls, cfg: HttpConfig) -> ConnectionLimits:
        soft, _ = fd_limits()
        total = cfg.max_connections
        if soft != resource.RLIM_INFINITY:
            total = max(16, min(total, soft - FD_RESERVE))
        return cls(total, cfg.max_connections_per_address, tuple(cfg.trusted_proxies))

    def _per_address_applies(self, address: str) -> bool:
        """A trusted proxy carries many clients: only the total cap applies to it."""
        if not self._proxies:
            return True
        known = self._is_proxy.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
                known = any(ip in net for net in self._proxies)
            except ValueError:
                known = False
            if len(self._is_proxy) < 10_000:
                self._is_proxy[address] = known
        return not known

    def admit(self, address: str) -> bool:
        """Count a new connection; whether it is within the caps."""
        self.total += 1
        n = self.by_address.get(address, 0) + 1
        self.by_address[address] = n
        ok = self.total <= self.total_cap and (
            not self.per_address_cap
            or n <= self.per_address_cap
            or not self._per_address_applies(address)
        )
        if not ok:
            self.refused += 1
        return ok

    def release(self, address: str) -> None:
        self.total -= 1
        n = self.by_address.get(address, 0) - 1
        if n > 0:
            self.by_address[address] = n
        else:
            self.by_address.pop(address, None)


async def _busy(request: web.BaseRequest) -> web.StreamResponse:
    resp = web.json_response(
        {
            "error": {
                "code": ErrorCode.OVERLOADED.value,
                "message": "节点连接已满，请稍后重试 / too many connections; retry later",
            }
        },
        status=503,
        headers={"Retry-After": str(RETRY_AFTER)},
    )
    resp.force_close()
    return resp


class _GuardedHandler(RequestHandler):
    """aiohttp's connection handler, counted against :class:`ConnectionLimits`."""

    def __init__(
        self, manager: Any, *, limits: ConnectionLimits, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self._address = address
        if not self._limits.admit(address):
            # Answer the one request it sends with 503 (then close), and do not wait
            # long for it.
            self._keepalive_timeout = min(self._keepalive_timeout, OVER_CAP_DEADLINE)
            self._request_handler = _busy
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._address is not None:
            self._limits.release(self._address)
            self._address = None
        super().connection_lost(exc)


class GuardedSite(web.TCPSite):
    """A TCP site whose connections are counted and capped (see module docstring)."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        limits: ConnectionLimits,
        backlog: int = LISTEN_BACKLOG,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, host, port, backlog=backlog, **kwargs)
        self.limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        options = dict(getattr(server, "_kwargs", {}))

        def factory() -> RequestHandler:
            return _GuardedHandler(server, limits=self.limits, loop=loop, **options)

        self._server = await loop.create_server(
            factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]


_DEADLINE = web.RequestKey("deadline", asyncio.Timeout)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def deadline_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Bound the time a request may take; see the module docstring."""
    cfg = request.app[NODE].config.http
    budget = cfg.handler_timeout_s
    if request.content_length and cfg.body_min_rate:
        budget += request.content_length / cfg.body_min_rate
    timeout = asyncio.timeout(budget)
    request[_DEADLINE] = timeout
    try:
        async with timeout:
            return await handler(request)
    except TimeoutError:
        if not timeout.expired():
            raise
        raise OperationalError(
            f"请求超时 / the request took over {budget:.0f} s and was stopped; retry later",
            code=ErrorCode.OVERLOADED,
            detail={"retry_after": RETRY_AFTER},
        ) from None
    finally:
        request.pop(_DEADLINE, None)  # the response is prepared after this


async def free_streams(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a response that has started streaming (events,
    downloads) is no longer bound by the handler deadline."""
    timeout = request.get(_DEADLINE)
    if timeout is not None and not timeout.expired():
        with contextlib.suppress(RuntimeError):  # already left
            timeout.reschedule(None)


def body_too_slow(limit_s: float) -> RequestTimeout:
    """The error for a body that stalled or came under the minimum rate."""
    return RequestTimeout(
        f"请求体发送过慢 / the request body came too slowly (nothing for {limit_s:g} s, or "
        "under the minimum rate); the connection is closed",
        code=ErrorCode.REQUEST_TIMEOUT,
    )
