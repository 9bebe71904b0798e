"""What the relay says on a signalling socket: each call of a room (edge_relay/rooms/signals.py) becomes
one wire message here, and nowhere else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from edge_relay.ops.metrics import COUNTERS
from edge_relay.rooms.signals import Event, OfferSlot
from meetup_protocol import signalling as p

Send = Callable[[str], Awaitable[None]]


class Wire:
    """One socket's sending side."""

    def __init__(self, send: Send, disconnect: Callable[[str], Awaitable[None]]) -> None:
        self.send = send
        self._disconnect = disconnect

    async def error(self, code: str, text: str) -> None:
        COUNTERS.rejects[code] += 1
        await self.send(p.message("error", code=code, message=text))

    async def disconnect(self, reason: str) -> None:
        await self._disconnect(reason)


class ParticipantWire(Wire):
    """A participant's socket (``ParticipantSignals``)."""

    async def offer(self, negotiation: int, sdp: str, tracks: dict[str, OfferSlot]) -> None:
        await self.send(p.message("offer", negotiation=negotiation, sdp=sdp, tracks=tracks))

    async def participant_joined(self, participant: p.ParticipantInfo) -> None:
        await self.send(p.message("participant_joined", participant=participant))

    async def participant_left(self, participant_id: str, reason: str) -> None:
        await self.send(p.message("participant_left", participant_id=participant_id, reason=reason))

    async def track_published(self, track: p.TrackInfo) -> None:
        await self.send(p.message("track_published", track=track))

    async def track_unpublished(self, track_id: str) -> None:
        await self.send(p.message("track_unpublished", track_id=track_id))

    async def event(self, event: Event) -> None:
        fields = {k: v for k, v in event.items() if k != "type"}
        await self.send(p.message(str(event["type"]), **fields))

    async def meeting_ended(self, reason: str) -> None:
        await self.send(p.message("meeting_ended", reason=reason))

    async def removed(self, reason: str) -> None:
        await self.send(p.message("removed", reason=reason))

    async def speakers_changed(self, levels: list[tuple[str, float]], dominant: str | None) -> None:
        speakers = [{"participant_id": pid, "level": level} for pid, level in levels]
        await self.send(p.message("speakers_changed", speakers=speakers, dominant=dominant))

    async def migrate(self, reason: str) -> None:
        await self.send(p.message("migrate", reason=reason))


class LinkWire(Wire):
    """Either end of a relay-to-relay link (``LinkSignals``): typed cascade messages."""

    async def state(self, state: p.LinkState) -> None:
        await self.send(p.encode_cascade(p.CascadeUpdate(type="cascade_update", state=state)))

    async def relayed(self, event: Event) -> None:
        await self.send(p.encode_cascade(p.Relayed(type="relayed", event=event)))


class AcceptedLinkWire(LinkWire):
    """A link another relay dialed: we offer."""

    async def offer(self, negotiation: int, sdp: str, tracks: dict[str, Any]) -> None:
        offer = p.LinkOffer(type="offer", negotiation=negotiation, sdp=sdp, tracks=tracks)
        await self.send(p.encode_cascade(offer))


class DialedLinkWire(LinkWire):
    """A link we dialed: we answer."""

    async def answer(self, negotiation: int, sdp: str) -> None:
        await self.send(p.encode_cascade(p.LinkAnswer(type="answer", negotiation=negotiation, sdp=sdp)))
