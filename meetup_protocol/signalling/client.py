"""Client -> relay messages, and the parser of everything a peer sends the relay."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, TypeAdapter

from meetup_protocol.signalling.cascade import CascadeJoin, CascadeUpdate, Relayed
from meetup_protocol.signalling.json_text import parse_message
from meetup_protocol.signalling.types import (
    PROTOCOL_VERSION,
    Message,
    Notice,
    Sdp,
    Source,
    VideoCodec,
    VideoQuality,
)


class Join(Message):
    type: Literal["join"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    protocol: int = PROTOCOL_VERSION
    #: Sources to publish from the start (saves a round of negotiation).
    publish: Annotated[list[Source], Field(max_length=3)] = []
    video_codec: VideoCodec | None = None
    #: The client sends its camera as simulcast layers if offered (a browser that can: Chromium).
    simulcast: bool = False


class Publish(Message):
    type: Literal["publish"]
    source: Source
    video_codec: VideoCodec | None = None
    simulcast: bool = False


class Unpublish(Message):
    type: Literal["unpublish"]
    source: Source


class SetVideoQuality(Message):
    """The best quality this subscriber wants of a track it receives (e.g. low for a thumbnail)."""

    type: Literal["video_quality"]
    track_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    quality: VideoQuality


class Answer(Message):
    type: Literal["answer"]
    negotiation: int
    sdp: Sdp


class Mute(Message):
    type: Literal["mute"]
    source: Source
    muted: bool


class Reaction(Message):
    """A reaction the API stored: the relay fans out what the notice says, nothing the sender adds."""

    type: Literal["reaction"]
    notice: Notice


class Chat(Message):
    """A chat message the API stored (the notice carries its id, sender and text, signed)."""

    type: Literal["chat"]
    notice: Notice


class Hand(Message):
    """Raise or lower one's own hand; a host or co-host may lower another's (``participant_id``)."""

    type: Literal["hand"]
    raised: bool
    participant_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class End(Message):
    type: Literal["end"]


class Leave(Message):
    type: Literal["leave"]


class Ping(Message):
    type: Literal["ping"]


ClientMessage = Annotated[
    Join
    | Publish
    | Unpublish
    | SetVideoQuality
    | Answer
    | Mute
    | Reaction
    | Chat
    | Hand
    | End
    | Leave
    | Ping
    | CascadeJoin
    | CascadeUpdate
    | Relayed,
    Field(discriminator="type"),
]
_client_messages: TypeAdapter[Any] = TypeAdapter(ClientMessage)


def parse_client_message(raw: str | bytes) -> Any:
    """Validate one frame from a client. Raises ProtocolError with a code the client can act on."""
    return parse_message(raw, _client_messages)
