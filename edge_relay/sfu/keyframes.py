"""Key-frame detection on RTP payloads: "can a fresh decoder start at this packet?".

A subscriber that joins mid-stream must not get packets until the start of an access unit that a
decoder can decode with no prior state; the relay drops its packets until a detector says True,
then fixes the subscriber's sequence/timestamp offsets at that packet (so the key frame's first
packet must be the one that returns True, not a later one).

Policy per codec:

- **VP8** (RFC 7741): True only for the *first* packet of a key frame: S=1 and PID=0 in the payload
  descriptor, the P bit of the VP8 payload header clear, and the key-frame start code
  ``9d 01 2a`` present (which every real key frame has; it stops random bytes from looking like
  one). Continuation packets of a key frame are False.
- **H.264** (RFC 6184, packetization-mode 1): True iff the packet carries an **SPS** (as a single
  NAL unit, inside a STAP-A, or as the first FU-A fragment). A packet whose only key-frame content
  is an IDR slice is False. Why: the relay does not forward ``sprop-parameter-sets``, so a fresh
  subscriber learns SPS/PPS only in-band, and a decoder handed an IDR without them cannot decode
  (libwebrtc's receiver then just asks for another key frame). Every common publisher sends
  SPS+PPS in-band right before each IDR, in the same access unit, in the first packet(s) of it:
  aiortc/x264 (STAP-A[SEI, SPS, PPS] then IDR slices, see the tests), Chrome and Safari
  (STAP-A[SPS, PPS(, IDR)] or separate single-NAL SPS, PPS, IDR packets), Firefox (OpenH264). So
  the packet with the SPS is exactly the first packet of the key frame. This is also the rule of
  mediasoup and of Galene/LiveKit. A publisher that sends parameter sets only out of band would
  never open the gate; :func:`h264_nal_flags` exposes SPS/PPS/IDR separately should a looser rule
  ever be needed.
- Audio needs no gating: :func:`keyframe_detector` returns None.

The detectors never raise, whatever the bytes: anything malformed is simply not a key frame.
"""

from __future__ import annotations

from collections.abc import Callable

#: Bits returned by :func:`h264_nal_flags`.
H264_SPS = 1
H264_PPS = 2
H264_IDR = 4  # an IDR slice starts in this packet (single NAL, STAP-A, or FU-A start fragment)

_NAL_FLAG = {7: H264_SPS, 8: H264_PPS, 5: H264_IDR}
_STAP_A = 24
_FU_A = 28


def is_vp8_keyframe(payload: bytes) -> bool:
    """True if ``payload`` (an RTP payload, no RTP header) is the first packet of a VP8 key frame."""
    try:
        b0 = payload[0]
        # X|R|N|S|R|PID(3): need S=1 and PID=0
        if b0 & 0x17 != 0x10:
            return False
        i = 1
        if b0 & 0x80:  # X: extension byte I|L|T|K|RSV
            b1 = payload[1]
            i = 2
            if b1 & 0x80:  # I: PictureID, 7 or 15 bits (M bit)
                i += 2 if payload[2] & 0x80 else 1
            if b1 & 0x40:  # L: TL0PICIDX
                i += 1
            if b1 & 0x30:  # T or K: TID|Y|KEYIDX
                i += 1
        # VP8 payload header: P (inverse key frame flag) is bit 0 of the first byte; a key frame
        # then has the 3-byte start code at offset 3 (RFC 6386 section 9.1).
        return payload[i] & 0x01 == 0 and payload[i + 3 : i + 6] == b"\x9d\x01\x2a"
    except IndexError:
        return False


def h264_nal_flags(payload: bytes) -> int:
    """OR of H264_SPS/H264_PPS/H264_IDR for the NAL units starting in this RTP payload.

    Handles single NAL unit packets (types 1-23), STAP-A (24) and FU-A (28) as used with
    packetization-mode 1; other aggregation types (STAP-B, MTAP, FU-B: interleaved mode) give 0.
    A malformed STAP-A (a length running past the end, or a zero length) gives 0 as a whole, as
    a depacketizer would reject it. A set F (forbidden) bit gives 0.
    """
    if not payload:
        return 0
    b0 = payload[0]
    if b0 & 0x80:
        return 0
    nal_type = b0 & 0x1F
    if nal_type < _STAP_A:
        return _NAL_FLAG.get(nal_type, 0)
    if nal_type == _FU_A:
        if len(payload) < 3 or not payload[1] & 0x80:  # start bit, and at least one data byte
            return 0
        return _NAL_FLAG.get(payload[1] & 0x1F, 0)
    if nal_type != _STAP_A:
        return 0
    flags = 0
    i, n = 1, len(payload)
    while i < n:
        if i + 2 > n:
            return 0
        size = (payload[i] << 8) | payload[i + 1]
        i += 2
        if size == 0 or i + size > n:
            return 0
        nal = payload[i]
        if nal & 0x80:
            return 0
        flags |= _NAL_FLAG.get(nal & 0x1F, 0)
        i += size
    return flags


def is_h264_keyframe(payload: bytes) -> bool:
    """True if ``payload`` carries an SPS, i.e. starts a key frame a fresh decoder can decode.

    See the module docstring for why an IDR slice without an SPS in the same packet is False.
    """
    return bool(h264_nal_flags(payload) & H264_SPS)


def keyframe_detector(mime_type: str) -> Callable[[bytes], bool] | None:
    """The detector for a negotiated codec (``RTCRtpCodecParameters.mimeType``, any case).

    Returns None for audio (no gating). Raises ValueError for a video codec without a detector:
    forwarding video to a late joiner without gating would show garbage until the next key frame,
    so an unsupported codec must fail loudly where the forwarder is set up.
    """
    mime = mime_type.lower()
    if mime == "video/vp8":
        return is_vp8_keyframe
    if mime == "video/h264":
        return is_h264_keyframe
    if mime.startswith("audio/"):
        return None
    raise ValueError(f"no key-frame detector for {mime_type!r}")
