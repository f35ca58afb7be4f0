"""Stopping background loops: a loop that drops one cancellation is still stopped."""

from __future__ import annotations

import asyncio

import pytest

from exchange.service.loop import BackgroundLoop, cancel_and_wait

pytestmark = pytest.mark.asyncio


class _Stubborn(BackgroundLoop):
    """Drops the first cancellation, as ``asyncio.wait_for`` may on Python 3.11."""

    task_name = "stubborn"

    def __init__(self) -> None:
        self.swallowed = 0
        self.rounds = 0

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if self.swallowed == 0:
                    self.swallowed += 1
                    continue
                raise
            self.rounds += 1


async def test_a_loop_that_drops_a_cancellation_still_stops() -> None:
    loop = _Stubborn()
    loop.start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(loop.stop(), timeout=10)
    assert loop.swallowed == 1 and loop._task is None


async def test_an_error_of_the_loop_is_raised_by_stop() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="boom"):
        await cancel_and_wait(task)
