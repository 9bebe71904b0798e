"""Join tokens: the role and host mutes they carry, and what a relay refuses of them."""

from __future__ import annotations

import time

import jwt
import pytest

from meetup_protocol.tokens import (
    JoinClaims,
    TokenError,
    generate_join_keypair,
    issue_join_token,
    load_private_key,
    load_public_key,
    verify_join_token,
)

PRIVATE, PUBLIC = generate_join_keypair()


def claims(**changes: object) -> JoinClaims:
    now = int(time.time())
    base = dict(
        meeting_id="1234567890",
        participant_id="p_0123456789abcdef",
        user_id="u1",
        display_name="Ann",
        role="co_host",
        expires_at=now + 60,
        meeting_ends_at=now + 3600,
        max_participants=10,
    )
    return JoinClaims(**{**base, **changes})  # type: ignore[arg-type]


def test_role_and_host_mutes_round_trip() -> None:
    token = issue_join_token(claims(host_muted={"microphone": False}), load_private_key(PRIVATE))
    got = verify_join_token(token, load_public_key(PUBLIC))
    assert got.role == "co_host" and got.host_muted == {"microphone": False}
    plain = verify_join_token(issue_join_token(claims(), load_private_key(PRIVATE)), load_public_key(PUBLIC))
    assert plain.host_muted == {}


@pytest.mark.parametrize(
    "hmu", [[], {"keyboard": True}, {"microphone": "yes"}, {"a": 1, "b": 2, "c": 3, "d": 4}, "muted"]
)
def test_a_malformed_mute_claim_is_refused(hmu: object) -> None:
    token = issue_join_token(claims(), load_private_key(PRIVATE))
    payload = jwt.decode(token, options={"verify_signature": False})
    payload["hmu"] = hmu
    forged = jwt.encode(payload, load_private_key(PRIVATE), algorithm="EdDSA")  # signed, but malformed
    with pytest.raises(TokenError) as refused:
        verify_join_token(forged, load_public_key(PUBLIC))
    assert refused.value.code == "token_invalid"


def test_an_unknown_role_is_refused() -> None:
    token = issue_join_token(claims(role="owner"), load_private_key(PRIVATE))
    with pytest.raises(TokenError):
        verify_join_token(token, load_public_key(PUBLIC))
