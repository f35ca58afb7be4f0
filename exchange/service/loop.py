"""A background loop that a service starts and stops with the node or the HTTP app."""

from __future__ import annotations

import abc
import asyncio
import contextlib

__all__ = ["BackgroundLoop", "cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling again if it goes on.

    On Python 3.11, ``asyncio.wait_for`` returns its result and *drops* a cancellation
    that arrives just as the awaited future completes; a loop waiting with
    ``wait_for(event.wait(), timeout)`` can then run on, and a plain ``cancel(); await``
    waits for it forever. The cancellation is therefore repeated until the task is done.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.cancelled():
        with contextlib.suppress(asyncio.CancelledError):
            exc = task.exception()
            if exc is not None:
                raise exc


class BackgroundLoop(abc.ABC):
    """Runs :meth:`_run` as one task between :meth:`start` and :meth:`stop`.

    Subclasses set :attr:`task_name` (shown in task dumps) and implement :meth:`_run`,
    which normally loops until cancelled.
    """

    task_name = "background-loop"
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (once; starting a running loop does nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.task_name)

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    @abc.abstractmethod
    async def _run(self) -> None:
        """The loop's body."""
