"""TURN REST API credentials (meetup_protocol/turn.py) and what a TURN URL says about its path."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from meetup_protocol.turn import PATH_ORDER, turn_credentials, turn_url_path


def test_credential_matches_a_vector_computed_elsewhere() -> None:
    # echo -n "1700000000:p_0123456789abcdef" | openssl dgst -sha1 -hmac north-wind -binary | base64
    username, credential = turn_credentials("north-wind", "p_0123456789abcdef", 1700000000)
    assert username == "1700000000:p_0123456789abcdef"
    assert credential == "W5WUTXpQS9Rl9+x2t61MVDdcous="


def test_credential_is_the_hmac_sha1_of_the_username_that_coturn_recomputes() -> None:
    username, credential = turn_credentials("s" * 40, "p_abc", 2_000_000_000)
    expected = base64.b64encode(hmac.new(b"s" * 40, username.encode(), hashlib.sha1).digest()).decode()
    assert credential == expected
    assert "s" * 40 not in username + credential
    # Another secret, user or expiry gives another credential.
    assert turn_credentials("t" * 40, "p_abc", 2_000_000_000)[1] != credential
    assert turn_credentials("s" * 40, "p_abd", 2_000_000_000)[1] != credential
    assert turn_credentials("s" * 40, "p_abc", 2_000_000_001)[1] != credential


def test_a_user_with_a_colon_is_refused() -> None:
    with pytest.raises(ValueError):
        turn_credentials("secret", "a:b", 1)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("turn:turn.example.com", "turn/udp"),
        ("turn:10.0.0.1:3478?transport=udp", "turn/udp"),
        ("turn:10.0.0.1:3478?transport=tcp", "turn/tcp"),
        ("turns:turn.example.com:443?transport=tcp", "turn/tls"),
        ("turns:127.0.0.1:5349", "turn/tls"),
        ("turn:[::1]:3478?transport=tcp", "turn/tcp"),
        # Not RFC 7065, and aiortc and browsers ignore it silently: refused here.
        ("turn:10.0.0.1:5349?transport=tls", None),
        ("turns:10.0.0.1:5349?transport=udp", None),
        ("stun:10.0.0.1:3478", None),
        ("turn:10.0.0.1:3478?transport=tcp&x=1", None),
    ],
)
def test_url_path(url: str, path: str | None) -> None:
    assert turn_url_path(url) == path


def test_direct_comes_first_then_turn_udp_tcp_tls() -> None:
    assert PATH_ORDER == ("direct", "turn/udp", "turn/tcp", "turn/tls")
