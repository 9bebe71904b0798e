"""RTP-level fan-out: one published track to many subscribers, rewritten per subscriber, never decoded.

A :class:`PublishedTrack` receives the publisher's decrypted packets (from the participant's RTP tap). It
keeps a packet history for NACKs and receive statistics for loss repair upstream, and hands each packet to
its :class:`Subscription` objects. A subscription rewrites PT, sequence number, timestamp, SSRC and header
extensions for its subscriber's peer connection, starts the subscriber on a keyframe (video), answers the
subscriber's NACKs from the history, and turns the aiortc sender's all-zero sender reports into real ones.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Protocol

from aiortc import clock
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket, unpack_remb_fci

from edge_relay.sfu.audio_level import AudioLevel
from edge_relay.sfu.history import PacketHistory
from edge_relay.sfu.keyframes import keyframe_detector
from edge_relay.sfu.rtcp import SenderReportMapper
from edge_relay.sfu.rtp import EXT_AUDIO_LEVEL, ExtensionMap, RtpHeader, find_extension, rewrite_packet
from edge_relay.sfu.seams import send_rtp
from edge_relay.sfu.sequence import ReceiveStats

log = logging.getLogger("edge_relay.sfu")

KEYFRAME_REQUEST_INTERVAL_S = 0.3  # at most this often upstream, per track
KEYFRAME_RETRY_S = 1.0  # ask again while a subscriber still waits (a request can be lost)
#: Bitrate the publisher is asked for (REMB) when no subscriber has estimated its own yet, and bounds.
DEFAULT_BITRATE = 1_500_000
MIN_BITRATE, MAX_BITRATE = 150_000, 2_500_000
REMB_MAX_AGE_S = 5.0


def packet_clock_ms() -> float:
    """Now, on the clock of the ``arrival_ms`` that aiortc gives each packet (wall time in ms since
    1900): NACK retries and audio levels compare the two, so upkeep must read this clock too."""
    return clock.current_ms()


class ForwardingStats:
    """Counters of the whole relay process, read by /metrics (plain ints: the hot path stays cheap)."""

    def __init__(self) -> None:
        self.packets_in = 0
        self.bytes_in = 0
        self.packets_out = 0
        self.bytes_out = 0
        self.malformed = 0
        self.unknown_ssrc = 0
        self.waiting_for_keyframe = 0
        self.send_errors = 0
        self.nacks_received = 0
        self.retransmissions = 0
        self.retransmit_misses = 0
        self.nacks_sent = 0
        self.keyframe_requests_received = 0
        self.keyframe_requests_sent = 0
        self.sender_reports_sent = 0
        self.packets_blocked = 0  # of tracks a host muted


STATS = ForwardingStats()


class Upstream(Protocol):
    """Feedback to a track's publisher (implemented on the publisher's peer connection)."""

    async def request_keyframe(self, media_ssrc: int) -> None: ...

    async def nack(self, media_ssrc: int, lost: list[int]) -> None: ...

    async def report(self, track: PublishedTrack) -> None: ...


class PublishedTrack:
    """A track as the relay receives it from its publisher."""

    def __init__(
        self,
        track_id: str,
        kind: str,
        mime_type: str,
        clock_rate: int,
        codec_parameters: dict[str, Any],
        ssrc: int,
        upstream: Upstream,
        extensions: dict[int, str] | None = None,
    ) -> None:
        self.track_id = track_id
        self.kind = kind
        self.mime_type = mime_type
        self.clock_rate = clock_rate
        self.codec_parameters = codec_parameters  # H.264 profile etc.: subscribers must match it
        self.ssrc = ssrc
        self.upstream = upstream
        #: Header extension id -> URI as the sender of this track negotiated them (rewritten per receiver).
        self.extensions = dict(extensions or {})
        #: How loud the sender says this audio track is (its RFC 6464 levels), for speaker detection.
        self._level_id = next((i for i, uri in self.extensions.items() if uri == EXT_AUDIO_LEVEL), None)
        self.audio_level = AudioLevel() if kind == "audio" and self._level_id else None
        self.is_keyframe = keyframe_detector(mime_type)
        self.history = PacketHistory()
        self.receive_stats = ReceiveStats(ssrc)
        self.subscriptions: list[Subscription] = []
        self.sender_reports = SenderReportMapper(clock_rate)  # the publisher's NTP <-> RTP mapping
        self._last_keyframe_request = -1e9
        #: A host muted it: the relay forwards nothing of it, whatever the publisher keeps sending.
        self.blocked = False

    async def on_packet(self, data: bytes, header: RtpHeader, arrival_ms: int) -> None:
        """The hot path: store, detect loss, forward to every subscription."""
        stats = STATS
        stats.packets_in += 1
        stats.bytes_in += len(data)
        if self.blocked:  # nothing leaves, nor waits in the history for a subscriber's NACK
            stats.packets_blocked += 1
            return
        self.history.put(header.seq, data)
        if self.audio_level is not None:
            value = find_extension(data, header, self._level_id)  # type: ignore[arg-type]
            if value:
                self.audio_level.observe(value[0], header.timestamp, self.clock_rate, arrival_ms)
        missing = self.receive_stats.update(header.seq, header.timestamp, arrival_ms, self.clock_rate)
        if missing:
            stats.nacks_sent += 1
            await self.upstream.nack(self.ssrc, missing)
        keyframe: bool | None = None
        for sub in self.subscriptions:
            if not sub.started:
                if not sub.ready:
                    continue
                if self.is_keyframe is not None:
                    if keyframe is None:
                        view = memoryview(data)[header.header_len : header.payload_end]
                        keyframe = self.is_keyframe(view)  # type: ignore[arg-type]
                    if not keyframe:
                        stats.waiting_for_keyframe += 1
                        continue
                sub.start(header)
            out = sub.rewrite(data, header)
            try:
                await send_rtp(sub.transport, out)
            except ConnectionError:
                stats.send_errors += 1
                continue
            sub.packets += 1
            sub.octets += header.payload_end - header.header_len
            stats.packets_out += 1
            stats.bytes_out += len(out)

    async def request_keyframe(self, force: bool = False) -> None:
        """Ask the publisher for a keyframe, at most every KEYFRAME_REQUEST_INTERVAL_S."""
        if self.is_keyframe is None:
            return
        now = time.monotonic()
        if not force and now - self._last_keyframe_request < KEYFRAME_REQUEST_INTERVAL_S:
            return
        self._last_keyframe_request = now
        STATS.keyframe_requests_sent += 1
        await self.upstream.request_keyframe(self.ssrc)

    async def upkeep(self, now_ms: float) -> None:
        """Called every ~200 ms: re-ask for a keyframe while a ready subscriber still waits for one, and
        NACK again what is still missing upstream (a NACK or its retransmission can be lost too)."""
        waiting = any(s.ready and not s.started for s in self.subscriptions)
        if waiting and time.monotonic() - self._last_keyframe_request > KEYFRAME_RETRY_S:
            await self.request_keyframe()
        due = self.receive_stats.nacks_due(now_ms)
        if due:
            STATS.nacks_sent += 1
            await self.upstream.nack(self.ssrc, due)

    def on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        self.sender_reports.on_sender_report(ntp_timestamp, rtp_timestamp)
        self.receive_stats.on_sender_report(ntp_timestamp, time.monotonic())

    def target_bitrate(self) -> int:
        """What to ask the publisher for: the lowest fresh estimate of its subscribers, within bounds."""
        now = time.monotonic()
        estimates = [
            s.remb_bps for s in self.subscriptions if s.remb_bps and now - s.remb_at < REMB_MAX_AGE_S
        ]
        wanted = min(estimates) if estimates else DEFAULT_BITRATE
        return max(MIN_BITRATE, min(MAX_BITRATE, wanted))


class Subscription:
    """One published track forwarded to one subscriber's peer connection (one ``sendonly`` m-line)."""

    def __init__(
        self,
        track: PublishedTrack,
        transport: RTCDtlsTransport,
        payload_type: int,
        ssrc: int,
        extensions: ExtensionMap,
    ) -> None:
        self.track = track
        self.transport = transport
        self.payload_type = payload_type
        self.ssrc = ssrc
        self.extensions = extensions
        self.ready = False  # the subscriber's connection is up
        self.started = False  # forwarding began (at a keyframe, for video)
        self._seq_offset = 0
        self._ts_offset = 0
        self._next_seq = secrets.randbits(16)  # RFC 3550: random initial sequence number and timestamp
        self._ts_base = secrets.randbits(32)
        self.packets = 0
        self.octets = 0
        #: aiortc's own handler for the subscriber's other RTCP (receiver reports feed its stats).
        self.fallback_rtcp: Any = None
        self.remb_bps = 0  # the subscriber's own bandwidth estimate for this stream (REMB)
        self.remb_at = 0.0

    def on_remb(self, fci: bytes) -> None:
        try:
            bitrate, ssrcs = unpack_remb_fci(fci)
        except ValueError:
            return
        if self.ssrc in ssrcs:
            self.remb_bps, self.remb_at = bitrate, time.monotonic()

    def start(self, header: RtpHeader) -> None:
        self._seq_offset = (self._next_seq - header.seq) & 0xFFFF
        self._ts_offset = (self._ts_base - header.timestamp) & 0xFFFFFFFF
        self.started = True

    def rewrite(self, data: bytes, header: RtpHeader) -> bytes:
        return rewrite_packet(
            data,
            header,
            self.payload_type,
            header.seq + self._seq_offset,
            header.timestamp + self._ts_offset,
            self.ssrc,
            self.extensions.rewrite(data, header),
        )

    async def on_nack(self, lost: list[int]) -> None:
        """Answer a subscriber's NACK from the history: the same packet, rewritten as first sent."""
        from edge_relay.sfu.rtp import MalformedPacket, parse_header

        STATS.nacks_received += 1
        if not self.started:  # nothing was sent yet: a resend would bypass the keyframe gate
            return
        for seq_out in lost:
            data = self.track.history.get((seq_out - self._seq_offset) & 0xFFFF)
            if data is None:
                STATS.retransmit_misses += 1
                continue
            try:
                out = self.rewrite(data, parse_header(data))
                await send_rtp(self.transport, out)
            except (MalformedPacket, ConnectionError):
                continue
            STATS.retransmissions += 1

    def sender_reports(self, packets: list[Any]) -> list[Any]:
        """Replace the aiortc sender's SRs (all zeros: its track never yields) with real ones.

        The RTP time of "now" comes from the publisher's last SR mapping, moved by our timestamp
        offset; counts are what this subscription forwarded. Until that mapping is known, an empty RR.
        """
        out: list[Any] = []
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                mapped = self.track.sender_reports.map(clock.current_ntp_time(), self._ts_offset)
                if mapped is None or not self.started:
                    out.append(RtcpRrPacket(ssrc=packet.ssrc))
                    continue
                ntp_now, rtp_now = mapped
                packet.sender_info = RtcpSenderInfo(
                    ntp_timestamp=ntp_now,
                    rtp_timestamp=rtp_now,
                    packet_count=self.packets & 0xFFFFFFFF,
                    octet_count=self.octets & 0xFFFFFFFF,
                )
                STATS.sender_reports_sent += 1
            out.append(packet)
        return out
