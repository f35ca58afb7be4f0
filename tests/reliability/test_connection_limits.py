"""The listener's connection counting (``exchange.http.guard.ConnectionLimits``); the
caps themselves are exercised on a real node in ``test_hostile_clients.py``."""

from __future__ import annotations

from exchange.http.guard import ConnectionLimits


def test_caps_per_address_and_in_all_and_release() -> None:
    limits = ConnectionLimits(total=5, per_address=2)
    assert [limits.admit("203.0.113.7") for _ in range(3)] == [True, True, False]
    assert [limits.admit("198.51.100.1") for _ in range(3)] == [True, True, False]
    assert limits.total == 6 and limits.refused == 2
    for _ in range(3):
        limits.release("203.0.113.7")
    assert "203.0.113.7" not in limits.by_address
    assert limits.admit("203.0.113.7")  # freed slots are given again
    assert limits.admit("192.0.2.1") and not limits.admit("192.0.2.2")  # total of 5


def test_a_trusted_proxy_counts_toward_the_total_only() -> None:
    limits = ConnectionLimits(total=10, per_address=2, proxies=("10.0.0.0/8",))
    assert all(limits.admit("10.1.2.3") for _ in range(6))
    assert [limits.admit("203.0.113.7") for _ in range(3)] == [True, True, False]
    # A refused connection holds a descriptor until it closes: it counts too.
    assert [limits.admit("10.1.2.3") for _ in range(2)] == [True, False]  # total of 10
