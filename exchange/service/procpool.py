"""Helper processes for CPU-bound work (item checks, search tokenizing).

One Python process runs on one core. The node's event loop should spend its time on
requests and the database; pure CPU work that needs no I/O is handed to a small pool of
helper processes, started from a *forkserver* that has already imported what they run,
so starting one costs a fork, not an interpreter start-up.

A helper must not outlive its node: a pool worker waits on a queue whose write end it
also holds, so it would never see the node die (SIGKILL, OOM). Each helper therefore
watches the node's process and exits as soon as it is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["helper_pool", "start_helper_pool"]

# Imported once by the forkserver; every helper forked from it inherits them.
_PRELOAD = ["exchange.service.verify_pool", "exchange.storage.search"]
_configured = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (the pid was reused)
        return False
    return True


def _watch_node(node_pid: int, interval: float = 0.5) -> None:
    """Pool initializer: end this helper when the node process is gone."""

    def watch() -> None:
        while _alive(node_pid):
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="watch-node", daemon=True).start()


def helper_pool(processes: int) -> ProcessPoolExecutor:
    """A pool of ``processes`` helpers forked from this process's forkserver."""
    global _configured
    ctx = multiprocessing.get_context("forkserver")
    if not _configured:
        ctx.set_forkserver_preload(_PRELOAD)
        _configured = True
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=ctx,
        initializer=_watch_node,
        initargs=(os.getpid(),),
    )


def _warm(processes: int) -> ProcessPoolExecutor:
    pool = helper_pool(processes)
    # Starting helpers (and, the first time, the forkserver) blocks; do it here, off the
    # event loop: one quick task per helper makes the pool start all of them now.
    list(pool.map(abs, range(processes)))
    return pool


async def start_helper_pool(processes: int) -> ProcessPoolExecutor:
    """:func:`helper_pool` with its helpers started in a thread, not on the event loop."""
    import asyncio

    return await asyncio.to_thread(_warm, processes)
