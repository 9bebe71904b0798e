"""Recordings over real HTTP and S3 (moto): multipart upload through presigned URLs, resume, download."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from client_sdk.client import Client
from tests.conftest import Api, User, error_code

MIB = 1024 * 1024


@pytest.fixture
def recording_file(tmp_path: Path) -> Path:
    path = tmp_path / "meeting.mp4"
    path.write_bytes(os.urandom(11 * MIB))  # three parts of 5 MiB, the last 1 MiB
    return path


def sdk(stack, user: User) -> Client:
    return Client(stack.api_url, access_token=user.access_token, refresh_token=user.refresh_token)


async def test_upload_list_and_download(api: Api, stack, recording_file: Path, tmp_path: Path) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    progress: list[tuple[int, int]] = []
    async with sdk(stack, guest) as client:
        rec = await client.upload_recording(
            mid,
            recording_file,
            part_size=5 * MIB,
            on_progress=lambda done, total: progress.append((done, total)),
        )
    assert rec.status == "complete" and rec.size == 11 * MIB and rec.owner_id == guest.user_id
    assert progress[0] == (0, 11 * MIB) and progress[-1] == (11 * MIB, 11 * MIB) and len(progress) == 4

    listed = api.get(f"/meetings/{mid}/recordings", host).json()  # every participant sees it
    assert [r["recording_id"] for r in listed] == [rec.recording_id]
    async with sdk(stack, host) as client:
        out = await client.download(listed[0]["download_url"], tmp_path / "copy.mp4")
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(recording_file.read_bytes()).digest()


async def test_interrupted_upload_resumes_with_only_the_missing_parts(
    api: Api, stack, recording_file: Path
) -> None:
    meeting, _, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    plan = api.post(
        f"/meetings/{mid}/recordings",
        guest,
        json={"filename": "meeting.mp4", "content_type": "video/mp4", "size": 11 * MIB, "part_size": 5 * MIB},
    ).json()
    assert [p["part_number"] for p in plan["pending"]] == [1, 2, 3]
    data = recording_file.read_bytes()
    first = plan["pending"][0]
    assert httpx.put(first["url"], content=data[: 5 * MIB]).status_code == 200
    # ... and then the client "crashes". Completing now is refused: parts are missing.
    r = api.post(f"/meetings/{mid}/recordings/{plan['recording_id']}/complete", guest, json={})
    assert r.status_code == 409 and error_code(r) == "parts_missing"

    resumed = api.get(f"/meetings/{mid}/recordings/{plan['recording_id']}/upload", guest).json()
    assert [p["part_number"] for p in resumed["uploaded"]] == [1]
    assert [p["part_number"] for p in resumed["pending"]] == [2, 3]
    sizes: list[int] = []
    async with sdk(stack, guest) as client:
        rec = await client.upload_recording(
            mid, recording_file, recording_id=plan["recording_id"], on_progress=lambda d, t: sizes.append(d)
        )
    assert rec.status == "complete" and sizes[0] == 5 * MIB
    assert httpx.get(rec.download_url).content == data
    # Completing again (a retry whose answer was lost) returns the same recording.
    again = api.post(f"/meetings/{mid}/recordings/{plan['recording_id']}/complete", guest, json={})
    assert again.status_code == 200 and again.json()["status"] == "complete"


def test_wrong_sized_parts_and_wrong_etags_are_refused(api: Api) -> None:
    meeting, _, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    plan = api.post(
        f"/meetings/{mid}/recordings",
        guest,
        json={"filename": "x.webm", "content_type": "video/webm", "size": 6 * MIB, "part_size": 5 * MIB},
    ).json()
    part1, part2 = plan["pending"]
    httpx.put(part1["url"], content=b"a" * (5 * MIB))
    httpx.put(part2["url"], content=b"b" * 10)  # the plan says 1 MiB
    rid = plan["recording_id"]
    assert (
        error_code(api.post(f"/meetings/{mid}/recordings/{rid}/complete", guest, json={})) == "parts_missing"
    )
    httpx.put(part2["url"], content=b"b" * MIB)
    bad = {"parts": [{"part_number": 1, "etag": "nope"}, {"part_number": 2, "etag": "nope"}]}
    assert (
        error_code(api.post(f"/meetings/{mid}/recordings/{rid}/complete", guest, json=bad)) == "etag_mismatch"
    )
    assert api.post(f"/meetings/{mid}/recordings/{rid}/complete", guest, json={}).status_code == 200


def test_access_rules(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid, stranger = meeting["meeting_id"], api.new_user()
    body = {"filename": "a.mp4", "content_type": "video/mp4", "size": MIB}
    assert error_code(api.post(f"/meetings/{mid}/recordings", stranger, json=body)) == "meeting_not_found"
    assert error_code(api.get(f"/meetings/{mid}/recordings", stranger)) == "meeting_not_found"
    rid = api.post(f"/meetings/{mid}/recordings", guest, json=body).json()["recording_id"]
    for path in ("upload", "complete", "abort"):
        method = api.get if path == "upload" else api.post
        kwargs = {} if path == "upload" else {"json": {}} if path == "complete" else {}
        r = method(f"/meetings/{mid}/recordings/{rid}/{path}", host, **kwargs)
        assert r.status_code == 403 and error_code(r) == "not_owner", path
    assert (
        error_code(api.get(f"/meetings/{mid}/recordings/r_0000000000000000", host)) == "recording_not_found"
    )
    # Unfinished uploads are not listed, but their owner can see their state.
    assert api.get(f"/meetings/{mid}/recordings", host).json() == []
    assert api.get(f"/meetings/{mid}/recordings/{rid}", guest).json()["status"] == "uploading"


def test_abort_closes_the_upload(api: Api) -> None:
    meeting, _, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    body = {"filename": "a.mp4", "content_type": "video/mp4", "size": MIB}
    rid = api.post(f"/meetings/{mid}/recordings", guest, json=body).json()["recording_id"]
    assert api.post(f"/meetings/{mid}/recordings/{rid}/abort", guest).status_code == 204
    assert error_code(api.post(f"/meetings/{mid}/recordings/{rid}/abort", guest)) == "upload_closed"
    assert api.get(f"/meetings/{mid}/recordings/{rid}", guest).json()["status"] == "aborted"


def test_upload_after_the_meeting_ended_is_allowed(api: Api) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    mid = meeting["meeting_id"]
    api.post(f"/meetings/{mid}/end", host)
    body = {"filename": "late.mp4", "content_type": "video/mp4", "size": 1000}
    assert api.post(f"/meetings/{mid}/recordings", guest, json=body).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "../etc/passwd", "content_type": "video/mp4", "size": 10},
        {"filename": "a.mp4", "content_type": "application/x-sh", "size": 10},
        {"filename": "a.mp4", "content_type": "video/mp4", "size": 0},
        {"filename": "a.mp4", "content_type": "video/mp4", "size": 10, "part_size": 1024},
        {"filename": "a.mp4", "content_type": "video/mp4", "size": True},
    ],
)
def test_invalid_upload_requests_get_422(api: Api, body: dict) -> None:
    meeting, host, _ = api.joined_meeting(0)
    r = api.post(f"/meetings/{meeting['meeting_id']}/recordings", host, json=body)
    assert r.status_code == 422
    error_code(r)


def test_size_limits(api: Api) -> None:
    meeting, host, _ = api.joined_meeting(0)
    mid = meeting["meeting_id"]
    huge = {"filename": "a.mp4", "content_type": "video/mp4", "size": 21 * 1024**3}
    assert error_code(api.post(f"/meetings/{mid}/recordings", host, json=huge)) == "validation_error"
    too_many = {
        "filename": "a.mp4",
        "content_type": "video/mp4",
        "size": 10_001 * 5 * MIB,
        "part_size": 5 * MIB,
    }
    r = api.post(f"/meetings/{mid}/recordings", host, json=too_many)
    assert r.status_code == 422
    error_code(r)
