"""Item 6: reusing a rotated refresh token revokes its whole family; logout ends the family too.

After r1 -> r2, r1 presented again is a reuse: an attacker and the user hold one token between them, and
the server cannot tell which is which, so r2 (and whatever follows it) dies as well (OAuth 2.0 Security
BCP). Access tokens are not tracked: they live ``access_token_ttl_s`` after a logout (documented).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import Api, error_code


def _refresh(api: Api, token: str) -> httpx.Response:
    return api.post("/auth/refresh", json={"refresh_token": token})


def test_reusing_a_rotated_token_revokes_its_family(api: Api) -> None:
    user = api.new_user()
    r1 = user.refresh_token
    r2 = _refresh(api, r1).json()["refresh_token"]
    reuse = _refresh(api, r1)
    assert reuse.status_code == 401 and error_code(reuse) == "token_invalid"
    after = _refresh(api, r2)
    assert after.status_code == 401 and error_code(after) == "token_invalid"
    # Other logins of the same account are other families: untouched.
    again = api.post("/auth/login", json={"email": user.email, "password": user.password}).json()
    assert _refresh(api, again["refresh_token"]).status_code == 200


def test_reuse_deep_in_the_chain_kills_the_newest_token(api: Api) -> None:
    chain = [api.new_user().refresh_token]
    for _ in range(3):
        chain.append(_refresh(api, chain[-1]).json()["refresh_token"])
    assert _refresh(api, chain[1]).status_code == 401
    assert _refresh(api, chain[-1]).status_code == 401


def test_concurrent_presentations_of_one_token_succeed_at_most_once(api: Api) -> None:
    user = api.new_user()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _refresh(api, user.refresh_token), range(4)))
    winners = [r for r in answers if r.status_code == 200]
    assert len(winners) == 1 and sorted(r.status_code for r in answers) == [200, 401, 401, 401]
    # The losers were reuses: the family is revoked, the winner's next token included.
    assert _refresh(api, winners[0].json()["refresh_token"]).status_code == 401


def test_logout_ends_the_family(api: Api) -> None:
    user = api.new_user()
    r2 = _refresh(api, user.refresh_token).json()["refresh_token"]
    assert api.post("/auth/logout", json={"refresh_token": r2}).status_code == 204
    assert _refresh(api, r2).status_code == 401
    # Logging out with an older token of the login ends it as well (and twice is fine).
    other = api.new_user()
    o2 = _refresh(api, other.refresh_token).json()["refresh_token"]
    assert api.post("/auth/logout", json={"refresh_token": other.refresh_token}).status_code == 204
    assert api.post("/auth/logout", json={"refresh_token": other.refresh_token}).status_code == 204
    assert _refresh(api, o2).status_code == 401


def test_a_token_from_before_families_still_rotates_once(api: Api) -> None:
    """Rows written before this change have no family: the first refresh adopts one, reuse still kills."""
    from datetime import timedelta

    from functions.core.security import digest, new_refresh_token
    from functions.models import RefreshTokenModel
    from functions.models.base import utcnow

    user = api.new_user()
    legacy = new_refresh_token()
    now = utcnow()
    RefreshTokenModel(
        digest(legacy), user_id=user.user_id, created_at=now, expires_at=now + timedelta(days=1)
    ).save()
    nxt = _refresh(api, legacy)
    assert nxt.status_code == 200
    assert _refresh(api, legacy).status_code == 401
    assert _refresh(api, nxt.json()["refresh_token"]).status_code == 401
