"""Our side of a link we dialed (edge_relay/cluster/cascade.py dials): the other relay makes the offers.

Over the one max-bundle connection, each of our participants' tracks goes to the peer once (it fans
them out to its own subscribers) and each of the peer's tracks comes to us once; keyframe requests and
NACKs flow back upstream like a subscriber's. Media is forwarded as RTP, never decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc import RTCRtpTransceiver

from edge_relay.rooms.link import LinkRoom
from edge_relay.rooms.signals import DialedLinkSignals, Event
from edge_relay.sfu.forwarder import PublishedTrack, Subscription
from edge_relay.sfu.transport import PeerTransport
from meetup_protocol.signalling import LinkOffer, LinkState, PublishTrackSlot, TrackInfo


@dataclass
class _Incoming:
    info: TrackInfo
    track: PublishedTrack


class DialedLink:
    def __init__(
        self, room: LinkRoom, peer_relay_id: str, signals: DialedLinkSignals, transport: PeerTransport
    ) -> None:
        self.room = room
        self.relay_id = peer_relay_id
        self.signals = signals
        self.transport = transport
        self.state = LinkState(relay_id=peer_relay_id)
        self.incoming: dict[str, _Incoming] = {}  # mid -> a track of the peer's participants
        self.outgoing: dict[str, tuple[RTCRtpTransceiver, Subscription | None]] = {}  # our track id ->
        transport.on_lost = self._lost

    @property
    def tracks(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        return [(slot.track, slot.info) for slot in self.incoming.values()]

    async def on_offer(self, offer: LinkOffer) -> None:
        parsed = {m.rtp.muxId: m for m in (await self.transport.apply_offer(offer.sdp)).media}
        local = {track.track_id: track for track, _ in self.room.local_tracks()}
        published: list[TrackInfo] = []
        unpublished: list[TrackInfo] = []
        for mid, slot in offer.tracks.items():
            transceiver = self.transport.transceiver(mid)
            if transceiver is None:
                continue
            if isinstance(slot, PublishTrackSlot):  # one of our tracks, wanted by the peer
                track = local.get(slot.publish_track)
                if track is not None and slot.publish_track not in self.outgoing:
                    self.transport.accept_egress(transceiver, track)
                    self.outgoing[track.track_id] = (transceiver, None)
                continue
            media, current = parsed.get(mid), self.incoming.get(mid)
            if media is not None and media.direction == "inactive":
                if current is not None:
                    self.transport.stop_receiving(current.track)
                    unpublished.append(current.info)
                self.incoming.pop(mid, None)
            elif current is None and media is not None:
                track = self.transport.receive(transceiver, slot.track_id, slot.kind, media)
                self.incoming[mid] = _Incoming(slot, track)
                published.append(slot)
        sdp = await self.transport.create_answer()
        for track_id, (transceiver, sub) in list(self.outgoing.items()):
            if track_id not in local:  # our participant stopped publishing it, or left
                del self.outgoing[track_id]
                self.transport.stop_sending(sub)
            elif sub is None:
                self.outgoing[track_id] = (transceiver, self.transport.send(transceiver, local[track_id]))
        await self.signals.answer(offer.negotiation, sdp)
        if published or unpublished:
            await self.room.on_link_tracks_changed(self, published=published, unpublished=unpublished)

    async def apply_state(self, state: LinkState) -> None:
        old, self.state = self.state, state
        await self.room.on_link_state(self, old, state)

    async def on_relayed(self, event: Event) -> None:
        await self.room.on_relayed(self, event)

    def forwarded(self) -> list[Subscription]:
        return [sub for _, sub in self.outgoing.values() if sub is not None]

    async def negotiate(self) -> None:
        """The peer makes the offers; it learns our new tracks from ``send_state``."""

    async def send_state(self, state: LinkState) -> None:
        """Our participants or tracks changed. A track we forwarded that is gone, or that is another
        object now under the same id (its participant reconnected), stops here: the peer re-offers what
        it still wants, and a new m-line is bound to the current track, never the stale one."""
        local = {track.track_id: track for track, _ in self.room.local_tracks()}
        for track_id, (_, sub) in list(self.outgoing.items()):
            current = local.get(track_id)
            if current is None or (sub is not None and sub.track is not current):
                del self.outgoing[track_id]
                self.transport.stop_sending(sub)
        await self.signals.state(state)

    async def send_relayed(self, event: Event) -> None:
        await self.signals.relayed(event)

    async def _lost(self) -> None:
        await self.room.remove_link(self)

    async def close(self) -> None:
        await self.signals.disconnect("unlinked")
        await self.transport.close()
