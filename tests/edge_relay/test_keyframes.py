"""Key-frame detection (edge_relay.sfu.keyframes) on aiortc's own encoder output and on crafted payloads."""

from __future__ import annotations

import fractions
import random
import struct

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_relay.sfu.keyframes import (
    H264_IDR,
    H264_PPS,
    H264_SPS,
    h264_nal_flags,
    is_h264_keyframe,
    is_vp8_keyframe,
    keyframe_detector,
)
from edge_relay.sfu.rtp import parse_header

KEY, DELTA, DELTA2, KEY2 = 0, 1, 2, 3  # frame indexes; frames 0 and 3 are forced key frames


def noise_frame(n: int, width: int = 320, height: int = 240) -> av.VideoFrame:
    """A frame of noise (so that key frames span many packets), 30 fps timestamps."""
    rnd = random.Random(n)
    frame = av.VideoFrame(width, height, "yuv420p")
    frame.planes[0].update(rnd.randbytes(width * height))
    frame.planes[1].update(bytes([128]) * (width * height // 4))
    frame.planes[2].update(bytes([128]) * (width * height // 4))
    frame.pts = n * 3000
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def encode(encoder: Vp8Encoder | H264Encoder) -> list[list[bytes]]:
    """RTP payloads of 4 frames: key, delta, delta, key (force_keyframe, as on a PLI)."""
    frames = []
    for n in range(4):
        payloads, _ = encoder.encode(noise_frame(n), force_keyframe=n in (KEY, KEY2))
        frames.append(payloads)
    return frames


@pytest.fixture(scope="module")
def vp8_frames() -> list[list[bytes]]:
    return encode(Vp8Encoder())


@pytest.fixture(scope="module")
def h264_frames() -> list[list[bytes]]:
    return encode(H264Encoder())


ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


def through_rtp(payload: bytes, seq: int) -> bytes:
    """Wrap in a real aiortc RTP packet (with an extension), cut the payload out with parse_header."""
    ext_map = HeaderExtensionsMap()
    ext_map.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME)])
    )
    pkt = RtpPacket(payload_type=97, sequence_number=seq, timestamp=1, ssrc=5, payload=payload)
    pkt.extensions.abs_send_time = 0x123456
    data = pkt.serialize(ext_map)
    h = parse_header(data)
    assert h.ext_profile is not None
    return data[h.header_len : h.payload_end]


# ----------------------------------------------------------------------------- VP8, real encoder


def test_vp8_real_encoder_keyframe_delta_and_continuation(vp8_frames: list[list[bytes]]) -> None:
    for n, payloads in enumerate(vp8_frames):
        assert len(payloads) > 1, "noise frames should span several packets"
        got = [is_vp8_keyframe(through_rtp(p, i)) for i, p in enumerate(payloads)]
        if n in (KEY, KEY2):
            assert got == [True] + [False] * (len(payloads) - 1)  # only the first packet starts it
        else:
            assert not any(got)


# ----------------------------------------------------------------------------- H.264, real encoder


def test_h264_real_encoder_keyframe_starts_at_the_sps_packet(h264_frames: list[list[bytes]]) -> None:
    for n, payloads in enumerate(h264_frames):
        got = [is_h264_keyframe(through_rtp(p, i)) for i, p in enumerate(payloads)]
        flags = [h264_nal_flags(p) for p in payloads]
        if n in (KEY, KEY2):
            # aiortc/x264: STAP-A[(SEI,) SPS, PPS], then the IDR slice(s) (FU-A or single NAL units)
            assert payloads[0][0] & 0x1F == 24
            assert flags[0] & (H264_SPS | H264_PPS) == H264_SPS | H264_PPS
            assert got == [True] + [False] * (len(payloads) - 1)
            assert any(f & H264_IDR for f in flags[1:]), "the IDR follows in later packets"
        else:
            assert not any(got)
            assert not any(flags)


def test_detectors_accept_memoryview_slices(vp8_frames, h264_frames) -> None:
    """The forwarder may pass ``memoryview(data)[header_len:payload_end]`` to avoid a copy."""
    assert is_vp8_keyframe(memoryview(b"\x00\x00" + vp8_frames[KEY][0])[2:])
    assert not is_vp8_keyframe(memoryview(vp8_frames[DELTA][0]))
    assert is_h264_keyframe(memoryview(h264_frames[KEY][0]))
    assert not is_h264_keyframe(memoryview(h264_frames[DELTA][0]))


def test_detectors_do_not_cross_codecs(vp8_frames, h264_frames) -> None:
    assert not any(is_h264_keyframe(p) for frame in vp8_frames for p in frame)
    assert not any(is_vp8_keyframe(p) for frame in h264_frames for p in frame)


# ----------------------------------------------------------------------------- VP8, crafted

VP8_KEY_HEADER = b"\x50\x01\x00\x9d\x01\x2a\x40\x01\xf0\x00"  # P=0, start code, 320x240
VP8_DELTA_HEADER = b"\x51\x01\x00\x11\x22\x33\x44\x55\x66\x77"  # P=1


