"""Another relay, joined to a meeting here: the accepting side of a relay-to-relay link (a cascade).

It is negotiated like a participant (this relay makes the offers), with two differences: it publishes
the tracks of the other relay's participants (one ``recvonly`` m-line each, keyed by track id, offering
exactly the track's codec so nothing is ever transcoded), and it receives only our own participants'
tracks. It is not a participant: others see the people behind it, announced in its ``LinkState``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpTransceiver

from edge_relay.rooms.participant import Participant
from edge_relay.sfu import bindings
from edge_relay.sfu.forwarder import PublishedTrack, Subscription
from meetup_protocol.signalling import LinkState, LinkTrack, TrackInfo, message

if TYPE_CHECKING:
    from edge_relay.rooms.room import Room


class CascadePeer(Participant):
    is_link = True

    def __init__(
        self,
        room: Room,
        state: LinkState,
        send: Callable[[str], Awaitable[None]],
        disconnect: Callable[[str], Awaitable[None]],
        stun_servers: list[str] | None = None,
    ) -> None:
        super().__init__(
            room, f"relay:{state.relay_id}", "", state.relay_id, "guest", send, disconnect, stun_servers
        )
        self.relay_id = state.relay_id
        self.state = state

    def _announced(self) -> dict[str, LinkTrack]:
        return {t.info.track_id: t for t in self.state.tracks}

    # --- Participant hooks: publish slots keyed by track id, with the announced codec -----------------

    def _wanted_publish_keys(self) -> set[str]:
        return set(self._announced())

    def _publish_wire(self, key: str) -> Any:
        return {"publish_track": key}

    def _publish_codecs(self, key: str) -> tuple[str, list[Any]]:
        announced = self._announced()[key]
        kind = announced.info.kind
        codec = announced.codec
        return kind, bindings.capabilities(kind, codec.mime_type, dict(codec.parameters) or None)

    def _new_track(self, key: str, transceiver: RTCRtpTransceiver, ssrc: int | None) -> PublishedTrack:
        return bindings.published_track(self.pc, transceiver, key, self._announced()[key].info.kind, ssrc)

    def track_info(self, source: str, track: PublishedTrack) -> TrackInfo:
        announced = self._announced().get(track.track_id)
        return announced.info if announced else super().track_info(source, track)

    # --- the link ----------------------------------------------------------------------------------------

    async def apply_state(self, state: LinkState) -> None:
        """The other relay's participants or tracks changed."""
        old, self.state = self.state, state
        await self.room.on_link_state(self, old, state)  # type: ignore[arg-type]
        gone = [
            slot.track
            for key, slot in self.publish_slots.items()
            if key not in self._announced() and slot.track
        ]
        for key in [k for k in self.publish_slots if k not in self._announced()]:
            self.unpublish(key)
        if gone:
            await self.room.on_tracks_changed(self, unpublished=_infos(old, gone))
        await self.negotiate()

    async def _on_connection_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed") and not self.closed:
            await self.room.remove_link(self)  # type: ignore[arg-type]
        else:
            await super()._on_connection_state()

    async def send_state(self, state: LinkState) -> None:
        await self.send(message("cascade_update", state=state))

    def forwarded(self) -> list[Subscription]:
        """Our tracks going over this link (each once, whatever the subscribers behind it)."""
        return [slot.subscription for slot in self.receive_slots.values() if slot.subscription is not None]

    async def close(self) -> None:
        """Unlinked (the peer was declared dead, the room emptied or ended): end the peer's socket
        too, so a stale link can never speak for the room again; a healed peer dials anew."""
        await super().close()
        await self.disconnect("unlinked")

    async def send_relayed(self, event: dict[str, Any]) -> None:
        await self.send(message("relayed", event=event))


def _infos(state: LinkState, tracks: list[PublishedTrack]) -> list[TrackInfo]:
    ids = {t.track_id for t in tracks}
    return [t.info for t in state.tracks if t.info.track_id in ids]
