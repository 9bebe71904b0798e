"""Transport-cc on the wire (edge_relay.sfu.twcc): stamping the sequence number, parsing feedback.

Feedback vectors are real packets published with two independent implementations: a Chromium capture
decoded by Wireshark (olivermichel/webrtc-analysis ``test/include/data.h``) and pion/rtcp's
``transport_layer_cc_test.go`` (run-length, 1-bit and 2-bit status vectors, large deltas, padding).
"""

from __future__ import annotations

import struct
import time

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_relay.sfu.rtp import EXT_ABS_SEND_TIME, EXT_MID, parse_header
from edge_relay.sfu.twcc import (
    EXT_TRANSPORT_CC,
    MalformedFeedback,
    parse_feedback,
    split_compound,
    stamp,
)

# Chromium -> Wireshark: run-length chunk, 9 small deltas, P bit with one byte of padding.
CHROMIUM = bytes.fromhex("afcd0007 00000001 dd586eb6 00010009 5e911000 2009 1c0c2c3800040008 18 01")
# pion example6: a 2-bit vector (5 small, 1 lost, 1 large) then a lost run cut at the status count.
PION_TWO_BIT = bytes.fromhex("afcd0007 9b74f61f 9371dcbc 853c0009 63f916b3 d552 0030 9baa6aaa7b 0109 01")
# pion marshal example5: a 1-bit vector (received 1, 2, 3, 5 of 1..14), two bytes of padding.
PION_ONE_BIT = bytes.fromhex("afcd0006 fa17fa17 193dd8bb 0001000e 10636d00 ba00 100c0c10 0002")
# pion marshal example4: run of 7 small deltas, three bytes of padding.
PION_RUN = bytes.fromhex("afcd0007 fa17fa17 193dd8bb 00040007 10636e01 2007 4c242410 0c0c10 000003")
# pion example8: three packets announced, one delta present.
PION_TOO_SHORT = bytes.fromhex("afcd0005 fa17fa17 43032fa0 00990003 3de80217 2003 9401")


def arrivals(deltas_us: list[int]) -> list[int]:
    out, t = [], 0
    for d in deltas_us:
        t += d
        out.append(t)
    return out


def test_chromium_capture() -> None:
    fb = parse_feedback(CHROMIUM)
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_seq, fb.status_count) == (1, 0xDD586EB6, 1, 9)
    assert (fb.reference, fb.fb_count) == (6197520, 0)
    ms = [7, 3, 11, 14, 0, 1, 0, 2, 6]
    assert fb.received == list(zip(range(1, 10), arrivals([m * 1000 for m in ms]), strict=True))


def test_pion_two_bit_vector_and_large_delta() -> None:
    fb = parse_feedback(PION_TWO_BIT)
    assert (fb.base_seq, fb.status_count, fb.reference, fb.fb_count) == (34108, 9, 6551830, 179)
    seqs = [34108, 34109, 34110, 34111, 34112, 34114]  # 34113 lost, then 34115..34116 lost (the run)
    times = arrivals([38750, 42500, 26500, 42500, 30750, 66250])
    assert fb.received == list(zip(seqs, times, strict=True))


def test_pion_one_bit_vector() -> None:
    fb = parse_feedback(PION_ONE_BIT)
    assert (fb.base_seq, fb.status_count, fb.reference) == (1, 14, 1074029)
    assert fb.received == list(zip([1, 2, 3, 5], arrivals([4000, 3000, 3000, 4000]), strict=True))


def test_pion_run_length() -> None:
    fb = parse_feedback(PION_RUN)
    assert (fb.base_seq, fb.status_count, fb.fb_count) == (4, 7, 1)
    deltas = [19000, 9000, 9000, 4000, 3000, 3000, 4000]
    assert fb.received == list(zip(range(4, 11), arrivals(deltas), strict=True))


def test_sequence_numbers_wrap() -> None:
    fb = parse_feedback(feedback(0xFFFE, 4, [0x2004], bytes((4, 4, 4, 4))))
    assert [s for s, _ in fb.received] == [0xFFFE, 0xFFFF, 0, 1]


def feedback(base: int, count: int, chunks: list[int], deltas: bytes, pad_to_words: bool = True) -> bytes:
    body = struct.pack("!IIHHI", 7, 9, base, count, (100 << 8) | 3)
    body += b"".join(struct.pack("!H", c) for c in chunks) + deltas
    body += b"\x00" * (-len(body) % 4 if pad_to_words else 0)
    return struct.pack("!BBH", 0x8F, 205, len(body) // 4) + body


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (PION_TOO_SHORT, "more receive deltas"),
        (feedback(0, 65535, [0x2000 | 0x1FFF], b""), "more receive deltas"),  # 8191 deltas announced
        (feedback(0, 20, [0x2000 | 4], b"", pad_to_words=False), "status chunks"),  # count not covered
        (feedback(0, 3, [0x6003], b"\x00\x00"), "reserved"),  # run of symbol 3
        (feedback(0, 2, [0xF000], b""), "reserved"),  # 2-bit vector with symbol 3
        (feedback(0, 2, [0x0000], b""), "empty run"),
        (b"\x8f\xcd\x00\x09" + PION_ONE_BIT[4:], "length field"),  # header says longer than it is
        (b"\xaf" + PION_ONE_BIT[1:-1] + b"\x00", "padding"),  # P bit with zero padding
        (b"\xaf" + PION_ONE_BIT[1:-1] + b"\x40", "padding"),  # padding larger than the packet
        (PION_ONE_BIT[:19], "shorter"),
        (b"\x8e" + PION_ONE_BIT[1:], "not a transport feedback"),  # FMT 14
    ],
)
def test_hostile_feedback_is_refused(packet: bytes, why: str) -> None:
    with pytest.raises(MalformedFeedback, match=why):
        parse_feedback(packet)


