"""Relay <-> relay messages (a cascade link: the joining relay is the client, the other makes offers)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, field_validator

from meetup_protocol.signalling.json_text import ProtocolError, parse_message
from meetup_protocol.signalling.relay import (
    ChatEvent,
    HandChanged,
    MeetingEnded,
    ParticipantLeft,
    ReactionEvent,
    TrackMuted,
)
from meetup_protocol.signalling.types import CodecInfo, Message, ParticipantInfo, Sdp, TrackInfo


class LinkTrack(BaseModel):
    """A track one relay forwards to another, with its codec (the link offers exactly that one)."""

    info: TrackInfo
    codec: CodecInfo


class LinkState(BaseModel):
    """What one relay has of a meeting: its own participants and their tracks."""

    relay_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    participants: Annotated[list[ParticipantInfo], Field(max_length=1000)] = []
    tracks: Annotated[list[LinkTrack], Field(max_length=3000)] = []


class CascadeJoin(Message):
    """Another relay joins this meeting here (relay-to-relay cascade), credentialed by the cluster."""

    type: Literal["cascade_join"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    state: LinkState


class CascadeUpdate(Message):
    type: Literal["cascade_update"]
    state: LinkState


#: What one relay passes on to another for its participants: events the relay -> client protocol defines.
#: ``hand_changed`` (lowered): a host or co-host there lowers the hand of one of ours.
#: ``participant_left`` carries why (e.g. ``removed_by_host``) ahead of the state that drops them.
RelayedEvent = Annotated[
    ChatEvent | ReactionEvent | TrackMuted | MeetingEnded | ParticipantLeft | HandChanged,
    Field(discriminator="type"),
]
_relayed_events: TypeAdapter[Any] = TypeAdapter(RelayedEvent)


class Relayed(Message):
    """An event of the peer relay's participants (chat, reaction, mute, meeting end), for ours.

    Checked here, at the boundary: an event of another type, or of the wrong shape, refuses the message;
    fields this version does not know (a newer relay's) are dropped, so what reaches our participants is
    exactly what the relay -> client protocol defines."""

    type: Literal["relayed"]
    event: dict[str, Any]

    @field_validator("event")
    @classmethod
    def _a_known_event(cls, event: dict[str, Any]) -> dict[str, Any]:
        return _relayed_events.validate_python(event).model_dump()  # type: ignore[no-any-return]


class PublishTrackSlot(BaseModel):
    """An m-line of a link's offer where the joining relay sends one of its own tracks."""

    model_config = ConfigDict(extra="forbid")

    publish_track: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class LinkOffer(Message):
    """The accepting relay's offer: its tracks (``TrackInfo``) and the joining relay's (to publish)."""

    type: Literal["offer"]
    negotiation: int
    sdp: Sdp
    tracks: Annotated[dict[str, PublishTrackSlot | TrackInfo], Field(max_length=6000)] = {}


class LinkAnswer(Message):
    type: Literal["answer"]
    negotiation: int
    sdp: Sdp


class LinkError(Message):
    """The accepting relay refused something (it answers every bad message with one)."""

    type: Literal["error"]
    code: str
    message: str


#: What the joining relay hears from the one it joined.
LinkMessage = Annotated[LinkOffer | CascadeUpdate | Relayed | LinkError, Field(discriminator="type")]
_link_messages: TypeAdapter[Any] = TypeAdapter(LinkMessage)


def parse_link_message(raw: str | bytes) -> LinkOffer | CascadeUpdate | Relayed | LinkError:
    """Validate one frame the accepting relay sent. Raises ProtocolError."""
    try:
        text = raw if isinstance(raw, str) else raw.decode()
    except UnicodeDecodeError:
        raise ProtocolError("invalid_message", "frames are UTF-8 JSON") from None
    return parse_message(text, _link_messages)  # type: ignore[no-any-return]


def encode(msg: Message) -> str:
    """Serialise a cascade message."""
    return msg.model_dump_json()
