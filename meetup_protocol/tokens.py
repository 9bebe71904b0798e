"""Signed tokens: access tokens for the API and join tokens for the relays.

Only PyJWT here, so that a relay can import this module to verify join tokens without the API's stack.
Access tokens are HS256 (the API alone signs and verifies them). Join tokens are EdDSA (Ed25519): the API
holds the private key, relays get the public key only, so a compromised relay cannot mint tokens.

*Notices* are what else the API tells relays, signed with the same key: a meeting ended, a participant's
tokens revoked (they left, or a host removed them), a host muted someone, a role changed, and each chat
message or reaction the API stored. A relay acts only on a
notice it verified, so what it fans out or enforces is exactly what the API accepted, whoever carries it
(the API itself, or the sender's client).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ISSUER = "meetup-edge"
#: Relays verify join tokens and notices with this much tolerance on their times (a relay's clock a
#: little off the API's must not refuse them); edge_relay/ops/clock.py reports a larger skew.
CLOCK_LEEWAY_S = 60
ACCESS_AUDIENCE = "meetup-api"
JOIN_AUDIENCE = "meetup-relay"
Role = Literal["host", "co_host", "guest"]
ROLES: tuple[str, ...] = ("host", "co_host", "guest")
#: Roles that may moderate (remove, mute others, lock): the host and its co-hosts.
MODERATORS: tuple[str, ...] = ("host", "co_host")


class TokenError(Exception):
    """A token is malformed, forged, expired or meant for something else."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class JoinClaims:
    """What a relay learns from a join token: who joins which meeting, in which role, within which limits.

    The limits travel in the token so that a relay enforces them without calling the API.
    """

    meeting_id: str
    participant_id: str
    user_id: str
    display_name: str
    role: Role
    expires_at: int
    meeting_ends_at: int
    max_participants: int
    #: How many times the API admitted this participant (a leave and a new join make a new one): a
    #: relay refuses the tokens of a generation that was revoked by a leave.
    generation: int = 0
    #: Sources a host muted -> whether the participant may unmute them itself: the relay it joins
    #: blocks them from the start, so reconnecting (to any relay) escapes no mute.
    host_muted: dict[str, bool] = field(default_factory=dict)


NoticeKind = Literal["meeting_ended", "participant_revoked", "chat", "reaction", "muted", "role_changed"]
NOTICE_KINDS: tuple[str, ...] = (
    "meeting_ended",
    "participant_revoked",
    "chat",
    "reaction",
    "muted",
    "role_changed",
)


@dataclass(frozen=True)
class Notice:
    """A fact about a meeting, signed by the API for the relays (see the module docstring)."""

    kind: NoticeKind
    meeting_id: str
    data: dict[str, Any]


