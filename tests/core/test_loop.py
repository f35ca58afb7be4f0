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


# -- the worker primitive: backoff inside the cap, failed loops restarted and logged ---------
async def test_backoff_jitter_stays_within_the_cap() -> None:
    from exchange.service.loop import Backoff

    b = Backoff(base=0.1, cap=1.0)
    delays = [b.delay(n) for n in range(1, 40) for _ in range(200)]
    assert max(delays) <= 1.0  # never above backoff_max_s (jitter applied inside)
    assert min(delays) >= 0.05
    assert max(b.delay(30) for _ in range(200)) > 0.9  # and it does reach the cap


class _Flaky(BackgroundLoop):
    task_name = "flaky"

    def __init__(self) -> None:
        from exchange.service.loop import Backoff

        self.restart_backoff = Backoff(0.01, 0.02)
        self.calls = 0
        self.healthy = asyncio.Event()

    async def _run(self) -> None:
        self.calls += 1
        if self.calls <= 2:
            raise RuntimeError(f"failure {self.calls}")
        self.healthy.set()
        await asyncio.sleep(3600)


async def test_a_failing_loop_is_logged_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = _Flaky()
    loop.start()
    try:
        await asyncio.wait_for(loop.healthy.wait(), timeout=10)
    finally:
        await loop.stop()
    assert loop.calls == 3
    failures = [r for r in caplog.records if "flaky failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info for r in failures)


async def test_keyed_loops_restart_a_failed_key_and_stop_removed_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from exchange.service.loop import Backoff, KeyedLoops

    wanted = {"a", "b"}
    runs: dict[str, int] = {"a": 0, "b": 0}
    a_back = asyncio.Event()

    async def keys() -> set[str]:
        return set(wanted)

    async def body(key: str) -> None:
        runs[key] += 1
        if key == "a" and runs["a"] == 1:
            raise ConnectionError("database went away")
        if key == "a":
            a_back.set()
        await asyncio.sleep(3600)

    loops: KeyedLoops[str] = KeyedLoops(
        "test", keys, body, poll_s=0.01, backoff=Backoff(0.01, 0.02)
    )
    loops.start()
    try:
        await asyncio.wait_for(a_back.wait(), timeout=10)
        assert loops.serving == {"a", "b"} and runs == {"a": 2, "b": 1}
        wanted.discard("b")
        for _ in range(500):
            if loops.serving == {"a"}:
                break
            await asyncio.sleep(0.01)
        assert loops.serving == {"a"}
    finally:
        await loops.stop()
    assert loops.serving == set()
    assert any("test a failed" in r.getMessage() and r.exc_info for r in caplog.records)
