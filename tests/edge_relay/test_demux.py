"""Unit tests of edge_relay.sfu.demux: which published track an incoming RTP packet belongs to.

Packets are real RTP built by aiortc's ``RtpPacket`` (with its header-extension map for the MID), parsed
by the relay's own ``parse_header``, then routed exactly as the relay's RTP tap does (``Demuxer.route``;
a None answer is what the tap drops and counts as an unknown SSRC).
"""

from __future__ import annotations

import struct

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_relay.sfu.demux import Demuxer, extension_value
from edge_relay.sfu.rtp import EXT_MID, PROFILE_ONE_BYTE, PROFILE_TWO_BYTE, MalformedPacket, parse_header

EXT_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID_ID = 4


def ext_map(mid_id: int = MID_ID) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=mid_id, uri=EXT_MID),
                RTCRtpHeaderExtensionParameters(id=1, uri=EXT_AUDIO_LEVEL),
            ]
        )
    )
    return extensions


def rtp(
    ssrc: int, mid: str | None = None, *, mid_id: int = MID_ID, seq: int = 1, level: bool = False
) -> bytes:
    packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=1000, ssrc=ssrc, payload=b"\x10" * 20)
    if mid is not None:
        packet.extensions.mid = mid
    if level:
        packet.extensions.audio_level = (False, 30)
    return packet.serialize(ext_map(mid_id))


def route(demux: Demuxer[str], data: bytes) -> str | None:
    return demux.route(data, parse_header(data))


