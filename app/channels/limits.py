"""Per-sender rate limits on the callbacks, checked before anything touches the database.

A token bucket per (channel, sender): `burst` messages at once, refilled at `per_minute`.
A sender over the limit gets one short notice (a passive reply, rendered from the generic
pack: no database read), then nothing until the bucket refills; what arrives meanwhile is
dropped and answered `success`/empty so WeChat does not re-send it. Other senders are not
affected. Buckets live in the process: with N app processes a sender gets up to N times
the rate, which is still a bound on a flood.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum

from app.clock import Clock

# Forget buckets idle this long (they would be full again anyway) once there are many.
_PRUNE_ABOVE = 10_000


class Verdict(Enum):
    ALLOW = "allow"
    NOTICE = "notice"  # first message over the limit: tell the sender once
    DROP = "drop"


@dataclass
class _Bucket:
    tokens: float
    at: float
    noticed: bool = False


class SenderLimiter:
    """Token buckets per sender; time from the injected clock."""

    def __init__(self, *, clock: Clock, burst: int, per_minute: float) -> None:
        self.clock = clock
        self.burst = max(1, burst)
        self.rate = max(per_minute, 0.001) / 60.0  # tokens per second
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, channel: str, sender: str) -> Verdict:
        """Take one token for this sender's message, or say what to do instead."""
        now = self.clock.now().timestamp()
        with self._lock:
            bucket = self._buckets.get((channel, sender))
            if bucket is None:
                if len(self._buckets) > _PRUNE_ABOVE:
                    self._prune(now)
                bucket = self._buckets[(channel, sender)] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                bucket.noticed = False
                return Verdict.ALLOW
            if not bucket.noticed:
                bucket.noticed = True
                return Verdict.NOTICE
            return Verdict.DROP

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key, bucket in list(self._buckets.items()):
            if now - bucket.at > full_after:
                del self._buckets[key]


def limiter_of(state: object) -> SenderLimiter:
    """The app's limiter, made on first use from its settings and clock."""
    limiter: SenderLimiter | None = getattr(state, "sender_limiter", None)
    if limiter is None:
        settings = state.settings  # type: ignore[attr-defined]
        limiter = SenderLimiter(
            clock=state.clock,  # type: ignore[attr-defined]
            burst=settings.callback_sender_burst,
            per_minute=settings.callback_sender_per_minute,
        )
        state.sender_limiter = limiter  # type: ignore[attr-defined]
    return limiter
