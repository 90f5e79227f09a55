"""Token buckets behind the fake server's RPM/TPM limits, and OpenAI's reset-time format."""

from __future__ import annotations

import time


class Bucket:
    """A token bucket: `capacity` units, refilled at `rate` per second."""

    def __init__(self, per_minute: int, burst_s: float) -> None:
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (0 = now); nothing is taken."""
        self._refill()
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount

    def remaining(self) -> int:
        self._refill()
        return max(0, int(self.level))

    def reset_s(self) -> float:
        return (self.capacity - self.level) / self.rate if self.level < self.capacity else 0.0


def go_duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* format: "20ms", "1.5s", "6m0s"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s"
