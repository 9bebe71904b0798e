"""Brute-force throttles on secrets people guess: meeting passcodes and passwords.

Failures are counted per bucket (a user, a source address, an email) in fixed windows; when a bucket is
past its limit, attempts are refused with 429 and ``Retry-After`` until its window ends, without testing
the secret. Counters live in DynamoDB (shared by every Lambda instance) and expire by TTL.

Two kinds of bucket, because of concurrency:

* **shared** buckets (an address, an email) count failures only: read before, ``ADD 1`` after a failure.
  Many people sit behind one office NAT and join at the same moment, and their right passcodes must not be
  refused. The price: a burst can overshoot the limit by the requests in flight.
* **strict** buckets (one user) *reserve* a slot with an atomic ``ADD 1`` before the secret is tested, and
  give it back on success. One user has no business guessing concurrently, so a burst gets exactly
  ``limit`` tries, no more.

**No bucket per meeting.** A per-meeting bucket (30 failures per window) let anyone lock a meeting: two
addresses' worth of wrong guesses, every window, and newcomers with the right passcode were refused. A
throttle must slow the guesser, not the meeting, so only the caller's own buckets (user, address) ever
refuse a passcode. What is counted per meeting is every wrong passcode over its lifetime
(:func:`count_meeting_failure`): the host sees it (``failed_join_attempts`` on ``GET /meetings/{id}``) and
past ``MEETUP_PASSCODE_FAILURES_ALERT_PER_MEETING`` (30) a warning and the ``MeetingPasscodeGuessing``
metric fire (an alarm's input). It refuses no one. Why guessing stays out of reach without it, with the
defaults:

* A generated passcode is 8 symbols of 31 (``functions/core/security.py``): 31**8 = 8.5e11 (39.6 bits).
* One address gets 20 failures per 300 s window: 5,760 guesses a day, and a meeting lives at most
  1,440 minutes (a day). One address's odds over a meeting's whole life: 5,760 / 8.5e11 = 6.8e-9.
  (The per-user bucket, 5 per window, binds less: accounts are free.)
* A botnet of N addresses: N x 6.8e-9; 10,000 addresses: 6.8e-5 (one meeting in 15,000).
* Whatever N, API Gateway's stage throttle (200 requests/s, ``infra/config.py``) caps all traffic at
  1.7e7 requests a day: at most 2.0e-5 for one meeting even if the whole API did nothing but guess it,
  every guess costs an argon2 verification, and the alert fires at the 30th failure.

Weak spot left as is: host-chosen passcodes (6 to 16 letters and digits; 36**6 = 2.2e9 if random) fall to
that API-wide cap with ~0.8 % a day, and human-chosen ones are worse: the lifetime count and alert are
the defence there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pynamodb.exceptions import UpdateError

from functions.core.config import get_settings
from functions.core.errors import ApiError
from functions.core.observability import count, logger
from functions.models import ThrottleModel


@dataclass(frozen=True)
class Bucket:
    scope: str  # e.g. "passcode-ip"
    subject: str  # e.g. the address (never a secret)
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


_MEETING_COUNT_TTL_S = 2 * 24 * 3600  # past any meeting's end (at most a day long)


def count_meeting_failure(meeting_id: str) -> int:
    """Count one wrong passcode against a meeting, over its lifetime; alert past the threshold.

    Kept in the throttles table, not on the meeting row: a conditional write there would conflict with the
    join transactions of the people being let in. Called for missing meeting ids too (the answer and its
    cost must not tell them apart); those counts just expire.
    """
    item = ThrottleModel(f"passcode-meeting#{meeting_id}")
    expires = datetime.fromtimestamp(time.time() + _MEETING_COUNT_TTL_S, UTC)
    try:
        item.update(actions=[ThrottleModel.failures.add(1), ThrottleModel.expires_at.set(expires)])
    except UpdateError:
        logger.exception("could not count a failed join")  # counting must never fail a request
        return 0
    failures = int(item.failures)
    threshold = get_settings().passcode_failures_alert_per_meeting
    # At the threshold and at every doubling after it: an alert, not a log line per guess.
    if failures >= threshold and failures % threshold == 0 and (failures // threshold).bit_count() == 1:
        count("MeetingPasscodeGuessing")
        logger.warning(
            "passcode guessing against a meeting",
            extra={"meeting_id": meeting_id, "failed_join_attempts": failures},
        )
    return failures


def meeting_failures(meeting_id: str) -> int:
    """Wrong passcodes tried against a meeting so far (what its host is shown)."""
    return _failures(f"passcode-meeting#{meeting_id}")
