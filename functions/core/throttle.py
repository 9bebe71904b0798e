"""Brute-force throttles on secrets people guess: meeting passcodes and passwords.

Failures are counted per bucket (a user, a source address, a meeting, an email) in fixed windows; when a
bucket is past its limit, attempts are refused with 429 and ``Retry-After`` until its window ends, without
testing the secret. Counters live in DynamoDB (shared by every Lambda instance) and expire by TTL.

Two kinds of bucket, because of concurrency:

* **shared** buckets (a meeting, an address, an email) count failures only: read before, ``ADD 1`` after a
  failure. Many people join one meeting, or sit behind one office NAT, at the same moment, and their right
  passcodes must not be refused. The price: a burst can overshoot the limit by the requests in flight.
* **strict** buckets (one user) *reserve* a slot with an atomic ``ADD 1`` before the secret is tested, and
  give it back on success. One user has no business guessing concurrently, so a burst gets exactly
  ``limit`` tries, no more.
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
    strict: bool = False


class Attempt:
    """One guess at a secret. Construct before testing it, then call ``failed()`` or ``succeeded()``."""

    def __init__(self, buckets: list[Bucket]) -> None:
        window = get_settings().throttle_window_s
        now = time.time()
        index = int(now // window)
        self._retry_after = max(1, int((index + 1) * window - now))
        self._expires = datetime.fromtimestamp((index + 2) * window, UTC)
        self._shared = [f"{b.scope}#{b.subject}#{index}" for b in buckets if not b.strict]
        self._reserved: list[str] = []
        blocked: Bucket | None = None
        for bucket in buckets:
            key = f"{bucket.scope}#{bucket.subject}#{index}"
            if bucket.strict:
                self._reserved.append(key)
                over = self._add_failure(key) > bucket.limit
            else:
                over = _failures(key) >= bucket.limit
            if over and blocked is None:
                blocked = bucket
        if blocked is not None:
            self.succeeded()  # a refused attempt tests no secret: give reservations back
            count("ThrottledAttempts")
            logger.warning("attempt throttled", extra={"scope": blocked.scope})
            raise ApiError(
                429,
                "too_many_attempts",
                f"too many failed attempts; try again in {self._retry_after} s",
                headers={"Retry-After": str(self._retry_after)},
            )

    def failed(self) -> None:
        """The secret was wrong: count it in the shared buckets (strict ones keep their reservation)."""
        for key in self._shared:
            self._add_failure(key)

    def _add_failure(self, key: str) -> int:
        item = ThrottleModel(key)
        item.update(actions=[ThrottleModel.failures.add(1), ThrottleModel.expires_at.set(self._expires)])
        return int(item.failures)

    def succeeded(self) -> None:
        """The secret was right (or was not tested): return the strict reservations."""
        for key in self._reserved:
            ThrottleModel(key).update(actions=[ThrottleModel.failures.add(-1)])
        self._reserved = []


def _failures(key: str) -> int:
    try:
        return int(ThrottleModel.get(key, consistent_read=True).failures)
    except ThrottleModel.DoesNotExist:
        return 0
