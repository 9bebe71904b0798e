"""Found while looking for the same classes of bug elsewhere: what one address or one user could do at will.

- Password guessing spread over many accounts from one address (only a per-email bucket existed).
- Registering accounts without end from one address (each one a fresh per-user passcode budget).
- Flooding a meeting with stored chat or reactions (no limit at all; relays fan out what the API stores).
- An IPv6 client hopping addresses inside its own /64 to get fresh per-address buckets.
- Names and titles with terminal controls or bidi overrides (they reach every other participant's screen).
- A download saved under a path the server chose.

Limits are lowered on the running stack's settings for each test (the API runs in this process).
"""

from __future__ import annotations

import secrets

import pytest

from client_sdk.cli.common import local_file_name
from functions.core.client_address import throttle_subject
from functions.core.config import get_settings
from tests.conftest import Api, error_code


def register(api: Api, name: str = "Someone") -> tuple[str, str]:
    email, password = f"abuse-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(12)
    r = api.post("/auth/register", json={"email": email, "password": password, "display_name": name})
    assert r.status_code == 201, r.text
    return email, password


def test_password_guessing_across_accounts_from_one_address_is_capped(
    api: Api, api_from_new_ip: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = [register(api) for _ in range(4)]
    monkeypatch.setattr(get_settings(), "login_failures_per_ip", 3)
    guesser = api_from_new_ip
    for email, _ in accounts[:3]:  # one wrong guess per account: the per-email buckets never fill
        wrong = guesser.post("/auth/login", json={"email": email, "password": "guess-123456"})
        assert wrong.status_code == 401
    email, password = accounts[3]
    refused = guesser.post("/auth/login", json={"email": email, "password": "guess-123456"})
    assert refused.status_code == 429 and error_code(refused) == "too_many_attempts"
    assert int(refused.headers["Retry-After"]) >= 1
    # The accounts themselves are not locked: their owners, elsewhere, log in.
    assert api.post("/auth/login", json={"email": email, "password": password}).status_code == 200


def test_registrations_from_one_address_are_capped(
    api: Api, api_from_new_ip: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "registrations_per_ip", 2)
    register(api_from_new_ip)
    register(api_from_new_ip)
    body = {"email": f"third-{secrets.token_hex(4)}@example.com", "password": "x" * 12, "display_name": "X"}
    r = api_from_new_ip.post("/auth/register", json=body)
    assert r.status_code == 429 and error_code(r) == "rate_limited"
    login = {"email": body["email"], "password": body["password"]}
    assert api.post("/auth/login", json=login).status_code == 401  # no account was made


def test_chat_and_reactions_are_rate_limited_per_user(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    monkeypatch.setattr(get_settings(), "chat_posts_per_user", 3)
    monkeypatch.setattr(get_settings(), "reactions_per_user", 2)
    chat = f"/meetings/{meeting['meeting_id']}/chat"
    for i in range(3):
        r = api.post(chat, guest, json={"text": f"flood {i}", "idempotency_key": f"flood-key-{i}"})
        assert r.status_code == 201, r.text
    r = api.post(chat, guest, json={"text": "one too many", "idempotency_key": "flood-key-x"})
    assert r.status_code == 429 and error_code(r) == "rate_limited" and int(r.headers["Retry-After"]) >= 1
    texts = [m["text"] for m in api.get(chat, host).json()["items"]]
    assert "one too many" not in texts and len(texts) == 3
    # Another participant is not affected; reactions have their own budget.
    assert api.post(chat, host, json={"text": "hi", "idempotency_key": "host-key-1"}).status_code == 201
    react = f"/meetings/{meeting['meeting_id']}/reactions"
    codes = [
        api.post(react, guest, json={"emoji": "👍", "idempotency_key": f"react-key-{i}"}).status_code
        for i in range(3)
    ]
    assert codes == [201, 201, 429]


@pytest.mark.parametrize(
    ("address", "subject"),
    [
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("unknown", "unknown"),
    ],
)
def test_ipv6_clients_share_their_64_per_address_bucket(address: str, subject: str) -> None:
    assert throttle_subject(address) == subject


@pytest.mark.parametrize("name", ["x\x1b[2J", "x\x9b2J", "\u202egnp.exe", "a\u2066b", "tab\there"])
def test_names_and_titles_refuse_controls_and_bidi_overrides(api: Api, name: str) -> None:
    user = api.new_user("Plain")
    body = {"email": f"n-{secrets.token_hex(4)}@example.com", "password": "x" * 12, "display_name": name}
    assert api.post("/auth/register", json=body).status_code == 422
    assert api.patch("/settings", user, json={"display_name": name}).status_code == 422
    assert api.post("/meetings", user, json={"title": name}).status_code == 422


def test_names_in_any_script_and_emoji_are_fine(api: Api) -> None:
    user = api.new_user("Plain")
    for name in ("Zoë Ångström", "محمد", "田中 太郎", "Ana 🎉"):
        assert api.patch("/settings", user, json={"display_name": name}).status_code == 200, name


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("r_1", "talk.mp4"), "r_1-talk.mp4"),
        (("r_1", "../../.bashrc"), "r_1-.._.._.bashrc"),
        (("..", "/etc/passwd"), "_etc_passwd"),
        (("", ".hidden"), "hidden"),
        (("r", "a\x1b]8;;x\x07b"), "r-a_8_x_b"),
        (("", ""), "recording"),
    ],
)
def test_downloads_are_saved_under_a_plain_name_of_ours(parts: tuple[str, str], expected: str) -> None:
    name = local_file_name(*parts, default="recording")
    assert name == expected and "/" not in name and not name.startswith(".")
