"""The join response's TURN servers: none unless configured; with credentials that expire with the join
token and name the participant; the shared secret in no response and no log line."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator

import pytest

from meetup_protocol.tokens import load_public_key, verify_join_token
from tests.conftest import Api

SECRET = "a-turn-secret-that-must-never-leave-the-api-" + "x" * 8
URLS = ["turn:198.51.100.7:3478?transport=udp", "turn:198.51.100.7:3478?transport=tcp", "turns:turn.test:443"]


@pytest.fixture
def turn_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The API (in this process) reads MEETUP_TURN_* afresh; the stack's own settings come back after."""
    from functions.core.config import get_settings

    get_settings.cache_clear()
    try:
        yield monkeypatch
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def _configure(monkeypatch: pytest.MonkeyPatch, urls: str | None, secret: str | None) -> None:
    from functions.core.config import get_settings

    for name, value in (("MEETUP_TURN_URLS", urls), ("MEETUP_TURN_SECRET", secret)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def test_no_turn_configured_no_ice_servers(api: Api, turn_settings: pytest.MonkeyPatch) -> None:
    for urls, secret in ((None, None), (",".join(URLS), None), (None, SECRET)):
        _configure(turn_settings, urls, secret)
        meeting, host, _ = api.joined_meeting(0)
        body = api.post(f"/meetings/{meeting['meeting_id']}/join", host, json={}).json()
        assert body["ice_servers"] == [], (urls, secret)


def test_join_hands_out_short_lived_turn_credentials_never_the_secret(
    api: Api, stack, turn_settings: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    _configure(turn_settings, ",".join(URLS), SECRET)
    meeting, host, (guest,) = api.joined_meeting(1)
    capfd.readouterr()
    r = api.post(f"/meetings/{meeting['meeting_id']}/join", guest, json={})
    assert r.status_code == 200, r.text
    body = r.json()
    claims = verify_join_token(
        body["join_token"], load_public_key(stack.join_public_key), meeting["meeting_id"]
    )
    (server,) = body["ice_servers"]
    assert server["urls"] == URLS
    # TURN REST API username: <expiry>:<participant>, expiring with the join token.
    assert server["username"] == f"{claims.expires_at}:{body['participant_id']}"
    expected = hmac.new(SECRET.encode(), server["username"].encode(), hashlib.sha1).digest()
    assert server["credential"] == base64.b64encode(expected).decode()
    assert SECRET not in r.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err
    # The OpenAPI schema documents the field; the secret is in no example or default.
    schema = api.get("/openapi.json").text
    assert "ice_servers" in schema and SECRET not in schema


def test_a_turn_url_clients_would_ignore_is_refused_at_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from functions.core.config import Settings

    monkeypatch.setenv("MEETUP_TURN_URLS", "turn:198.51.100.7:5349?transport=tls")
    with pytest.raises(ValidationError, match="turns:H:P"):
        Settings()
    monkeypatch.setenv("MEETUP_TURN_URLS", " turn:h:3478?transport=tcp , turns:h:443 ")
    monkeypatch.setenv("MEETUP_TURN_SECRET", SECRET)
    settings = Settings()
    assert settings.turn_urls == ["turn:h:3478?transport=tcp", "turns:h:443"]
    assert SECRET not in repr(settings) + str(settings)
