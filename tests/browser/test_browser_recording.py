"""Recording in the browser: the composed meeting (grid + mix of voices) through MediaRecorder, kept in
IndexedDB, uploaded with the API's multipart flow, downloaded through the API and counted with PyAV.

Also: a dropped network (every part PUT fails) leaves the recording resumable, and it goes on once the
browser is back online; an upload the API refuses (the participant's unfinished-uploads quota) says so in
the page and keeps the recording, which uploads on Retry once the quota allows; an upload killed midway
(the page closed while its part was on its way to S3: the PUT is held by Playwright's router, then the
page goes) resumes after signing in again in a new tab, through the API's resume endpoint, and the file
is whole.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import av
import httpx

from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.meeting import Meeting
from tests.browser.conftest import Launch
from tests.browser.harness import WebUser, poll, video_plays
from tests.client_sdk.test_meeting import new_client

RECORD_S = 5.0
#: This browser's recordings kept in IndexedDB, from the page.
STORED_JS = """async () => (await import(new URL('js/recording-store.js', document.baseURI).href))
  .listRecordings().then((rows) => rows.map((r) => [r.state, r.recordingId]))"""


def count_media(data: bytes) -> dict[str, Any]:
    """Decoded video frames (their span and the last one's contrast) and audio seconds (PyAV)."""
    with av.open(io.BytesIO(data)) as container:
        kinds = {s.type for s in container.streams}
        audio_samples, rate = 0, 48_000
        sizes: set[tuple[int, int]] = set()
        times: list[float] = []
        luma_std = 0.0
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.VideoFrame):
                sizes.add((frame.width, frame.height))
                times.append(frame.time or 0.0)
                luma_std = float(frame.to_ndarray(format="gray").std())
            elif isinstance(frame, av.AudioFrame):
                audio_samples += frame.samples
                rate = frame.sample_rate
    return {
        "kinds": kinds,
        "video_frames": len(times),
        "video_s": max(times) - min(times) if times else 0.0,
        "audio_s": audio_samples / rate,
        "sizes": sizes,
        "luma_std": luma_std,
    }


async def record(user: WebUser, seconds: float) -> None:
    await user.page.click("#toggle-record")
    await user.page.wait_for_selector("#toggle-record[aria-pressed=true]")
    await asyncio.sleep(seconds)
    await user.page.click("#toggle-record")
    await user.page.wait_for_selector("#toggle-record[aria-pressed=false]")


async def completed(client: Any, meeting_id: str, count: int, timeout_s: float = 60) -> list[Any]:
    recordings: list[Any] = []

    async def enough() -> bool:
        nonlocal recordings
        recordings = await client.recordings(meeting_id)
        return len(recordings) >= count

    assert await poll(enough, timeout_s), recordings
    return sorted(recordings, key=lambda r: r.created_at)


async def assert_whole(client: Any, recording: Any, seconds: float) -> dict[str, Any]:
    data = await client.fetch(recording.download_url)
    assert len(data) == recording.size
    media = count_media(data)
    print(f"{recording.filename}: {len(data)} bytes, {media}")
    assert media["kinds"] == {"video", "audio"}
    assert media["sizes"] == {(1280, 720)}
    # The seconds recorded, in video and in audio; the grid drawn at 24 fps (~24 fps came out here; 8 is
    # the floor for a loaded machine), showing the videos (not a blank canvas).
    assert media["video_frames"] >= 8 * seconds, media
    assert media["luma_std"] > 10, media
    assert media["video_s"] >= seconds - 1.5 and media["audio_s"] >= seconds - 1.5, media
    return media