@pytest.mark.parametrize(
    "descriptor",
    [
        b"\x10",  # S=1, no extension
        b"\x90\x00",  # X with no optional field
        b"\x90\x80\x05",  # I, 7-bit picture id
        b"\x90\x80\x85\x55",  # I with M: 15-bit picture id
        b"\x90\xc0\x85\x55\x07",  # I(M) + L
        b"\x90\xf0\x85\x55\x07\xe1",  # I(M) + L + T/K
        b"\x90\x20\x40",  # T only
        b"\xb0\x10\x01",  # N=1 (non-reference) with K only
    ],
)
def test_vp8_descriptor_variants(descriptor: bytes) -> None:
    assert is_vp8_keyframe(descriptor + VP8_KEY_HEADER)
    assert not is_vp8_keyframe(descriptor + VP8_DELTA_HEADER)
    assert not is_vp8_keyframe(bytes([descriptor[0] & ~0x10]) + descriptor[1:] + VP8_KEY_HEADER)  # S=0
    assert not is_vp8_keyframe(bytes([descriptor[0] | 0x01]) + descriptor[1:] + VP8_KEY_HEADER)  # PID=1
    for cut in range(len(descriptor) + len(VP8_KEY_HEADER) - 4):
        assert not is_vp8_keyframe((descriptor + VP8_KEY_HEADER)[:cut])


# ----------------------------------------------------------------------------- H.264, crafted

SPS = b"\x67\x42\xc0\x1f\xda\x01\x40"
PPS = b"\x68\xce\x3c\x80"
IDR = b"\x65\x88\x84\x00\x33"
SLICE = b"\x41\x9a\x02\x03"
SEI = b"\x06\x05\x02\xaa\xbb"


def stap_a(*nals: bytes) -> bytes:
    return b"\x78" + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def fu_a(nal: bytes, start: bool, end: bool = False) -> bytes:
    return (
        bytes([(nal[0] & 0xE0) | 28, (0x80 if start else 0) | (0x40 if end else 0) | (nal[0] & 0x1F)])
        + nal[1:]
    )


@pytest.mark.parametrize(
    ("payload", "flags", "key"),
    [
        (SPS, H264_SPS, True),  # Chrome may send SPS, PPS, IDR as separate single-NAL packets
        (PPS, H264_PPS, False),
        (IDR, H264_IDR, False),  # an IDR with no SPS before it: not decodable by a fresh decoder
        (SLICE, 0, False),
        (SEI, 0, False),
        (stap_a(SPS, PPS), H264_SPS | H264_PPS, True),
        (stap_a(SPS, PPS, IDR), H264_SPS | H264_PPS | H264_IDR, True),
        (stap_a(SEI, SPS, PPS, IDR), H264_SPS | H264_PPS | H264_IDR, True),
        (stap_a(IDR), H264_IDR, False),
        (stap_a(SLICE, SLICE), 0, False),
        (fu_a(IDR, start=True), H264_IDR, False),
        (fu_a(IDR, start=False), 0, False),
        (fu_a(IDR, start=False, end=True), 0, False),
        (fu_a(SPS, start=True), H264_SPS, True),
        (fu_a(SLICE, start=True), 0, False),
        (stap_a(SPS, PPS)[:-1], 0, False),  # truncated STAP-A: rejected as a whole
        (b"\x78\x00\x00" + SPS, 0, False),  # zero-length NAL in a STAP-A
        (bytes([SPS[0] | 0x80]) + SPS[1:], 0, False),  # forbidden bit
        (b"\x79" + stap_a(SPS)[1:], 0, False),  # STAP-B (interleaved mode): unsupported
        (b"\x7c\x87", 0, False),  # FU-A with no data byte
        (b"", 0, False),
    ],
)
def test_h264_packet_types(payload: bytes, flags: int, key: bool) -> None:
    assert h264_nal_flags(payload) == flags
    assert is_h264_keyframe(payload) is key


# ----------------------------------------------------------------------------- robustness, selection


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=40))
def test_detectors_never_raise(payload: bytes) -> None:
    assert isinstance(is_vp8_keyframe(payload), bool)
    assert isinstance(is_h264_keyframe(payload), bool)
    assert 0 <= h264_nal_flags(payload) <= 7


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=20), max_size=5), st.binary(max_size=3))
def test_stap_a_with_arbitrary_nals_never_raises(nals: list[bytes], tail: bytes) -> None:
    payload = stap_a(*nals) + tail
    assert h264_nal_flags(payload) >= 0


def test_keyframe_detector_by_mime_type() -> None:
    assert keyframe_detector("video/VP8") is is_vp8_keyframe
    assert keyframe_detector("video/vp8") is is_vp8_keyframe
    assert keyframe_detector("video/H264") is is_h264_keyframe
    assert keyframe_detector("audio/opus") is None
    assert keyframe_detector("audio/PCMU") is None
    with pytest.raises(ValueError):
        keyframe_detector("video/VP9")
    with pytest.raises(ValueError):
        keyframe_detector("video/rtx")
