"""The TURN servers a join hands out: the configured URLs with credentials that expire with the join token
(the scheme: meetup_protocol/turn.py). The shared secret stays here; nothing long-lived reaches a client."""

from __future__ import annotations

from functions.core.config import Settings
from meetup_protocol.schemas.meetings import IceServer
from meetup_protocol.turn import turn_credentials


def ice_servers(settings: Settings, participant_id: str, expires_at: int) -> list[IceServer]:
    """One ``RTCIceServer`` with every configured URL, or none where TURN is not configured."""
    if not settings.turn_urls or settings.turn_secret is None:
        return []
    secret = settings.turn_secret.get_secret_value()
    username, credential = turn_credentials(secret, participant_id, expires_at)
    return [IceServer(urls=list(settings.turn_urls), username=username, credential=credential)]
