"""An answer that rejects an m-line (Firefox ESR cannot decode H.264 here and answers port 0) no longer
breaks the whole negotiation: the relay's transport applies it, leaves that m-line unsent and binds every
other one. Hostile answers (every m-line rejected, m-lines that do not match the offer) are clear errors.
Real aiortc on both sides; the rejected m-line is the one Firefox ESR 153 wrote (tests/regions/
test_browsers.py sees it end to end)."""

from __future__ import annotations

import re

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from edge_relay.sfu.forwarder import PublishedTrack
from edge_relay.sfu.rejected import RejectedEverything, accept_rejected
from edge_relay.sfu.transport import PeerTransport
from tests.edge_relay.test_transport import Upstream

#: Firefox ESR 153's answer for an H.264 m-line it cannot decode (mid 0 here): no ICE, no DTLS, a codec
#: of its own.
FIREFOX_REJECTION = (
    "m=video 0 UDP/TLS/RTP/SAVPF 120\r\nc=IN IP4 0.0.0.0\r\na=inactive\r\na=mid:{mid}\r\n"
    "a=rtpmap:120 VP8/90000\r\n"
)


def reject_first(answer: str, mid: str) -> str:
    """``answer`` with its first m-line replaced by Firefox's rejection of it."""
    head, first, rest = re.match(r"(.*?)(m=.*?)(m=.*)", answer, re.S).groups()  # type: ignore[union-attr]
    return head + FIREFOX_REJECTION.format(mid=mid) + rest


async def offer_and_answer(relay: PeerTransport, tracks: list[PublishedTrack]) -> tuple[list, str]:
    """The relay offers ``tracks`` (sendonly m-lines); a plain aiortc peer answers to receive them."""
    transceivers = [relay.add_egress(track) for track in tracks]
    offer = await relay.create_offer()
    assert offer is not None
    peer = RTCPeerConnection()
    await peer.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await peer.setLocalDescription(await peer.createAnswer())
    answer = peer.localDescription.sdp
    await peer.close()
    return transceivers, answer


async def test_a_rejected_h264_m_line_leaves_the_others_negotiated() -> None:
    relay = PeerTransport()
    h264_fmtp = {"packetization-mode": "1", "profile-level-id": "42e01f", "level-asymmetry-allowed": "1"}
    h264 = PublishedTrack("chrome/camera", "video", "video/H264", 90000, h264_fmtp, 1, Upstream())
    vp8 = PublishedTrack("sdk/camera", "video", "video/VP8", 90000, {}, 2, Upstream())
    opus = PublishedTrack("chrome/microphone", "audio", "audio/opus", 48000, {}, 3, Upstream())
    try:
        (t_h264, t_vp8, t_opus), answer = await offer_and_answer(relay, [h264, vp8, opus])
        firefox = reject_first(answer, str(t_h264.mid))
        # aiortc 1.16.0 on its own refuses the whole answer (why edge_relay/sfu/rejected.py exists).
        with pytest.raises(ValueError, match="ICE username fragment"):
            await relay.pc.setRemoteDescription(RTCSessionDescription(sdp=firefox, type="answer"))
        applied = await relay.apply_answer(firefox)
        assert relay.rejected == {str(t_h264.mid)}
        assert [m.direction for m in applied.media] == ["inactive", "recvonly", "recvonly"]
        assert relay.send(t_h264, h264) is None  # nothing forwarded on the rejected m-line
        assert relay.send(t_vp8, vp8) is not None and relay.send(t_opus, opus) is not None
        # The next answer that accepts everything clears it.
        await relay.create_offer()
        await relay.apply_answer(answer)
        assert relay.rejected == set()
    finally:
        await relay.close()


def test_an_answer_without_rejections_is_unchanged() -> None:
    answer = "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"
    assert accept_rejected(answer, answer) == (answer, set())


def test_hostile_answers_are_clear_errors() -> None:
    offer = "v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 97\r\na=mid:0\r\na=rtpmap:97 VP8/90000\r\n"
    with pytest.raises(RejectedEverything):
        accept_rejected("v=0\r\ns=-\r\n" + FIREFOX_REJECTION.format(mid="0"), offer)
    live = "m=audio 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=ice-ufrag:u\r\na=ice-pwd:p\r\n"
    with pytest.raises(ValueError, match="m-lines"):  # more m-lines than offered
        accept_rejected("v=0\r\n" + FIREFOX_REJECTION.format(mid="0") + live, offer)
    nameless = FIREFOX_REJECTION.format(mid="0").replace("a=mid:0\r\n", "")
    with pytest.raises(ValueError, match="no mid"):
        accept_rejected("v=0\r\n" + nameless + live, offer.replace("a=mid:0\r\n", "") + live)


async def test_an_answer_with_no_offer_out_is_a_clear_error() -> None:
    relay = PeerTransport()
    try:
        with pytest.raises(ValueError, match="no offer"):
            await relay.apply_answer("v=0\r\n" + FIREFOX_REJECTION.format(mid="0"))
    finally:
        await relay.close()
