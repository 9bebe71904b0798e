"""RTP header parsing and per-subscriber rewriting (RFC 3550, RFC 8285), on raw bytes.

The relay forwards the publisher's packets without decoding them. Per subscriber only the 12-byte
fixed header (PT, sequence number, timestamp, SSRC) and the header-extension block change: the
payload, CSRCs and padding are copied untouched. Extension ids are negotiated per peer connection,
so ids are translated by URI, and only the extensions that stay true after forwarding are kept
(abs-send-time for REMB, audio level for active-speaker detection, MID re-written with the
subscriber-side value). Everything else (transport-cc, video orientation, playout delay, ...) is
dropped because the relay does not implement it towards the subscriber.

Hot path: :func:`parse_header` once per incoming packet, :meth:`ExtensionMap.rewrite` and
:func:`rewrite_packet` once per subscriber. They use precompiled structs and return tuples/bytes.
The extension rewrite caches the last few element layouts it saw (a stream repeats the same ids,
lengths and offsets packet after packet), so the steady state costs two ``itemgetter`` calls and
one ``%`` format instead of walking and rebuilding the block (0.2 us instead of 3.4 us).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, NamedTuple

EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXT_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
EXT_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
#: Extensions forwarded by default (MID with its value replaced); all others are dropped.
FORWARDED_EXTENSIONS = frozenset({EXT_MID, EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL})

PROFILE_ONE_BYTE = 0xBEDE
PROFILE_TWO_BYTE = 0x1000  # 0x100X: the low 4 bits are "appbits", ignored here

_FIXED = struct.Struct("!BBHII")
_unpack_fixed = _FIXED.unpack_from
_pack_fixed = _FIXED.pack
_EXT_HDR = struct.Struct("!HH")
_unpack_ext_hdr = _EXT_HDR.unpack_from
_new_tuple = tuple.__new__


class MalformedPacket(ValueError):
    """The bytes are not a consistent RTP packet (drop it; never forward or store it)."""


class RtpHeader(NamedTuple):
    """Parsed fixed header plus the offsets the rewriter needs (all offsets index into ``data``).

    ``ext_start``/``ext_end`` delimit the extension *body* (after the 4-byte profile/length word);
    both equal ``12 + 4 * csrc_count`` when there is no extension. ``header_len`` is where the
    payload starts and ``payload_end`` where the padding (if the P bit is set) starts.
    """

    marker: bool
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    csrc_count: int
    ext_profile: int | None
    ext_start: int
    ext_end: int
    header_len: int
    payload_end: int


def parse_header(data: bytes) -> RtpHeader:
    """Parse and validate the RTP header of ``data``; raise :class:`MalformedPacket` if inconsistent.

    Checks version 2, that the CSRC list and extension block fit, and that the padding count (P
    bit) is non-zero and does not reach into the header. Any ``bytes`` input either parses or raises
    ``MalformedPacket``; nothing else escapes.
    """
    n = len(data)
    if n < 12:
        raise MalformedPacket("shorter than the 12-byte fixed header")
    b0, b1, seq, ts, ssrc = _unpack_fixed(data)
    if b0 >> 6 != 2:
        raise MalformedPacket("RTP version is not 2")
    cc = b0 & 0x0F
    off = 12 + 4 * cc
    if b0 & 0x10:
        if off + 4 > n:
            raise MalformedPacket("extension header truncated")
        profile, words = _unpack_ext_hdr(data, off)
        ext_start = off + 4
        off = ext_start + 4 * words
        if off > n:
            raise MalformedPacket("extension block longer than the packet")
        ext_end = off
    else:
        if off > n:
            raise MalformedPacket("CSRC list longer than the packet")
        profile = None
        ext_start = ext_end = off
    end = n
    if b0 & 0x20:
        pad = data[-1]
        if pad == 0 or off + pad > n:
            raise MalformedPacket("invalid padding length")
        end = n - pad
    return _new_tuple(
        RtpHeader, (b1 >= 0x80, b1 & 0x7F, seq, ts, ssrc, cc, profile, ext_start, ext_end, off, end)
    )


def rewrite_packet(
    data: bytes,
    header: RtpHeader,
    payload_type: int,
    seq: int,
    timestamp: int,
    ssrc: int,
    extension: bytes,
    payload_head: bytes | bytearray = b"",
    replaced: int = 0,
) -> bytes:
    """Return ``data`` with a new fixed header and extension block, payload and padding untouched.

    V=2; P, CC, the CSRC list and the marker are kept; X is set iff ``extension`` is non-empty
    (it must be a complete block as returned by :meth:`ExtensionMap.rewrite`). ``seq`` and
    ``timestamp`` are reduced modulo 2**16 and 2**32 so callers may pass ``seq_in + offset``.
    ``payload_head`` replaces the first ``replaced`` bytes of the payload (a rewritten VP8
    descriptor: edge_relay/sfu/vp8.py), in the same copy.
    """
    b0 = data[0]
    cc = b0 & 0x0F
    hdr = _pack_fixed(
        0x80 | (b0 & 0x20) | (0x10 if extension else 0) | cc,
        (0x80 if header.marker else 0) | payload_type,
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
    )
    if cc:
        csrcs = data[12 : 12 + 4 * cc]
        return b"".join((hdr, csrcs, extension, payload_head, data[header.header_len + replaced :]))
    return b"".join((hdr, extension, payload_head, data[header.header_len + replaced :]))


def find_extension(data: bytes, header: RtpHeader, ext_id: int) -> bytes | None:
    """The value of the header extension element ``ext_id`` in this packet, or None.

    For the few packets that need one element read (an audio level, once per audio packet), not the
    per-subscriber rewrite. Malformed lists end the walk as in :meth:`ExtensionMap._walk`.
    """
    profile, i, end = header.ext_profile, header.ext_start, header.ext_end
    if profile == PROFILE_ONE_BYTE:
        while i < end:
            b = data[i]
            if b == 0:
                i += 1
                continue
            eid, ln = b >> 4, (b & 0x0F) + 1
            if eid == 15 or i + 1 + ln > end:
                return None
            if eid == ext_id:
                return data[i + 1 : i + 1 + ln]
            i += 1 + ln
    elif profile is not None and profile & 0xFFF0 == PROFILE_TWO_BYTE:
        while i < end:
            eid = data[i]
            if eid == 0:
                i += 1
                continue
            if i + 1 >= end or i + 2 + data[i + 1] > end:
                return None
            ln = data[i + 1]
            if eid == ext_id:
                return data[i + 2 : i + 2 + ln]
            i += 2 + ln
    return None


def _no_signature(data: Any) -> None:
    return None


# A cached layout: (profile, ext_start, ext_end, signature getter, signature, values getter or
# None, %b-format of the output if values else the constant output block)
_Layout = tuple[int | None, int, int, Callable[[Any], Any], Any, Callable[[Any], Any] | None, bytes, int]


def abs_send_time_now() -> bytes:
    """This machine's time as the abs-send-time extension writes it: 6.18 fixed-point seconds, 24 bits."""
    return ((time.monotonic_ns() << 18) // 1_000_000_000 & 0xFFFFFF).to_bytes(3, "big")


class ExtensionMap:
    """Translate one publisher stream's header extensions for one subscriber.

    ``incoming`` maps id -> URI as negotiated on the publisher's connection, ``outgoing`` maps
    URI -> id on the subscriber's. Elements whose URI is in ``keep`` and negotiated on both sides
    are copied with the subscriber's id; the MID element is always written (once, last) with
    ``mid_value`` when the subscriber negotiated MID and ``mid_value`` is not None, even if the
    publisher's packet had none: libwebrtc senders stop sending MID once they get RTCP back, so a
    subscriber joining later would otherwise never see one. Output uses the one-byte profile when
    every id is <= 14 and every value is 1..16 bytes, else the two-byte profile (which needs
    ``a=extmap-allow-mixed`` on the subscriber; WebRTC's usual ids and MIDs never need it).

    Malformed element lists are tolerated like libwebrtc does: parsing stops at the first element
    that overruns the block (or at id 15 in the one-byte form) and what was parsed is kept.
    """

    __slots__ = ("_ast_id", "_ids", "_layouts", "_mid", "_no_ext")

    #: Layouts remembered, most recent first: a stream whose layout alternates (an extension sent
    #: only on the last packet of a frame, MID only on early packets) stays on the cached path.
    MAX_LAYOUTS = 4

    def __init__(
        self,
        incoming: Mapping[int, str],
        outgoing: Mapping[str, int],
        mid_value: bytes | None = None,
        keep: frozenset[str] = FORWARDED_EXTENSIONS,
        stamp_send_time: bool = False,
    ) -> None:
        for uri, out_id in outgoing.items():
            if not 1 <= out_id <= 255:
                raise ValueError(f"extension id {out_id} for {uri} is outside 1..255")
        self._ids: dict[int, int] = {
            in_id: outgoing[uri]
            for in_id, uri in incoming.items()
            if uri in keep and uri != EXT_MID and uri in outgoing
        }
        self._mid: tuple[int, bytes] | None = None
        if mid_value is not None and EXT_MID in keep and EXT_MID in outgoing:
            if not 1 <= len(mid_value) <= 255:
                raise ValueError("MID value must be 1..255 bytes")
            self._mid = (outgoing[EXT_MID], bytes(mid_value))
        #: With ``stamp_send_time``, abs-send-time carries the relay's send time, not the publisher's: a
        #: subscriber's receive-side estimator (REMB) assumes one sender clock for all the streams of its
        #: connection, and sees the relay's queueing, not the publisher's pacing, as the path it judges.
        self._ast_id = outgoing.get(EXT_ABS_SEND_TIME) if stamp_send_time else None
        self._no_ext: bytes = self._build([])[0]
        self._layouts: list[_Layout] = []

    def rewrite(self, data: bytes, header: RtpHeader) -> bytes:
        """Return the subscriber's extension block for this packet (b"" if nothing remains)."""
        profile = header.ext_profile
        if profile is None:
            return self._no_ext
        start, end = header.ext_start, header.ext_end
        for t in self._layouts:
            if t[1] == start and t[2] == end and t[0] == profile and t[3](data) == t[4]:
                break
        else:
            new = self._walk(data, start, end, profile)
            if new is None:  # unknown profile: nothing we can translate
                return self._no_ext
            self._layouts.insert(0, new)
            del self._layouts[self.MAX_LAYOUTS :]
            t = new
        block = t[6] if t[5] is None else t[6] % t[5](data)
        at = t[7]
        if at < 0:
            return block
        return block[:at] + abs_send_time_now() + block[at + 3 :]

    def _walk(self, data: bytes, i: int, end: int, profile: int) -> _Layout | None:
        """Walk the element list once and build the output template for this layout."""
        ids = self._ids
        start = i
        visited: list[int] = []  # every byte the walk branched on: equal bytes => equal walk
        kept: list[tuple[int, int, int]] = []  # (subscriber id, value offset, value length)
        if profile == PROFILE_ONE_BYTE:
            while i < end:
                visited.append(i)
                b = data[i]
                if b == 0:  # padding
                    i += 1
                    continue
                eid, ln = b >> 4, (b & 0x0F) + 1
                if eid == 15 or eid == 0 or i + 1 + ln > end:
                    break
                out_id = ids.get(eid)
                if out_id is not None:
                    kept.append((out_id, i + 1, ln))
                i += 1 + ln
        elif profile & 0xFFF0 == PROFILE_TWO_BYTE:
            while i < end:
                visited.append(i)
                eid = data[i]
                if eid == 0:  # padding
                    i += 1
                    continue
                if i + 1 >= end:
                    break
                visited.append(i + 1)
                ln = data[i + 1]
                if i + 2 + ln > end:
                    break
                out_id = ids.get(eid)
                if out_id is not None:
                    kept.append((out_id, i + 2, ln))
                i += 2 + ln
        else:
            return None
        block, fmt, ast_at = self._build([(oid, ln) for oid, _, ln in kept])
        sig_get = itemgetter(*visited) if visited else _no_signature
        values = itemgetter(*(slice(off, off + ln) for _, off, ln in kept)) if kept else None
        return (profile, start, end, sig_get, sig_get(data), values, fmt if kept else block, ast_at)

    def _build(self, kept: list[tuple[int, int]]) -> tuple[bytes, bytes, int]:
        """Output for a layout keeping ``kept`` = [(subscriber id, value length)], plus the MID.

        Returns (the block itself if ``kept`` is empty, a ``%b`` format with one slot per kept
        value). The header, element headers, MID and padding are constant per layout.
        """
        elems: list[tuple[int, int]] = list(kept)
        if self._mid is not None:
            elems.append((self._mid[0], len(self._mid[1])))
        if not elems:
            return b"", b"", -1
        one_byte = all(oid <= 14 and 1 <= ln <= 16 for oid, ln in elems)
        heads = [bytes(((oid << 4) | (ln - 1),) if one_byte else (oid, ln)) for oid, ln in elems]
        body_len = sum(len(h) + ln for h, (_, ln) in zip(heads, elems, strict=True))
        padding = b"\x00" * (-body_len % 4)
        profile = PROFILE_ONE_BYTE if one_byte else PROFILE_TWO_BYTE
        prefix = _EXT_HDR.pack(profile, (body_len + len(padding)) // 4)
        mid = heads.pop() + self._mid[1] if self._mid is not None else b""
        # constant pieces around the kept values: prefix+head0, head1, ..., headN-1, mid+padding
        pieces = [prefix + heads[0], *heads[1:], mid + padding] if heads else [prefix + mid + padding]
        fmt = b"%b".join(p.replace(b"%", b"%%") for p in pieces)
        ast_at, at = -1, len(prefix)
        for head, (oid, ln) in zip(heads, kept, strict=False):  # where the abs-send-time value lands
            at += len(head)
            if oid == self._ast_id and ln == 3:
                ast_at = at
            at += ln
        return (pieces[0] if not kept else b""), fmt, ast_at
