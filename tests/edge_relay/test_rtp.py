"""RTP header parsing, header-extension translation and per-subscriber rewriting (edge_relay.sfu.rtp)."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtp import RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_relay.sfu.rtp import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    PROFILE_ONE_BYTE,
    PROFILE_TWO_BYTE,
    ExtensionMap,
    MalformedPacket,
    RtpHeader,
    parse_header,
    rewrite_packet,
)

EXT_TCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
EXT_ORIENTATION = "urn:3gpp:video-orientation"

# Chrome's usual ids on the publisher side; a different numbering on the subscriber side.
PUB_IDS = {1: EXT_AUDIO_LEVEL, 2: EXT_ABS_SEND_TIME, 3: EXT_TCC, 4: EXT_MID, 13: EXT_ORIENTATION}
SUB_IDS = {EXT_MID: 9, EXT_ABS_SEND_TIME: 3, EXT_AUDIO_LEVEL: 10}


# ----------------------------------------------------------------------------- helpers


def ext_block(elems: list[tuple[int, bytes]], two_byte: bool = False, pad: int = 0) -> bytes:
    """Build an extension block (profile word + body) from (id, value) elements."""
    if two_byte:
        body = b"".join(bytes((eid, len(v))) + v for eid, v in elems)
    else:
        body = b"".join(bytes(((eid << 4) | (len(v) - 1),)) + v for eid, v in elems)
    body += b"\x00" * pad
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", PROFILE_TWO_BYTE if two_byte else PROFILE_ONE_BYTE, len(body) // 4) + body


def packet(
    payload: bytes = b"\x90\x80" + bytes(100),
    *,
    pt: int = 96,
    seq: int = 1000,
    ts: int = 123456,
    ssrc: int = 0x11223344,
    marker: bool = False,
    csrcs: tuple[int, ...] = (),
    ext: bytes = b"",
    padding: int = 0,
) -> bytes:
    b0 = 0x80 | (0x20 if padding else 0) | (0x10 if ext else 0) | len(csrcs)
    hdr = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    hdr += b"".join(struct.pack("!I", c) for c in csrcs)
    pad = (b"\x00" * (padding - 1) + bytes((padding,))) if padding else b""
    return hdr + ext + payload + pad


def elements(block: bytes) -> list[tuple[int, bytes]]:
    """Reference parser of a full extension block (profile word included)."""
    if not block:
        return []
    profile, words = struct.unpack_from("!HH", block)
    body = block[4 : 4 + 4 * words]
    assert len(body) == 4 * words
    out, i = [], 0
    while i < len(body):
        if body[i] == 0:
            i += 1
            continue
        if profile == PROFILE_ONE_BYTE:
            eid, ln, i = body[i] >> 4, (body[i] & 0x0F) + 1, i + 1
        else:
            assert profile & 0xFFF0 == PROFILE_TWO_BYTE
            eid, ln, i = body[i], body[i + 1], i + 2
        out.append((eid, body[i : i + ln]))
        i += ln
    return out


def extension_block_of(data: bytes) -> bytes:
    h = parse_header(data)
    return data[h.ext_start - 4 : h.ext_end] if h.ext_profile is not None else b""


# ----------------------------------------------------------------------------- parse_header


def test_parse_plain_packet() -> None:
    data = packet(marker=True, pt=111, seq=65535, ts=0xFFFFFFFF, ssrc=7)
    h = parse_header(data)
    assert h == RtpHeader(True, 111, 65535, 0xFFFFFFFF, 7, 0, None, 12, 12, 12, len(data))


def test_parse_csrcs_extension_and_padding_agree_with_aiortc() -> None:
    ext = ext_block([(1, b"\x85"), (2, b"\x01\x02\x03")])
    payload = b"\x10" + bytes(range(50))
    data = packet(payload, csrcs=(1, 2), ext=ext, padding=7)
    h = parse_header(data)
    assert (h.csrc_count, h.ext_profile) == (2, PROFILE_ONE_BYTE)
    assert h.ext_start == 12 + 8 + 4
    assert h.ext_end == h.header_len == 12 + 8 + len(ext)
    assert data[h.header_len : h.payload_end] == payload
    assert h.payload_end == len(data) - 7
    ref = RtpPacket.parse(data)
    assert (ref.payload_type, ref.sequence_number, ref.timestamp, ref.ssrc, ref.marker) == (
        h.payload_type,
        h.seq,
        h.timestamp,
        h.ssrc,
        h.marker,
    )
    assert ref.payload == payload and ref.csrc == [1, 2]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x80" * 11, "short"),
        (bytes([0x40]) + bytes(20), "version 1"),
        (bytes([0x83]) + bytes(19), "3 CSRCs in 20 bytes"),
        (bytes([0x90]) + bytes(13), "extension header truncated"),
        (bytes([0x90]) + bytes(11) + b"\xbe\xde\x00\x02" + bytes(4), "extension body truncated"),
        (bytes([0xA0]) + bytes(11) + b"\x00\x00", "padding count 0"),
        (bytes([0xA0]) + bytes(11) + b"\x00\x04", "padding reaches into the header"),
    ],
)
def test_parse_rejects_inconsistent_packets(data: bytes, why: str) -> None:
    with pytest.raises(MalformedPacket):
        parse_header(data)


def test_parse_accepts_padding_only_payload() -> None:
    data = packet(b"", padding=4)
    h = parse_header(data)
    assert h.header_len == h.payload_end == 12


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=80))
def test_parse_never_raises_anything_else(data: bytes) -> None:
    try:
        h = parse_header(data)
    except MalformedPacket:
        return
    assert 12 <= h.ext_start <= h.ext_end == h.header_len <= h.payload_end <= len(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=12, max_size=80))
def test_parse_never_raises_on_version_2(data: bytes) -> None:
    data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]
    try:
        h = parse_header(data)
    except MalformedPacket:
        return
    assert h.payload_end <= len(data) and (h.ext_profile is not None) == bool(data[0] & 0x10)


# ----------------------------------------------------------------------------- rewrite_packet

element_values = st.lists(st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)), max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=3),
    elems=element_values,
    two_byte=st.booleans(),
    padding=st.integers(0, 8),
    new=st.tuples(
        st.integers(0, 127), st.integers(0, 0x1FFFF), st.integers(0, 0x1FFFFFFFF), st.integers(0, 0xFFFFFFFF)
    ),
    new_elems=element_values,
)
def test_rewrite_round_trip(payload, marker, csrcs, elems, two_byte, padding, new, new_elems) -> None:
    data = packet(
        payload,
        marker=marker,
        csrcs=tuple(csrcs),
        ext=ext_block(elems, two_byte) if elems else b"",
        padding=padding,
    )
    h = parse_header(data)
    pt, seq, ts, ssrc = new
    extension = ext_block(new_elems) if new_elems else b""
    out = rewrite_packet(data, h, pt, seq, ts, ssrc, extension)
    h2 = parse_header(out)
    assert (h2.payload_type, h2.seq, h2.timestamp, h2.ssrc) == (pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    assert h2.marker == marker and h2.csrc_count == len(csrcs)
    assert out[12 : 12 + 4 * len(csrcs)] == data[12 : 12 + 4 * len(csrcs)]
    assert out[h2.header_len : h2.payload_end] == payload
    assert out[h2.payload_end :] == data[h.payload_end :]  # padding kept
    assert extension_block_of(out) == extension
    assert (h2.ext_profile is not None) == bool(new_elems)


# ----------------------------------------------------------------------------- ExtensionMap


def test_translation_keeps_audio_level_and_abs_send_time_and_replaces_mid() -> None:
    ext = ext_block([(1, b"\x85"), (2, b"\x12\x34\x56"), (3, b"\x00\x07"), (4, b"pub-mid-0"), (13, b"\x01")])
    data = packet(ext=ext)
    m = ExtensionMap(PUB_IDS, SUB_IDS, b"7")
    block = m.rewrite(data, parse_header(data))
    assert elements(block) == [(10, b"\x85"), (3, b"\x12\x34\x56"), (9, b"7")]
    assert block[:2] == b"\xbe\xde" and len(block) % 4 == 0


def test_mid_is_added_when_the_publisher_sent_none_and_dropped_when_not_wanted() -> None:
    data = packet(ext=ext_block([(3, b"\x00\x07")]))
    assert elements(ExtensionMap(PUB_IDS, SUB_IDS, b"1").rewrite(data, parse_header(data))) == [(9, b"1")]
    assert ExtensionMap(PUB_IDS, SUB_IDS, None).rewrite(data, parse_header(data)) == b""
    no_mid = {k: v for k, v in SUB_IDS.items() if k != EXT_MID}
    assert ExtensionMap(PUB_IDS, no_mid, b"1").rewrite(data, parse_header(data)) == b""
    plain = packet()  # no extension at all
    assert elements(ExtensionMap(PUB_IDS, SUB_IDS, b"1").rewrite(plain, parse_header(plain))) == [(9, b"1")]
    assert ExtensionMap(PUB_IDS, SUB_IDS).rewrite(plain, parse_header(plain)) == b""


def test_two_byte_input_and_output() -> None:
    ext = ext_block([(1, b"\x85"), (200, b"ignored"), (2, b"\xaa\xbb\xcc"), (3, b"")], two_byte=True, pad=3)
    data = packet(ext=ext)
    m = ExtensionMap(PUB_IDS, SUB_IDS, b"m")
    assert elements(m.rewrite(data, parse_header(data))) == [(10, b"\x85"), (3, b"\xaa\xbb\xcc"), (9, b"m")]
    # a subscriber id above 14 or a MID longer than 16 bytes forces the two-byte profile
    m2 = ExtensionMap(PUB_IDS, {EXT_AUDIO_LEVEL: 20, EXT_MID: 1}, b"m")
    block = m2.rewrite(data, parse_header(data))
    assert block[:2] == b"\x10\x00" and elements(block) == [(20, b"\x85"), (1, b"m")]
    m3 = ExtensionMap(PUB_IDS, SUB_IDS, b"x" * 17)
    assert elements(m3.rewrite(data, parse_header(data)))[-1] == (9, b"x" * 17)


def test_percent_bytes_in_constant_parts_are_not_format_directives() -> None:
    # MID "%b" and audio-level id 2 -> header byte 0x25 == "%": the cached format must escape them
    m = ExtensionMap({1: EXT_AUDIO_LEVEL}, {EXT_AUDIO_LEVEL: 2, EXT_MID: 5}, b"%b%s")
    for level in (b"\x25", b"\x7f"):
        data = packet(ext=ext_block([(1, level)]))
        assert elements(m.rewrite(data, parse_header(data))) == [(2, level), (5, b"%b%s")]


def test_malformed_element_lists_are_truncated_not_fatal() -> None:
    m = ExtensionMap(PUB_IDS, SUB_IDS, b"0")
    # audio level, then an element claiming 16 bytes in the 6 bytes left
    data = packet(ext=struct.pack("!HH", PROFILE_ONE_BYTE, 2) + bytes([0x10, 0x85, 0x2F, 0, 0, 0, 0, 0]))
    assert elements(m.rewrite(data, parse_header(data))) == [(10, b"\x85"), (9, b"0")]
    # id 15 stops the one-byte parse
    data = packet(ext=struct.pack("!HH", PROFILE_ONE_BYTE, 2) + bytes([0x10, 0x85, 0xF0, 0, 0x20, 1, 2, 3]))
    assert elements(m.rewrite(data, parse_header(data))) == [(10, b"\x85"), (9, b"0")]
    # unknown profile: nothing translated
    data = packet(ext=struct.pack("!HH", 0x1234, 1) + bytes([0x10, 0x85, 0, 0]))
    assert elements(m.rewrite(data, parse_header(data))) == [(9, b"0")]


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        ExtensionMap(PUB_IDS, {EXT_MID: 0}, b"0")
    with pytest.raises(ValueError):
        ExtensionMap(PUB_IDS, SUB_IDS, b"")


layouts = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([1, 2, 3, 4, 5, 13, 14]), st.binary(min_size=1, max_size=16)),
        st.just((0, b"")),  # a padding byte between elements
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(
    packets=st.lists(st.tuples(layouts, st.booleans(), st.integers(0, 2)), min_size=1, max_size=12),
    mid=st.one_of(st.none(), st.binary(min_size=1, max_size=20)),
)
def test_cached_layouts_match_a_fresh_walk(packets, mid) -> None:
    """One map fed a stream of changing layouts (values change every packet) == the reference."""
    m = ExtensionMap(PUB_IDS, SUB_IDS, mid)
    out_ids = {in_id: SUB_IDS[uri] for in_id, uri in PUB_IDS.items() if uri in SUB_IDS and uri != EXT_MID}
    for elems, two_byte, ncsrc in packets:
        for variant in range(2):  # same layout twice with other values: the cached path
            vals = [(eid, bytes((b + variant) & 0xFF for b in v)) for eid, v in elems]
            if two_byte:
                body = b"".join(b"\x00" if eid == 0 else bytes((eid, len(v))) + v for eid, v in vals)
            else:
                body = b"".join(
                    b"\x00" if eid == 0 else bytes(((eid << 4) | (len(v) - 1),)) + v for eid, v in vals
                )
            body += b"\x00" * (-len(body) % 4)
            prof = PROFILE_TWO_BYTE if two_byte else PROFILE_ONE_BYTE
            data = packet(csrcs=tuple(range(ncsrc)), ext=struct.pack("!HH", prof, len(body) // 4) + body)
            got = elements(m.rewrite(data, parse_header(data)))
            want = [(out_ids[eid], v) for eid, v in vals if eid in out_ids]
            if mid is not None:
                want.append((SUB_IDS[EXT_MID], mid))
            assert got == want
            # a fresh map (no cache) agrees byte for byte
            assert m.rewrite(data, parse_header(data)) == ExtensionMap(PUB_IDS, SUB_IDS, mid).rewrite(
                data, parse_header(data)
            )


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=16, max_size=60), st.booleans())
def test_rewrite_never_raises_on_parsable_garbage(tail: bytes, two_byte: bool) -> None:
    words = min(tail[0] % 8, (len(tail) - 4) // 4)
    prof = PROFILE_TWO_BYTE | (tail[1] & 0x0F) if two_byte else PROFILE_ONE_BYTE
    data = packet(payload=b"", ext=struct.pack("!HH", prof, words) + tail[4:])
    h = parse_header(data)
    m = ExtensionMap(PUB_IDS, SUB_IDS, b"1")
    block = m.rewrite(data, h)
    assert elements(block)[-1] == (9, b"1")
    out = rewrite_packet(data, h, 97, 1, 2, 3, block)
    assert parse_header(out).payload_end == len(out)
