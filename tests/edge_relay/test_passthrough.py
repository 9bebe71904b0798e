"""The relay forwards encoded media as is: VP8 and H.264, no codec in the relay, keyframes on request."""

from __future__ import annotations

import asyncio

import pytest

from client_sdk.media.sources import PatternVideoTrack
from tests.conftest import Api
from tests.edge_relay.media import join, wait_until
from tests.edge_relay.test_media_e2e import relay_metrics


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
async def test_passthrough_of_each_codec_without_any_codec_in_the_relay(api: Api, stack, codec: str) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    publisher = await join(stack, host, meeting, {"camera": PatternVideoTrack(640, 480)}, video_codec=codec)
    subscriber = await join(stack, guest, meeting, {})
    try:
        track_id = f"{publisher.conn.participant_id}/camera"
        assert await wait_until(lambda: subscriber.frames(track_id) >= 30, 20)
        assert subscriber.received[track_id].size == (640, 480)
        transceiver = next(t for t in subscriber.conn.pc.getTransceivers() if t.receiver.track)
        assert transceiver._codecs[0].mimeType == codec  # what the subscriber negotiated and decoded
        latencies = sorted(subscriber.received[track_id].latencies_ms)
        assert latencies and latencies[len(latencies) // 2] < 500  # capture -> decode, stamped in pixels
        metrics = relay_metrics(stack)
        assert metrics['relay_codec_instances_total{type="decoder"}'] == 0
        assert metrics['relay_codec_instances_total{type="encoder"}'] == 0
    finally:
        await publisher.close()
        await subscriber.close()


async def test_a_late_joiner_gets_a_keyframe_on_request_within_half_a_second(api: Api, stack) -> None:
    """aiortc's VP8 encoder makes a keyframe every 3000 frames: only the relay's PLI gets one sooner."""
    meeting, host, (early, late) = api.joined_meeting(2)
    publisher = await join(stack, host, meeting, {"camera": PatternVideoTrack(640, 480)})
    first = await join(stack, early, meeting, {})
    track_id = f"{publisher.conn.participant_id}/camera"
    try:
        assert await wait_until(lambda: first.frames(track_id) >= 60, 20)  # live for 2 s: past its keyframe
        requests_before = relay_metrics(stack)["relay_keyframe_requests_sent_total"]
        joiner = await join(stack, late, meeting, {})
        try:
            assert await wait_until(lambda: joiner.frames(track_id) >= 1, 10)
            got = joiner.received[track_id]
            assert joiner.conn.connected_at is not None and got.first_frame_at is not None
            since_subscribed = got.first_frame_at - max(joiner.conn.connected_at, got.subscribed_at)
            assert since_subscribed < 0.5, since_subscribed
            assert relay_metrics(stack)["relay_keyframe_requests_sent_total"] > requests_before
            await asyncio.sleep(0.5)
            assert first.frames(track_id) > 60  # the early subscriber never stalled
        finally:
            await joiner.close()
    finally:
        await publisher.close()
        await first.close()
