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
from collections.abc import Callable
from typing import Any, Protocol

from aiortc import clock
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket, unpack_remb_fci

from edge_relay.sfu.audio_level import AudioLevel
from edge_relay.sfu.history import PacketHistory
from edge_relay.sfu.keyframes import keyframe_detector
from edge_relay.sfu.layered import KEYFRAME_REQUEST_INTERVAL_S, KEYFRAME_RETRY_S, LayeredForwarding
from edge_relay.sfu.rtcp import SenderReportMapper
from edge_relay.sfu.rtp import (
    EXT_AUDIO_LEVEL,
    ExtensionMap,
    MalformedPacket,
    RtpHeader,
    find_extension,
    parse_header,
    rewrite_packet,
)
from edge_relay.sfu.seams import send_rtp
from edge_relay.sfu.sequence import ReceiveStats
from edge_relay.sfu.simulcast import SimulcastSource
from edge_relay.sfu.stats import STATS, ForwardingStats
from edge_relay.sfu.switching import LayerSwitch
from edge_relay.sfu.vp8 import MalformedDescriptor, Vp8Descriptor, parse_descriptor

log = logging.getLogger("edge_relay.sfu")

#: Bitrate the publisher is asked for (REMB) when no subscriber has estimated its own yet, and bounds.
DEFAULT_BITRATE = 1_500_000
MIN_BITRATE, MAX_BITRATE = 150_000, 2_500_000
REMB_MAX_AGE_S = 5.0


def packet_clock_ms() -> float:
    """Now, on the clock of the ``arrival_ms`` that aiortc gives each packet (wall time in ms since
    1900): NACK retries and audio levels compare the two, so upkeep must read this clock too."""
    return clock.current_ms()


class Upstream(Protocol):
    """Feedback to a track's publisher (implemented on the publisher's peer connection)."""

    async def request_keyframe(self, media_ssrc: int) -> None: ...

    async def nack(self, media_ssrc: int, lost: list[int]) -> None: ...

    async def report(self, track: PublishedTrack) -> None: ...


__all__ = ["STATS", "ForwardingStats", "PublishedTrack", "Subscription", "Upstream"]


