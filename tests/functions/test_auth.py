"""Accounts over real HTTP: register, login, refresh rotation, logout, me, and their failure modes."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

from tests.conftest import Api, error_code


def _register(api: Api, email: str, password: str = "correct horse", name: str = "Ann"):  # noqa: S107
    return api.post("/auth/register", json={"email": email, "password": password, "display_name": name})


def _email() -> str:
    return f"user-{secrets.token_hex(5)}@example.com"


def test_register_login_me(api: Api) -> None:
    email = _email()
    r = _register(api, email.upper(), name="  Ann Lee ")
    assert r.status_code == 201
    created = r.json()
    assert created["email"] == email  # normalised to lower case
    assert created["display_name"] == "Ann Lee"
    assert "password" not in r.text and "hash" not in r.text

    r = api.post("/auth/login", json={"email": email, "password": "correct horse"})
    assert r.status_code == 200
    tokens = r.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] > 0
    me = api.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["user_id"] == created["user_id"]


def test_email_is_unique_even_under_concurrent_registration(api: Api) -> None:
    email = _email()
    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(lambda _: _register(api, email).status_code, range(4)))
    assert statuses == [201, 409, 409, 409]
    assert error_code(_register(api, email)) == "email_taken"


def test_wrong_password_and_unknown_email_look_the_same(api: Api) -> None:
    email = _email()
    _register(api, email)
    wrong = api.post("/auth/login", json={"email": email, "password": "nope"})
    unknown = api.post("/auth/login", json={"email": _email(), "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_login_failures_are_throttled_per_email(api: Api, stack) -> None:
    email = _email()
    _register(api, email)
    limit = 10  # MEETUP_LOGIN_FAILURES_PER_EMAIL default
    codes = [
        api.post("/auth/login", json={"email": email, "password": "bad"}).status_code for _ in range(limit)
    ]
    assert codes == [401] * limit
    blocked = api.post("/auth/login", json={"email": email, "password": "correct horse"})
    assert blocked.status_code == 429 and error_code(blocked) == "too_many_attempts"
    assert 0 < int(blocked.headers["Retry-After"]) <= 300
    # Another account is not affected.
    other = _email()
    _register(api, other)
    assert api.post("/auth/login", json={"email": other, "password": "correct horse"}).status_code == 200


def test_successful_logins_do_not_count_towards_the_throttle(api: Api) -> None:
    user = api.new_user()
    for _ in range(15):
        assert (
            api.post("/auth/login", json={"email": user.email, "password": user.password}).status_code == 200
        )


def test_refresh_rotates_and_a_used_refresh_token_is_dead(api: Api) -> None:
    user = api.new_user()
    r = api.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert r.status_code == 200
    new = r.json()
    assert new["refresh_token"] != user.refresh_token
    assert api.get("/auth/me", headers={"Authorization": f"Bearer {new['access_token']}"}).status_code == 200
    again = api.post("/auth/refresh", json={"refresh_token": user.refresh_token})
    assert again.status_code == 401 and error_code(again) == "token_invalid"


def test_concurrent_refreshes_with_one_token_succeed_once(api: Api) -> None:
    user = api.new_user()
    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(
            pool.map(
                lambda _: api.post("/auth/refresh", json={"refresh_token": user.refresh_token}).status_code,
                range(4),
            )
        )
    assert statuses == [200, 401, 401, 401]


def test_logout_revokes_the_refresh_token(api: Api) -> None:
    user = api.new_user()
    assert api.post("/auth/logout", json={"refresh_token": user.refresh_token}).status_code == 204
    assert api.post("/auth/logout", json={"refresh_token": user.refresh_token}).status_code == 204
    assert api.post("/auth/refresh", json={"refresh_token": user.refresh_token}).status_code == 401


def _forge(
    claims: dict, key: str | bytes = "not-the-secret-but-long-enough-for-hs256", alg: str = "HS256"
) -> str:
    return jwt.encode(claims, key, algorithm=alg)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer garbage",
        "Basic dXNlcjpwYXNz",
        "Bearer " + "a" * 5000,
    ],
)
def test_missing_and_malformed_tokens_get_401(api: Api, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = api.get("/auth/me", headers=headers)
    assert r.status_code == 401
    assert r.headers.get("WWW-Authenticate") == "Bearer"
    error_code(r)


def test_forged_expired_and_misused_tokens_get_401(api: Api, stack) -> None:
    user = api.new_user()
    now = int(time.time())
    base = {"iss": "meetup-edge", "aud": "meetup-api", "sub": user.user_id, "typ": "access", "iat": now}
    secret = stack.env["MEETUP_JWT_SECRET"]
    cases = {
        "forged": _forge({**base, "exp": now + 60}),
        "expired": _forge({**base, "exp": now - 5}, secret),
        "wrong_audience": _forge({**base, "aud": "meetup-relay", "exp": now + 60}, secret),
        "wrong_type": _forge({**base, "typ": "join", "exp": now + 60}, secret),
        "alg_none": jwt.encode({**base, "exp": now + 60}, None, algorithm="none"),
        "unknown_user": _forge({**base, "sub": "u_nobody", "exp": now + 60}, secret),
    }
    codes = {}
    for name, token in cases.items():
        r = api.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, name
        codes[name] = error_code(r)
    assert codes["expired"] == "token_expired"
    assert {c for n, c in codes.items() if n != "expired"} == {"token_invalid"}


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": "correct horse", "display_name": "A"},
        {"email": "a@b.co", "password": "short", "display_name": "A"},
        {"email": "a@b.co", "password": "x" * 129, "display_name": "A"},
        {"email": "a@b.co", "password": "correct horse", "display_name": ""},
        {"email": "a@b.co", "password": "correct horse", "display_name": "   "},
        {"email": "a@b.co", "password": "correct horse", "display_name": "x" * 65},
        {"email": "a@b.co", "password": "correct horse", "display_name": "bell\x07"},
        {"email": "a@b.co", "password": 12345678, "display_name": "A"},
        {"email": "a@b.co", "password": "correct horse"},
        {"email": "a@b.co", "password": "correct horse", "display_name": "A", "admin": True},
    ],
)
def test_invalid_registrations_get_422(api: Api, body: dict) -> None:
    r = api.post("/auth/register", json=body)
    assert r.status_code == 422 and error_code(r) == "validation_error"