async def test_record_upload_refuse_resume(stack, launch: Launch) -> None:
    ann = await launch("Ann")
    await ann.register(stack.web_url)
    meeting_id, passcode = await ann.create_meeting("Recorded")
    await ann.page.click("#join-created")
    await ann.page.wait_for_selector("#view-meeting:not([hidden])", timeout=30_000)

    bob = await new_client(stack.api_url, "Bob")
    sdk = await Meeting.join(
        bob,
        meeting_id,
        passcode,
        publish={"camera": PatternVideoTrack(320, 240), "microphone": ToneAudioTrack()},
    )
    try:
        await video_plays(ann, sdk.participant_id)

        # 1. Record, upload, the link in the page, the file through the API.
        await record(ann, RECORD_S)
        await ann.page.wait_for_selector("#recording-status:has-text('Uploaded')", timeout=60_000)
        (first,) = await completed(bob, meeting_id, 1)
        link = ann.page.locator(f'li[data-recording-id="{first.recording_id}"] a.download')
        await link.wait_for(timeout=10_000)
        assert await link.text_content() == first.filename
        await assert_whole(bob, first, RECORD_S)

        # 2. The API refuses (two unfinished uploads already: the quota): a clear message, nothing lost.
        async with httpx.AsyncClient(base_url=stack.api_url) as http:
            login = await http.post("/auth/login", json={"email": ann.email, "password": ann.password})
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            body = {"filename": "elsewhere.webm", "content_type": "video/webm", "size": 1000}
            dangling = []
            for _ in range(2):
                started = await http.post(f"/meetings/{meeting_id}/recordings", json=body, headers=auth)
                assert started.status_code == 201, started.text
                dangling.append(started.json()["recording_id"])
            await record(ann, 2.0)
            await ann.page.wait_for_selector("#recording-status:has-text('Upload refused')", timeout=30_000)
            status = await ann.page.text_content("#recording-status")
            assert status and "complete or abort one first" in status and "kept in this browser" in status
            await ann.page.wait_for_selector(".toast.error:has-text('was not uploaded')")
            kept = ann.page.locator("#recordings-list li.local.failed")
            await kept.wait_for(timeout=10_000)
            for recording_id in dangling:
                aborted = await http.post(
                    f"/meetings/{meeting_id}/recordings/{recording_id}/abort", headers=auth
                )
                assert aborted.status_code == 204
        ann.errors.clear()  # the refusal was shown as an error toast, on purpose
        await kept.locator("button.retry").click()
        await ann.page.wait_for_selector("#recording-status:has-text('Uploaded')", timeout=60_000)
        second = (await completed(bob, meeting_id, 2))[-1]
        await assert_whole(bob, second, 2.0)

        # 3. A dropped network: every part PUT fails (after the uploader's retries), the page says so and
        # keeps the recording; back online, it resumes by itself.
        async def drop(route: Any) -> None:
            await route.abort("internetdisconnected")

        await ann.page.route(lambda url: "partNumber=" in url, drop)
        await record(ann, 2.0)
        await ann.page.wait_for_selector("#recording-status:has-text('Upload interrupted')", timeout=60_000)
        await ann.page.unroute_all()
        await ann.page.evaluate("window.dispatchEvent(new Event('online'))")
        await ann.page.wait_for_selector("#recording-status:has-text('Uploaded')", timeout=60_000)
        third = (await completed(bob, meeting_id, 3))[-1]
        await assert_whole(bob, third, 2.0)
        ann.errors.clear()  # the failed PUTs are logged by the browser

        # 4. Killed midway: the part's PUT never reaches S3, the page closes; a new tab resumes it.
        held = asyncio.Event()

        async def hold(route: Any) -> None:
            held.set()  # and never answer: the upload is in flight when the page goes

        await ann.page.route(lambda url: "partNumber=" in url, hold)
        await record(ann, RECORD_S)
        await asyncio.wait_for(held.wait(), 30)
        pending = await ann.page.evaluate(STORED_JS)
        assert len(pending) == 1 and pending[0][0] == "uploading" and pending[0][1], pending
        context = ann.page.context
        await ann.page.close()
        assert len(await bob.recordings(meeting_id)) == 3  # not complete: the part never arrived

        page = await context.new_page()
        await page.goto(stack.web_url)
        await page.fill("#login-form [name=email]", ann.email)
        await page.fill("#login-form [name=password]", ann.password)
        await page.click("#login-form [type=submit]")
        await page.wait_for_selector(".toast:not(.error):has-text('uploaded')", timeout=60_000)
        fourth = (await completed(bob, meeting_id, 4))[-1]
        assert fourth.recording_id == pending[0][1]  # the same upload, resumed, not a new one
        await assert_whole(bob, fourth, RECORD_S)
        assert await page.evaluate(STORED_JS) == [], "an uploaded recording leaves this browser"
    finally:
        await sdk.leave()
        await bob.aclose()
