"""A browser and an SDK participant on two different relays: the meeting crosses the relays' cascade link.

The browser takes the nearest relay ("local", by its own RTT probe); the SDK participant is pinned to
eu-west-1. Chromium's RTP (VP8, or H.264 with its profile) crosses the link as sent, in both directions,
and each side decodes the other: the link offers exactly the publisher's codec, nothing is transcoded.
"""

from __future__ import annotations

import pytest

from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.meeting import Meeting
from tests.browser.conftest import Launch
from tests.browser.harness import video_plays
from tests.client_sdk.test_meeting import Watcher, new_client
from tests.edge_relay.media import wait_until
from tests.edge_relay.test_cascade import relay_id
from tests.edge_relay.test_media_e2e import relay_metrics


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"], ids=["vp8", "h264"])
async def test_browser_and_sdk_on_two_relays(stack, launch: Launch, codec: str) -> None:
    ann = await launch("Ann")
    await ann.register(stack.web_url)
    if codec == "video/H264" and not await ann.offers_h264():
        pytest.skip("this Chromium build offers no H.264 the relay accepts")
    meeting_id, passcode = await ann.create_meeting(f"Cascade {codec}")
    ann_id = await ann.join(meeting_id, video_codec=codec)
    carl = await new_client(stack.api_url, "Carl")
    sdk = await Meeting.join(
        carl,
        meeting_id,
        passcode,
        publish={"camera": PatternVideoTrack(320, 240), "microphone": ToneAudioTrack()},
        video_codec=codec,
        region="eu-west-1",
        pin_region=True,
    )
    seen = Watcher(sdk)
    try:
        near = next(r for r in stack.relays if r.region == "local")
        far = next(r for r in stack.relays if r.region == "eu-west-1")
        assert await ann.relay_url() == near.url and sdk.relay_url == far.url

        played = await video_plays(ann, sdk.participant_id)  # the SDK's camera, across the link
        assert played["codec"] == codec and (played["width"], played["height"]) == (320, 240), played
        assert await wait_until(
            lambda: (
                seen.frames.get((ann_id, "camera"), 0) >= 15
                and seen.frames.get((ann_id, "microphone"), 0) >= 25
            ),
            20,
        ), seen.frames
        m_near, far_id = relay_metrics(stack, "local"), relay_id(stack, "eu-west-1")
        assert m_near[f'relay_cascade_tracks_out{{peer="{far_id}"}}'] == 2  # the browser's camera + mic
        assert m_near[f'relay_cascade_tracks_in{{peer="{far_id}"}}'] == 2  # the SDK's
        assert m_near['relay_codec_instances_total{type="decoder"}'] == 0
        await ann.screenshot(f"cascade-{codec.split('/')[1].lower()}")
        await ann.page.click("#leave")
        await ann.page.wait_for_selector("#view-home:not([hidden])")
        assert await wait_until(
            lambda: any(e.data.get("participant_id") == ann_id for e in seen.of("participant_left")), 10
        )
        assert not ann.errors, ann.errors
    finally:
        seen.stop()
        await sdk.leave()
        await carl.aclose()