def _decode(token: str, key: object, algorithm: str, audience: str, typ: str, leeway: int = 0) -> dict:
    try:
        claims = jwt.decode(
            token,
            key,  # type: ignore[arg-type]
            algorithms=[algorithm],
            audience=audience,
            issuer=ISSUER,
            leeway=leeway,
            options={"require": ["exp", "iat", "sub", "typ"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token_expired", "the token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenError("token_not_yet_valid", "the token is not valid yet (issued in the future)") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError("token_invalid", "the token is not valid") from exc
    if claims.get("typ") != typ:
        raise TokenError("token_invalid", "the token is not valid here")
    return claims


def _registered(audience: str, subject: str, typ: str, expires_at: int) -> dict[str, Any]:
    """What every token here carries: RFC 7519's registered claims (issued now) and its own type."""
    return {
        "iss": ISSUER,
        "aud": audience,
        "sub": subject,
        "typ": typ,
        "iat": int(time.time()),
        "exp": expires_at,
    }


def issue_access_token(user_id: str, secret: bytes, ttl_s: int) -> str:
    payload = _registered(ACCESS_AUDIENCE, user_id, "access", int(time.time()) + ttl_s)
    payload["jti"] = secrets.token_urlsafe(12)
    return jwt.encode(payload, secret, algorithm="HS256")


def verify_access_token(token: str, secret: bytes) -> str:
    """Return the user id the token was issued to."""
    return str(_decode(token, secret, "HS256", ACCESS_AUDIENCE, "access")["sub"])


def issue_join_token(claims: JoinClaims, private_key: Ed25519PrivateKey) -> str:
    payload = {
        **_registered(JOIN_AUDIENCE, claims.user_id, "join", claims.expires_at),
        "mtg": claims.meeting_id,
        "pid": claims.participant_id,
        "name": claims.display_name,
        "role": claims.role,
        "mend": claims.meeting_ends_at,
        "maxp": claims.max_participants,
        "gen": claims.generation,
    }
    if claims.host_muted:
        payload["hmu"] = claims.host_muted
    return jwt.encode(payload, private_key, algorithm="EdDSA")


def verify_join_token(token: str, public_key: Ed25519PublicKey, meeting_id: str | None = None) -> JoinClaims:
    """Verify a join token offline (signature, expiry, audience, and the meeting when given)."""
    c = _decode(token, public_key, "EdDSA", JOIN_AUDIENCE, "join", CLOCK_LEEWAY_S)
    try:
        claims = JoinClaims(
            meeting_id=str(c["mtg"]),
            participant_id=str(c["pid"]),
            user_id=str(c["sub"]),
            display_name=str(c.get("name", "")),
            role=c["role"],
            expires_at=int(c["exp"]),
            meeting_ends_at=int(c["mend"]),
            max_participants=int(c["maxp"]),
            generation=int(c.get("gen", 0)),
            host_muted=_host_muted(c.get("hmu", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenError("token_invalid", "the join token lacks required claims") from exc
    if claims.role not in ROLES:
        raise TokenError("token_invalid", "the join token has an unknown role")
    if meeting_id is not None and claims.meeting_id != meeting_id:
        raise TokenError("token_wrong_meeting", "the join token is for another meeting")
    return claims


def _host_muted(value: object) -> dict[str, bool]:
    if not isinstance(value, dict) or len(value) > 3:
        raise TypeError("hmu")
    muted = {str(k): v for k, v in value.items() if k in ("camera", "microphone", "screen")}
    if len(muted) != len(value) or not all(type(v) is bool for v in muted.values()):
        raise TypeError("hmu")
    return muted


def signed_issue_time(token: str, public_key: Ed25519PublicKey) -> tuple[int, str] | None:
    """The ``iat`` and subject of a token the API really signed, whatever its times say (None for
    anything else): the API's clock, for a relay checking its own (edge_relay/ops/clock.py)."""
    try:
        claims = jwt.decode(
            token,
            public_key,
            algorithms=["EdDSA"],
            audience=JOIN_AUDIENCE,
            issuer=ISSUER,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidTokenError:
        return None
    iat, sub = claims.get("iat"), claims.get("sub")
    return (iat, sub) if type(iat) is int and isinstance(sub, str) else None


def issue_notice(
    kind: NoticeKind, meeting_id: str, data: dict[str, Any], private_key: Ed25519PrivateKey, ttl_s: int
) -> str:
    """Sign a notice for the relays; ``data`` holds plain JSON values only."""
    payload = {
        **_registered(JOIN_AUDIENCE, meeting_id, "notice", int(time.time()) + ttl_s),
        "knd": kind,
        "dat": data,
    }
    return jwt.encode(payload, private_key, algorithm="EdDSA")


def verify_notice(token: str, public_key: Ed25519PublicKey, kind: str | None = None) -> Notice:
    """Verify a notice offline (signature, expiry, audience, and its kind when given)."""
    c = _decode(token, public_key, "EdDSA", JOIN_AUDIENCE, "notice", CLOCK_LEEWAY_S)
    if c.get("knd") not in NOTICE_KINDS or not isinstance(c.get("dat"), dict):
        raise TokenError("token_invalid", "the notice is not well-formed")
    if kind is not None and c["knd"] != kind:
        raise TokenError("token_invalid", f"the notice is not a {kind} notice")
    return Notice(kind=c["knd"], meeting_id=str(c["sub"]), data=c["dat"])


def generate_join_keypair() -> tuple[str, str]:
    """A fresh Ed25519 key pair as (private PEM, public PEM), for the local stack and tests."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def load_private_key(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the join signing key must be an Ed25519 private key")
    return key


def load_public_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the join verification key must be an Ed25519 public key")
    return key
