"""A token bucket: the per-peer rate limit of every stream protocol p2pdm serves."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; starts full at time ``at``."""

    rate: float
    burst: float
    tokens: float = field(default=0.0)
    at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def ready(self, now: float) -> bool:
        """True if :meth:`take` at ``now`` would succeed; spends nothing."""
        return min(self.burst, self.tokens + (now - self.at) * self.rate) >= 1

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; False if there is none."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
