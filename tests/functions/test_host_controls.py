"""Host controls over real HTTP (local stack): who may remove, mute, promote, hand over and lock, and what
the API refuses afterwards. What the relays do with the notices: tests/edge_relay/test_host_controls.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from meetup_protocol.tokens import load_public_key, verify_join_token
from tests.conftest import Api, User, error_code


def pids(api: Api, meeting: dict[str, Any], user: User) -> dict[str, str]:
    """Display name -> participant id, as a member lists them."""
    listed = api.get(f"/meetings/{meeting['meeting_id']}/participants", user).json()
    return {p["display_name"]: p["participant_id"] for p in listed}


def roles(api: Api, meeting: dict[str, Any], user: User) -> dict[str, str]:
    listed = api.get(f"/meetings/{meeting['meeting_id']}/participants", user).json()
    return {p["display_name"]: p["role"] for p in listed}


def actions(mid: str, pid: str) -> list[tuple[str, dict[str, Any]]]:
    """Every host control on participant ``pid``, as (path, body)."""
    return [
        (f"/meetings/{mid}/participants/{pid}/remove", {}),
        (f"/meetings/{mid}/participants/{pid}/role", {"role": "co_host"}),
        (f"/meetings/{mid}/host", {"participant_id": pid}),
        (f"/meetings/{mid}/mute", {"participant_id": pid, "source": "microphone"}),
        (f"/meetings/{mid}/mute", {}),
        (f"/meetings/{mid}/lock", {"locked": True}),
    ]


def test_a_guest_can_do_none_of_it(api: Api) -> None:
    meeting, host, (guest, other) = api.joined_meeting(2)
    mid, ids = meeting["meeting_id"], pids(api, meeting, host)
    for pid in (ids["Guest 1"], ids["Host"]):
        for path, body in actions(mid, pid):
            r = api.post(path, guest, json=body)
            assert r.status_code == 403 and error_code(r) == "not_allowed", (path, r.text)
    assert roles(api, meeting, host) == {"Host": "host", "Guest 0": "guest", "Guest 1": "guest"}
    assert api.join(meeting, other).status_code == 200  # nothing was removed or locked


def test_hostile_ids_and_tokens_are_refused_clearly(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    elsewhere, other_host, (stranger,) = api.joined_meeting(1)
    mid, foreign = meeting["meeting_id"], pids(api, elsewhere, other_host)["Guest 0"]
    for path, body in actions(mid, foreign)[:4]:  # another meeting's participant: not in this one
        r = api.post(path, host, json=body)
        assert r.status_code == 404 and error_code(r) == "participant_not_found", (path, r.text)
    r = api.post(f"/meetings/{mid}/participants/p_0123456789abcdef/remove", host)
    assert error_code(r) == "participant_not_found"
    for bad in ("p_nothex", "../../x", "p_" + "a" * 300):
        r = api.post(f"/meetings/{mid}/participants/{bad}/remove", host)
        assert r.status_code in (404, 422), (bad, r.status_code)
    for body in ({"role": "host"}, {"role": 1}, {"role": "co_host", "extra": True}):
        r = api.post(f"/meetings/{mid}/participants/{foreign}/role", host, json=body)
        assert r.status_code == 422, body
    assert api.post(f"/meetings/{mid}/mute", host, json={"source": "keyboard"}).status_code == 422
    assert api.post(f"/meetings/{mid}/lock", host, json={"locked": "yes"}).status_code == 422
    # Not a member of this meeting: as for any stranger, the meeting does not exist.
    r = api.post(f"/meetings/{mid}/lock", stranger, json={"locked": True})
    assert r.status_code == 404 and error_code(r) == "meeting_not_found"
    forged = User(host.user_id, host.email, "", "Host", host.access_token[:-4] + "AAAA", "")
    r = api.post(f"/meetings/{mid}/lock", forged, json={"locked": True})
    assert r.status_code == 401
    assert api.post(f"/meetings/{mid}/lock", None, json={"locked": True}).status_code == 401
    assert roles(api, meeting, host)["Guest 0"] == "guest"


def test_removed_participant_cannot_rejoin_and_the_seat_frees(api: Api, stack) -> None:
    meeting, host, (guest, bystander) = api.joined_meeting(2, max_participants=3)
    mid, ids = meeting["meeting_id"], pids(api, meeting, host)
    old_token = api.join(meeting, guest).json()["join_token"]
    r = api.post(f"/meetings/{mid}/participants/{ids['Guest 0']}/remove", host)
    assert r.status_code == 200, r.text
    assert r.json()["participant_id"] == ids["Guest 0"]
    for passcode in (None, meeting["passcode"]):  # neither a rejoin nor the passcode lets it back in
        r = api.join(meeting, guest, passcode)
        assert r.status_code == 403 and error_code(r) == "removed_by_host"
    listed = {p["display_name"]: p for p in api.get(f"/meetings/{mid}/participants", host).json()}
    assert not listed["Guest 0"]["active"]
    assert api.join(meeting, api.new_user("Newcomer")).status_code == 200  # its seat is free again
    assert api.post(f"/meetings/{mid}/participants/{ids['Guest 0']}/remove", host).status_code == 200
    # Its old token still verifies offline: the relays refuse it by its revoked generation (relay test).
    verify_join_token(old_token, load_public_key(stack.join_public_key), mid)
    r = api.post(f"/meetings/{mid}/participants/{ids['Host']}/remove", host)
    assert r.status_code == 403 and error_code(r) == "not_allowed"  # the host leaves, is never removed
    assert api.join(meeting, bystander).status_code == 200


def test_co_hosts_moderate_but_never_touch_the_host(api: Api) -> None:
    meeting, host, (co, guest) = api.joined_meeting(2)
    mid, ids = meeting["meeting_id"], pids(api, meeting, host)
    r = api.post(f"/meetings/{mid}/participants/{ids['Guest 0']}/role", host, json={"role": "co_host"})
    assert r.status_code == 200, r.text
    assert api.join(meeting, co).json()["role"] == "co_host"  # the next join token says so
    for path, body in actions(mid, ids["Host"])[:4]:
        r = api.post(path, co, json=body)
        assert r.status_code == 403 and error_code(r) == "not_allowed", (path, r.text)
    r = api.post(f"/meetings/{mid}/end", co)
    assert r.status_code == 403 and error_code(r) == "not_host"
    r = api.post(f"/meetings/{mid}/mute", co, json={"participant_id": ids["Guest 1"]})
    assert r.status_code == 200, r.text
    assert api.post(f"/meetings/{mid}/lock", co, json={"locked": True}).json()["locked"] is True
    assert api.post(f"/meetings/{mid}/lock", co, json={"locked": False}).json()["locked"] is False
    r = api.post(f"/meetings/{mid}/participants/{ids['Guest 0']}/role", host, json={"role": "guest"})
    assert r.status_code == 200
    r = api.post(f"/meetings/{mid}/lock", co, json={"locked": True})
    assert r.status_code == 403 and error_code(r) == "not_allowed"  # demoted: a guest again


def test_the_host_hands_over_and_the_new_host_can_end_the_meeting(api: Api) -> None:
    meeting, host, (heir,) = api.joined_meeting(1)
    mid, ids = meeting["meeting_id"], pids(api, meeting, host)
    r = api.post(f"/meetings/{mid}/host", host, json={"participant_id": ids["Guest 0"]})
    assert r.status_code == 200, r.text
    assert roles(api, meeting, host) == {"Host": "co_host", "Guest 0": "host"}
    assert api.get(f"/meetings/{mid}", heir).json()["host_id"] == heir.user_id
    assert error_code(api.post(f"/meetings/{mid}/end", host)) == "not_host"
    r = api.post(f"/meetings/{mid}/participants/{ids['Guest 0']}/role", host, json={"role": "guest"})
    assert r.status_code == 403  # the old host, a co-host now, cannot take it back
    assert api.post(f"/meetings/{mid}/end", heir).json()["status"] == "ended"


@pytest.mark.parametrize("role", ["guest", "co_host"])
def test_a_locked_meeting_admits_nobody_new_even_with_the_passcode(api: Api, role: str) -> None:
    meeting, host, (present,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    if role == "co_host":
        pid = pids(api, meeting, host)["Guest 0"]
        api.post(f"/meetings/{mid}/participants/{pid}/role", host, json={"role": "co_host"})
    assert api.post(f"/meetings/{mid}/lock", host, json={"locked": True}).json()["locked"] is True
    newcomer = api.new_user("Newcomer")
    r = api.join(meeting, newcomer)
    assert r.status_code == 403 and error_code(r) == "meeting_locked"
    wrong = api.join(meeting, api.new_user("Guesser"), "WRONGPASS")
    assert error_code(wrong) == "wrong_meeting_or_passcode"  # the lock shows only to passcode holders
    assert api.join(meeting, present).status_code == 200  # who is in stays in (a reconnect)
    assert api.post(f"/meetings/{mid}/leave", present).status_code == 204
    r = api.join(meeting, present)
    if role == "co_host":
        assert r.status_code == 200  # moderators can always come back
    else:
        assert error_code(r) == "meeting_locked"
    assert api.post(f"/meetings/{mid}/leave", host).status_code == 204
    assert api.join(meeting, host).status_code == 200  # the host too
    api.post(f"/meetings/{mid}/lock", host, json={"locked": False})
    assert api.join(meeting, newcomer).status_code == 200


def test_when_the_host_leaves_the_meeting_goes_on_and_the_host_comes_back_as_host(api: Api) -> None:
    meeting, host, (co, guest) = api.joined_meeting(2)
    mid, ids = meeting["meeting_id"], pids(api, meeting, host)
    api.post(f"/meetings/{mid}/participants/{ids['Guest 0']}/role", host, json={"role": "co_host"})
    assert api.post(f"/meetings/{mid}/leave", host).status_code == 204
    assert api.get(f"/meetings/{mid}", guest).json()["status"] == "active"  # no host, still on
    r = api.post(f"/meetings/{mid}/mute", co, json={"participant_id": ids["Guest 1"]})
    assert r.status_code == 200  # co-hosts keep moderating
    assert error_code(api.post(f"/meetings/{mid}/end", co)) == "not_host"
    back = api.join(meeting, host)
    assert back.status_code == 200 and back.json()["role"] == "host"


def test_waiting_room_admit_and_deny(api: Api) -> None:
    host = api.new_user("Host")
    meeting = api.new_meeting(host, waiting_room=True)
    mid = meeting["meeting_id"]
    assert meeting["waiting_room"] is True
    assert api.join(meeting, host).status_code == 200  # the host never waits
    ann, bob = api.new_user("Ann"), api.new_user("Bob")
    assert error_code(api.join(meeting, ann, "WRONGPASS")) == "wrong_meeting_or_passcode"
    r = api.join(meeting, ann)
    assert r.status_code == 202 and r.json()["status"] == "waiting", r.text
    ann_pid = r.json()["participant_id"]
    # Waiting is not membership: nothing of the meeting to see yet.
    assert error_code(api.get(f"/meetings/{mid}/participants", ann)) == "meeting_not_found"
    again = api.post(f"/meetings/{mid}/join", ann, json={})  # asking again needs no passcode
    assert again.status_code == 202 and again.json()["participant_id"] == ann_pid
    bob_pid = api.join(meeting, bob).json()["participant_id"]
    listed = api.get(f"/meetings/{mid}/waiting", host).json()
    assert [(w["participant_id"], w["display_name"]) for w in listed] == [(ann_pid, "Ann"), (bob_pid, "Bob")]
    assert error_code(api.get(f"/meetings/{mid}/waiting", ann)) == "meeting_not_found"
    r = api.post(f"/meetings/{mid}/waiting/{ann_pid}/admit", ann)
    assert error_code(r) == "meeting_not_found"  # not a member, so not a moderator either
    r = api.post(f"/meetings/{mid}/waiting/p_0123456789abcdef/admit", host)
    assert error_code(r) == "participant_not_found"
    assert api.post(f"/meetings/{mid}/waiting/{ann_pid}/bless", host).status_code == 422

    assert api.post(f"/meetings/{mid}/waiting/{ann_pid}/admit", host).status_code == 200
    admitted = api.post(f"/meetings/{mid}/join", ann, json={})  # the token, without a passcode round
    assert admitted.status_code == 200 and admitted.json()["participant_id"] == ann_pid
    assert admitted.json()["role"] == "guest"

    assert api.post(f"/meetings/{mid}/waiting/{bob_pid}/deny", host).status_code == 200
    r = api.post(f"/meetings/{mid}/join", bob, json={})
    assert r.status_code == 403 and error_code(r) == "denied_by_host"
    # Told once; from then on it is a stranger again: the passcode, and the wait, anew.
    assert error_code(api.post(f"/meetings/{mid}/join", bob, json={})) == "wrong_meeting_or_passcode"
    assert api.join(meeting, bob).status_code == 202
    assert [w["display_name"] for w in api.get(f"/meetings/{mid}/waiting", host).json()] == ["Bob"]


def test_join_tokens_carry_a_hosts_mutes(api: Api, stack) -> None:
    meeting, host, (guest,) = api.joined_meeting(1, allow_self_unmute=False)
    mid, pid = meeting["meeting_id"], pids(api, meeting, host)["Guest 0"]
    key = load_public_key(stack.join_public_key)

    def claims() -> dict[str, bool]:
        return verify_join_token(api.join(meeting, guest).json()["join_token"], key, mid).host_muted

    assert claims() == {}
    api.post(f"/meetings/{mid}/mute", host, json={"participant_id": pid, "source": "camera"})
    api.post(f"/meetings/{mid}/mute", host, json={})  # every guest's microphone
    assert claims() == {"camera": False, "microphone": False}
    api.post(f"/meetings/{mid}/mute", host, json={"participant_id": pid, "source": "camera", "muted": False})
    assert claims() == {"microphone": False}
    host_claims = verify_join_token(api.join(meeting, host).json()["join_token"], key, mid)
    assert host_claims.host_muted == {}  # mute-all spares the host
