"""Two relay processes of the local stack form one cluster (gossip on loopback, seeds from the registry):
a meeting with participants on both is cascaded, each track crossing the relay pair once.

The relays are the session stack's ("local" and "eu-west-1"); participants are sent to a given relay
the way the SDK would after its probe. The multi-region tests with real latency and partitions are in
tests/regions/.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from client_sdk.client import Client
from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.rtc.connection import RelayConnection
from tests.conftest import Api, User
from tests.edge_relay.media import Peer, wait_until
from tests.edge_relay.test_media_e2e import relay_metrics


def relay_id(stack, region: str) -> str:
    relay = next(r for r in stack.relays if r.region == region)
    return httpx.get(f"{relay.http_url}/healthz").json()["relay_id"]


async def join_on(stack, user: User, meeting: dict, region: str, video: bool = True) -> Peer:
    """Join through the API, then connect to that region's relay (as the SDK's pick would)."""
    async with Client(stack.api_url, access_token=user.access_token, refresh_token=user.refresh_token) as api:
        admission = await api.join_meeting(meeting["meeting_id"], meeting["passcode"], region=region)
    url = next(r.url for r in admission.relays if r.region == region)
    publish = {"camera": PatternVideoTrack(320, 240), "microphone": ToneAudioTrack()} if video else {}
    conn = RelayConnection(url, admission.join_token, publish)
    await conn.connect()
    return Peer(conn, user.display_name)


async def test_meeting_across_two_relays_is_cascaded_once_per_track(api: Api, stack) -> None:
    meeting, host, guests = api.joined_meeting(2)
    near, far = "local", "eu-west-1"
    near_id, far_id = relay_id(stack, near), relay_id(stack, far)
    a = await join_on(stack, host, meeting, near)
    b = await join_on(stack, guests[0], meeting, far)
    c = await join_on(stack, guests[1], meeting, far)
    peers = [a, b, c]
    try:
        ids = {p.name: p.conn.participant_id for p in peers}

        def everyone_flowing() -> bool:
            return all(
                p.frames(f"{ids[o.name]}/camera") >= 10 and p.frames(f"{ids[o.name]}/microphone") >= 20
                for p in peers
                for o in peers
                if o is not p
            )

        assert await wait_until(everyone_flowing, 30), (
            ids,
            {p.name: {k: v.frames for k, v in p.received.items()} for p in peers},
        )
        # Each track crosses the pair once: A's two to the far relay, B's and C's four to the near one,
        # although two participants on the far relay subscribe to A's.
        m_near, m_far = relay_metrics(stack, near), relay_metrics(stack, far)
        assert m_near[f'relay_cascade_tracks_out{{peer="{far_id}"}}'] == 2
        assert m_near[f'relay_cascade_tracks_in{{peer="{far_id}"}}'] == 4
        assert m_far[f'relay_cascade_tracks_out{{peer="{near_id}"}}'] == 4
        assert m_far[f'relay_cascade_tracks_in{{peer="{near_id}"}}'] == 2
        assert m_near["relay_cascade_links"] == m_far["relay_cascade_links"] == 1
        # The link went to the dialed relay's own TLS endpoint, pinned by the gossiped fingerprint.
        assert m_near["relay_cluster_pinned_dials_total"] + m_far["relay_cluster_pinned_dials_total"] >= 1
        assert m_near['relay_codec_instances_total{type="decoder"}'] == 0

        # Chat from the far relay reaches the near one once (link and gossip both carry it).
        stored = api.post(
            f"/meetings/{meeting['meeting_id']}/chat",
            guests[0],
            json={"text": "hello from afar", "idempotency_key": "cascade-chat-1"},
        ).json()
        await b.send_raw({"type": "chat", "notice": stored["relay_notice"]})
        assert await wait_until(lambda: any(e.type == "chat" for e in a.events), 5)
        await asyncio.sleep(1.0)  # the gossip copy arrives meanwhile, and must not be delivered again
        chats = [e for e in a.events if e.type == "chat"]
        assert len(chats) == 1 and chats[0].data["text"] == "hello from afar"

        # The last participant on the far relay leaves: the cascade stops on both sides.
        await c.close()
        await b.close()
        peers = [a]
        assert await wait_until(
            lambda: (
                relay_metrics(stack, near)["relay_cascade_links"] == 0
                and relay_metrics(stack, far)["relay_cascade_links"] == 0
            ),
            10,
        )
        assert await wait_until(lambda: "participant_left" in a.event_types(), 5)
    finally:
        for p in peers:
            await p.close()


async def test_host_end_on_one_relay_ends_the_meeting_on_the_other(api: Api, stack) -> None:
    meeting, host, guests = api.joined_meeting(1)
    a = await join_on(stack, host, meeting, "local", video=False)
    b = await join_on(stack, guests[0], meeting, "eu-west-1", video=False)
    try:
        assert await wait_until(lambda: "participant_joined" in a.event_types(), 10)
        await a.send_raw({"type": "end"})
        assert await wait_until(lambda: "meeting_ended" in b.event_types(), 10), b.event_types()
    finally:
        await a.close()
        await b.close()


async def test_a_cascade_join_needs_the_cluster_secret_and_participants_here(stack) -> None:
    """A link token forged with another secret is refused; a valid one for a meeting this relay has
    nobody in is refused too (it would hold a room open for no one)."""
    import json
    import os
    import time

    import websockets

    from edge_relay.cluster.credentials import LinkClaims, issue_link_token

    relay = next(r for r in stack.relays if r.region == "local")
    claims = LinkClaims("other-relay", "m-nobody-here", 10, int(time.time()) + 600)
    state = {"relay_id": "other-relay", "participants": [], "tracks": []}
    for secret, code in (
        (os.environ["MEETUP_CLUSTER_SECRET"], "no_participants"),
        ("a-forged-secret-of-thirty-two-bytes!", "token_invalid"),
    ):
        async with websockets.connect(relay.url) as ws:
            token = issue_link_token(secret, claims)
            await ws.send(json.dumps({"type": "cascade_join", "token": token, "state": state}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["type"] == "error" and reply["code"] == code, reply
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)


async def test_a_draining_relay_hands_its_participants_over_and_the_meeting_goes_on(stack) -> None:
    """Scale-in: the relay of one side of a cascaded meeting gets SIGTERM. It refuses joins, serves its
    grace period, then tells its participants to move; they reconnect to the next relay, and media
    flows both ways again (now on one relay, or across another link)."""
    import signal

    from client_sdk.meeting import Meeting
    from functions.services.relays import CACHE_S
    from tests.client_sdk.test_meeting import Watcher, new_client

    leaving = stack.add_relay("scale-in")  # no emulated distance: the nearest for an unpinned client
    await asyncio.sleep(CACHE_S + 0.1)
    alice, bob = await new_client(stack.api_url, "Alice"), await new_client(stack.api_url, "Bob")
    created = await alice.create_meeting()
    publish = {"camera": PatternVideoTrack(320, 240), "microphone": ToneAudioTrack()}
    a = await Meeting.join(alice, created.meeting_id, publish=publish)
    wa = Watcher(a)  # before Bob joins: his join returns once his media flows, by when Alice has his tracks
    b = await Meeting.join(
        bob, created.meeting_id, created.passcode, publish={"camera": PatternVideoTrack(320, 240)},
        region="eu-west-1", pin_region=True,
    )  # fmt: skip
    wb = Watcher(b)
    try:
        assert a.relay_url == leaving.url and b.relay_url != leaving.url  # a cascaded meeting
        assert await wait_until(lambda: wb.frames.get((a.participant_id, "camera"), 0) >= 10, 20)
        assert await wait_until(lambda: wa.frames.get((b.participant_id, "camera"), 0) >= 10, 20)
        assert leaving.proc is not None
        leaving.proc.send_signal(signal.SIGTERM)  # drain grace: 2 s in the local stack
        assert await wait_until(lambda: len(wa.of("reconnected")) == 1, 20), wa.of("reconnecting")
        assert a.relay_url != leaving.url
        seen_b, seen_a = wb.frames[(a.participant_id, "camera")], wa.frames[(b.participant_id, "camera")]
        assert await wait_until(lambda: wb.frames[(a.participant_id, "camera")] >= seen_b + 10, 20)
        assert await wait_until(lambda: wa.frames[(b.participant_id, "camera")] >= seen_a + 10, 20)
        assert leaving.proc.wait(15) == 0  # drained and exited cleanly
    finally:
        wa.stop()
        wb.stop()
        for meeting in (a, b):
            await meeting.leave()
        await alice.aclose()
        await bob.aclose()
        leaving.stop()