class PublishedTrack(LayeredForwarding):
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
        #: Set when the publisher sends simulcast: then each layer keeps its own history and statistics
        #: and each subscription picks a layer (edge_relay/sfu/switching.py).
        self.simulcast: SimulcastSource | None = None

    async def on_packet(self, data: bytes, header: RtpHeader, arrival_ms: int) -> None:
        """The hot path: store, detect loss, forward to every subscription."""
        if self.blocked:  # a host muted it: nothing leaves, nor waits in a history for a NACK
            STATS.packets_in += 1
            STATS.packets_blocked += 1
            return
        if self.simulcast is not None:
            return await self._on_layer_packet(self.simulcast, data, header, arrival_ms)
        stats = STATS
        stats.packets_in += 1
        stats.bytes_in += len(data)
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
            if sub.stamp is not None:
                out = sub.stamp(out)
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
        if self.simulcast is not None:
            return await self.request_layer_keyframes(force)
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
        if self.simulcast is not None:
            return await self.layers_upkeep(now_ms)
        waiting = any(s.ready and not s.started for s in self.subscriptions)
        if waiting and time.monotonic() - self._last_keyframe_request > KEYFRAME_RETRY_S:
            await self.request_keyframe()
        due = self.receive_stats.nacks_due(now_ms)
        if due:
            STATS.nacks_sent += 1
            await self.upstream.nack(self.ssrc, due)

    def on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int, ssrc: int | None = None) -> None:
        layer = self.simulcast.by_ssrc(ssrc) if self.simulcast is not None and ssrc is not None else None
        if self.simulcast is not None and layer is None:
            return  # an SR for a layer not seen yet
        reports = layer.sender_reports if layer is not None else self.sender_reports
        stats = layer.receive_stats if layer is not None else self.receive_stats
        reports.on_sender_report(ntp_timestamp, rtp_timestamp)
        stats.on_sender_report(ntp_timestamp, time.monotonic())

    def receive_reports(self) -> list[ReceiveStats]:
        """What the receiver reports upstream cover: the one stream, or each simulcast layer seen."""
        if self.simulcast is None:
            return [self.receive_stats]
        return [layer.receive_stats for layer in self.layers() if layer.ssrc]

    def target_bitrate(self) -> int:
        """What to ask the publisher for: the lowest fresh estimate of its subscribers, within bounds.

        Not for a simulcast source: each subscriber gets the layer that fits its own estimate, so the
        publisher is asked for the most (one weak subscriber must not lower the others' video)."""
        if self.simulcast is not None:
            return MAX_BITRATE
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
        #: The connection's send-path hook (transport-cc: number the packet, remember it), if negotiated.
        self.stamp: Callable[[bytes], bytes] | None = None
        self.remb_bps = 0  # the subscriber's own bandwidth estimate for this stream (REMB)
        self.remb_at = 0.0
        #: For a simulcast source: the layer this subscriber gets, and the switches between layers.
        self.switch = (
            LayerSwitch(track.clock_rate, self._next_seq, self._ts_base)
            if track.simulcast is not None
            else None
        )

    def on_remb(self, fci: bytes) -> None:
        try:
            bitrate, ssrcs = unpack_remb_fci(fci)
        except ValueError:
            return
        if self.ssrc in ssrcs:
            self.remb_bps, self.remb_at = bitrate, time.monotonic()
            if self.switch is not None:
                self.switch.policy.on_estimate(bitrate, self.remb_at)

    async def set_quality(self, quality: str) -> None:
        """The subscriber asks for at most this quality of a simulcast source (no-op otherwise)."""
        if self.switch is not None and self.switch.policy.quality != quality:
            self.switch.policy.quality = quality
            await self.track.select_layers(time.monotonic())

    async def request_keyframe(self) -> None:
        """The subscriber lost the picture (PLI/FIR): a keyframe of what it gets, from the publisher."""
        if self.switch is not None and self.switch.layer is not None:
            await self.track.request_layer_keyframe(self.switch.layer)
        else:
            await self.track.request_keyframe()

    async def send(self, data: bytes, header: RtpHeader, descriptor: Vp8Descriptor | None) -> None:
        """Forward one packet of the current simulcast layer, rewritten and munged."""
        out = self.rewrite(data, header, descriptor)
        if self.stamp is not None:
            out = self.stamp(out)
        try:
            await send_rtp(self.transport, out)
        except ConnectionError:
            STATS.send_errors += 1
            return
        self.packets += 1
        self.octets += header.payload_end - header.header_len
        STATS.packets_out += 1
        STATS.bytes_out += len(out)

    def start(self, header: RtpHeader) -> None:
        self._seq_offset = (self._next_seq - header.seq) & 0xFFFF
        self._ts_offset = (self._ts_base - header.timestamp) & 0xFFFFFFFF
        self.started = True

    def rewrite(self, data: bytes, header: RtpHeader, descriptor: Vp8Descriptor | None = None) -> bytes:
        switch = self.switch
        if switch is None:
            return rewrite_packet(
                data,
                header,
                self.payload_type,
                header.seq + self._seq_offset,
                header.timestamp + self._ts_offset,
                self.ssrc,
                self.extensions.rewrite(data, header),
            )
        seq = (header.seq + switch.seq_offset) & 0xFFFF
        ts = (header.timestamp + switch.ts_offset) & 0xFFFFFFFF
        switch.sent(seq, ts, switch.layer.last_packet_at if switch.layer is not None else 0.0)
        extension = self.extensions.rewrite(data, header)
        if descriptor is None or (descriptor.picture_id is None and descriptor.tl0picidx is None):
            return rewrite_packet(data, header, self.payload_type, seq, ts, self.ssrc, extension)
        start = header.header_len
        head = bytearray(data[start : start + descriptor.size])
        switch.vp8.munge(head, 0, descriptor)
        return rewrite_packet(
            data, header, self.payload_type, seq, ts, self.ssrc, extension, head, descriptor.size
        )

    async def on_nack(self, lost: list[int]) -> None:
        """Answer a subscriber's NACK from the history: the same packet, rewritten as first sent."""
        STATS.nacks_received += 1
        if not self.started:  # nothing was sent yet: a resend would bypass the keyframe gate
            return
        for seq_out in lost:
            data = self._sent_packet(seq_out)
            if data is None:
                STATS.retransmit_misses += 1
                continue
            try:
                header = parse_header(data)
                descriptor = None
                if self.switch is not None and header.payload_end > header.header_len:
                    descriptor = parse_descriptor(memoryview(data)[header.header_len : header.payload_end])
                out = self.rewrite(data, header, descriptor)
                if self.stamp is not None:
                    out = self.stamp(out)
                await send_rtp(self.transport, out)
            except (MalformedPacket, MalformedDescriptor, ConnectionError):
                continue
            STATS.retransmissions += 1

    def _sent_packet(self, seq_out: int) -> bytes | None:
        """The publisher's packet this subscriber got as ``seq_out`` (None: not in the history)."""
        if self.switch is None:
            return self.track.history.get((seq_out - self._seq_offset) & 0xFFFF)
        seq_in = self.switch.source_seq(seq_out)
        layer = self.switch.layer
        return None if seq_in is None or layer is None else layer.history.get(seq_in)

    def sender_reports(self, packets: list[Any]) -> list[Any]:
        """Replace the aiortc sender's SRs (all zeros: its track never yields) with real ones.

        The RTP time of "now" comes from the publisher's last SR mapping, moved by our timestamp
        offset; counts are what this subscription forwarded. Until that mapping is known, an empty RR.
        """
        out: list[Any] = []
        for packet in packets:
            if isinstance(packet, RtcpSrPacket):
                switch = self.switch
                if switch is None:
                    mapped = self.track.sender_reports.map(clock.current_ntp_time(), self._ts_offset)
                elif switch.layer is None:
                    mapped = None
                else:
                    mapped = switch.layer.sender_reports.map(clock.current_ntp_time(), switch.ts_offset)
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
