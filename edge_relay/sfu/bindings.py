"""Glue between negotiated m-lines and the forwarder, shared by participants and relay-to-relay links.

* :func:`published_track`: an m-line on which a peer sends us media becomes a :class:`PublishedTrack`,
  with RTCP back to that peer (keyframe requests, NACKs, receiver reports, REMB) and its SRs observed.
* :func:`subscription`: an m-line on which we send a track to a peer becomes a :class:`Subscription`,
  with that peer's feedback (PLI/FIR upstream, NACKs answered, REMB noted) and rewritten SRs.
* :func:`rtp_tap`: the incoming RTP of a connection, demuxed to its tracks without decoding.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)

from edge_relay.sfu import seams
from edge_relay.sfu.demux import Demuxer
from edge_relay.sfu.forwarder import STATS, PublishedTrack, Subscription
from edge_relay.sfu.rtcp import build_nack, build_remb, build_rr
from edge_relay.sfu.rtp import EXT_MID, ExtensionMap, MalformedPacket, parse_header
from edge_relay.sfu.simulcast import SimulcastSource

log = logging.getLogger("edge_relay.bindings")


def capabilities(kind: str, mime_type: str, parameters: dict[str, Any] | None = None) -> list[Any]:
    """aiortc codec capabilities matching a MIME type (and parameters, e.g. an H.264 profile)."""
    return [
        c
        for c in RTCRtpSender.getCapabilities(kind).codecs
        if c.mimeType.lower() == mime_type.lower() and (parameters is None or c.parameters == parameters)
    ]


class PeerUpstream:
    """RTCP to whoever sends us a track on ``pc``: keyframe requests, NACKs, reports and REMB."""

    def __init__(self, pc: RTCPeerConnection, receiver: RTCRtpReceiver, rtcp_ssrc: int) -> None:
        self.pc = pc
        self.receiver = receiver
        self.rtcp_ssrc = rtcp_ssrc

    async def request_keyframe(self, media_ssrc: int) -> None:
        await seams.request_keyframe(self.receiver, media_ssrc)

    async def nack(self, media_ssrc: int, lost: list[int]) -> None:
        await self._send(build_nack(self.rtcp_ssrc, media_ssrc, lost))

    async def report(self, track: PublishedTrack) -> None:
        """Receiver report and bandwidth estimate (REMB) upstream: the relay's receiver never runs, so
        without these the sender sees no loss figures and its encoder stays at its start bitrate."""
        now = time.monotonic()
        reports = [stats.receiver_info(now) for stats in track.receive_reports()]
        ssrcs = [report.ssrc for report in reports] or [track.ssrc]
        await self._send(
            build_rr(self.rtcp_ssrc, reports) + build_remb(self.rtcp_ssrc, track.target_bitrate(), ssrcs)
        )

    async def _send(self, rtcp: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await seams.send_rtp(seams.bundled_transport(self.pc), rtcp)


def published_track(
    pc: RTCPeerConnection, transceiver: RTCRtpTransceiver, track_id: str, kind: str, ssrc: int | None
) -> PublishedTrack:
    """The track a peer sends us on ``transceiver`` (negotiated), wired for RTCP both ways."""
    codec = seams.negotiated_codecs(transceiver)[0]
    receiver = transceiver.receiver
    track = PublishedTrack(
        track_id=track_id,
        kind=kind,
        mime_type=codec.mimeType,
        clock_rate=codec.clockRate,
        codec_parameters=dict(codec.parameters),
        ssrc=ssrc or 0,
        upstream=PeerUpstream(pc, receiver, seams.sender_ssrc(transceiver.sender)),
        extensions={ext_id: uri for uri, ext_id in seams.negotiated_extensions(transceiver).items()},
    )

    async def on_sender_report(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            track.on_sender_report(info.ntp_timestamp, info.rtp_timestamp, packet.ssrc)

    seams.on_receiver_rtcp(receiver, on_sender_report)
    return track


def receive_simulcast(
    pc: RTCPeerConnection, transceiver: RTCRtpTransceiver, track: PublishedTrack, source: SimulcastSource
) -> None:
    """``track`` arrives as simulcast layers: route them, and the publisher's SRs for each layer's SSRC
    (announced nowhere in the SDP, so aiortc's RTCP router would drop them) to its receiver."""
    track.simulcast = source
    source.on_ssrc = lambda ssrc: seams.route_sender_reports(pc, ssrc, transceiver.receiver)


def subscription(
    pc: RTCPeerConnection, transceiver: RTCRtpTransceiver, track: PublishedTrack, ready: bool
) -> Subscription | None:
    """Forward ``track`` to the peer on ``transceiver``; None when the peer refused its codec."""
    codec = next(
        (c for c in seams.negotiated_codecs(transceiver) if c.mimeType.lower() == track.mime_type.lower()),
        None,
    )
    if codec is None or codec.payloadType is None or transceiver.mid is None:
        return None
    sender = transceiver.sender
    sub = Subscription(
        track,
        seams.bundled_transport(pc),
        codec.payloadType,
        seams.sender_ssrc(sender),
        ExtensionMap(
            track.extensions,
            seams.negotiated_extensions(transceiver),
            transceiver.mid.encode(),
            stamp_send_time=True,
        ),
    )
    sub.fallback_rtcp = seams.on_sender_rtcp(sender, _feedback_handler(sub))
    seams.rewrite_sender_reports(sender, sub.sender_reports)
    sub.ready = ready
    track.subscriptions.append(sub)
    return sub


def _feedback_handler(sub: Subscription) -> Callable[[Any], Awaitable[None]]:
    """A receiver's RTCP for one m-line: keyframe requests go upstream, NACKs are answered."""

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            STATS.keyframe_requests_received += 1
            await sub.request_keyframe()
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            await sub.on_nack(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            sub.on_remb(packet.fci)
        elif sub.fallback_rtcp is not None:
            await sub.fallback_rtcp(packet)  # receiver reports: aiortc keeps its stats

    return handle


def rtp_tap(demux: Demuxer[PublishedTrack]) -> Callable[[bytes, int], Awaitable[None]]:
    """The handler for a connection's decrypted RTP: parse the header once, route, forward."""

    async def on_rtp(data: bytes, arrival_time_ms: int) -> None:
        try:
            header = parse_header(data)
        except MalformedPacket:
            STATS.malformed += 1
            return
        track = demux.route(data, header)
        if track is None:
            STATS.unknown_ssrc += 1
            return
        if track.ssrc != header.ssrc and track.simulcast is None:
            track.ssrc = header.ssrc  # learnt from the MID extension
        await track.on_packet(data, header, arrival_time_ms)

    return on_rtp


def watch_mid_extension(demux: Demuxer[PublishedTrack], transceiver: RTCRtpTransceiver) -> None:
    """Let ``demux`` route by the MID extension id negotiated on this connection (one id per BUNDLE)."""
    demux.mid_extension_id = seams.negotiated_extensions(transceiver).get(EXT_MID)
