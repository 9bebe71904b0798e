"""Which relays a joining client is offered, best first (LiveKit-style region-aware selection).

Candidates are the live relays of the registry (heartbeat fresh, not draining, below capacity) plus any
configured statically (``MEETUP_RELAYS``). Relays of the client's region come first, then by load. The
SDK's RTT probe makes the final pick; in the cloud, latency-based DNS does the coarse part.
"""

from __future__ import annotations

import os
import time

from functions.core.config import get_settings
from functions.core.observability import logger
from functions.models import RelayModel
from meetup_protocol.schemas.meetings import RelayOut

HEARTBEAT_FRESH_S = 3 * float(os.environ.get("MEETUP_RELAY_HEARTBEAT_S", "2"))  # three missed heartbeats
MAX_OFFERED = 5
_cache: tuple[float, list[RelayModel]] = (0.0, [])
CACHE_S = 1.0


def registered_relays() -> list[RelayModel]:
    """Registry entries whose heartbeat is fresh, draining or full ones too (cached for a second:
    every join reads this)."""
    global _cache
    now = time.time()
    if now - _cache[0] > CACHE_S:
        try:
            entries = list(RelayModel.scan())
        except Exception:  # the registry is an optimisation over static config, never a hard dependency
            logger.exception("relay registry unavailable")
            entries = []
        _cache = (now, entries)
    # A heartbeat from the future is no fresher than an old one: its relay's clock is wrong (ahead), and
    # it refuses every join token as expired (edge_relay/ops/clock.py).
    return [r for r in _cache[1] if abs(now - float(r.heartbeat_at)) < HEARTBEAT_FRESH_S]


def live_relays() -> list[RelayModel]:
    """Registered relays that may take a join now."""
    return [r for r in registered_relays() if not r.draining and r.participants < r.capacity]


def rank_relays(region_hint: str | None) -> list[RelayOut]:
    ranked = sorted(
        live_relays(),
        key=lambda r: (
            0 if region_hint and r.region == region_hint else 1,
            float(r.participants) / float(r.capacity),
        ),
    )
    offered = [RelayOut(url=r.url, region=r.region) for r in ranked]
    static = sorted(get_settings().relays, key=lambda r: 0 if region_hint and r.region == region_hint else 1)
    for relay in static:
        if all(o.url != relay.url for o in offered):
            offered.append(RelayOut(url=relay.url, region=relay.region))
    if region_hint:  # keep the hinted region first across both sources
        offered.sort(key=lambda o: 0 if o.region == region_hint else 1)
    return offered[:MAX_OFFERED]
