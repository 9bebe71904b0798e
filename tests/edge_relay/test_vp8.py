"""edge_relay.sfu.vp8: the VP8 payload descriptor (RFC 7741 4.2) parsed and its counters rewritten.

Descriptors are built byte by byte as Chromium's packetizer writes them (X=1, I=1 with a 15-bit
PictureID, L=1, T=1: its simulcast layers are L1T3) and in the other shapes the RFC allows; hostile
ones (truncated anywhere, flags promising fields that are not there, random bytes) only ever raise
MalformedDescriptor, which the forwarder counts and drops.
"""

from __future__ import annotations

import random

import pytest

from edge_relay.sfu.vp8 import MalformedDescriptor, Vp8Munger, keyframe_size, parse_descriptor

KEY_HEADER = b"\x00\x00\x00\x9d\x01\x2a" + (640).to_bytes(2, "little") + (480).to_bytes(2, "little")


def descriptor(
    *,
    start: bool = True,
    pid: int | None = 0x1234,
    wide: bool = True,
    tl0: int | None = 7,
    tid: int | None = 0,
) -> bytes:
    """A descriptor: X set when any optional field is, PictureID 7 or 15 bits, TL0PICIDX, TID."""
    b0 = 0x10 if start else 0x00
    ext = 0
    body = b""
    if pid is not None:
        ext |= 0x80
        body += bytes([0x80 | pid >> 8, pid & 0xFF]) if wide else bytes([pid & 0x7F])
    if tl0 is not None:
        ext |= 0x40
        body += bytes([tl0])
    if tid is not None:
        ext |= 0x20
        body += bytes([tid << 6 | 0x20])  # Y set
    if ext:
        return bytes([b0 | 0x80, ext]) + body
    return bytes([b0])


def test_chromium_shape_parses() -> None:
    payload = descriptor() + KEY_HEADER
    d = parse_descriptor(payload)
    assert (d.start, d.picture_id, d.picture_id_bits, d.tl0picidx, d.tid, d.size) == (
        True,
        0x1234,
        15,
        7,
        0,
        6,
    )
    assert keyframe_size(payload, d) == (640, 480)


def test_other_shapes_parse() -> None:
    d = parse_descriptor(descriptor(pid=0x55, wide=False, tl0=None, tid=None) + b"\x01")
    assert (d.picture_id, d.picture_id_bits, d.tl0picidx, d.tid, d.size) == (0x55, 7, None, None, 3)
    d = parse_descriptor(descriptor(pid=None, tl0=None, tid=None) + b"\x01")  # no X at all
    assert (d.picture_id, d.tl0picidx, d.size) == (None, None, 1)
    d = parse_descriptor(descriptor(start=False) + b"\x01")
    assert not d.start and keyframe_size(descriptor(start=False) + KEY_HEADER, d) is None


def test_an_inter_frame_or_a_continuation_has_no_size() -> None:
    inter = descriptor() + b"\x01" + KEY_HEADER[1:]  # P bit set: not a key frame
    assert keyframe_size(inter, parse_descriptor(inter)) is None
    no_start_code = descriptor() + b"\x00\x00\x00\x00\x00\x00" + bytes(4)
    assert keyframe_size(no_start_code, parse_descriptor(no_start_code)) is None


def test_the_munger_makes_two_layers_one_continuous_stream() -> None:
    munger = Vp8Munger()
    sent: list[tuple[int, int]] = []

    def through(pid: int, tl0: int) -> None:
        payload = bytearray(descriptor(pid=pid, tl0=tl0) + b"\x01")
        munger.munge(payload, 0, parse_descriptor(bytes(payload)))
        out = parse_descriptor(bytes(payload))
        sent.append((out.picture_id or 0, out.tl0picidx or 0))

    for i in range(3):  # layer A: PictureIDs 100.., TL0PICIDX 10..
        through(100 + i, 10 + i)
    switch_to = descriptor(pid=32760, tl0=250) + KEY_HEADER  # layer B, near both wraps
    munger.rebase(parse_descriptor(switch_to))
    for i in range(12):
        through((32760 + i) & 0x7FFF, (250 + i) & 0xFF)
    pids = [pid for pid, _ in sent]
    tl0s = [tl0 for _, tl0 in sent]
    assert pids == list(range(100, 115))
    assert tl0s == list(range(10, 25))


def test_the_munger_keeps_a_7_bit_picture_id_7_bits_wide() -> None:
    munger = Vp8Munger()
    first = bytearray(descriptor(pid=126, wide=False, tl0=None, tid=None) + b"\x01")
    munger.munge(first, 0, parse_descriptor(bytes(first)))
    new = descriptor(pid=5, wide=False, tl0=None, tid=None) + b"\x01"
    munger.rebase(parse_descriptor(new))
    out = bytearray(new)
    munger.munge(out, 0, parse_descriptor(new))
    assert len(out) == len(new) and parse_descriptor(bytes(out)).picture_id == 127


def test_munging_at_an_offset_rewrites_only_the_descriptor() -> None:
    munger = Vp8Munger()
    munger.munge(bytearray(descriptor(pid=9) + b"\x01"), 0, parse_descriptor(descriptor(pid=9) + b"\x01"))
    payload = descriptor(pid=500) + b"\xaa\xbb"
    munger.rebase(parse_descriptor(payload))
    packet = bytearray(b"H" * 12 + payload)
    munger.munge(packet, 12, parse_descriptor(payload))
    assert packet[:12] == b"H" * 12 and packet[-2:] == b"\xaa\xbb"
    assert parse_descriptor(bytes(packet[12:])).picture_id == 10


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x10",  # a descriptor and no data
        b"\x90",  # X set, no extension byte
        b"\x90\x80",  # I set, no PictureID
        b"\x90\x80\x81",  # M set, second PictureID byte missing
        b"\x90\xc0\x81\x02",  # L set, no TL0PICIDX
        b"\x90\xe0\x81\x02\x07",  # T set, no TID byte
        b"\x90\x10",  # K set, no KEYIDX byte
        b"\x90\xf0\x81\x02\x07\x20",  # every field present, no data after them
    ],
)
def test_hostile_descriptors_are_refused(payload: bytes) -> None:
    with pytest.raises(MalformedDescriptor):
        parse_descriptor(payload)


def test_random_bytes_parse_or_are_refused_never_anything_else() -> None:
    rng = random.Random(15)
    munger = Vp8Munger()
    for _ in range(20000):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(12)))
        try:
            d = parse_descriptor(payload)
        except MalformedDescriptor:
            continue
        assert d.size < len(payload)
        keyframe_size(payload, d)
        out = bytearray(payload)
        munger.rebase(d)
        munger.munge(out, 0, d)
        assert len(out) == len(payload)
