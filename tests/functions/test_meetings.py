"""Meetings over real HTTP: create, join with passcode, join tokens, limits, leave, end, throttling."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from meetup_protocol.tokens import TokenError, load_public_key, verify_join_token
from tests.conftest import Api, error_code


def test_create_returns_a_typable_id_and_a_passcode_stored_hashed(api: Api) -> None:
    host = api.new_user("Host")
    meeting = api.new_meeting(host, max_participants=5, max_duration_minutes=15)
    assert len(meeting["meeting_id"]) == 10 and meeting["meeting_id"].isdigit()
    assert len(meeting["passcode"]) == 8
    assert set(meeting["passcode"]).isdisjoint("01ILO")
    assert meeting["max_participants"] == 5 and meeting["status"] == "active"
    from functions.models import MeetingModel

    stored = MeetingModel.get(meeting["meeting_id"])
    assert meeting["passcode"] not in stored.passcode_hash and stored.passcode_hash.startswith("$argon2id$")
    r = api.get(f"/meetings/{meeting['meeting_id']}", host)
    assert r.status_code == 200 and "passcode" not in r.json()


def test_custom_passcode_is_case_insensitive_and_ids_may_be_typed_with_spaces(api: Api) -> None:
    host, guest = api.new_user(), api.new_user()
    meeting = api.new_meeting(host, passcode="Secret42")
    mid = meeting["meeting_id"]
    spaced = f"{mid[:3]} {mid[3:6]}-{mid[6:]}"
    r = api.post(f"/meetings/{spaced}/join", guest, json={"passcode": "SECRET42"})
    assert r.status_code == 200, r.text


def test_join_gives_a_join_token_for_the_relays_that_verifies_offline(api: Api, stack) -> None:
    meeting, host, (guest,) = api.joined_meeting(1, max_participants=4, max_duration_minutes=30)
    r = api.post(f"/meetings/{meeting['meeting_id']}/join", guest, json={"region": "eu-west-1"})
    body = r.json()
    assert body["role"] == "guest"
    assert [relay["region"] for relay in body["relays"]] == ["eu-west-1", "local"]  # region hint first
    claims = verify_join_token(
        body["join_token"], load_public_key(stack.join_public_key), meeting["meeting_id"]
    )
    assert claims.user_id == guest.user_id and claims.role == "guest"
    assert claims.participant_id == body["participant_id"]
    assert claims.max_participants == 4
    assert 0 < claims.expires_at - time.time() <= 300
    with pytest.raises(TokenError):
        verify_join_token(body["join_token"], load_public_key(stack.join_public_key), "1234567890")
    host_join = api.post(f"/meetings/{meeting['meeting_id']}/join", host, json={}).json()
    assert host_join["role"] == "host"


def test_wrong_or_missing_passcode_is_refused(api: Api) -> None:
    host, guest = api.new_user(), api.new_user()
    meeting = api.new_meeting(host)
    assert error_code(api.join(meeting, guest, "WRONG")) == "wrong_meeting_or_passcode"
    r = api.post(f"/meetings/{meeting['meeting_id']}/join", guest, json={})
    assert r.status_code == 403 and error_code(r) == "wrong_meeting_or_passcode"
    assert api.join(meeting, guest).status_code == 200
    # Once admitted, a participant rejoins (e.g. after a reconnect) without the passcode.
    assert api.post(f"/meetings/{meeting['meeting_id']}/join", guest, json={}).status_code == 200


def test_strangers_cannot_see_a_meeting_or_its_participants(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    stranger = api.new_user("Stranger")
    mid = meeting["meeting_id"]
    for path in (f"/meetings/{mid}", f"/meetings/{mid}/participants"):
        assert error_code(api.get(path, stranger)) == "meeting_not_found"
    assert error_code(api.get("/meetings/1000000000", stranger)) == "meeting_not_found"
    names = {p["display_name"]: p for p in api.get(f"/meetings/{mid}/participants", guest).json()}
    assert names["Host"]["role"] == "host" and names["Guest 0"]["active"]


def test_max_participants_holds_under_concurrent_joins(api: Api) -> None:
    host = api.new_user()
    meeting = api.new_meeting(host, max_participants=3)
    guests = [api.new_user(f"G{i}") for i in range(10)]
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda g: api.join(meeting, g), guests))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 3 + [409] * 7
    assert {error_code(r) for r in responses if r.status_code == 409} == {"meeting_full"}
    assert api.get(f"/meetings/{meeting['meeting_id']}", host).json()["participant_count"] == 3


def test_leave_frees_a_seat_and_is_idempotent(api: Api) -> None:
    meeting, host, (a, b) = api.joined_meeting(2, max_participants=3)
    late = api.new_user("Late")
    assert error_code(api.join(meeting, late)) == "meeting_full"
    mid = meeting["meeting_id"]
    assert api.post(f"/meetings/{mid}/leave", a).status_code == 204
    assert api.post(f"/meetings/{mid}/leave", a).status_code == 204
    assert api.join(meeting, late).status_code == 200
    assert api.get(f"/meetings/{mid}", host).json()["participant_count"] == 3
    assert error_code(api.post(f"/meetings/{mid}/leave", api.new_user())) == "meeting_not_found"


def test_only_the_host_ends_and_later_joins_are_refused(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    r = api.post(f"/meetings/{mid}/end", guest)
    assert r.status_code == 403 and error_code(r) == "not_host"
    r = api.post(f"/meetings/{mid}/end", host)
    assert r.status_code == 200 and r.json()["status"] == "ended" and r.json()["end_reason"] == "host_ended"
    assert api.post(f"/meetings/{mid}/end", host).status_code == 200  # idempotent
    for user in (guest, host, api.new_user()):
        r = api.join(meeting, user)
        assert r.status_code == 410 and error_code(r) == "meeting_ended"
    assert api.get(f"/meetings/{mid}/participants", guest).json()[0]["active"] is False


def test_meeting_ends_when_its_maximum_duration_is_reached(api: Api) -> None:
    from functions.models import MeetingModel
    from functions.models.base import utcnow

    meeting, host, (guest,) = api.joined_meeting(1, max_duration_minutes=1)
    # Time travel instead of waiting a minute: move the deadline into the past in DynamoDB.
    MeetingModel(meeting["meeting_id"]).update(
        actions=[MeetingModel.ends_at.set(utcnow() - timedelta(seconds=1))]
    )
    assert error_code(api.join(meeting, api.new_user())) == "meeting_ended"
    info = api.get(f"/meetings/{meeting['meeting_id']}", guest).json()
    assert info["status"] == "ended" and info["end_reason"] == "duration_reached"


def test_passcode_guessing_is_locked_out_per_user(api_from_new_ip: Api, stack) -> None:
    api = api_from_new_ip
    host, attacker = api.new_user(), api.new_user("Attacker")
    meeting = api.new_meeting(host)
    codes = [api.join(meeting, attacker, f"GUESS{i:03d}").status_code for i in range(5)]
    assert codes == [403] * 5
    for _ in range(30):  # even the right passcode: locked until the window ends
        r = api.join(meeting, attacker)
        assert r.status_code == 429 and error_code(r) == "too_many_attempts"
    assert 0 < int(r.headers["Retry-After"]) <= 300
    # Refused attempts test nothing and do not count: the meeting is not locked for others.
    elsewhere = Api(stack.api_url, "127.0.8.1")
    assert elsewhere.join(meeting, elsewhere.new_user()).status_code == 200
    elsewhere.close()


def test_passcode_guessing_is_locked_out_per_ip(api_from_new_ip: Api) -> None:
    api = api_from_new_ip
    host = api.new_user()
    meeting = api.new_meeting(host)
    guessers = [api.new_user(f"Bot {i}") for i in range(5)]
    failures = 0
    for guesser in guessers:  # 4 guesses each: no single user reaches its own limit of 5
        for i in range(4):
            r = api.join(meeting, guesser, f"GUESS{i:03d}")
            if r.status_code == 429:
                break
            failures += 1
    assert failures == 20  # MEETUP_PASSCODE_FAILURES_PER_IP
    assert error_code(api.join(meeting, api.new_user())) == "too_many_attempts"


def test_guessing_meeting_ids_counts_as_failed_attempts(api_from_new_ip: Api) -> None:
    api = api_from_new_ip
    user = api.new_user()
    codes = [
        api.post(f"/meetings/{1000000000 + i}/join", user, json={"passcode": "X"}).status_code
        for i in range(6)
    ]
    assert codes == [403] * 5 + [429]  # answered as wrong passcodes are (tests/security)


@pytest.mark.parametrize(
    "body",
    [
        {"max_participants": 1},
        {"max_participants": 301},
        {"max_participants": False},
        {"max_participants": "10"},
        {"max_duration_minutes": 0},
        {"max_duration_minutes": 1441},
        {"title": ""},
        {"title": "x" * 121},
        {"passcode": "short"},
        {"passcode": "has space1"},
        {"host_id": "u_someone"},
    ],
)
def test_invalid_meeting_options_get_422(api: Api, body: dict) -> None:
    r = api.post("/meetings", api.new_user(), json=body)
    assert r.status_code == 422, r.text
    error_code(r)


@pytest.mark.parametrize("meeting_id", ["abc", "12345", "1" * 40, "12345678901234567890"])
def test_malformed_meeting_ids_get_422(api: Api, meeting_id: str) -> None:
    r = api.post(f"/meetings/{meeting_id}/join", api.new_user(), json={"passcode": "X"})
    assert r.status_code == 422
    error_code(r)


def test_a_crowd_joining_at_once_with_the_right_passcode_is_not_throttled(api_from_new_ip: Api) -> None:
    """40 people behind one address join one meeting at the same moment: all get in."""
    api = api_from_new_ip
    meeting = api.new_meeting(api.new_user(), max_participants=50)
    crowd = [api.new_user(f"P{i}") for i in range(40)]
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda u: api.join(meeting, u).status_code, crowd))
    assert statuses == [200] * 40


def test_a_burst_of_guesses_by_one_user_gets_exactly_the_limit(api_from_new_ip: Api) -> None:
    api = api_from_new_ip
    meeting = api.new_meeting(api.new_user())
    attacker = api.new_user("Burst")
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda i: api.join(meeting, attacker, f"G{i:07d}").status_code, range(12)))
    assert statuses.count(403) == 5 and statuses.count(429) == 7
