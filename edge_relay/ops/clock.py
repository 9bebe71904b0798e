"""Is this relay's wall clock right? Estimated from what others it can authenticate say the time is.

A relay with a wrong clock is silently useless: ahead, it refuses every join token as expired; behind,
as not yet valid; either way the cluster drops its gossip as stale (beyond the replay window) and it
never joins. A bounded skew is tolerated where that is safe (``CLOCK_LEEWAY_S`` on token times; the
gossip's replay window); a larger one must be seen, reported (``/metrics``, ``/healthz`` answers 503 so
the orchestrator replaces the task, the registry entry stops taking joins) and logged.

Two references, both authenticated so nobody can fake a skew into us:

- the API: every join token (signature checked, even when its times are refused) carries the API's
  clock at issue (``iat``), and clients use their token within seconds of getting it;
- the other relays: every sealed gossip message carries its sender's clock (``sent_ms``).

How much each is worth, since a participant can hold a valid token for minutes, or an old one for ever:

- a token's ``iat`` can never be later than the truth, so the *latest* recent one is the best estimate,
  and "we are behind" (a token from the future) cannot be faked;
- "we are ahead" can be faked by presenting old tokens, so it needs a second word: two relays that agree,
  or, in a cluster too small to ask, tokens of three different participants.
- the other relays decide both ways when more than half of them (at least two) agree on the direction:
  with one peer it could be either of us, and one relay off must not make the others think they are.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

#: Skew beyond which the relay calls itself unhealthy. Token checks tolerate CLOCK_LEEWAY_S already
#: (meetup_protocol/tokens.py); the gossip tolerates its replay window (60 s by default).
SKEW_BOUND_S = 30.0
#: Observations older than this are forgotten (a corrected clock heals within that).
FRESH_S = 120.0


class ClockCheck:
    def __init__(self, bound_s: float = SKEW_BOUND_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.bound_s = bound_s
        self.clock = clock
        #: (the API's clock minus ours in seconds, who presented the token, when: monotonic)
        self._api: list[tuple[float, str, float]] = []
        self._peers: dict[str, tuple[float, float]] = {}

    def observe_api(self, their_minus_ours_s: float, presenter: str) -> None:
        """A join token's ``iat`` minus our time of receipt (slightly negative when all is well)."""
        now = self.clock()
        fresh = [o for o in self._api if now - o[2] < FRESH_S][-50:]
        self._api = [*fresh, (their_minus_ours_s, presenter, now)]

    def observe_peer(self, peer: str, their_minus_ours_s: float) -> None:
        self._peers[peer] = (their_minus_ours_s, self.clock())

    def _peer_offset(self) -> float | None:
        """What most other relays say, or None: beyond the bound only if more than half agree on the
        direction (one relay off must not make the others think they are), at least two asked."""
        now = self.clock()
        peers = [o for o, at in self._peers.values() if now - at < FRESH_S]
        if len(peers) < 2:
            return None
        for side in ([o for o in peers if o > self.bound_s], [o for o in peers if o < -self.bound_s]):
            if len(side) * 2 > len(peers):
                return statistics.median(side)
        return statistics.median([o for o in peers if abs(o) <= self.bound_s] or [0.0])

    def _api_offset(self) -> tuple[float, int] | None:
        now = self.clock()
        recent = [(o, who) for o, who, at in self._api if now - at < FRESH_S]
        if not recent:
            return None
        return max(o for o, _ in recent), len({who for _, who in recent})

    @property
    def offset_s(self) -> float | None:
        """How far the others' clocks are from ours (positive: ours is behind), or None (no word yet)."""
        api, peers = self._api_offset(), self._peer_offset()
        if api is not None and (api[0] > self.bound_s or peers is None):
            return api[0]
        return peers

    @property
    def skewed(self) -> bool:
        api, peers = self._api_offset(), self._peer_offset()
        if api is not None and api[0] > self.bound_s:
            return True  # a token from the future: nobody can make one up
        if peers is not None:
            return abs(peers) > self.bound_s
        return api is not None and api[0] < -self.bound_s and api[1] >= 3
