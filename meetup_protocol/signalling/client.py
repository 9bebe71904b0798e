"""Client -> relay messages, and the parser of everything a peer sends the relay."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from meetup_protocol.signalling.cascade import CascadeJoin, CascadeUpdate, Relayed
from meetup_protocol.signalling.json_text import MAX_MESSAGE_BYTES, ProtocolError, load_json
from meetup_protocol.signalling.types import (
    PROTOCOL_VERSION,
    Message,
    Notice,
    Sdp,
    Source,
    VideoCodec,
)


class Join(Message):
    type: Literal["join"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    protocol: int = PROTOCOL_VERSION
    #: Sources to publish from the start (saves a round of negotiation).
    publish: Annotated[list[Source], Field(max_length=3)] = []
    video_codec: VideoCodec | None = None


class Publish(Message):
    type: Literal["publish"]
    source: Source
    video_codec: VideoCodec | None = None


class Unpublish(Message):
    type: Literal["unpublish"]
    source: Source


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
    | Answer
    | Mute
    | Reaction
    | Chat
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
    if isinstance(raw, bytes):
        raise ProtocolError("binary_frame", "send JSON text frames")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    data = load_json(raw)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("invalid_message", "a message is a JSON object with a string 'type'")
    try:
        return _client_messages.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "union_tag_invalid":
            raise ProtocolError("unknown_type", f"unknown message type {data['type'][:40]!r}") from None
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise ProtocolError("invalid_message", f"{data['type'][:40]}: {where}: {first['msg']}") from None
