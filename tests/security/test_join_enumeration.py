"""Item 9a: a join cannot tell a missing meeting from a wrong passcode, by its answer or by its cost.

Meeting ids are ten digits: if a missing one answered 404 and an existing one 403, ids could be
enumerated at the throttle's pace. Both answer 403 ``wrong_meeting_or_passcode``, byte for byte, and both
cost one argon2 verification.
"""

from __future__ import annotations

import pytest

from tests.conftest import Api, error_code


def _answer(api: Api, meeting_id: str, passcode: str | None) -> tuple[int, bytes, dict[str, str]]:
    body = {} if passcode is None else {"passcode": passcode}
    r = api.post(f"/meetings/{meeting_id}/join", api.new_user(), json=body)
    assert error_code(r) == "wrong_meeting_or_passcode"
    # The Date header is the clock's, not the meeting's: everything else must match.
    headers = {k: v for k, v in r.headers.items() if k.lower() != "date"}
    return r.status_code, r.content, headers


def _missing_meeting_id() -> str:
    from functions.models import MeetingModel

    meeting_id = "1000000002"
    assert MeetingModel.count(meeting_id) == 0
    return meeting_id


@pytest.mark.parametrize("passcode", ["WRONGPASS", None])
def test_missing_meeting_and_wrong_passcode_answer_alike(api_from_new_ip: Api, passcode: str | None) -> None:
    api = api_from_new_ip
    meeting = api.new_meeting(api.new_user("Host"))
    wrong = _answer(api, meeting["meeting_id"], passcode)
    missing = _answer(api, _missing_meeting_id(), passcode)
    assert wrong == missing
    assert wrong[0] == 403


def test_a_missing_meeting_costs_an_argon2_verification(api_from_new_ip: Api, monkeypatch) -> None:
    from functions.core import security
    from functions.routes import meetings

    api = api_from_new_ip
    meeting = api.new_meeting(api.new_user("Host"))
    user = api.new_user()
    verified: list[str] = []

    def spy(hashed: str, secret: str) -> bool:
        verified.append(hashed)
        return security.verify_secret(hashed, secret)

    monkeypatch.setattr(meetings, "verify_secret", spy)
    api.post(f"/meetings/{_missing_meeting_id()}/join", user, json={"passcode": "WRONGPASS"})
    api.join(meeting, user, "WRONGPASS")
    assert len(verified) == 2 and all(h.startswith("$argon2id$") for h in verified)
    assert verified[0] == security.dummy_hash() != verified[1]
