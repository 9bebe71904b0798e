"""Whatever a client or the network throws at the relay, it answers or drops it and keeps serving.

A canary meeting streams video through the same relay during every test here; each test ends by
checking that the canary's subscriber is still decoding.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
import time

import httpx
import jwt
import pytest
import websockets

from client_sdk.media.sources import PatternVideoTrack
from meetup_protocol.tokens import (
    CLOCK_LEEWAY_S,
    JoinClaims,
    generate_join_keypair,
    issue_join_token,
    load_private_key,
)
from tests.conftest import Api
from tests.edge_relay.media import Peer, join, wait_until
from tests.edge_relay.test_media_e2e import relay_metrics


@pytest.fixture
async def canary(api: Api, stack):
    meeting, host, (guest,) = api.joined_meeting(1)
    publisher = await join(stack, host, meeting, {"camera": PatternVideoTrack(320, 240)})
    viewer = await join(stack, guest, meeting, {})
    track_id = f"{publisher.conn.participant_id}/camera"
    assert await wait_until(lambda: viewer.frames(track_id) >= 10, 15)
    yield viewer, track_id
    frames = viewer.frames(track_id)
    assert await wait_until(lambda: viewer.frames(track_id) >= frames + 20, 10), "the canary meeting stalled"
    await publisher.close()
    await viewer.close()


def relay_url(stack) -> str:
    return next(r for r in stack.relays if r.region == "local").url


async def exchange(url: str, *frames: str | bytes, read: int = 1) -> tuple[list[dict], int | None]:
    """Send frames on a fresh socket; return the relay's messages and the close code (None: still open)."""
    replies: list[dict] = []
    async with websockets.connect(url) as ws:
        for frame in frames:
            await ws.send(frame)
        try:
            for _ in range(read):
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            await asyncio.wait_for(ws.recv(), 0.3)
        except websockets.ConnectionClosed as closed:
            return replies, closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            pass
        return replies, None


def join_claims(meeting_id: str = "1234567890", **overrides) -> JoinClaims:
    now = int(time.time())
    values = dict(
        meeting_id=meeting_id,
        participant_id="p_x",
        user_id="u_x",
        display_name="X",
        role="guest",
        expires_at=now + 60,
        meeting_ends_at=now + 3600,
        max_participants=10,
    )
    values.update(overrides)
    return JoinClaims(**values)


async def test_bad_tokens_are_refused_and_counted(stack, canary) -> None:
    url = relay_url(stack)
    good_key = load_private_key(stack.env["MEETUP_JOIN_PRIVATE_KEY"])
    foreign_key = load_private_key(generate_join_keypair()[0])
    now = int(time.time())
    tokens = {
        "garbage": "not.a.token",
        # Expired beyond the leeway a relay allows for clock skew (edge_relay/ops/clock.py).
        "expired": issue_join_token(join_claims(expires_at=now - CLOCK_LEEWAY_S - 5), good_key),
        "foreign": issue_join_token(join_claims(), foreign_key),
        "access_token_instead": jwt.encode(
            {
                "iss": "meetup-edge",
                "aud": "meetup-api",
                "sub": "u",
                "typ": "access",
                "iat": now,
                "exp": now + 60,
            },
            stack.env["MEETUP_JWT_SECRET"],
            algorithm="HS256",
        ),
        "meeting_over": issue_join_token(join_claims(meeting_ends_at=now - 1), good_key),
    }
    before = relay_metrics(stack)
    codes = {}
    for name, token in tokens.items():
        replies, close_code = await exchange(url, json.dumps({"type": "join", "token": token}))
        assert replies[0]["type"] == "error" and close_code is not None and close_code >= 4000, name
        codes[name] = replies[0]["code"]
    assert codes == {
        "garbage": "token_invalid",
        "expired": "token_expired",
        "foreign": "token_invalid",
        "access_token_instead": "token_invalid",
        "meeting_over": "meeting_ended",
    }
    after = relay_metrics(stack)
    assert (
        after['relay_rejects_total{code="token_invalid"}']
        >= before.get('relay_rejects_total{code="token_invalid"}', 0) + 3
    )


async def test_garbage_oversized_and_out_of_order_messages(stack, canary) -> None:
    url = relay_url(stack)
    cases = [
        (("not json",), "malformed_json"),
        ((b"\x00\x01binary",), "binary_frame"),
        (("[1, 2]",), "invalid_message"),
        (('{"type": "teleport"}',), "unknown_type"),
        (('{"type": "publish", "source": "camera"}',), "not_joined"),
        (('{"type": "join"}',), "invalid_message"),
        (('{"type": "join", "token": "' + "a" * 5000 + '"}',), "invalid_message"),
    ]
    for frames, code in cases:
        replies, close_code = await exchange(url, *frames)
        assert replies and replies[0] == {"type": "error", "code": code, "message": replies[0]["message"]}, (
            frames
        )
        assert close_code is None, f"{code}: a bad message must not cost the connection"
    # Over the size limit: the socket is closed (1009), nothing else happens.
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("x" * (300 * 1024))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is None or closed.value.rcvd.code in (1009, 4413)


