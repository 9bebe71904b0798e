"""Rate limits on what a user may make the platform store and fan out (chat messages, reactions).

Not a guess at a secret (functions/core/throttle.py): every post spends one unit of the user's budget for
the current fixed window, right or wrong, and nothing is given back. The spend is one conditional
``ADD 1`` in the throttles table (shared by every Lambda instance), so a burst gets exactly ``limit``
posts through, never more; the refused ones answer 429 with ``Retry-After`` (the SDK's and the web
client's outboxes wait that long and retry with the same idempotency key).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pynamodb.exceptions import UpdateError

from functions.core.config import get_settings
from functions.core.errors import ApiError
from functions.core.observability import count
from functions.models import ThrottleModel


def spend(scope: str, subject: str, limit: int, what: str) -> None:
    """One unit of ``subject``'s ``limit`` per window for ``scope``, or ApiError 429."""
    window = get_settings().throttle_window_s
    now = time.time()
    index = int(now // window)
    item = ThrottleModel(f"{scope}#{subject}#{index}")
    try:
        item.update(
            actions=[
                ThrottleModel.failures.add(1),
                ThrottleModel.expires_at.set(datetime.fromtimestamp((index + 2) * window, UTC)),
            ],
            condition=ThrottleModel.failures.does_not_exist() | (ThrottleModel.failures < limit),
        )
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        retry_after = max(1, int((index + 1) * window - now))
        count("RateLimited")
        raise ApiError(
            429,
            "rate_limited",
            f"at most {limit} {what} per {window} s; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        ) from None
