"""The peer transport on its own: two of them negotiate in-process (one offers to receive, the other
answers to send), route by SSRC, start subscriptions with a keyframe once connected, and tell a lost
connection apart from their own close."""

from __future__ import annotations

import asyncio
import struct

from edge_relay.cluster.testing import wait_until
from edge_relay.sfu import bindings, transport
from edge_relay.sfu.forwarder import PublishedTrack
from edge_relay.sfu.rtp import parse_header
from edge_relay.sfu.transport import PeerTransport


class Upstream:
    def __init__(self) -> None:
        self.keyframe_requests = 0

    async def request_keyframe(self, media_ssrc: int) -> None:
        self.keyframe_requests += 1

    async def nack(self, media_ssrc: int, lost: list[int]) -> None:
        pass

    async def report(self, track: PublishedTrack) -> None:
        pass


def rtp(ssrc: int, payload_type: int = 96) -> bytes:
    return struct.pack("!BBHII", 0x80, payload_type, 1, 1000, ssrc) + b"\x10\x00\x00"


async def test_two_transports_negotiate_route_and_close() -> None:
    receiver, sender = PeerTransport(), PeerTransport(peer="link")
    connected_before = transport.CONNECTED.copy()
    upstream = Upstream()
    source = PublishedTrack("alice/camera", "video", "video/VP8", 90000, {}, 1234, upstream)
    lost: list[str] = []

    async def on_lost() -> None:
        lost.append("receiver")

    receiver.on_lost = on_lost
    assert await receiver.create_offer() is None  # no m-line yet: nothing to offer
    ingress = receiver.add_ingress("video", bindings.capabilities("video", "video/VP8"))
    offer = await receiver.create_offer()
    assert offer is not None and "a=recvonly" in offer

    await sender.apply_offer(offer)
    egress = sender.transceiver(str(ingress.mid))
    assert egress is not None and sender.transceiver("no-such-mid") is None
    sender.accept_egress(egress, source)
    answer = await sender.create_answer()
    sub = sender.send(egress, source)
    assert sub is not None and source.subscriptions == [sub] and not sub.ready

    media = next(m for m in (await receiver.apply_answer(answer)).media if m.rtp.muxId == ingress.mid)
    track = receiver.receive(ingress, "alice/camera", "video", media)
    assert track.mime_type == "video/VP8" and media.ssrc
    packet = rtp(media.ssrc[0].ssrc)
    assert receiver.demux.route(packet, parse_header(packet)) is track
    receiver.stop_receiving(track)
    assert receiver.demux.route(packet, parse_header(packet)) is None

    # Connected: the subscription is ready, and starts with a keyframe asked of the publisher.
    await wait_until(lambda: sender.connected and receiver.connected, 15)
    assert sub.ready and upstream.keyframe_requests == 1
    # Host candidates on both sides: a direct path, counted per kind of peer for /metrics.
    assert receiver.path == sender.path == "direct"
    assert transport.CONNECTED - connected_before == {("participant", "direct"): 1, ("link", "direct"): 1}

    await sender.close()  # our own close is not a loss; the other side's connection is lost
    assert source.subscriptions == []
    await wait_until(lambda: lost == ["receiver"], 15)
    await receiver.close()
    await asyncio.sleep(0)
    assert lost == ["receiver"]


async def test_an_egress_m_line_offers_exactly_the_tracks_codec() -> None:
    transport = PeerTransport()
    source = PublishedTrack("alice/microphone", "audio", "audio/opus", 48000, {}, 1, Upstream())
    transceiver = transport.add_egress(source)
    offer = await transport.create_offer()
    assert offer is not None and "opus/48000" in offer and "PCMU" not in offer
    assert transceiver.direction == "sendonly"
    transport.stop_sending(None)  # nothing bound: nothing to stop
    await transport.close()


async def test_a_negotiated_connection_that_ends_before_media_flows_is_counted_once() -> None:
    offerer, answerer = PeerTransport(), PeerTransport()
    before = transport.NEVER_CONNECTED.copy()
    offerer.add_ingress("video", bindings.capabilities("video", "video/VP8"))
    offer = await offerer.create_offer()
    assert offer is not None
    await answerer.apply_offer(offer)
    answer = await answerer.create_answer()
    await answerer.close()  # the peer gives up (a firewall ate its checks): gone before media
    await offerer.apply_answer(answer)
    await offerer.close()
    await offerer.close()
    assert transport.NEVER_CONNECTED - before == {"participant": 2}
    assert not offerer.connected and offerer.path is None
    idle = PeerTransport()  # never negotiated: nothing to count
    await idle.close()
    assert transport.NEVER_CONNECTED - before == {"participant": 2}


def test_the_media_path_counts_a_turn_address_learnt_as_peer_reflexive_as_turn() -> None:
    """A browser's checks through TURN arrive before its answer: aioice learns the relayed address as
    ``prflx`` and ignores the answer's ``relay`` candidate there. The path is still TURN."""
    from aioice import Candidate

    def candidate(kind: str, host: str, port: int) -> Candidate:
        return Candidate("f", 1, "udp", 1, host, port, kind)

    announced = {("10.77.0.1", 52249)}
    assert transport.media_path(candidate("relay", "10.77.0.1", 60000), set()) == "turn"
    assert transport.media_path(candidate("prflx", "10.77.0.1", 52249), announced) == "turn"
    assert transport.media_path(candidate("prflx", "10.77.3.1", 52249), announced) == "direct"
    assert transport.media_path(candidate("host", "10.77.1.1", 7000), announced) == "direct"
    assert transport.media_path(None, announced) == "direct"


async def test_the_relay_sends_on_the_best_nominated_pair_not_the_last() -> None:
    """A browser's direct pair and its TURN pair both succeed under aggressive nomination: whichever
    completes last, the relay keeps sending on the direct one (the higher priority); a better pair that
    completes later still takes over. Real aioice connection and candidates."""
    from types import SimpleNamespace

    from aioice import Candidate
    from aioice.ice import CandidatePair, Connection

    from edge_relay.sfu import seams

    local = SimpleNamespace(local_candidate=Candidate("L", 1, "udp", 2122260223, "10.77.1.1", 7000, "host"))
    direct = Candidate("D", 1, "udp", 2122260223, "10.77.2.1", 50000, "host")
    turn = Candidate("T", 1, "udp", 8331263, "10.77.0.1", 52249, "relay")

    def succeeded(remote: Candidate) -> CandidatePair:
        pair = CandidatePair(local, remote)  # type: ignore[arg-type]
        pair.state, pair.nominated = CandidatePair.State.SUCCEEDED, True
        return pair

    for order in ((direct, turn), (turn, direct)):
        connection = Connection(ice_controlling=True)
        seams.keep_best_nominated_pair(connection)
        for remote in order:
            connection.check_complete(succeeded(remote))
        assert connection._nominated[1].remote_candidate is direct, order
        await connection.close()
