"""Two browsers and one SDK participant: the relay forwards a real browser's RTP, without decoding, to
another browser and to the SDK, with VP8 in one run and H.264 in the other (each browser publishes the
codec chosen in the join form, the SDK publishes the same)."""

from __future__ import annotations

import asyncio

import pytest

from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.meeting import Meeting
from tests.browser.conftest import Launch
from tests.browser.harness import WebUser, poll, video_plays
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"], ids=["vp8", "h264"])
async def test_two_browsers_and_an_sdk_participant(stack, launch: Launch, codec: str) -> None:
    ann, ben = await asyncio.gather(launch("Ann"), launch("Ben"))
    await asyncio.gather(ann.register(stack.web_url), ben.register(stack.web_url))
    if codec == "video/H264" and not await ann.offers_h264():
        pytest.skip(
            "this Chromium build offers no H.264 the relay accepts (constrained baseline 42e01f or baseline "
            "42001f with packetization-mode=1): RTCRtpSender.getCapabilities('video') lacks it"
        )
    meeting_id, passcode = await ann.create_meeting(f"Passthrough {codec}")
    ann_id = await ann.join(meeting_id, video_codec=codec)
    ben_id = await ben.join(meeting_id, passcode, video_codec=codec)

    carl = await new_client(stack.api_url, "Carl")
    sdk = await Meeting.join(
        carl,
        meeting_id,
        passcode,
        publish={"camera": PatternVideoTrack(320, 240), "microphone": ToneAudioTrack()},
        video_codec=codec,
    )
    seen = Watcher(sdk)
    browsers: list[tuple[WebUser, str]] = [(ann, ann_id), (ben, ben_id)]
    try:
        assert {await ann.relay_url(), await ben.relay_url()} == {sdk.relay_url}

        # Each browser sends the chosen codec ...
        for user, _ in browsers:
            assert await poll(lambda u=user: _sending(u, codec), 15), await user.outbound("camera")

        # ... and decodes the other browser's camera and the SDK's, forwarded as they were sent.
        for viewer, viewer_id in browsers:
            for publisher_id in [pid for _, pid in browsers if pid != viewer_id] + [sdk.participant_id]:
                played = await video_plays(viewer, publisher_id)
                assert played["codec"] == codec, (viewer.name, publisher_id, played)
                if publisher_id == sdk.participant_id:
                    assert (played["width"], played["height"]) == (320, 240)

        # The SDK decodes both browsers' cameras and microphones.
        assert await wait_until(
            lambda: all(
                seen.frames.get((pid, "camera"), 0) >= 15 and seen.frames.get((pid, "microphone"), 0) >= 25
                for _, pid in browsers
            ),
            20,
        ), seen.frames

        await ann.screenshot(f"meeting-two-browsers-{codec.split('/')[1].lower()}")

        # Ben leaves from the page: the others see him go; Ann leaves too.
        await ben.page.click("#leave")
        await ben.page.wait_for_selector("#view-home:not([hidden])")
        assert await wait_until(
            lambda: any(e.data.get("participant_id") == ben_id for e in seen.of("participant_left")), 10
        )
        await ann.page.wait_for_selector(f'figure[data-participant-id="{ben_id}"]', state="detached")
        await ann.page.click("#leave")
        await ann.page.wait_for_selector("#view-home:not([hidden])")
        for user, _ in browsers:
            assert not user.errors, (user.name, user.errors)
    finally:
        seen.stop()
        if not sdk.ended.is_set():
            await sdk.leave()
        await carl.aclose()


async def _sending(user: WebUser, codec: str) -> bool:
    stats = await user.outbound("camera")
    return bool(stats and stats["codec"] == codec and stats["framesEncoded"] >= 10)
