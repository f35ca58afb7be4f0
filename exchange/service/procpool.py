"""Helper processes for CPU-bound work (item checks, search tokenizing).

One Python process runs on one core. The node's event loop should spend its time on
requests and the database; pure CPU work that needs no I/O is handed to a small pool of
helper processes, started from a *forkserver* that has already imported what they run,
so starting one costs a fork, not an interpreter start-up.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

__all__ = ["helper_pool"]

# Imported once by the forkserver; every helper forked from it inherits them.
_PRELOAD = ["exchange.service.verify_pool", "exchange.storage.search"]
_configured = False


def helper_pool(processes: int) -> ProcessPoolExecutor:
    """A pool of ``processes`` helpers forked from this process's forkserver."""
    global _configured
    ctx = multiprocessing.get_context("forkserver")
    if not _configured:
        ctx.set_forkserver_preload(_PRELOAD)
        _configured = True
    return ProcessPoolExecutor(max_workers=processes, mp_context=ctx)
