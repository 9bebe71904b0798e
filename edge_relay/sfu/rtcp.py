"""RTCP the relay writes itself, as bytes ready for ``RTCDtlsTransport._send_rtp`` (it protects RTCP too).

The relay's aiortc receivers never see the publisher's RTP (the tap takes it first), so they send
no NACK, REMB or receiver report; and the relay's per-subscriber senders never send RTP through
aiortc, so their automatic sender reports carry zeros. The builders here produce the missing
packets; :class:`SenderReportMapper` computes truthful sender-report timestamps for a subscriber
from the publisher's own reports.

Serialization uses ``aiortc.rtp``'s packet classes (stable, public dataclasses), except the NACK
FCI, which aiortc's ``RtcpRtpfbPacket`` packs wrongly across the 16-bit wrap (it computes
``1 << (p - pid - 1)`` with a negative shift and raises).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
    pack_rtcp_packet,
)

_PAIR = struct.Struct("!HH")
_SSRCS = struct.Struct("!LL")
MAX_REPORTS = 31  # report blocks per SR/RR (5-bit count); more go in further RR packets


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Picture Loss Indication (RFC 4585 6.3.1): ask ``media_ssrc``'s sender for a key frame."""
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=sender_ssrc, media_ssrc=media_ssrc))


def build_nack(sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> bytes:
    """Generic NACK (RFC 4585 6.2.1) for the 16-bit sequence numbers in ``lost``.

    Seqs are taken modulo 2**16, duplicates dropped, and packed greedily in the given order into
    (PID, BLP) pairs, distances computed modulo 2**16 so a run across the wrap (65534, 65535, 0, 1)
    takes one pair. Pass them oldest first (as :class:`.sequence.ReceiveStats` returns them) for
    the most compact packet; any order is still correct. Raises ValueError if ``lost`` is empty.
    """
    fci = bytearray()
    pid = -1
    blp = 0
    seen: set[int] = set()
    for s in lost:
        s &= 0xFFFF
        if s in seen:
            continue
        seen.add(s)
        d = (s - pid - 1) & 0xFFFF
        if pid >= 0 and d < 16:
            blp |= 1 << d
            continue
        if pid >= 0:
            fci += _PAIR.pack(pid, blp)
        pid, blp = s, 0
    if pid < 0:
        raise ValueError("a NACK needs at least one sequence number")
    fci += _PAIR.pack(pid, blp)
    return pack_rtcp_packet(RTCP_RTPFB, RTCP_RTPFB_NACK, _SSRCS.pack(sender_ssrc, media_ssrc) + fci)


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: Sequence[int]) -> bytes:
    """Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb) for ``ssrcs``, in bit/s.

    aiortc's sender applies it to its encoder (``RTCRtpSender._handle_rtcp_packet``), so this is
    how the relay lifts an aiortc publisher above its 500 kbps default.
    """
    if not 0 <= bitrate < 0x3FFFF << 63:
        raise ValueError("bitrate out of range")
    if len(ssrcs) > 255:
        raise ValueError("at most 255 SSRCs in one REMB")
    return bytes(
        RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP, ssrc=sender_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, list(ssrcs))
        )
    )


def build_rr(sender_ssrc: int, reports: Sequence[RtcpReceiverInfo]) -> bytes:
    """Receiver report(s): one RR per 31 report blocks (an empty RR if ``reports`` is empty)."""
    chunks = [list(reports[i : i + MAX_REPORTS]) for i in range(0, len(reports), MAX_REPORTS)]
    return b"".join(bytes(RtcpRrPacket(ssrc=sender_ssrc, reports=c)) for c in chunks or [[]])


def build_sr(
    sender_ssrc: int,
    ntp_timestamp: int,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    reports: Sequence[RtcpReceiverInfo] = (),
) -> bytes:
    """A sender report; counts are reduced modulo 2**32 as RFC 3550 says they wrap."""
    info = RtcpSenderInfo(
        ntp_timestamp=ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
        rtp_timestamp=rtp_timestamp & 0xFFFFFFFF,
        packet_count=packet_count & 0xFFFFFFFF,
        octet_count=octet_count & 0xFFFFFFFF,
    )
    sr = bytes(RtcpSrPacket(ssrc=sender_ssrc, sender_info=info, reports=list(reports[:MAX_REPORTS])))
    return sr + (build_rr(sender_ssrc, reports[MAX_REPORTS:]) if len(reports) > MAX_REPORTS else b"")


class SenderReportMapper:
    """Maps the publisher's SR (NTP <-> RTP time) onto a subscriber's timestamp space.

    The relay rewrites timestamps per subscriber (``ts_out = ts_in + offset``), so the subscriber
    needs SRs in its own timestamp space. Given the publisher's last SR ``(ntp_pub, rtp_pub)`` and
    an NTP time ``ntp_now`` at which the relay sends, the subscriber's SR is::

        rtp_now = rtp_pub + offset + (ntp_now - ntp_pub) * clock_rate / 2**32   (mod 2**32)

    i.e. the point ``ntp_now`` on the publisher's own NTP/RTP line, shifted by the offset. A frame
    then maps to the very NTP time the publisher stated, so audio and video of one publisher stay
    in sync exactly (any offset between the publisher's and the relay's clocks is common to all of
    its tracks and cancels out). Integer arithmetic keeps it exact; NTP differences are taken
    modulo 2**64 as signed values (era rollover), RTP modulo 2**32.
    """

    __slots__ = ("_ntp", "_rtp", "clock_rate")

    def __init__(self, clock_rate: int) -> None:
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        self.clock_rate = clock_rate
        self._ntp: int | None = None
        self._rtp = 0

    @property
    def has_mapping(self) -> bool:
        """False until the publisher's first SR; send an empty RR instead of an SR until then."""
        return self._ntp is not None

    def on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """Record the publisher's SR (``RtcpSrPacket.sender_info`` ntp and rtp fields)."""
        self._ntp = ntp_timestamp & 0xFFFFFFFFFFFFFFFF
        self._rtp = rtp_timestamp & 0xFFFFFFFF

    def map(self, ntp_now: int, ts_offset: int) -> tuple[int, int] | None:
        """``(ntp_now, rtp_now)`` for a subscriber SR, or None before the first publisher SR.

        ``ntp_now`` is the relay's current 64-bit NTP time (``aiortc.clock.current_ntp_time()``);
        ``ts_offset`` is the subscriber's ``ts_out - ts_in`` (any int, taken modulo 2**32).
        """
        if self._ntp is None:
            return None
        ntp_now &= 0xFFFFFFFFFFFFFFFF
        elapsed = (ntp_now - self._ntp) & 0xFFFFFFFFFFFFFFFF
        if elapsed >= 1 << 63:
            elapsed -= 1 << 64
        ticks = (elapsed * self.clock_rate + (1 << 31)) >> 32  # rounded to the nearest tick
        return ntp_now, (self._rtp + ts_offset + ticks) & 0xFFFFFFFF
