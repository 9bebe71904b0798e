"""Relay-to-relay credentials: a short-lived token signed with the cluster's shared secret.

A relay that joins a meeting on another relay (a cascade) presents one instead of a user's join token,
valid for a minute, for one meeting. It also carries the meeting's limits (from the dialing relay's own
participants' tokens). The accepting relay takes links only for meetings it has participants in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

AUDIENCE = "meetup-cascade"


@dataclass(frozen=True)
class LinkClaims:
    relay_id: str
    meeting_id: str
    max_participants: int
    meeting_ends_at: int


class LinkTokenError(Exception):
    pass


def issue_link_token(secret: str, claims: LinkClaims, ttl_s: int = 60) -> str:
    now = int(time.time())
    payload = {
        "aud": AUDIENCE,
        "sub": claims.relay_id,
        "mtg": claims.meeting_id,
        "maxp": claims.max_participants,
        "mend": claims.meeting_ends_at,
        "iat": now,
        "exp": now + ttl_s,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def verify_link_token(secret: str, token: str) -> LinkClaims:
    if not secret:
        raise LinkTokenError("this relay has no cluster secret: it accepts no cascades")
    try:
        c = jwt.decode(
            token, secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["exp", "sub"]}
        )
        return LinkClaims(str(c["sub"]), str(c["mtg"]), int(c["maxp"]), int(c["mend"]))
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError) as exc:
        raise LinkTokenError("the cascade token is not valid") from exc
