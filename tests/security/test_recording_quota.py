"""Recording uploads are bounded: per participant, unfinished at once, bytes per meeting, and not long after
the meeting ended. Limits are lowered here through the running stack's settings (it runs in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from client_sdk.client import Client
from client_sdk.errors import MeetingEnded, RecordingQuotaExceeded
from tests.conftest import Api, User, error_code

MIB = 1024 * 1024


@pytest.fixture
def limits(stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The API's live settings; attributes set on them are restored after the test."""
    from functions.core.config import get_settings

    settings = get_settings()

    class Limits:
        def __setattr__(self, name: str, value: object) -> None:
            assert hasattr(settings, name), name
            monkeypatch.setattr(settings, name, value)

    yield Limits()


def start(api: Api, mid: str, user: User, size: int = MIB) -> httpx.Response:
    body = {"filename": "take.webm", "content_type": "video/webm", "size": size}
    return api.post(f"/meetings/{mid}/recordings", user, json=body)


def started(api: Api, mid: str, user: User, size: int = MIB) -> str:
    r = start(api, mid, user, size)
    assert r.status_code == 201, r.text
    return r.json()["recording_id"]


def abort(api: Api, mid: str, user: User, rid: str) -> None:
    assert api.post(f"/meetings/{mid}/recordings/{rid}/abort", user).status_code == 204


def refused(
    r: httpx.Response, status: int = 409, code: str = "recording_quota_exceeded", says: str = ""
) -> bool:
    return r.status_code == status and error_code(r) == code and says in r.json()["error"]["message"]


def test_the_next_upload_past_the_quota_is_refused_and_an_abort_frees_a_slot(api: Api, limits) -> None:
    limits.recordings_per_participant = 3
    limits.recording_uploads_in_progress = 10
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    rids = [started(api, mid, guest) for _ in range(3)]
    assert refused(start(api, mid, guest), says="per participant")
    abort(api, mid, guest, rids[0])
    last = started(api, mid, guest)
    assert refused(start(api, mid, guest))
    # An abort refused (already aborted) gives nothing back twice.
    assert error_code(api.post(f"/meetings/{mid}/recordings/{rids[0]}/abort", guest)) == "upload_closed"
    assert refused(start(api, mid, guest))
    # Another participant's quota is their own.
    for _ in range(3):
        started(api, mid, host)
    assert refused(start(api, mid, host))
    abort(api, mid, guest, last)
    started(api, mid, guest)


def test_unfinished_uploads_at_once_are_bounded_and_completion_frees_one(api: Api, limits) -> None:
    limits.recordings_per_participant = 10
    limits.recording_uploads_in_progress = 2
    meeting, _, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    body = {"filename": "short.webm", "content_type": "video/webm", "size": 1000}
    plan = api.post(f"/meetings/{mid}/recordings", guest, json=body).json()
    started(api, mid, guest)
    assert refused(start(api, mid, guest))
    (part,) = plan["pending"]
    assert httpx.put(part["url"], content=b"x" * 1000).status_code == 200
    done = api.post(f"/meetings/{mid}/recordings/{plan['recording_id']}/complete", guest, json={})
    assert done.status_code == 200 and done.json()["status"] == "complete"
    started(api, mid, guest)  # the completed one no longer holds an unfinished slot
    assert refused(start(api, mid, guest))


def test_the_meeting_wide_byte_cap_holds_across_participants(api: Api, limits) -> None:
    limits.recording_bytes_per_meeting = 3 * MIB
    meeting, host, guests = api.joined_meeting(2)
    mid = meeting["meeting_id"]
    first = started(api, mid, guests[0], 2 * MIB)
    assert refused(start(api, mid, guests[1], 2 * MIB), says="bytes")
    assert refused(start(api, mid, host, 4 * MIB))  # more than the whole cap, even alone
    started(api, mid, host, MIB)  # exactly up to the cap
    assert refused(start(api, mid, guests[1], 1))
    abort(api, mid, guests[0], first)
    started(api, mid, guests[1], 2 * MIB)


def test_concurrent_starts_cannot_overshoot(api: Api, limits) -> None:
    limits.recordings_per_participant = 3
    limits.recording_uploads_in_progress = 10
    meeting, _, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: start(api, mid, guest), range(8)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * 3 + [409] * 5, [r.text for r in answers]
    assert all(error_code(r) == "recording_quota_exceeded" for r in answers if r.status_code == 409)


def test_no_new_uploads_after_the_meeting_ended_past_the_grace(api: Api, limits) -> None:
    import time

    limits.recording_grace_after_end_s = 1
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    before = started(api, mid, guest)  # recording during the meeting
    assert api.post(f"/meetings/{mid}/end", host).status_code in (200, 204)
    within = started(api, mid, guest)  # the recorder uploads as the meeting ends
    time.sleep(1.5)
    assert refused(start(api, mid, guest), 410, "meeting_ended")
    assert refused(start(api, mid, host), 410, "meeting_ended")
    # Uploads started in time stay resumable and can be aborted.
    for rid in (before, within):
        resumed = api.get(f"/meetings/{mid}/recordings/{rid}/upload", guest)
        assert resumed.status_code == 200 and len(resumed.json()["pending"]) == 1
    abort(api, mid, guest, within)


async def test_the_sdk_raises_typed_errors(api: Api, stack, limits, tmp_path) -> None:
    limits.recordings_per_participant = 1
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    started(api, mid, guest)
    path = tmp_path / "take.webm"
    path.write_bytes(b"x" * 1000)
    async with Client(stack.api_url, access_token=guest.access_token) as client:
        with pytest.raises(RecordingQuotaExceeded) as exc:
            await client.upload_recording(mid, path, "video/webm")
    assert exc.value.status == 409 and exc.value.code == "recording_quota_exceeded"
    limits.recording_grace_after_end_s = 0
    assert api.post(f"/meetings/{mid}/end", host).status_code in (200, 204)
    async with Client(stack.api_url, access_token=host.access_token) as client:
        with pytest.raises(MeetingEnded):
            await client.upload_recording(mid, path, "video/webm")
