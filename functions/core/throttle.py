"""Brute-force throttles on secrets people guess: meeting passcodes and passwords.

Each attempt first *reserves* a slot with an atomic ``ADD 1`` on the counter of the current fixed window
(so concurrent guesses cannot all slip past a read-then-write check); a successful attempt gives its slot
back. When any counter is past its limit, the attempt is refused with 429 and ``Retry-After`` until the
window ends. Counters live in DynamoDB (shared by every Lambda instance) and expire by TTL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from functions.core.config import get_settings
from functions.core.errors import ApiError
from functions.core.observability import count, logger
from functions.models import ThrottleModel


@dataclass(frozen=True)
class Bucket:
    scope: str  # e.g. "passcode-meeting"
    subject: str  # e.g. the meeting id (never a secret)
    limit: int


class Attempt:
    """Reserve on creation; call ``succeeded()`` to return the slots. A failure just keeps them."""

    def __init__(self, buckets: list[Bucket]) -> None:
        window = get_settings().throttle_window_s
        now = time.time()
        index = int(now // window)
        self._retry_after = max(1, int((index + 1) * window - now))
        self._expires = datetime.fromtimestamp((index + 2) * window, UTC)
        self._keys: list[str] = []
        blocked: Bucket | None = None
        for bucket in buckets:
            key = f"{bucket.scope}#{bucket.subject}#{index}"
            item = ThrottleModel(key)
            item.update(actions=[ThrottleModel.failures.add(1), ThrottleModel.expires_at.set(self._expires)])
            self._keys.append(key)
            if item.failures > bucket.limit and blocked is None:
                blocked = bucket
        if blocked is not None:
            # A refused attempt tests no secret: give the slots back, so that hammering a locked
            # bucket does not also fill the others (e.g. lock a whole meeting through one user).
            self.succeeded()
            count("ThrottledAttempts")
            logger.warning("attempt throttled", extra={"scope": blocked.scope})
            raise ApiError(
                429,
                "too_many_attempts",
                f"too many failed attempts; try again in {self._retry_after} s",
                headers={"Retry-After": str(self._retry_after)},
            )

    def succeeded(self) -> None:
        """Return the reserved slots (the secret was right, or the attempt was refused untried)."""
        for key in self._keys:
            ThrottleModel(key).update(actions=[ThrottleModel.failures.add(-1)])