def with_raw_extension(ssrc: int, profile: int, body: bytes) -> bytes:
    """An RTP packet whose extension block is exactly ``body`` (padded to 32-bit words by the caller)."""
    assert len(body) % 4 == 0
    head = struct.pack("!BBHII", 0x90, 96, 1, 1000, ssrc) + struct.pack("!HH", profile, len(body) // 4)
    return head + body + b"payload"


@pytest.fixture
def demux() -> Demuxer[str]:
    d: Demuxer[str] = Demuxer()
    d.add("camera", "0", 0x1111)
    d.add("mic", "1", 0x2222)
    d.add("screen", "2", None)  # a browser may announce no SSRC for an m-line
    return d


def test_routes_by_the_announced_ssrc(demux: Demuxer[str]) -> None:
    assert route(demux, rtp(0x1111)) == "camera"
    assert route(demux, rtp(0x2222)) == "mic"


def test_unknown_ssrc_without_a_mid_extension_is_not_routed(demux: Demuxer[str]) -> None:
    assert route(demux, rtp(0x3333)) is None  # the MID extension id is not negotiated
    demux.mid_extension_id = MID_ID
    assert route(demux, rtp(0x3333)) is None  # negotiated, but this packet carries no MID
    assert route(demux, rtp(0x3333, level=True)) is None  # other extensions only


def test_unknown_ssrc_is_routed_by_mid_and_learnt(demux: Demuxer[str]) -> None:
    demux.mid_extension_id = MID_ID
    assert route(demux, rtp(0x3333, "2", level=True)) == "screen"
    # libwebrtc stops sending the MID once RTCP flows: the learnt SSRC carries the rest.
    assert route(demux, rtp(0x3333, seq=2)) == "screen"


def test_a_mid_of_no_track_is_not_routed_nor_learnt(demux: Demuxer[str]) -> None:
    demux.mid_extension_id = MID_ID
    assert route(demux, rtp(0x4444, "9")) is None
    assert route(demux, rtp(0x4444)) is None


def test_the_mid_is_read_only_under_the_negotiated_id(demux: Demuxer[str]) -> None:
    demux.mid_extension_id = 5  # this connection negotiated MID as id 5; the packet uses id 4
    assert route(demux, rtp(0x3333, "2")) is None


def test_mid_in_the_two_byte_profile(demux: Demuxer[str]) -> None:
    demux.mid_extension_id = 20  # ids above 14 force aiortc to the two-byte profile
    data = rtp(0x5555, "1", mid_id=20)
    assert parse_header(data).ext_profile == PROFILE_TWO_BYTE
    assert route(demux, data) == "mic"


def test_a_known_ssrc_wins_over_a_conflicting_mid(demux: Demuxer[str]) -> None:
    demux.mid_extension_id = MID_ID
    assert route(demux, rtp(0x1111, "1")) == "camera"


def test_remove_forgets_announced_and_learnt_ssrcs_and_the_mid(demux: Demuxer[str]) -> None:
    demux.mid_extension_id = MID_ID
    assert route(demux, rtp(0x6666, "0")) == "camera"  # learns a second SSRC for the camera
    demux.remove("camera")
    assert route(demux, rtp(0x1111)) is None
    assert route(demux, rtp(0x6666)) is None
    assert route(demux, rtp(0x7777, "0")) is None
    assert route(demux, rtp(0x2222)) == "mic"  # the others stay


def test_readding_a_track_under_a_new_ssrc(demux: Demuxer[str]) -> None:
    demux.remove("mic")
    demux.add("mic2", "1", 0x2223)
    assert route(demux, rtp(0x2222)) is None
    assert route(demux, rtp(0x2223)) == "mic2"


# ------------------------------------------------------------------ extension_value on hostile blocks


def test_extension_value_one_byte_with_padding_between_elements() -> None:
    body = b"\x00\x00" + bytes(((1 << 4) | 0,)) + b"\x7f" + b"\x00" + bytes(((MID_ID << 4) | 1,)) + b"ab"
    body += b"\x00" * (-len(body) % 4)
    data = with_raw_extension(1, PROFILE_ONE_BYTE, body)
    header = parse_header(data)
    assert extension_value(data, header, MID_ID) == b"ab"
    assert extension_value(data, header, 1) == b"\x7f"
    assert extension_value(data, header, 7) is None


def test_extension_value_without_an_extension_block() -> None:
    data = rtp(1)
    assert parse_header(data).ext_profile is None
    assert extension_value(data, parse_header(data), MID_ID) is None


@pytest.mark.parametrize(
    "profile, body",
    [
        # one-byte element claiming 16 bytes in a 4-byte block
        (PROFILE_ONE_BYTE, bytes(((MID_ID << 4) | 15,)) + b"abc"),
        # id 15 stops the one-byte walk (RFC 8285): the MID after it is not read
        (PROFILE_ONE_BYTE, b"\xf0\x00" + bytes(((MID_ID << 4) | 0,)) + b"0"),
        # two-byte element whose length runs past the block
        (PROFILE_TWO_BYTE, bytes((MID_ID, 200)) + b"ab"),
        # two-byte element cut after its id byte
        (PROFILE_TWO_BYTE, b"\x00\x00\x00" + bytes((MID_ID,))),
        # padding only
        (PROFILE_ONE_BYTE, b"\x00" * 8),
        # an unknown profile is not walked at all
        (0xABCD, bytes(((MID_ID << 4) | 0,)) + b"0\x00\x00"),
    ],
)
def test_malformed_extension_blocks_give_no_mid_and_do_not_raise(profile: int, body: bytes) -> None:
    data = with_raw_extension(0x9999, profile, body)
    header = parse_header(data)
    assert extension_value(data, header, MID_ID) is None
    demux: Demuxer[str] = Demuxer()
    demux.add("camera", "0", None)
    demux.mid_extension_id = MID_ID
    assert demux.route(data, header) is None


@settings(max_examples=300, deadline=None)
@given(
    ssrc=st.sampled_from([0x1111, 0x2222, 0x3333, 0]),
    profile=st.sampled_from([PROFILE_ONE_BYTE, PROFILE_TWO_BYTE, 0x1001, 0]),
    body=st.binary(max_size=40),
    tail=st.binary(max_size=20),
    words=st.integers(0, 12),
    mid_id=st.one_of(st.none(), st.integers(0, 255)),
)
def test_route_never_raises_on_any_parsable_packet(
    ssrc: int, profile: int, body: bytes, tail: bytes, words: int, mid_id: int | None
) -> None:
    """Whatever the extension block says (lengths, ids, a word count that lies), routing answers."""
    data = struct.pack("!BBHII", 0x90, 96, 1, 1000, ssrc) + struct.pack("!HH", profile, words) + body + tail
    try:
        header = parse_header(data)
    except MalformedPacket:
        return  # the tap drops these before routing
    demux: Demuxer[str] = Demuxer()
    demux.add("camera", "0", 0x1111)
    demux.add("mic", "1", None)
    demux.mid_extension_id = mid_id
    target = demux.route(data, header)
    assert target in ("camera", "mic", None)
    if ssrc == 0x1111:
        assert target == "camera"
