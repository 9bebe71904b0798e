"""Real WebRTC through a real relay process on loopback: every participant decodes every other one.

Publishers are aiortc peers sending a generated pattern (stamped with its capture time) and a tone; the
relay forwards their RTP without decoding; subscribers decode with aiortc and check what they got.
"""

from __future__ import annotations

import httpx

from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from meetup_protocol.metrics import parse as parse_metrics
from tests.conftest import Api
from tests.edge_relay.media import join, wait_until


def relay_metrics(stack, region: str = "local") -> dict[str, float]:
    relay = next(r for r in stack.relays if r.region == region)
    return parse_metrics(httpx.get(f"{relay.http_url}/metrics").text)


async def test_three_participants_see_and_hear_each_other(api: Api, stack) -> None:
    meeting, host, guests = api.joined_meeting(2)
    sizes = {"Host": (640, 480), "Guest 0": (320, 240), "Guest 1": (480, 360)}
    peers = []
    for user in (host, *guests):
        w, h = sizes[user.display_name]
        publish = {"camera": PatternVideoTrack(w, h), "microphone": ToneAudioTrack()}
        peers.append(await join(stack, user, meeting, publish))
    try:
        ids = {p.name: p.conn.participant_id for p in peers}

        def everyone_flowing() -> bool:
            return all(
                p.frames(f"{ids[o.name]}/camera") >= 15 and p.frames(f"{ids[o.name]}/microphone") >= 25
                for p in peers
                for o in peers
                if o is not p
            )

        assert await wait_until(everyone_flowing, 20), {
            p.name: {k: v.frames for k, v in p.received.items()} for p in peers
        }
        for p in peers:
            for o in peers:
                if o is not p:
                    got = p.received[f"{ids[o.name]}/camera"]
                    assert got.size == sizes[o.name]
                    assert got.info["source"] == "camera" and got.info["participant_id"] == ids[o.name]
        values = relay_metrics(stack)
        assert values['relay_codec_instances_total{type="decoder"}'] == 0
        assert values['relay_codec_instances_total{type="encoder"}'] == 0
    finally:
        for p in peers:
            await p.close()


async def test_screen_share_arrives_tagged_as_screen_while_the_camera_keeps_flowing(api: Api, stack) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    presenter = await join(stack, host, meeting, {"camera": PatternVideoTrack(320, 240)})
    viewer = await join(stack, guest, meeting, {})
    try:
        pid = presenter.conn.participant_id
        assert await wait_until(lambda: viewer.frames(f"{pid}/camera") >= 10)
        await presenter.conn.publish("screen", PatternVideoTrack(1280, 720, fps=5))
        assert await wait_until(lambda: viewer.frames(f"{pid}/screen") >= 3, 15)
        screen = viewer.received[f"{pid}/screen"]
        assert screen.info["source"] == "screen" and screen.size == (1280, 720)
        before = viewer.frames(f"{pid}/camera")
        assert await wait_until(lambda: viewer.frames(f"{pid}/camera") >= before + 15)  # camera still flows

        await presenter.conn.unpublish("screen")
        assert await wait_until(lambda: "track_unpublished" in viewer.event_types())
        camera_then = viewer.frames(f"{pid}/camera")
        assert await wait_until(lambda: viewer.frames(f"{pid}/camera") >= camera_then + 15)
    finally:
        await presenter.close()
        await viewer.close()


async def test_leave_is_announced_and_host_end_closes_everyone(api: Api, stack) -> None:
    meeting, host, (a, b) = api.joined_meeting(2)
    peers = [await join(stack, u, meeting, {"microphone": ToneAudioTrack()}) for u in (host, a, b)]
    h, pa, pb = peers
    try:
        await pa.conn.close()
        assert await wait_until(
            lambda: "participant_left" in h.event_types() and "participant_left" in pb.event_types()
        )
        left = next(e for e in h.events if e.type == "participant_left")
        assert left.data["participant_id"] == pa.conn.participant_id and left.data["reason"] == "left"

        await pb.send_raw({"type": "end"})  # a guest cannot end the meeting
        assert await wait_until(
            lambda: any(e.type == "error" and e.data["code"] == "not_host" for e in pb.events)
        )

        await h.send_raw({"type": "end"})
        assert await wait_until(lambda: "meeting_ended" in pb.event_types() and pb.conn.closed.is_set())
        ended = next(e for e in pb.events if e.type == "meeting_ended")
        assert ended.data["reason"] == "host_ended"
        assert await wait_until(lambda: h.conn.closed.is_set())
    finally:
        for p in peers:
            await p.close()
