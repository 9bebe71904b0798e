"""A participant's side of the relay: one max-bundle peer connection, negotiated by the relay.

The relay always offers (so there is never glare). Each offer holds a ``recvonly`` m-line per source the
participant publishes and a ``sendonly`` m-line per track of the others it receives. When the answer
arrives, new publish m-lines become :class:`PublishedTrack` objects (fed by the RTP tap on this
connection's transport) and new receive m-lines become :class:`Subscription` objects on the others'
tracks. Changes made while an offer is out are batched into the next offer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import SessionDescription

from edge_relay.sfu import bindings, seams
from edge_relay.sfu.demux import Demuxer
from edge_relay.sfu.forwarder import PublishedTrack, Subscription
from meetup_protocol.signalling import SOURCE_KIND, ParticipantInfo, PublishSlot, TrackInfo, message

if TYPE_CHECKING:
    from edge_relay.rooms.room import Room

log = logging.getLogger("edge_relay.participant")

#: What a publisher may send: VP8 or H.264 (constrained baseline / baseline, packetization-mode 1),
#: Opus. No RTX: retransmissions come on the media SSRC, which every receiver routes correctly.
PUBLISH_MIME_TYPES = {"video": ("video/VP8", "video/H264"), "audio": ("audio/opus",)}


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
        generation: int = 0,
    ) -> None:
        self.room = room
        self.id = participant_id
        self.generation = generation  # of the join token it joined with (see Rooms.revoke)
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
        self._unpublished = False  # a publish m-line went inactive: the peer must hear it (an offer)
        #: One offer at a time: two callers (our own join, another participant's new track) must not
        #: interleave at createOffer's await and send two offers, of which the client answers the stale one.
        self._offering = asyncio.Lock()
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
        async with self._offering:
            await self._offer()

    async def _offer(self) -> None:
        if self.closed:
            return
        if self.awaiting_answer is not None:
            self._dirty = True
            return
        self._dirty = False
        changed = self._add_publish_slots() | self._sync_receive_slots() | self._unpublished
        self._unpublished = False
        if not changed and self.negotiation > 0:
            return
        if not self.pc.getTransceivers():
            return  # nothing to negotiate yet: the first offer waits for a first m-line
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.negotiation += 1
        self.awaiting_answer = self.negotiation
        tracks: dict[str, Any] = {}
        for key, ingress in self.publish_slots.items():
            tracks[str(ingress.transceiver.mid)] = self._publish_wire(key)
        for egress in self.receive_slots.values():
            tracks[str(egress.transceiver.mid)] = egress.info
        await self.send(
            message("offer", negotiation=self.negotiation, sdp=self.pc.localDescription.sdp, tracks=tracks)
        )

    # Hooks: what this peer publishes, keyed by source here; a relay-to-relay link keys by track id.

    def _wanted_publish_keys(self) -> set[str]:
        return self.wanted_sources

    def _publish_wire(self, key: str) -> Any:
        return PublishSlot(publish=key)  # type: ignore[arg-type]

    def _publish_codecs(self, key: str) -> tuple[str, list[Any]]:
        """(kind, codec capabilities) offered on the m-line where ``key`` is published."""
        kind = SOURCE_KIND[key]
        mimes = (self.video_codecs[key],) if key in self.video_codecs else PUBLISH_MIME_TYPES[kind]
        return kind, [c for mime in mimes for c in bindings.capabilities(kind, mime)]

    def _new_track(self, key: str, transceiver: RTCRtpTransceiver, ssrc: int | None) -> PublishedTrack:
        return bindings.published_track(self.pc, transceiver, f"{self.id}/{key}", SOURCE_KIND[key], ssrc)

    def _add_publish_slots(self) -> bool:
        changed = False
        for key in sorted(self._wanted_publish_keys() - set(self.publish_slots)):
            kind, codecs = self._publish_codecs(key)
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            transceiver.setCodecPreferences(codecs)
            self.publish_slots[key] = IngressSlot(transceiver, key)
            changed = True
        return changed

    def _sync_receive_slots(self) -> bool:
        wanted = {track.track_id: (track, info) for track, info in self.room.tracks_for(self)}
        changed = False
        for track_id, (track, info) in wanted.items():
            slot = self.receive_slots.get(track_id)
            if slot is not None and slot.track is not track:  # the same id from a new source (a
                self._retire(self.receive_slots.pop(track_id))  # participant moved relays): re-offer
                slot = None
            if slot is not None:
                slot.info = info
                continue
            transceiver = self.pc.addTransceiver(seams.SilentTrack(track.kind), direction="sendonly")
            transceiver.setCodecPreferences(
                bindings.capabilities(track.kind, track.mime_type, track.codec_parameters)
            )
            self.receive_slots[track_id] = EgressSlot(transceiver, track, info)
            changed = True
        for track_id in set(self.receive_slots) - set(wanted):
            self._retire(self.receive_slots.pop(track_id))
            changed = True
        return changed

    @staticmethod
    def _retire(slot: EgressSlot) -> None:
        slot.transceiver.direction = "inactive"
        if slot.subscription in slot.track.subscriptions:
            slot.track.subscriptions.remove(slot.subscription)

    async def on_answer(self, negotiation: int, sdp: str) -> None:
        if negotiation != self.awaiting_answer:
            raise ValueError(f"no offer {negotiation} is waiting for an answer")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.awaiting_answer = None
        transport = seams.bundled_transport(self.pc)
        if not self._tapped:
            seams.tap_rtp(transport, bindings.rtp_tap(self.demux))
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
            ssrc = media.ssrc[0].ssrc if media.ssrc else None
            track = self._new_track(source, slot.transceiver, ssrc)
            slot.track = track
            bindings.watch_mid_extension(self.demux, slot.transceiver)
            self.demux.add(track, slot.transceiver.mid, ssrc)
            published.append((source, track))
        return published

    def _bind_receive_slots(self) -> None:
        for slot in self.receive_slots.values():
            if slot.subscription is None and slot.transceiver.mid is not None:
                slot.subscription = bindings.subscription(
                    self.pc, slot.transceiver, slot.track, self.connected
                )
                if slot.subscription is None:
                    log.warning("codec refused", extra={"participant": self.id, "track": slot.track.track_id})

    # --- media and connection --------------------------------------------------------------------------

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
        self._unpublished = True
        if slot.track is not None:
            self.demux.remove(slot.track)
        return slot.track

    async def close(self) -> None:
        self.closed = True
        for slot in self.receive_slots.values():
            if slot.subscription in slot.track.subscriptions:
                slot.track.subscriptions.remove(slot.subscription)
        await self.pc.close()
