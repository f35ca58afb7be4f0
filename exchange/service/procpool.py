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

__all__ = ["helper_pool", "lower_priority", "start_helper_pool"]

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


def _start_helper(node_pid: int, nice: int) -> None:
    """Pool initializer: lower the helper's CPU priority by ``nice`` (background work),
    and end it when the node process is gone."""
    if nice:
        os.nice(nice)
    _watch_node(node_pid)


def _watch_node(node_pid: int, interval: float = 0.5) -> None:
    """End this helper when the node process is gone."""

    def watch() -> None:
        while _alive(node_pid):
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="watch-node", daemon=True).start()


def helper_pool(processes: int, *, nice: int = 0) -> ProcessPoolExecutor:
    """A pool of ``processes`` helpers forked from this process's forkserver, each
    ``nice`` steps below the node's CPU priority (0: the same)."""
    global _configured
    ctx = multiprocessing.get_context("forkserver")
    if not _configured:
        ctx.set_forkserver_preload(_PRELOAD)
        _configured = True
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=ctx,
        initializer=_start_helper,
        initargs=(os.getpid(), nice),
    )


def _warm(processes: int, nice: int) -> ProcessPoolExecutor:
    pool = helper_pool(processes, nice=nice)
    # Starting helpers (and, the first time, the forkserver) blocks; do it here, off the
    # event loop: one quick task per helper makes the pool start all of them now.
    list(pool.map(abs, range(processes)))
    return pool


async def start_helper_pool(processes: int, *, nice: int = 0) -> ProcessPoolExecutor:
    """:func:`helper_pool` with its helpers started in a thread, not on the event loop."""
    import asyncio

    return await asyncio.to_thread(_warm, processes, nice)


def lower_priority(pid: int, nice: int) -> bool:
    """Lower the CPU priority of process ``pid`` (a PostgreSQL backend of this host)
    by ``nice`` steps; False when it is not a PostgreSQL process here or may not be
    changed. Best effort: the work still runs, only after what is more urgent."""
    if nice <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if not f.read().startswith(b"postgres"):
                return False
        current = os.getpriority(os.PRIO_PROCESS, pid)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, current + nice))
    except OSError:  # gone, not ours, or no /proc (not Linux)
        return False
    return True
