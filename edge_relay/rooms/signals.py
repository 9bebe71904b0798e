"""What rooms tell their peers, as method calls: the signalling layer (edge_relay/signalling/) turns each
into a wire message. Rooms route; they never format a message themselves."""

from __future__ import annotations

from typing import Any, Protocol

from meetup_protocol.signalling import LinkState, ParticipantInfo, PublishSlot, PublishTrackSlot, TrackInfo

#: What one m-line of an offer carries: a remote track (``TrackInfo``), or where the peer publishes
#: (a participant's source, ``PublishSlot``; a linked relay's track, ``PublishTrackSlot``).
OfferSlot = TrackInfo | PublishSlot | PublishTrackSlot

#: An event of a participant (``chat``, ``reaction``, ``track_muted``, ``meeting_ended``): the same
#: fields reach our participants and, verbatim, the linked relays.
Event = dict[str, Any]


class Offers(Protocol):
    """Where the relay's offers go (it makes every offer on a connection it accepted)."""

    async def offer(self, negotiation: int, sdp: str, tracks: dict[str, OfferSlot]) -> None: ...


class Closing(Protocol):
    async def disconnect(self, reason: str) -> None:
        """Close the peer's signalling socket."""


class ParticipantSignals(Offers, Closing, Protocol):
    """What a participant hears of its meeting."""

    async def participant_joined(self, participant: ParticipantInfo) -> None: ...

    async def participant_left(self, participant_id: str, reason: str) -> None: ...

    async def track_published(self, track: TrackInfo) -> None: ...

    async def track_unpublished(self, track_id: str) -> None: ...

    async def event(self, event: Event) -> None:
        """Another participant's chat message, reaction or mute."""

    async def meeting_ended(self, reason: str) -> None: ...

    async def removed(self, reason: str) -> None:
        """This participant left (through the API): its client must not reconnect."""

    async def migrate(self, reason: str) -> None:
        """The meeting goes on elsewhere: reconnect to another relay."""

    async def speakers_changed(self, levels: list[tuple[str, float]], dominant: str | None) -> None:
        """Who speaks now, loudest first, with levels 0..1, and the dominant speaker."""


class LinkSignals(Closing, Protocol):
    """What a linked relay hears of our side of the meeting, whichever end of the link we are."""

    async def state(self, state: LinkState) -> None:
        """Our participants and tracks (sent whenever they change)."""

    async def relayed(self, event: Event) -> None:
        """An event of one of our participants."""


class AcceptedLinkSignals(LinkSignals, Offers, Protocol):
    """The end of a link that accepted it makes the offers."""


class DialedLinkSignals(LinkSignals, Protocol):
    """The end of a link that dialed it answers."""

    async def answer(self, negotiation: int, sdp: str) -> None: ...
