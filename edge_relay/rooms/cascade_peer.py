"""Another relay, joined to a meeting here: the accepting side of a relay-to-relay link (a cascade).

It is negotiated like a participant (this relay makes the offers), with two differences: it publishes
the tracks of the other relay's participants (one ``recvonly`` m-line each, keyed by track id, offering
exactly the track's codec so nothing is ever transcoded), and it receives only our own participants'
tracks. It is not a participant: others see the people behind it, announced in its ``LinkState``.
"""

from __future__ import annotations

from typing import Any

from edge_relay.rooms.link import LinkRoom
from edge_relay.rooms.offering import OfferingPeer
from edge_relay.rooms.signals import AcceptedLinkSignals, Event, OfferSlot
from edge_relay.sfu import bindings
from edge_relay.sfu.forwarder import PublishedTrack, Subscription
from edge_relay.sfu.transport import PeerTransport
from meetup_protocol.signalling import LinkState, LinkTrack, PublishTrackSlot, TrackInfo


class CascadePeer(OfferingPeer):
    def __init__(
        self, room: LinkRoom, state: LinkState, signals: AcceptedLinkSignals, transport: PeerTransport
    ) -> None:
        super().__init__(signals, transport)
        self.room = room
        self.signals = signals
        self.relay_id = state.relay_id
        self.state = state

    def _announced(self) -> dict[str, LinkTrack]:
        return {t.info.track_id: t for t in self.state.tracks}

    # --- OfferingPeer: publish slots keyed by track id, with the announced codec ----------------------

    def wanted_publish(self) -> set[str]:
        return set(self._announced())

    def publish_slot(self, key: str) -> OfferSlot:
        return PublishTrackSlot(publish_track=key)

    def publish_codecs(self, key: str) -> tuple[str, list[Any]]:
        announced = self._announced()[key]
        kind, codec = announced.info.kind, announced.codec
        return kind, bindings.capabilities(kind, codec.mime_type, dict(codec.parameters) or None)

    def published_id(self, key: str) -> tuple[str, str]:
        return key, self._announced()[key].info.kind

    def track_info(self, key: str, track: PublishedTrack) -> TrackInfo:
        announced = self._announced().get(track.track_id)
        if announced is not None:
            return announced.info
        # No longer announced (a new state is being applied): what its id says ("participant/source").
        participant_id, _, source = key.rpartition("/")
        return TrackInfo(track_id=key, participant_id=participant_id, source=source, kind=track.kind)  # type: ignore[arg-type]

    def wanted_receive(self) -> list[tuple[PublishedTrack, TrackInfo]]:
        return self.room.local_tracks()  # each track crosses a relay pair once, never back

    async def published(self, infos: list[TrackInfo]) -> None:
        await self.room.on_link_tracks_changed(self, published=infos)

    async def _lost(self) -> None:
        if not self.closed:
            await self.room.remove_link(self)

    # --- the link ----------------------------------------------------------------------------------------

    async def apply_state(self, state: LinkState) -> None:
        """The other relay's participants or tracks changed."""
        old, self.state = self.state, state
        await self.room.on_link_state(self, old, state)
        announced = self._announced()
        gone = [slot.track for key, slot in self.publish_slots.items() if key not in announced and slot.track]
        for key in [k for k in self.publish_slots if k not in announced]:
            self.unpublish(key)
        if gone:
            await self.room.on_link_tracks_changed(self, unpublished=_infos(old, gone))
        await self.negotiate()

    async def on_relayed(self, event: Event) -> None:
        await self.room.on_relayed(self, event)

    async def send_state(self, state: LinkState) -> None:
        await self.signals.state(state)

    async def send_relayed(self, event: Event) -> None:
        await self.signals.relayed(event)

    def forwarded(self) -> list[Subscription]:
        return [slot.subscription for slot in self.receive_slots.values() if slot.subscription is not None]

    async def close(self) -> None:
        """Unlinked (the peer was declared dead, the room emptied or ended): end the peer's socket
        too, so a stale link can never speak for the room again; a healed peer dials anew."""
        await super().close()
        await self.signals.disconnect("unlinked")


def _infos(state: LinkState, tracks: list[PublishedTrack]) -> list[TrackInfo]:
    ids = {t.track_id for t in tracks}
    return [t.info for t in state.tracks if t.info.track_id in ids]
