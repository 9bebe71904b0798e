"""The TURN servers a join hands out: the configured URLs with credentials that expire with the join token
(the scheme: meetup_protocol/turn.py). The shared secret stays here; nothing long-lived reaches a client.

In the cloud the secret is read from Secrets Manager (``MEETUP_TURN_SECRET_ARN``; the version staged
``AWSCURRENT``), cached five minutes: after a rotation, warm functions sign with the previous secret that
long, which the TURN servers still accept (infra/runtime/turn_secret_rotation.py). The URLs may name their
region (every region's TURN server, from the CDK app): the region of the client's relay comes first, since
clients use the first TURN server they are given (aiortc takes only that one; the SDK plans its paths from
the first URL of each transport).
"""

from __future__ import annotations

from functions.core.config import Settings
from functions.core.security import load_secret_from_arn
from meetup_protocol.schemas.meetings import IceServer
from meetup_protocol.turn import turn_credentials


def turn_secret(settings: Settings) -> str | None:
    if settings.turn_secret is not None:
        return settings.turn_secret.get_secret_value()
    if settings.turn_secret_arn:
        return load_secret_from_arn(settings.turn_secret_arn)
    return None


def ice_servers(
    settings: Settings, participant_id: str, expires_at: int, region: str | None = None
) -> list[IceServer]:
    """One ``RTCIceServer`` per region's TURN URLs (``region``'s first), or none where TURN is not
    configured."""
    groups = settings.turn_urls_by_region()
    secret = turn_secret(settings) if groups else None
    if not secret:
        return []
    username, credential = turn_credentials(secret, participant_id, expires_at)
    order = sorted(groups, key=lambda r: 0 if region and r == region else 1)  # stable: config order
    return [IceServer(urls=groups[r], username=username, credential=credential) for r in order]
