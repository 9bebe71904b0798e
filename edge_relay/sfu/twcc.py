"""Transport-wide congestion control on the wire (draft-holmer-rmcat-transport-wide-cc-extensions-01).

Two halves, both pure functions on bytes:

* :func:`stamp`: write the transport-wide sequence number header extension into an outgoing RTP packet
  (the relay rewrites the publisher's packets; the sequence number is per subscriber *connection*, so it
  is added after the per-subscriber rewrite, on the send path).
* :func:`parse_feedback`: read the receiver's transport feedback (RTCP PT=205 FMT=15): which of those
  numbers arrived and when. Checked against libwebrtc's ``rtcp_packet/transport_feedback.cc`` (the
  reserved 2-bit symbol 3 is invalid; a chunk's run is cut at the packet status count) and pion's
  ``transport_layer_cc.go`` (test vectors in tests/edge_relay/test_twcc.py).

Feedback is hostile input: anything that does not add up raises :class:`MalformedFeedback`. Work and
memory are bounded by the packet's length: runs of lost packets are skipped, never expanded, and a run of
received packets must have its receive deltas in the packet before it is walked.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

EXT_TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RTCP_RTPFB = 205
FMT_TRANSPORT_CC = 15
#: Receive deltas count in 250 us ticks; the reference time in 64 ms ticks (24 bits).
DELTA_TICK_US = 250
REFERENCE_TICK_US = 64_000
REFERENCE_MODULO = 1 << 24

_FIXED = struct.Struct("!BBHIIHHI")  # RTCP header, sender SSRC, media SSRC, base seq, count, ref|fb count
_SHORT = struct.Struct("!H")
_SIGNED = struct.Struct("!h")
_HEADER = struct.Struct("!BBH")


class MalformedFeedback(ValueError):
    """The bytes are not a consistent transport feedback packet (drop it and count it)."""


class TransportFeedback(NamedTuple):
    """One feedback packet: ``received`` holds ``(seq, arrival_us)`` in sequence order, where
    ``arrival_us`` counts from the packet's reference time (``reference * 64 ms``); sequence numbers
    in ``base_seq .. base_seq + status_count - 1`` (mod 2**16) that are not in it were lost."""

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    status_count: int
    reference: int  # 24-bit, in 64 ms ticks; the consumer unwraps it across packets
    fb_count: int
    received: list[tuple[int, int]]


def stamp(packet: bytes, ext_id: int, seq: int) -> bytes:
    """``packet`` with the transport-wide sequence number ``seq`` (mod 2**16) as extension ``ext_id``.

    The element goes first in the extension block followed by one padding byte, so the block grows by
    exactly one 32-bit word and nothing else moves: one-byte form ``[id<<4|1, hi, lo, 0]``, two-byte
    form ``[id, 2, hi, lo]``; a packet without extensions gets a one-byte block of its own. The caller
    passes a packet it built itself (:func:`edge_relay.sfu.rtp.rewrite_packet`), so it is well formed.
    """
    seq &= 0xFFFF
    b0 = packet[0]
    start = 12 + 4 * (b0 & 0x0F)
    if not b0 & 0x10:
        element = bytes((0xBE, 0xDE, 0, 1, (ext_id << 4) | 1, seq >> 8, seq & 0xFF, 0))
        return b"".join((bytes((b0 | 0x10,)), packet[1:start], element, packet[start:]))
    profile, words = struct.unpack_from("!HH", packet, start)
    if profile == 0xBEDE and ext_id <= 14:
        element = bytes(((ext_id << 4) | 1, seq >> 8, seq & 0xFF, 0))
    elif profile & 0xFFF0 == 0x1000:
        element = bytes((ext_id, 2, seq >> 8, seq & 0xFF))
    else:
        return packet  # a profile we cannot add to: the packet goes unstamped (never seen in practice)
    return b"".join((packet[:start], struct.pack("!HH", profile, words + 1), element, packet[start + 4 :]))


def split_compound(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(packet type, fmt/count, packet bytes)`` for each RTCP packet of a compound; stops (raising
    :class:`MalformedFeedback`) at a header whose length runs past the data."""
    pos, n = 0, len(data)
    while pos + 4 <= n:
        b0, pt, words = _HEADER.unpack_from(data, pos)
        end = pos + 4 * (words + 1)
        if b0 >> 6 != 2 or end > n:
            raise MalformedFeedback("RTCP packet runs past the compound")
        yield pt, b0 & 0x1F, data[pos:end]
        pos = end
    if pos != n:
        raise MalformedFeedback("trailing bytes after the last RTCP packet")


