"""Which relays a joining client is offered, best first.

For now the candidates come from configuration (``MEETUP_RELAYS``); the client's region hint puts relays
of its region first, keeping the configured order otherwise. The SDK's RTT probe makes the final pick.
"""

from __future__ import annotations

from functions.core.config import get_settings
from functions.schemas.meetings import RelayOut


def rank_relays(region_hint: str | None) -> list[RelayOut]:
    relays = get_settings().relays
    ranked = sorted(relays, key=lambda r: 0 if region_hint and r.region == region_hint else 1)
    return [RelayOut(url=r.url, region=r.region) for r in ranked]
