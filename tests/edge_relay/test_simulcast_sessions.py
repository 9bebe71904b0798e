"""Simulcast at the signalling level: who is offered it, and the ``video_quality`` message (hostile ones
included), through the relay's real connection handling (as tests/edge_relay/test_sessions.py)."""

from __future__ import annotations

from edge_relay.config import RelayConfig
from edge_relay.rooms.directory import Rooms
from tests.edge_relay.test_sessions import config, joined  # noqa: F401 (config: a fixture)


async def test_only_a_vp8_camera_of_a_client_that_asks_is_offered_simulcast(config: RelayConfig) -> None:  # noqa: F811
    rooms = Rooms()
    alice = await joined(rooms, config, "alice")
    await alice.say(type="publish", source="camera", video_codec="video/VP8", simulcast=True)
    offer = alice.of("offer")[-1]["sdp"]
    assert "a=simulcast:recv h;m;l" in offer and "a=rid:h recv" in offer
    assert "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in offer

    bob = await joined(rooms, config, "bob")
    await bob.say(type="publish", source="camera", video_codec="video/VP8")  # did not ask
    await bob.say(type="publish", source="screen", video_codec="video/VP8", simulcast=True)  # a screen
    carol = await joined(rooms, config, "carol")
    await carol.say(type="publish", source="camera", video_codec="video/H264", simulcast=True)  # not VP8
    for socket in (bob, carol):
        assert all("a=simulcast" not in o["sdp"] and "a=rid:" not in o["sdp"] for o in socket.of("offer"))
    for socket in (alice, bob, carol):
        await socket.connection.close("left")


async def test_video_quality_is_checked(config: RelayConfig) -> None:  # noqa: F811
    rooms = Rooms()
    alice = await joined(rooms, config, "alice")
    bob = await joined(rooms, config, "bob")
    await alice.say(type="publish", source="camera", video_codec="video/VP8", simulcast=True)
    await bob.say(type="video_quality", track_id="nobody/camera", quality="low")
    await bob.say(type="video_quality", track_id="alice/camera", quality="best")
    await bob.say(type="video_quality", track_id="", quality="low")
    await bob.say(type="video_quality", track_id="x" * 300, quality="low")
    await bob.say(type="video_quality", track_id="alice/camera", quality=2)
    await bob.say(type="video_quality", track_id="alice/camera")
    assert bob.errors() == ["unknown_track"] + ["invalid_message"] * 5
    await bob.say(type="ping")
    assert bob.of("pong")  # still served
    for socket in (alice, bob):
        await socket.connection.close("left")
