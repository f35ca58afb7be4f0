"""A background loop that a service starts and stops with the node or the HTTP app."""

from __future__ import annotations

import abc
import asyncio
import contextlib

__all__ = ["BackgroundLoop"]


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
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @abc.abstractmethod
    async def _run(self) -> None:
        """The loop's body."""
