"""Token buckets per principal: a steady rate with a burst allowance (pure, clock injected)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """``rate`` requests per second with bursts of ``burst``; ``rate <= 0`` disables it.

    Args:
        rate: Sustained requests per second per key.
        burst: Bucket size.
    """

    rate: float
    burst: float
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def check(self, key: str, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens for ``key``; returns 0 if allowed, else seconds to wait."""
        if self.rate <= 0:
            return 0.0
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) > 100_000:
                self._buckets.clear()
            b = self._buckets[key] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
        b.at = now
        if b.tokens >= cost:
            b.tokens -= cost
            return 0.0
        return (cost - b.tokens) / self.rate
