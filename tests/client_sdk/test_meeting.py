"""The SDK end to end on the local stack: two clients meet, see and hear each other, share a screen,
chat through an outage, react, and the host ends the meeting; the nearest relay is picked; a relay that
dies mid-meeting is replaced without the user doing anything."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import urlparse

import pytest

from client_sdk.client import Client
from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.meeting import Meeting, MeetingEvent, NoRelayReachable
from functions.services.relays import CACHE_S
from tests.edge_relay.media import wait_until
from tests.tcp_proxies import SwitchableProxy


async def new_client(base_url: str, name: str) -> Client:
    client = Client(base_url)
    email, password = f"{name.lower()}-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
    await client.register(email, password, name)
    await client.login(email, password)
    return client


class Watcher:
    """Collects a meeting's events and decodes every remote track it is given."""

    def __init__(self, meeting: Meeting) -> None:
        self.events: list[MeetingEvent] = []
        self.frames: dict[tuple[str, str], int] = {}  # (participant_id, source) -> decoded frames
        self.sizes: dict[tuple[str, str], tuple[int, int]] = {}
        self.last: dict[tuple[str, str], Any] = {}  # the last decoded video frame (av.VideoFrame)
        self._tasks: list[asyncio.Task[None]] = []
        meeting.on("*", self._on_event)

    def _on_event(self, event: MeetingEvent) -> None:
        self.events.append(event)
        if event.type == "track_added" and event.track is not None:
            self._tasks.append(asyncio.ensure_future(self._decode(event)))

    async def _decode(self, event: MeetingEvent) -> None:
        assert event.track is not None
        key = (event.track.info.participant_id, event.track.info.source)
        while True:
            try:
                frame = await event.track.track.recv()
            except Exception:
                return
            self.frames[key] = self.frames.get(key, 0) + 1
            if event.track.info.kind == "video":
                self.sizes[key] = (frame.width, frame.height)
                self.last[key] = frame

    def of(self, kind: str) -> list[MeetingEvent]:
        return [e for e in self.events if e.type == kind]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


async def test_two_clients_meet_share_chat_through_an_outage_react_and_end(stack) -> None:
    alice = await new_client(stack.api_url, "Alice")
    api = urlparse(stack.api_url)
    async with SwitchableProxy(api.hostname or "", api.port or 0).running() as network:
        bob = await new_client(f"http://127.0.0.1:{network.port}", "Bob")
        created = await alice.create_meeting("SDK test")
        a = await Meeting.join(
            alice,
            created.meeting_id,
            publish={"camera": PatternVideoTrack(640, 480), "microphone": ToneAudioTrack()},
        )
        # Watching before Bob joins: his join returns once his media flows, by when Alice has his tracks.
        wa = Watcher(a)
        b = await Meeting.join(
            bob,
            created.meeting_id,
            created.passcode,
            publish={"camera": PatternVideoTrack(320, 240), "microphone": ToneAudioTrack(330)},
        )
        wb = Watcher(b)
        try:
            # See and hear each other.
            assert await wait_until(
                lambda: (
                    wa.frames.get((b.participant_id, "camera"), 0) >= 15
                    and wb.frames.get((a.participant_id, "camera"), 0) >= 15
                    and wa.frames.get((b.participant_id, "microphone"), 0) >= 25
                    and wb.frames.get((a.participant_id, "microphone"), 0) >= 25
                ),
                20,
            )
            assert wb.sizes[(a.participant_id, "camera")] == (640, 480)
            assert wa.sizes[(b.participant_id, "camera")] == (320, 240)

            # Bob shares his screen; Alice sees it tagged as a screen.
            await b.publish("screen", PatternVideoTrack(1280, 720, fps=5))
            assert await wait_until(lambda: wa.frames.get((b.participant_id, "screen"), 0) >= 3, 15)
            assert wa.sizes[(b.participant_id, "screen")] == (1280, 720)

            # Chat both ways, live through the relay.
            stored = await a.send_chat("Hello Bob").done
            assert await wait_until(lambda: any(e.data.get("text") == "Hello Bob" for e in wb.of("chat")))
            assert stored.text == "Hello Bob"

            # Bob's network drops while he sends: the message waits in the outbox, then lands once.
            network.down()
            pending = b.send_chat("sent during the outage")
            await asyncio.sleep(1.0)
            assert not pending.done.done() and b.outbox.pending
            network.restore()
            message = await asyncio.wait_for(pending.done, 20)
            assert await wait_until(
                lambda: any(e.data.get("text") == "sent during the outage" for e in wa.of("chat"))
            )
            texts = [m.text async for m in alice.chat_history(created.meeting_id)]
            assert texts.count("sent during the outage") == 1 and message.message_id
            assert [e.data["text"] for e in wa.of("chat")].count("sent during the outage") == 1
            assert network.refused > 0  # the outage really refused connections

            # Reactions.
            await b.react("🎉").done
            assert await wait_until(lambda: any(e.data.get("emoji") == "🎉" for e in wa.of("reaction")))

            # The host ends the meeting: both sides observe it.
            await a.end()
            assert await wait_until(lambda: b.ended.is_set(), 10)
            assert b.end_reason == "host_ended" and a.ended.is_set()
            assert [e.data["reason"] for e in wb.of("ended")] == ["host_ended"]
        finally:
            wa.stop()
            wb.stop()
            for meeting in (a, b):
                if not meeting.ended.is_set():
                    await meeting.leave()
            await alice.aclose()
            await bob.aclose()