def test_every_truncation_is_refused_or_parsed() -> None:
    for vector in (CHROMIUM, PION_TWO_BIT, PION_ONE_BIT, PION_RUN):
        for cut in range(len(vector)):
            with pytest.raises(MalformedFeedback):
                parse_feedback(vector[:cut])


def test_huge_lost_runs_cost_nothing() -> None:
    """65535 statuses, all lost, in 8 run-length chunks: no per-packet work, nothing received."""
    packet = feedback(0, 65535, [0x1FFF] * 8 + [0x0007], b"")
    started = time.perf_counter()
    for _ in range(1000):
        fb = parse_feedback(packet)
    assert fb.received == [] and fb.status_count == 65535
    assert time.perf_counter() - started < 1.0


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=120), st.integers(0, 0xFFFF))
def test_fuzzed_feedback_never_escapes(tail: bytes, count: int) -> None:
    packet = struct.pack("!BBH", 0x8F, 205, (16 + len(tail)) // 4) + struct.pack("!IIHH", 1, 2, 3, count)
    packet += tail
    try:
        fb = parse_feedback(packet)
    except MalformedFeedback:
        return
    assert len(fb.received) <= len(packet)  # bounded by what the packet holds


def test_split_compound() -> None:
    rr = bytes.fromhex("81c90007") + bytes(28)
    parts = list(split_compound(rr + CHROMIUM))
    assert [(pt, fmt) for pt, fmt, _ in parts] == [(201, 1), (205, 15)]
    assert parts[1][2] == CHROMIUM
    with pytest.raises(MalformedFeedback):
        list(split_compound(rr + b"\x81\xc9\x00\x07"))
    with pytest.raises(MalformedFeedback):
        list(split_compound(rr + b"\x81"))


# ----------------------------------------------------------------------------- stamping


def read_back(packet: bytes, ids: dict[str, int]) -> RtpPacket:
    """aiortc's own parser as the independent reader of what :func:`stamp` wrote."""
    ext_map = HeaderExtensionsMap()
    ext_map.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in ids.items()]
        )
    )
    return RtpPacket.parse(packet, ext_map)


def rtp(ext: bytes = b"", csrcs: int = 0, payload: bytes = b"payload!") -> bytes:
    b0 = 0x80 | (0x10 if ext else 0) | csrcs
    return struct.pack("!BBHII", b0, 96, 1000, 5000, 0x1234) + bytes(4 * csrcs) + ext + payload


@pytest.mark.parametrize("seq", [0, 1, 0x1234, 0xFFFF, 0x10005])
def test_stamp_without_extensions(seq: int) -> None:
    out = stamp(rtp(), 5, seq)
    parsed = read_back(out, {EXT_TRANSPORT_CC: 5})
    assert parsed.extensions.transport_sequence_number == seq & 0xFFFF
    assert parsed.payload == b"payload!" and parsed.sequence_number == 1000 and parsed.ssrc == 0x1234


def test_stamp_keeps_one_byte_extensions() -> None:
    mid = bytes(((1 << 4) | 0,)) + b"1" + bytes(((3 << 4) | 2,)) + b"\x01\x02\x03" + b"\x00\x00"
    ext = struct.pack("!HH", 0xBEDE, len(mid) // 4) + mid
    out = stamp(rtp(ext, csrcs=2), 5, 777)
    parsed = read_back(out, {EXT_TRANSPORT_CC: 5, EXT_MID: 1, EXT_ABS_SEND_TIME: 3})
    assert parsed.extensions.transport_sequence_number == 777
    assert parsed.extensions.mid == "1" and parsed.extensions.abs_send_time == 0x010203
    assert parsed.payload == b"payload!" and len(parsed.csrc) == 2
    header = parse_header(out)
    assert out[header.header_len :] == b"payload!"


def test_stamp_keeps_two_byte_extensions() -> None:
    body = bytes((1, 2)) + b"ab"
    ext = struct.pack("!HH", 0x1000, 1) + body
    out = stamp(rtp(ext), 20, 4242)
    header = parse_header(out)
    assert header.ext_profile == 0x1000 and out[header.header_len :] == b"payload!"
    assert out[header.ext_start : header.ext_end] == bytes((20, 2, 0x10, 0x92)) + body


def test_stamp_leaves_unknown_profiles() -> None:
    ext = struct.pack("!HH", 0x1234, 1) + b"abcd"
    assert stamp(rtp(ext), 5, 1) == rtp(ext)