async def test_out_of_order_after_joining(api: Api, stack, canary) -> None:
    meeting, host, _ = api.joined_meeting(0)
    peer = await join(stack, host, meeting, {"camera": PatternVideoTrack(320, 240)})
    try:
        send = peer.send_raw
        await send({"type": "join", "token": "again"})
        await send({"type": "answer", "negotiation": 999, "sdp": "v=0"})
        await send({"type": "unpublish", "source": "screen"})
        await send({"type": "publish", "source": "camera"})
        await send({"type": "reaction", "emoji": "x" * 100})
        expected = {
            "already_joined",
            "unexpected_answer",
            "not_published",
            "already_published",
            "invalid_message",
        }
        assert await wait_until(
            lambda: expected <= {e.data.get("code") for e in peer.events if e.type == "error"}
        )
        assert not peer.conn.closed.is_set()
    finally:
        await peer.close()


async def test_flooding_is_rate_limited(api: Api, stack, canary) -> None:
    meeting, host, _ = api.joined_meeting(0)
    peer = await join(stack, host, meeting, {})
    try:
        for _ in range(100):
            await peer.send_raw({"type": "ping"})
        assert await wait_until(
            lambda: any(e.data.get("code") == "rate_limited" for e in peer.events if e.type == "error")
        )
        pongs = sum(1 for e in peer.events if e.type == "pong")
        assert 20 <= pongs < 100
    finally:
        await peer.close()


async def test_abrupt_disconnects_mid_negotiation_are_cleaned_up(api: Api, stack, canary) -> None:
    meeting, host, _ = api.joined_meeting(0)
    async with httpx.AsyncClient(base_url=stack.api_url) as http:
        admission = (
            await http.post(f"/meetings/{meeting['meeting_id']}/join", json={}, headers=host.auth)
        ).json()
    before = relay_metrics(stack)["relay_participants"]
    for _ in range(3):
        ws = await websockets.connect(relay_url(stack))
        await ws.send(json.dumps({"type": "join", "token": admission["join_token"], "publish": ["camera"]}))
        await ws.recv()  # welcome
        await ws.recv()  # the offer, never answered
        ws.transport.abort()  # no close frame, no leave: the TCP connection just dies
    assert await wait_until(lambda: relay_metrics(stack)["relay_participants"] == before, 10)


async def test_random_datagrams_to_the_media_port_are_ignored(api: Api, stack, canary) -> None:
    viewer, _ = canary
    candidates = re.findall(
        r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", viewer.conn.pc.remoteDescription.sdp
    )
    assert candidates, "the relay offered no loopback candidate"
    port = int(candidates[0])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(2000):
            size = 1 + i % 1400
            first = bytes([(0x80, 0x00, 0x16, 0x40, 0xFF)[i % 5]])  # RTP-ish, STUN-ish, DTLS-ish, TURN, junk
            sock.sendto(first + os.urandom(size), ("127.0.0.1", port))
            if i % 200 == 0:
                await asyncio.sleep(0.01)
    finally:
        sock.close()
    assert (
        await asyncio.to_thread(
            httpx.get, f"{next(r for r in stack.relays if r.region == 'local').http_url}/healthz"
        )
    ).status_code == 200


async def test_vanished_participant_is_removed_within_five_seconds(api: Api, stack, canary) -> None:
    meeting, host, (guest,) = api.joined_meeting(1)
    stayer = await join(stack, host, meeting, {})
    leaver: Peer = await join(stack, guest, meeting, {})
    try:
        leaver.conn._ws.transport.pause_reading()  # stops answering pings, like a host that went dark
        await leaver.conn.pc.close()  # ... and its media goes silent
        started = time.monotonic()
        assert await wait_until(lambda: "participant_left" in stayer.event_types(), 8)
        assert time.monotonic() - started <= 5.5
    finally:
        await stayer.close()
        await leaver.close(leave=False)


async def test_garbage_transport_feedback_is_dropped_and_counted(stack, canary) -> None:
    """A subscriber sends the relay transport-cc feedback that lies (counts past the packet, reserved
    symbols, truncation, random bodies), over its real SRTCP: the relay counts it, never misreads it as a
    NACK (aiortc would: RTPFB FMT 15), and the canary keeps flowing."""
    from edge_relay.sfu.seams import bundled_transport, send_rtp

    viewer, _ = canary

    def feedback(body: bytes) -> bytes:  # a consistent RTCP header around a lying body
        return struct.pack("!BBH", 0x8F, 205, (len(body) + 8) // 4) + struct.pack("!II", 1, 2) + body

    lies = [
        feedback(struct.pack("!HHI", 0, 0xFFFF, 0) + struct.pack("!H", 0x3FFF) + b"\x00" * 6),  # 8191 deltas
        feedback(struct.pack("!HHI", 0, 3, 0) + struct.pack("!H", 0x6003) + b"\x00" * 6),  # reserved symbol
        feedback(
            struct.pack("!HHI", 0, 40, 0) + struct.pack("!HH", 0x2004, 0x0000) + b"\x04" * 4
        ),  # empty run
    ]
    before = relay_metrics(stack)
    transport = bundled_transport(viewer.conn.pc)
    for i in range(600):
        body = lies[i % 3] if i % 4 else lies[0][:8] + os.urandom(12)  # random: a length that lies too
        await send_rtp(transport, body)
        if i % 100 == 0:
            await asyncio.sleep(0.05)
    keys = ("relay_transport_feedback_malformed_total", "relay_subscriber_rtcp_malformed_total")
    assert await wait_until(lambda: all(relay_metrics(stack)[k] >= before[k] + 140 for k in keys), 10)
    assert relay_metrics(stack)["relay_retransmissions_total"] - before["relay_retransmissions_total"] < 50
