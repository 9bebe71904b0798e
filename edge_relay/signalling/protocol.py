"""The relay's signalling protocol, version 1: JSON text frames over one WebSocket per participant.

Shared by the relay and every client (the Python SDK imports this module; the browser client follows it).
The relay always makes the offers, so there is never glare: a client asks to publish, the relay answers
with an offer that holds a ``recvonly`` m-line for it (``tracks[mid].publish``) plus one ``sendonly``
m-line per remote track; the client attaches its track to that m-line and answers.

Client -> relay
    join        {token, protocol, publish, video_codec}   first message, exactly once
    publish     {source, video_codec}        camera | microphone | screen; VP8 or H.264
    unpublish   {source}
    answer      {negotiation, sdp}           to the relay's offer with that number
    mute        {source, muted}
    reaction    {notice}                     the API's signed notice of the stored reaction; fanned out
    chat        {notice}                     the API's signed notice of the stored message; fanned out
    end         {}                           host only: the meeting ends for everyone
    leave       {}
    ping        {}

Relay <-> relay (cascade; the joining relay is the client, the other makes the offers)
    cascade_join   {token, state}    state: LinkState, this relay's participants and tracks (with codecs)
    cascade_update {state}           either way, whenever a side's own participants or tracks change
    relayed        {event}           either way: chat, reaction, track_muted, meeting_ended of its people
    offer tracks: mid -> {publish_track: track_id} for the joining relay's tracks

Relay -> client
    welcome     {participant_id, meeting_id, role, participants}
    offer       {negotiation, sdp, tracks}   tracks: mid -> TrackInfo (remote) or {publish: source}
    participant_joined {participant} / participant_left {participant_id, reason}
    track_published {track} / track_unpublished {track_id} / track_muted {track_id, muted}
    reaction    {participant_id, name, emoji} / chat {participant_id, name, message_id, text, created_at}
    meeting_ended {reason}                   then the relay closes the connection
    removed     {reason}                     this participant left (through the API): do not reconnect
    chat_ack    {message_id}                 the relay has this participant's chat notice: no resend
    error       {code, message}              a bad message is answered and otherwise ignored
    pong        {}
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024  # an SDP with dozens of m-lines fits; anything larger is refused
#: Arrays and objects inside each other: the deepest real message (a cascade state) has 6 levels.
MAX_NESTING = 16
#: A signed notice (functions/core/tokens.py): a chat message of 2000 characters, base64, fits.
Notice = Annotated[str, StringConstraints(min_length=1, max_length=16 * 1024)]

Source = Literal["camera", "microphone", "screen"]
Kind = Literal["audio", "video"]
SOURCE_KIND: dict[str, Kind] = {"camera": "video", "microphone": "audio", "screen": "video"}
#: Video codecs a publisher may choose; the relay offers only that one on the m-line (default: both).
VideoCodec = Literal["video/VP8", "video/H264"]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_BYTES)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- relay -> client ---------------------------------------------------------------------------------


class TrackInfo(BaseModel):
    track_id: str
    participant_id: str
    source: Source
    kind: Kind
    muted: bool = False


class PublishSlot(BaseModel):
    """An m-line of the relay's offer where the client sends its own ``publish`` source."""

    publish: Source


class ParticipantInfo(BaseModel):
    participant_id: str
    name: str
    role: Literal["host", "guest"]
    tracks: list[TrackInfo] = []


# --- client -> relay ---------------------------------------------------------------------------------


class Join(_Message):
    type: Literal["join"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    protocol: int = PROTOCOL_VERSION
    #: Sources to publish from the start (saves a round of negotiation).
    publish: Annotated[list[Source], Field(max_length=3)] = []
    video_codec: VideoCodec | None = None


class Publish(_Message):
    type: Literal["publish"]
    source: Source
    video_codec: VideoCodec | None = None


class Unpublish(_Message):
    type: Literal["unpublish"]
    source: Source


class Answer(_Message):
    type: Literal["answer"]
    negotiation: int
    sdp: Sdp


class Mute(_Message):
    type: Literal["mute"]
    source: Source
    muted: bool


class Reaction(_Message):
    """A reaction the API stored: the relay fans out what the notice says, nothing the sender adds."""

    type: Literal["reaction"]
    notice: Notice


class Chat(_Message):
    """A chat message the API stored (the notice carries its id, sender and text, signed)."""

    type: Literal["chat"]
    notice: Notice


class End(_Message):
    type: Literal["end"]


class CodecInfo(BaseModel):
    mime_type: str
    parameters: dict[str, str | int] = {}


class LinkTrack(BaseModel):
    """A track one relay forwards to another, with its codec (the link offers exactly that one)."""

    info: TrackInfo
    codec: CodecInfo


class LinkState(BaseModel):
    """What one relay has of a meeting: its own participants and their tracks."""

    relay_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    participants: Annotated[list[ParticipantInfo], Field(max_length=1000)] = []
    tracks: Annotated[list[LinkTrack], Field(max_length=3000)] = []


class CascadeJoin(_Message):
    """Another relay joins this meeting here (relay-to-relay cascade), credentialed by the cluster."""

    type: Literal["cascade_join"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    state: LinkState


class CascadeUpdate(_Message):
    type: Literal["cascade_update"]
    state: LinkState


class Relayed(_Message):
    """An event of the peer relay's participants (chat, reaction, mute, meeting end), for ours."""

    type: Literal["relayed"]
    event: dict[str, Any]


class Leave(_Message):
    type: Literal["leave"]


class Ping(_Message):
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


class ProtocolError(Exception):
    """A client message the relay refuses; ``code`` goes back to the client in an ``error`` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")


def too_deep(text: str, limit: int = MAX_NESTING) -> bool:
    """Whether JSON ``text`` nests arrays and objects deeper than ``limit``, found before parsing (Python's
    json recurses once per level: 200,000 ``[`` would raise RecursionError). Every step is a regular
    expression over the whole text, so the cost is a few linear passes in C, whatever the input."""
    skeleton = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    for _ in range(limit):
        if not skeleton:
            return False
        skeleton, removed = _INNERMOST.subn("", skeleton)
        if not removed:  # unbalanced: not JSON; short enough for the parser to say so safely?
            return len(skeleton) > limit
    return bool(skeleton)


def load_json(raw: str) -> Any:
    """``json.loads`` for text from the network: bounded nesting, one error type (ProtocolError)."""
    if too_deep(raw):
        raise ProtocolError("too_deep", f"JSON nested deeper than {MAX_NESTING} levels")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ProtocolError("malformed_json", "the message is not valid JSON") from None


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


def message(type_: str, **fields: Any) -> str:
    """Serialise a relay -> client message."""
    body: dict[str, Any] = {"type": type_}
    for key, value in fields.items():
        body[key] = value.model_dump() if isinstance(value, BaseModel) else value
    return json.dumps(body, separators=(",", ":"), default=_dump)


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise TypeError(f"cannot serialise {type(value).__name__}")
