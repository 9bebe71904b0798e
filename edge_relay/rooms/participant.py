"""A participant's side of the relay: one max-bundle peer connection, negotiated by the relay.

The relay always offers (so there is never glare). Each offer holds a ``recvonly`` m-line per source the
participant publishes and a ``sendonly`` m-line per track of the others it receives. When the answer
arrives, new publish m-lines become :class:`PublishedTrack` objects (fed by the RTP tap on this
connection's transport) and new receive m-lines become :class:`Subscription` objects on the others'
tracks. Changes made while an offer is out are batched into the next offer.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
)
from aiortc.sdp import SessionDescription

from edge_relay.sfu import seams
from edge_relay.sfu.demux import Demuxer
from edge_relay.sfu.forwarder import STATS, PublishedTrack, Subscription
from edge_relay.sfu.rtcp import build_nack, build_remb, build_rr
from edge_relay.sfu.rtp import EXT_MID, ExtensionMap, MalformedPacket, parse_header
from edge_relay.signalling.protocol import SOURCE_KIND, ParticipantInfo, PublishSlot, TrackInfo, message

if TYPE_CHECKING:
    from edge_relay.rooms.room import Room

log = logging.getLogger("edge_relay.participant")

#: What a publisher may send: VP8 or H.264 (constrained baseline / baseline, packetization-mode 1),
#: Opus. No RTX: retransmissions come on the media SSRC, which every receiver routes correctly.
PUBLISH_MIME_TYPES = {"video": ("video/VP8", "video/H264"), "audio": ("audio/opus",)}


def _capabilities(kind: str, mime_type: str, parameters: dict[str, Any] | None = None) -> list[Any]:
    return [
        c
        for c in RTCRtpSender.getCapabilities(kind).codecs
        if c.mimeType.lower() == mime_type.lower() and (parameters is None or c.parameters == parameters)
    ]


@dataclass
class EgressSlot:
    """A ``sendonly`` m-line carrying one remote track to this participant."""

    transceiver: RTCRtpTransceiver
    track: PublishedTrack
    info: TrackInfo
    subscription: Subscription | None = None


@dataclass
class IngressSlot:
    """A ``recvonly`` m-line where the participant publishes one source."""

    transceiver: RTCRtpTransceiver
    source: str
    track: PublishedTrack | None = None
    incoming_extensions: dict[int, str] = field(default_factory=dict)


class Participant:
    def __init__(
        self,
        room: Room,
        participant_id: str,
        user_id: str,
        name: str,
        role: str,
        send: Callable[[str], Awaitable[None]],
        disconnect: Callable[[str], Awaitable[None]],
        stun_servers: list[str] | None = None,
    ) -> None:
        self.room = room
        self.id = participant_id
        self.user_id = user_id
        self.name = name
        self.role = role
        self.send = send
        self.disconnect = disconnect  # closes this participant's signalling socket
        ice = [RTCIceServer(urls=url) for url in stun_servers or []]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.wanted_sources: set[str] = set()
        self.video_codecs: dict[str, str] = {}  # source -> the codec the publisher asked for
        self.muted: dict[str, bool] = {}
        self.publish_slots: dict[str, IngressSlot] = {}
        self.receive_slots: dict[str, EgressSlot] = {}
        self.demux: Demuxer[PublishedTrack] = Demuxer()
        self.negotiation = 0
        self.awaiting_answer: int | None = None
        self._dirty = False
        self._tapped = False
        self.connected = False
        self.closed = False
        self.pc.on("connectionstatechange", self._on_connection_state)

    # --- what others see -------------------------------------------------------------------------------

    @property
    def tracks(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        return [
            (slot.track, self.track_info(source, slot.track))
            for source, slot in self.publish_slots.items()
            if slot.track is not None
        ]

    def track_info(self, source: str, track: PublishedTrack) -> TrackInfo:
        return TrackInfo(
            track_id=track.track_id,
            participant_id=self.id,
            source=source,  # type: ignore[arg-type]
            kind=SOURCE_KIND[source],
            muted=self.muted.get(source, False),
        )

    def info(self) -> ParticipantInfo:
        return ParticipantInfo(
            participant_id=self.id,
            name=self.name,
            role=self.role,  # type: ignore[arg-type]
            tracks=[info for _, info in self.tracks],
        )

    # --- negotiation -----------------------------------------------------------------------------------

    async def negotiate(self) -> None:
        """Bring the connection in line with what this participant publishes and should receive."""
        if self.closed:
            return
        if self.awaiting_answer is not None:
            self._dirty = True
            return
        self._dirty = False
        changed = self._add_publish_slots() | self._sync_receive_slots()
        if not changed and self.negotiation > 0:
            return
        if not self.pc.getTransceivers():
            return  # nothing to negotiate yet: the first offer waits for a first m-line
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.negotiation += 1
        self.awaiting_answer = self.negotiation
        tracks: dict[str, Any] = {}
        for source, ingress in self.publish_slots.items():
            tracks[str(ingress.transceiver.mid)] = PublishSlot(publish=source)  # type: ignore[arg-type]
        for egress in self.receive_slots.values():
            tracks[str(egress.transceiver.mid)] = egress.info
        await self.send(
            message("offer", negotiation=self.negotiation, sdp=self.pc.localDescription.sdp, tracks=tracks)
        )

    def _add_publish_slots(self) -> bool:
        changed = False
        for source in sorted(self.wanted_sources - set(self.publish_slots)):
            kind = SOURCE_KIND[source]
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            mimes = (self.video_codecs[source],) if source in self.video_codecs else PUBLISH_MIME_TYPES[kind]
            transceiver.setCodecPreferences([c for mime in mimes for c in _capabilities(kind, mime)])
            self.publish_slots[source] = IngressSlot(transceiver, source)
            changed = True
        return changed

    def _sync_receive_slots(self) -> bool:
        wanted = {track.track_id: (track, info) for track, info in self.room.tracks_for(self)}
        changed = False
        for track_id, (track, info) in wanted.items():
            slot = self.receive_slots.get(track_id)
            if slot is not None:
                slot.info = info
                continue
            transceiver = self.pc.addTransceiver(seams.SilentTrack(track.kind), direction="sendonly")
            transceiver.setCodecPreferences(
                _capabilities(track.kind, track.mime_type, track.codec_parameters)
            )
            self.receive_slots[track_id] = EgressSlot(transceiver, track, info)
            changed = True
        for track_id in set(self.receive_slots) - set(wanted):
            slot = self.receive_slots.pop(track_id)
            slot.transceiver.direction = "inactive"
            if slot.subscription in slot.track.subscriptions:
                slot.track.subscriptions.remove(slot.subscription)
            changed = True
        return changed

    async def on_answer(self, negotiation: int, sdp: str) -> None:
        if negotiation != self.awaiting_answer:
            raise ValueError(f"no offer {negotiation} is waiting for an answer")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.awaiting_answer = None
        transport = seams.bundled_transport(self.pc)
        if not self._tapped:
            seams.tap_rtp(transport, self._on_rtp)
            self._tapped = True
        published = self._bind_publish_slots(SessionDescription.parse(sdp))
        self._bind_receive_slots()
        if published:
            await self.room.on_tracks_changed(self, published=[self.track_info(s, t) for s, t in published])
        if self._dirty:
            await self.negotiate()

    def _bind_publish_slots(self, answer: SessionDescription) -> list[tuple[str, PublishedTrack]]:
        published = []
        for source, slot in self.publish_slots.items():
            if slot.track is not None or slot.transceiver.mid is None:
                continue
            media = next((m for m in answer.media if m.rtp.muxId == slot.transceiver.mid), None)
            if media is None or media.direction not in ("sendonly", "sendrecv"):
                continue  # the client did not attach a track to this m-line (yet)
            codec = seams.negotiated_codecs(slot.transceiver)[0]
            ssrc = media.ssrc[0].ssrc if media.ssrc else None
            extensions = seams.negotiated_extensions(slot.transceiver)
            receiver = slot.transceiver.receiver
            rtcp_ssrc = seams.sender_ssrc(slot.transceiver.sender)
            track = PublishedTrack(
                track_id=f"{self.id}/{source}",
                kind=SOURCE_KIND[source],
                mime_type=codec.mimeType,
                clock_rate=codec.clockRate,
                codec_parameters=dict(codec.parameters),
                ssrc=ssrc or 0,
                upstream=_Upstream(self, receiver, rtcp_ssrc),
            )
            slot.track = track
            slot.incoming_extensions = {ext_id: uri for uri, ext_id in extensions.items()}
            self.demux.mid_extension_id = extensions.get(EXT_MID)
            self.demux.add(track, slot.transceiver.mid, ssrc)
            seams.on_receiver_rtcp(receiver, _sender_report_listener(track))
            published.append((source, track))
        return published

    def _bind_receive_slots(self) -> None:
        for slot in self.receive_slots.values():
            if slot.subscription is not None or slot.transceiver.mid is None:
                continue
            codecs = seams.negotiated_codecs(slot.transceiver)
            codec = next((c for c in codecs if c.mimeType.lower() == slot.track.mime_type.lower()), None)
            if codec is None:
                log.warning("subscriber refused codec", extra={"participant": self.id})
                continue
            owner = self.room.owner_of(slot.track)
            incoming = owner.publish_slots[slot.info.source].incoming_extensions if owner else {}
            sender = slot.transceiver.sender
            assert codec.payloadType is not None  # negotiated codecs always carry one
            subscription = Subscription(
                slot.track,
                seams.bundled_transport(self.pc),
                codec.payloadType,
                seams.sender_ssrc(sender),
                ExtensionMap(
                    incoming, seams.negotiated_extensions(slot.transceiver), slot.transceiver.mid.encode()
                ),
            )
            original = seams.on_sender_rtcp(sender, _feedback_handler(subscription))
            subscription.fallback_rtcp = original
            seams.rewrite_sender_reports(sender, subscription.sender_reports)
            subscription.ready = self.connected
            slot.subscription = subscription
            slot.track.subscriptions.append(subscription)

    # --- media and connection --------------------------------------------------------------------------

    async def _on_rtp(self, data: bytes, arrival_time_ms: int) -> None:
        try:
            header = parse_header(data)
        except MalformedPacket:
            STATS.malformed += 1
            return
        track = self.demux.route(data, header)
        if track is None:
            STATS.unknown_ssrc += 1
            return
        if track.ssrc != header.ssrc:
            track.ssrc = header.ssrc  # learnt from the MID extension
        await track.on_packet(data, header, arrival_time_ms)

    async def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.connected:
            self.connected = True
            for slot in self.receive_slots.values():
                if slot.subscription is not None:
                    slot.subscription.ready = True
                    await slot.track.request_keyframe(force=True)
        elif state in ("failed", "closed") and not self.closed:
            await self.room.remove(self, reason="connection_lost")

    def want(self, source: str, video_codec: str | None) -> None:
        self.wanted_sources.add(source)
        if video_codec and SOURCE_KIND[source] == "video":
            self.video_codecs[source] = video_codec

    def unpublish(self, source: str) -> PublishedTrack | None:
        self.wanted_sources.discard(source)
        slot = self.publish_slots.pop(source, None)
        if slot is None:
            return None
        slot.transceiver.direction = "inactive"
        if slot.track is not None:
            self.demux.remove(slot.track)
        return slot.track

    async def close(self) -> None:
        self.closed = True
        for slot in self.receive_slots.values():
            if slot.subscription in slot.track.subscriptions:
                slot.track.subscriptions.remove(slot.subscription)
        await self.pc.close()


class _Upstream:
    """RTCP to the publisher of tracks on this connection: keyframe requests and NACKs."""

    def __init__(self, participant: Participant, receiver: RTCRtpReceiver, rtcp_ssrc: int) -> None:
        self.participant = participant
        self.receiver = receiver
        self.rtcp_ssrc = rtcp_ssrc

    async def request_keyframe(self, media_ssrc: int) -> None:
        await seams.request_keyframe(self.receiver, media_ssrc)

    async def nack(self, media_ssrc: int, lost: list[int]) -> None:
        await self._send(build_nack(self.rtcp_ssrc, media_ssrc, lost))

    async def report(self, track: PublishedTrack) -> None:
        """Receiver report and bandwidth estimate (REMB) upstream: the relay's receiver never runs, so
        without these the publisher sees no loss figures and its encoder stays at its start bitrate."""
        rr = build_rr(self.rtcp_ssrc, [track.receive_stats.receiver_info(time.monotonic())])
        await self._send(rr + build_remb(self.rtcp_ssrc, track.target_bitrate(), [track.ssrc]))

    async def _send(self, rtcp: bytes) -> None:
        with contextlib.suppress(ConnectionError):
            await seams.send_rtp(seams.bundled_transport(self.participant.pc), rtcp)


def _sender_report_listener(track: PublishedTrack) -> Callable[[Any], Awaitable[None]]:
    async def listen(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            track.on_sender_report(packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)

    return listen


def _feedback_handler(subscription: Subscription) -> Callable[[Any], Awaitable[None]]:
    """A subscriber's RTCP for one of its m-lines: keyframe requests go upstream, NACKs are answered."""

    async def handle(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            STATS.keyframe_requests_received += 1
            await subscription.track.request_keyframe()
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            await subscription.on_nack(packet.lost)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            subscription.on_remb(packet.fci)
        elif subscription.fallback_rtcp is not None:
            await subscription.fallback_rtcp(packet)  # receiver reports: aiortc keeps its stats

    return handle
