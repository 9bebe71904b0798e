"""A participant's side of the relay: one max-bundle peer connection, negotiated by the relay.

The participant publishes sources (camera, microphone, screen), one ``recvonly`` m-line each, and
receives every other track of the meeting, local or linked (edge_relay/rooms/offering.py negotiates).
It knows its room only as the few calls below (``ParticipantRoom``), so the room module can import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from edge_relay.rooms.offering import OfferingPeer
from edge_relay.rooms.signals import OfferSlot, ParticipantSignals
from edge_relay.sfu import bindings
from edge_relay.sfu.forwarder import PublishedTrack
from edge_relay.sfu.transport import PeerTransport
from meetup_protocol.signalling import SOURCE_KIND, ParticipantInfo, PublishSlot, TrackInfo

#: What a publisher may send: VP8 or H.264 (constrained baseline / baseline, packetization-mode 1),
#: Opus. No RTX: retransmissions come on the media SSRC, which every receiver routes correctly.
PUBLISH_MIME_TYPES = {"video": ("video/VP8", "video/H264"), "audio": ("audio/opus",)}


class ParticipantRoom(Protocol):
    """What a participant asks of its room (edge_relay/rooms/room.py)."""

    def tracks_for(self, participant: Participant) -> list[tuple[PublishedTrack, TrackInfo]]: ...

    async def on_tracks_changed(
        self,
        publisher: Participant,
        published: Iterable[TrackInfo] = (),
        unpublished: Iterable[TrackInfo] = (),
    ) -> None: ...

    async def remove(self, participant: Participant, reason: str, notify: bool = True) -> None: ...


class Participant(OfferingPeer):
    def __init__(
        self,
        room: ParticipantRoom,
        participant_id: str,
        user_id: str,
        name: str,
        role: str,
        signals: ParticipantSignals,
        transport: PeerTransport,
        generation: int = 0,
    ) -> None:
        super().__init__(signals, transport)
        self.room = room
        self.signals = signals
        self.id = participant_id
        transport.bandwidth.label = participant_id
        self.generation = generation  # of the join token it joined with (see Rooms.revoke)
        self.user_id = user_id
        self.name = name
        self.role = role
        self.wanted_sources: set[str] = set()
        self.video_codecs: dict[str, str] = {}  # source -> the codec the publisher asked for
        self.simulcast = False  # the client sends its camera as simulcast layers when offered
        self.muted: dict[str, bool] = {}
        #: Sources a host muted -> whether this participant may unmute them itself: the relay forwards
        #: none of their packets meanwhile (edge_relay/rooms/moderation.py).
        self.host_muted: dict[str, bool] = {}
        self.hand_raised_at: float | None = None  # edge_relay/rooms/hands.py

    def block(self, source: str, blocked: bool) -> None:
        """Forward (or stop forwarding) ``source``'s packets, now and for a track published later."""
        for track, info in self.tracks:
            if info.source == source:
                track.blocked = blocked

    def info(self) -> ParticipantInfo:
        return ParticipantInfo(
            participant_id=self.id,
            name=self.name,
            role=self.role,  # type: ignore[arg-type]
            tracks=[info for _, info in self.tracks],
            hand_raised_at=self.hand_raised_at,
        )

    def track_info(self, key: str, track: PublishedTrack) -> TrackInfo:
        return TrackInfo(
            track_id=track.track_id,
            participant_id=self.id,
            source=key,  # type: ignore[arg-type]
            kind=SOURCE_KIND[key],
            muted=self.muted.get(key, False),
        )

    # --- what it publishes: sources ----------------------------------------------------------------------

    def want(self, source: str, video_codec: str | None, simulcast: bool = False) -> None:
        self.wanted_sources.add(source)
        if source == "camera":
            self.simulcast = simulcast
        if video_codec and SOURCE_KIND[source] == "video":
            self.video_codecs[source] = video_codec

    def unpublish(self, key: str) -> PublishedTrack | None:
        self.wanted_sources.discard(key)
        return super().unpublish(key)

    def wanted_publish(self) -> set[str]:
        return self.wanted_sources

    def publish_codecs(self, key: str) -> tuple[str, list[Any]]:
        kind = SOURCE_KIND[key]
        mimes = (self.video_codecs[key],) if key in self.video_codecs else PUBLISH_MIME_TYPES[kind]
        return kind, [c for mime in mimes for c in bindings.capabilities(kind, mime)]

    def simulcast_keys(self) -> set[str]:
        """The camera, when the client asked for simulcast with VP8 (the codec whose layers the relay
        switches: edge_relay/sfu/vp8.py). A screen share stays one stream: small text must stay sharp."""
        vp8 = self.video_codecs.get("camera", "").lower() == "video/vp8"
        return {"camera"} if self.simulcast and vp8 else set()

    def publish_slot(self, key: str) -> OfferSlot:
        return PublishSlot(publish=key)  # type: ignore[arg-type]

    def published_id(self, key: str) -> tuple[str, str]:
        return f"{self.id}/{key}", SOURCE_KIND[key]

    # --- the room --------------------------------------------------------------------------------------

    async def set_quality(self, track_id: str, quality: str) -> bool:
        """The best quality wanted of a track received (False: no such track is received)."""
        slot = self.receive_slots.get(track_id)
        if slot is None:
            return False
        slot.quality = quality
        if slot.subscription is not None:
            await slot.subscription.set_quality(quality)
        return True

    def wanted_receive(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        return self.room.tracks_for(self)

    async def published(self, infos: list[TrackInfo]) -> None:
        for source in self.host_muted:
            self.block(source, True)
        await self.room.on_tracks_changed(self, published=infos)

    async def _lost(self) -> None:
        if not self.closed:
            await self.room.remove(self, reason="connection_lost")