async def test_the_nearest_relay_is_picked_by_measured_rtt(stack) -> None:
    """The API lists eu-west-1 first (the client's hint), but this client measures local as nearer."""
    client = await new_client(stack.api_url, "Traveller")
    try:
        created = await client.create_meeting()
        admission = await client.join_meeting(created.meeting_id, region="eu-west-1")
        assert admission.relays[0].region == "eu-west-1"
        meeting = await Meeting.join(client, created.meeting_id, region="eu-west-1")
        local = next(r for r in stack.relays if r.region == "local")
        assert meeting.relay_url == local.url
        await meeting.leave()
        # Pinned to its region, the client takes that region's relay although another is nearer.
        pinned = await Meeting.join(client, created.meeting_id, region="eu-west-1", pin_region=True)
        far = next(r for r in stack.relays if r.region == "eu-west-1")
        assert pinned.relay_url == far.url
        await pinned.leave()
        with pytest.raises(NoRelayReachable) as refused:
            await Meeting.join(client, created.meeting_id, region="ap-south-1", pin_region=True)
        assert refused.value.code == "no_relay_in_region"
    finally:
        await client.aclose()


async def test_a_relay_killed_mid_meeting_is_replaced_and_media_resumes(stack) -> None:
    doomed = stack.add_relay("doomed")  # no emulated distance: the nearest of all, so both pick it
    await asyncio.sleep(CACHE_S + 0.1)  # the API re-reads the registry at most once a second
    alice, bob = await new_client(stack.api_url, "Alice"), await new_client(stack.api_url, "Bob")
    created = await alice.create_meeting()
    a = await Meeting.join(alice, created.meeting_id, publish={"camera": PatternVideoTrack(320, 240)})
    b = await Meeting.join(bob, created.meeting_id, created.passcode)
    wb = Watcher(b)
    try:
        assert a.relay_url == b.relay_url == doomed.url
        assert await wait_until(lambda: wb.frames.get((a.participant_id, "camera"), 0) >= 10, 15)
        doomed.kill()
        assert await wait_until(lambda: len(wb.of("reconnected")) == 1 and b.relay_url != doomed.url, 15)
        assert await wait_until(lambda: a.relay_url != doomed.url, 15)
        frames = wb.frames[(a.participant_id, "camera")]
        assert await wait_until(lambda: wb.frames[(a.participant_id, "camera")] >= frames + 15, 20)
        assert len(wb.of("track_added")) >= 2  # the camera came back through the new relay
    finally:
        wb.stop()
        for meeting in (a, b):
            await meeting.leave()
        await alice.aclose()
        await bob.aclose()
        doomed.kill()  # (already dead unless an assertion failed before)
        stack.relays.remove(doomed)


async def test_the_background_setting_is_applied_to_the_published_camera(stack) -> None:
    from client_sdk.media.background import BackgroundTrack

    client = await new_client(stack.api_url, "Blurry")
    try:
        await client.update_settings(background={"mode": "blur"})
        created = await client.create_meeting()
        camera = PatternVideoTrack(320, 240)
        meeting = await Meeting.join(client, created.meeting_id, publish={"camera": camera})
        published = meeting.local_tracks["camera"]
        assert isinstance(published, BackgroundTrack) and published is not camera
        frame = await published.recv()  # the real model runs on the camera's frames
        assert (frame.width, frame.height) == (320, 240)
        await meeting.leave()
    finally:
        await client.aclose()


async def test_mute_and_unmute_mid_meeting(stack) -> None:
    alice, bob = await new_client(stack.api_url, "Alice"), await new_client(stack.api_url, "Bob")
    created = await alice.create_meeting()
    a = await Meeting.join(alice, created.meeting_id, publish={"camera": PatternVideoTrack(320, 240)})
    b = await Meeting.join(bob, created.meeting_id, created.passcode)
    wb = Watcher(b)
    await wait_until(lambda: bool(b.remote_tracks), 10)
    for remote in list(b.remote_tracks.values()):  # tracks that arrived before the watcher
        wb._on_event(MeetingEvent("track_added", remote.info.model_dump(), remote))
    key = (a.participant_id, "camera")
    try:
        assert await wait_until(lambda: wb.frames.get(key, 0) >= 10, 15)
        await a.mute("camera")
        assert await wait_until(lambda: any(e.data.get("muted") is True for e in wb.of("track_muted")), 5)
        await asyncio.sleep(0.5)  # frames in flight
        frozen = wb.frames[key]
        await asyncio.sleep(1.0)
        assert wb.frames[key] <= frozen + 1  # nothing leaves Alice's machine while muted
        await a.mute("camera", False)
        assert await wait_until(lambda: any(e.data.get("muted") is False for e in wb.of("track_muted")), 5)
        assert await wait_until(lambda: wb.frames[key] >= frozen + 10, 10)
    finally:
        wb.stop()
        for meeting in (a, b):
            await meeting.leave()
        await alice.aclose()
        await bob.aclose()
