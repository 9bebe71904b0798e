"""The media-path watchdog (client_sdk/rtc/watchdog.py) on two real aiortc peer connections over
loopback. A path through a real coturn whose process is frozen (SIGSTOP: no reset, no error, packets just
stop, as when a firewall eats them) is declared failed within the bound; a closed peer at once; a quiet
but healthy connection (the remote muted, or nothing ever published) never."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)

from client_sdk.media.sources import ToneAudioTrack
from client_sdk.rtc import seams
from client_sdk.rtc.watchdog import MEDIA_SILENCE_S, POLL_S, transport_counts, wait_for_silence
from local_stack.turn import TurnServer, turnserver_binary
from meetup_protocol.turn import turn_credentials

needs_coturn = pytest.mark.skipif(
    turnserver_binary() is None, reason="no turnserver (Debian: apt-get install coturn; ./dev installs it)"
)
#: The watchdog's bound, plus its poll and a loaded machine.
BOUND_S = MEDIA_SILENCE_S + POLL_S + 2.0


@pytest.fixture
def turn() -> Iterator[TurnServer]:
    server = TurnServer().start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


async def connect(a: RTCPeerConnection, b: RTCPeerConnection, b_sends: bool, a_sends: bool) -> None:
    """``b`` offers one audio m-line (with a tone if ``b_sends``); ``a`` answers (with one if
    ``a_sends``); returns once both are connected."""
    seams.gather_on_loopback_only()
    b.addTransceiver(ToneAudioTrack(440) if b_sends else "audio", direction="sendrecv")
    await b.setLocalDescription(await b.createOffer())
    await a.setRemoteDescription(b.localDescription)
    if a_sends:
        a.getTransceivers()[0].sender.replaceTrack(ToneAudioTrack(660))
    await a.setLocalDescription(await a.createAnswer())
    await b.setRemoteDescription(a.localDescription)
    deadline = time.monotonic() + 15
    while not (a.connectionState == b.connectionState == "connected"):
        assert time.monotonic() < deadline, (a.connectionState, b.connectionState)
        await asyncio.sleep(0.05)


@pytest.fixture
async def peers() -> AsyncIterator[list[RTCPeerConnection]]:
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await pc.close()


def via_turn(turn: TurnServer) -> RTCConfiguration:
    username, credential = turn_credentials(turn.secret, "p_watch", int(time.time()) + 600)
    url = turn.urls[0]  # UDP
    server = RTCIceServer(urls=[url], username=username, credential=credential)
    return RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)


@needs_coturn
async def test_a_turn_server_that_freezes_is_a_failed_path_within_the_bound(
    turn: TurnServer, peers: list[RTCPeerConnection]
) -> None:
    a, b = RTCPeerConnection(via_turn(turn)), RTCPeerConnection()
    peers += [a, b]
    await connect(a, b, b_sends=True, a_sends=True)
    watch = asyncio.ensure_future(wait_for_silence(a, lambda: True))
    await asyncio.sleep(1.0)
    assert not watch.done()  # media flows: no verdict
    assert turn.proc is not None
    os.kill(turn.proc.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        reason = await asyncio.wait_for(watch, BOUND_S)
        took = time.monotonic() - frozen
    finally:  # thawed before the peers close (they release their allocation)
        os.kill(turn.proc.pid, signal.SIGCONT)
    print(f"frozen TURN server: '{reason}' after {took:.2f} s")
    assert reason.startswith("nothing received for") and reason.endswith("while sending"), reason
    assert MEDIA_SILENCE_S <= took <= BOUND_S
    assert a.connectionState == "connected"  # ICE itself still thinks all is well


async def test_a_peer_that_closes_is_a_failed_path_at_once(peers: list[RTCPeerConnection]) -> None:
    a, b = RTCPeerConnection(), RTCPeerConnection()
    peers += [a, b]
    await connect(a, b, b_sends=True, a_sends=False)
    watch = asyncio.ensure_future(wait_for_silence(a, lambda: True))
    await asyncio.sleep(0.5)
    await b.close()
    reason = await asyncio.wait_for(watch, BOUND_S)
    assert reason in ("the peer connection closed", "the peer connection failed") or reason.startswith(
        "remote media stopped"
    ), reason


@pytest.mark.parametrize("quiet", ["remote muted", "nothing published"])
async def test_a_quiet_healthy_connection_is_never_declared_failed(
    peers: list[RTCPeerConnection], quiet: str
) -> None:
    a, b = RTCPeerConnection(), RTCPeerConnection()
    peers += [a, b]
    muted = quiet == "remote muted"
    await connect(a, b, b_sends=muted, a_sends=False)
    if muted:
        await asyncio.sleep(0.5)  # some media first, then the remote mutes (its sender reports go on)
        b.getTransceivers()[0].sender.replaceTrack(None)
    remote_tracks = muted  # a muted remote track is still on; nothing published: no remote track
    watch = asyncio.ensure_future(wait_for_silence(a, lambda: remote_tracks))
    await asyncio.sleep(2 * MEDIA_SILENCE_S)
    received, sent = await transport_counts(a)
    assert not watch.done(), watch.result()
    watch.cancel()
    print(f"{quiet}: {received} packets received, {sent} sent, no verdict in {2 * MEDIA_SILENCE_S:g} s")
