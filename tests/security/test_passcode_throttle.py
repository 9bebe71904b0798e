"""Item 2: wrong passcodes slow the guesser, never the meeting.

A per-meeting bucket used to refuse everyone, right passcode or not, once 30 wrong ones were tried in a
window: two addresses could lock any meeting, every window. Now only the caller's own buckets (user,
address) refuse; the meeting keeps a lifetime count its host sees, and an alert fires past 30.
"""

from __future__ import annotations

import json

from tests.conftest import Api, error_code


def _guess_until_blocked(api: Api, meeting: dict) -> int:
    """Wrong guesses from one address, 4 users x 5 (no user past its own limit), until it is refused."""
    failures = 0
    for n in range(4):
        user = api.new_user(f"Guesser {n}")
        for i in range(5):
            r = api.join(meeting, user, f"GUESS{n}{i:02d}")
            failures += r.status_code == 403
    return failures


def test_guessers_cannot_lock_people_out_of_a_meeting(stack, log_stream) -> None:
    host_api = Api(stack.api_url, "127.0.20.1")
    host = host_api.new_user("Host")
    meeting = host_api.new_meeting(host)
    guessers = [Api(stack.api_url, f"127.0.20.{n}") for n in (10, 11)]
    failures = sum(_guess_until_blocked(api, meeting) for api in guessers)
    assert failures == 40  # 2 x MEETUP_PASSCODE_FAILURES_PER_IP, past the old per-meeting 30

    # A newcomer with the right passcode, from a clean address, gets in.
    newcomer_api = Api(stack.api_url, "127.0.20.50")
    newcomer = newcomer_api.new_user("Newcomer")
    r = newcomer_api.join(meeting, newcomer)
    assert r.status_code == 200, r.text

    # The guessers stay refused by their own address buckets, right passcode or not.
    for api in guessers:
        for passcode in ("GUESS999", meeting["passcode"]):
            r = api.join(meeting, api.new_user(), passcode)
            assert r.status_code == 429 and error_code(r) == "too_many_attempts"
            assert 0 < int(r.headers["Retry-After"]) <= 300

    # The host sees the lifetime count; a guest does not.
    mid = meeting["meeting_id"]
    assert host_api.get(f"/meetings/{mid}", host).json()["failed_join_attempts"] == 40
    assert newcomer_api.get(f"/meetings/{mid}", newcomer).json()["failed_join_attempts"] is None

    # One alert at the threshold (30), not one log line per guess; it names no secret.
    alerts = [
        entry
        for entry in map(json.loads, log_stream.getvalue().splitlines())
        if entry["message"] == "passcode guessing against a meeting"
    ]
    seen = [(a["meeting_id"], a["failed_join_attempts"], a["level"]) for a in alerts]
    assert seen == [(mid, 30, "WARNING")]
    assert meeting["passcode"] not in log_stream.getvalue()
    for api in (host_api, newcomer_api, *guessers):
        api.close()
