"""The VP8 payload descriptor (RFC 7741 section 4.2): parse it, and rewrite PictureID and TL0PICIDX.

A subscriber that is moved from one simulcast layer to another must see one continuous VP8 stream:
each layer has its own PictureID and TL0PICIDX counters, and a jump in them looks to the receiver like
lost frames (libwebrtc's reference finder waits for them, then drops what depends on them). So, like
LiveKit's ``codecmunger/vp8.go`` and Jitsi's ``Vp8Parser``, the relay keeps per subscriber an offset for
each counter, re-based at every switch so that the first picture of the new layer follows the last one
sent. The width of each field is kept (a 7-bit PictureID stays 7 bits), so the payload never changes
length.

Only the descriptor is read; the VP8 bitstream itself is never parsed except the key frame's size
(RFC 6386 9.1), which tells the relay how large each simulcast layer is. Anything inconsistent raises
:class:`MalformedDescriptor`: the forwarder drops such a packet and counts it.
"""

from __future__ import annotations

from typing import NamedTuple


class MalformedDescriptor(ValueError):
    """The payload does not hold a complete VP8 payload descriptor followed by data."""


class Vp8Descriptor(NamedTuple):
    """What the forwarder needs from one packet's descriptor (offsets are into the RTP payload)."""

    start: bool  # S=1 and PID=0: the first packet of a frame
    picture_id: int | None
    picture_id_bits: int  # 7 or 15 (0 without a PictureID)
    picture_id_at: int
    tl0picidx: int | None
    tl0picidx_at: int
    tid: int | None  # temporal layer, when the T bit is set
    size: int  # bytes of descriptor: the VP8 payload starts here


def parse_descriptor(payload: bytes | memoryview) -> Vp8Descriptor:
    """Parse the descriptor at the start of a VP8 RTP payload; raise :class:`MalformedDescriptor`."""
    n = len(payload)
    if n < 2:
        raise MalformedDescriptor("shorter than a descriptor and one byte of data")
    b0 = payload[0]
    i = 1
    picture_id = tl0 = tid = None
    bits = pid_at = tl0_at = 0
    if b0 & 0x80:  # X: an extension byte I|L|T|K|RSV
        b1 = payload[1]
        i = 2
        if b1 & 0x80:  # I: PictureID, M bit for 15 bits
            if i >= n:
                raise MalformedDescriptor("PictureID truncated")
            pid_at = i
            if payload[i] & 0x80:
                if i + 1 >= n:
                    raise MalformedDescriptor("15-bit PictureID truncated")
                picture_id, bits, i = ((payload[i] & 0x7F) << 8) | payload[i + 1], 15, i + 2
            else:
                picture_id, bits, i = payload[i] & 0x7F, 7, i + 1
        if b1 & 0x40:  # L: TL0PICIDX
            if i >= n:
                raise MalformedDescriptor("TL0PICIDX truncated")
            tl0, tl0_at, i = payload[i], i, i + 1
        if b1 & 0x30:  # T or K: TID|Y|KEYIDX
            if i >= n:
                raise MalformedDescriptor("TID/KEYIDX truncated")
            if b1 & 0x20:
                tid = payload[i] >> 6
            i += 1
    if i >= n:
        raise MalformedDescriptor("no VP8 data after the descriptor")
    return Vp8Descriptor(b0 & 0x17 == 0x10, picture_id, bits, pid_at, tl0, tl0_at, tid, i)


def keyframe_size(payload: bytes | memoryview, descriptor: Vp8Descriptor) -> tuple[int, int] | None:
    """(width, height) of the key frame whose first packet this is, or None if it is not one."""
    i = descriptor.size
    if not descriptor.start or len(payload) < i + 10 or payload[i] & 0x01:
        return None
    if bytes(payload[i + 3 : i + 6]) != b"\x9d\x01\x2a":
        return None
    width = (payload[i + 6] | payload[i + 7] << 8) & 0x3FFF
    height = (payload[i + 8] | payload[i + 9] << 8) & 0x3FFF
    return width, height


class Vp8Munger:
    """Per subscriber: PictureID and TL0PICIDX continuous across switches between simulcast layers."""

    __slots__ = ("_last_pid", "_last_tl0", "_pid_offset", "_tl0_offset")

    def __init__(self) -> None:
        self._pid_offset = 0
        self._tl0_offset = 0
        self._last_pid: int | None = None  # last PictureID sent (15-bit space)
        self._last_tl0: int | None = None

    def rebase(self, descriptor: Vp8Descriptor) -> None:
        """The packet with ``descriptor`` starts a new layer: its picture follows the last one sent."""
        if descriptor.picture_id is not None and self._last_pid is not None:
            self._pid_offset = self._last_pid + 1 - descriptor.picture_id
        if descriptor.tl0picidx is not None and self._last_tl0 is not None:
            self._tl0_offset = self._last_tl0 + 1 - descriptor.tl0picidx

    def munge(self, out: bytearray, at: int, descriptor: Vp8Descriptor) -> None:
        """Rewrite the descriptor of the payload starting at ``out[at]`` in place."""
        if descriptor.picture_id is not None:
            mask = (1 << descriptor.picture_id_bits) - 1
            pid = (descriptor.picture_id + self._pid_offset) & mask
            j = at + descriptor.picture_id_at
            if descriptor.picture_id_bits == 15:
                out[j] = 0x80 | pid >> 8
                out[j + 1] = pid & 0xFF
            else:
                out[j] = pid
            if self._last_pid is None or (pid - self._last_pid) & mask < mask // 2:
                self._last_pid = pid
        if descriptor.tl0picidx is not None:
            tl0 = (descriptor.tl0picidx + self._tl0_offset) & 0xFF
            out[at + descriptor.tl0picidx_at] = tl0
            if self._last_tl0 is None or (tl0 - self._last_tl0) & 0xFF < 0x80:
                self._last_tl0 = tl0