def parse_feedback(packet: bytes) -> TransportFeedback:
    """Parse one transport feedback RTCP packet (header included)."""
    n = len(packet)
    if n < _FIXED.size:
        raise MalformedFeedback("shorter than the fixed part of transport feedback")
    b0, pt, words, sender, media, base, count, ref_fb = _FIXED.unpack_from(packet)
    if b0 >> 6 != 2 or pt != RTCP_RTPFB or b0 & 0x1F != FMT_TRANSPORT_CC:
        raise MalformedFeedback("not a transport feedback packet")
    end = 4 * (words + 1)
    if end > n:
        raise MalformedFeedback("length field runs past the packet")
    if b0 & 0x20:
        pad = packet[end - 1]
        if pad == 0 or end - pad < _FIXED.size:
            raise MalformedFeedback("invalid padding")
        end -= pad
    pos = _FIXED.size
    # pass 1: status chunks -> runs of received packets as (offset from base, delta size, run length)
    runs: list[tuple[int, int, int]] = []
    delta_bytes = 0
    covered = 0
    while covered < count:
        if pos + 2 > end:
            raise MalformedFeedback("status chunks run past the packet")
        chunk = _SHORT.unpack_from(packet, pos)[0]
        pos += 2
        left = count - covered
        if not chunk & 0x8000:  # run length: 2-bit symbol, 13-bit run
            symbol, run = (chunk >> 13) & 0x3, min(chunk & 0x1FFF, left)
            if run == 0:
                raise MalformedFeedback("empty run-length chunk")
            if symbol == 3:
                raise MalformedFeedback("reserved status symbol")
            if symbol:
                runs.append((covered, symbol, run))
                delta_bytes += symbol * run
            covered += run
        else:
            two_bit = bool(chunk & 0x4000)
            size, bits = (7, 2) if two_bit else (14, 1)
            for i in range(min(size, left)):
                symbol = (chunk >> (bits * (size - 1 - i))) & (3 if two_bit else 1)
                if symbol == 3:
                    raise MalformedFeedback("reserved status symbol")
                if symbol:
                    runs.append((covered + i, symbol, 1))
                    delta_bytes += symbol
            covered += min(size, left)
        if delta_bytes > end - pos:
            raise MalformedFeedback("more receive deltas announced than the packet holds")
    # pass 2: receive deltas, in sequence order
    received: list[tuple[int, int]] = []
    arrival = 0
    for offset, symbol, run in runs:
        for i in range(run):
            if symbol == 1:
                arrival += packet[pos] * DELTA_TICK_US
                pos += 1
            else:
                arrival += _SIGNED.unpack_from(packet, pos)[0] * DELTA_TICK_US
                pos += 2
            received.append(((base + offset + i) & 0xFFFF, arrival))
    if pos > end:  # pragma: no cover - excluded by the check in pass 1
        raise MalformedFeedback("receive deltas run past the packet")
    return TransportFeedback(sender, media, base, count, ref_fb >> 8, ref_fb & 0xFF, received)


# --- negotiation (SDP) ---------------------------------------------------------------------------------
# aiortc neither offers nor understands transport-cc, so the relay adds it to the offers it makes (on the
# m-lines where it sends) and reads the peer's answer itself. An aiortc peer drops what it does not know
# from its answer (no transport-cc: its REMB is used instead); a browser keeps both lines and sends
# transport feedback (MACHINE.md: without the rtcp-fb lines Chromium does not).

_NO_FEEDBACK_CODECS = ("rtx", "red", "ulpfec", "flexfec-03")


def free_extension_id(sdp: str) -> int | None:
    """The smallest one-byte header extension id (1..14) no m-line of ``sdp`` uses (BUNDLE shares ids)."""
    used = {
        int(line[9:].split()[0].split("/")[0]) for line in sdp.splitlines() if line.startswith("a=extmap:")
    }
    return next((i for i in range(1, 15) if i not in used), None)


def offer_transport_cc(sdp: str, ext_id: int) -> str:
    """``sdp`` with transport-cc (extmap ``ext_id`` and ``a=rtcp-fb:<pt> transport-cc`` per media codec)
    on every ``sendonly`` audio/video m-line; unchanged if ``ext_id`` already means something else."""
    if any(
        line.startswith(f"a=extmap:{ext_id} ") and not line.endswith(EXT_TRANSPORT_CC)
        for line in sdp.splitlines()
    ):
        return sdp
    sections = sdp.split("\r\nm=")
    out = [sections[0]]
    for section in sections[1:]:
        lines = section.split("\r\n")
        if lines[0].split(" ")[0] in ("audio", "video") and "a=sendonly" in lines:
            if f"a=extmap:{ext_id} {EXT_TRANSPORT_CC}" not in lines:
                lines.insert(len(lines) - (lines[-1] == ""), f"a=extmap:{ext_id} {EXT_TRANSPORT_CC}")
            for line in list(lines):
                if line.startswith("a=rtpmap:"):
                    pt, codec = line[9:].split(" ", 1)
                    fb = f"a=rtcp-fb:{pt} transport-cc"
                    if codec.split("/")[0].lower() not in _NO_FEEDBACK_CODECS and fb not in lines:
                        lines.insert(lines.index(line) + 1, fb)
        out.append("\r\n".join(lines))
    return "\r\nm=".join(out)


def answered_transport_cc(sdp: str) -> int | None:
    """The transport-cc extension id if the answer kept it with its rtcp-fb on some m-line, else None."""
    for section in sdp.split("\r\nm=")[1:]:
        lines = section.splitlines()
        ids = [
            line[9:].split()[0] for line in lines if line.startswith("a=extmap:") and EXT_TRANSPORT_CC in line
        ]
        if ids and any(line.startswith("a=rtcp-fb:") and line.endswith(" transport-cc") for line in lines):
            try:
                ext_id = int(ids[0].split("/")[0])
            except ValueError:
                return None
            return ext_id if 1 <= ext_id <= 14 else None  # we offer one-byte ids only (stamp relies on it)
    return None
