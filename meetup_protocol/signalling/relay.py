"""Relay -> client messages: one model per message, what the relay sends and what clients parse.

The relay serialises every message through :func:`message`, which refuses a type or a field this module
does not define, so a relay can only send what is written here. Clients parse with
:func:`parse_relay_message`, which ignores fields it does not know (a newer relay may add some) and
reports an unknown type as ``ProtocolError("unknown_type")`` (a client drops such a message).
The browser client (``web/js``) is checked against these definitions by
``tests/meetup_protocol/test_browser_protocol.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from meetup_protocol.signalling.json_text import parse_message
from meetup_protocol.signalling.types import ParticipantInfo, PublishSlot, TrackInfo


class RelayMessage(BaseModel):
    """A message from the relay. Unknown fields are ignored when parsing (forward compatibility)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Welcome(RelayMessage):
    type: Literal["welcome"] = "welcome"
    participant_id: str
    meeting_id: str
    role: Literal["host", "co_host", "guest"]
    #: Everyone else in the meeting (on this relay and on linked ones), with their tracks.
    participants: list[ParticipantInfo]


class Offer(RelayMessage):
    """The relay's offer; ``tracks`` says, per mid, what the m-line carries."""

    type: Literal["offer"] = "offer"
    negotiation: int
    sdp: str
    tracks: dict[str, PublishSlot | TrackInfo]


class ParticipantJoined(RelayMessage):
    type: Literal["participant_joined"] = "participant_joined"
    participant: ParticipantInfo


class ParticipantLeft(RelayMessage):
    type: Literal["participant_left"] = "participant_left"
    participant_id: str
    #: ``left``, ``timeout``, ``replaced`` (the same participant joined again), ``removed_by_host`` ...
    reason: str


class RoleChanged(RelayMessage):
    """A participant's role changed (a host promoted, demoted or handed over the host role)."""

    type: Literal["role_changed"] = "role_changed"
    participant_id: str
    role: Literal["host", "co_host", "guest"]


class HandChanged(RelayMessage):
    """A hand went up or down (``by``: who lowered it, when not its owner). Order hands by
    ``raised_at``; a joiner finds the raised ones in its welcome (``hand_raised_at``)."""

    type: Literal["hand_changed"] = "hand_changed"
    participant_id: str
    raised: bool
    raised_at: float | None = None
    by: str | None = None


class MutedByHost(RelayMessage):
    """To the muted participant only: a host muted ``source``; the relay forwards none of it until it
    is unmuted. ``can_unmute``: the meeting lets participants unmute themselves (else only after a host
    allows it again with ``muted=False``). Everyone else sees ``track_muted``."""

    type: Literal["muted_by_host"] = "muted_by_host"
    source: Literal["camera", "microphone", "screen"]
    muted: bool = True
    can_unmute: bool = True


class TrackPublished(RelayMessage):
    type: Literal["track_published"] = "track_published"
    track: TrackInfo


class TrackUnpublished(RelayMessage):
    type: Literal["track_unpublished"] = "track_unpublished"
    track_id: str


class TrackMuted(RelayMessage):
    type: Literal["track_muted"] = "track_muted"
    track_id: str
    muted: bool


class ReactionEvent(RelayMessage):
    """A reaction the API stored (from its signed notice)."""

    type: Literal["reaction"] = "reaction"
    participant_id: str
    name: str
    emoji: str
    reaction_id: str


class ChatEvent(RelayMessage):
    """A chat message the API stored (from its signed notice)."""

    type: Literal["chat"] = "chat"
    participant_id: str
    name: str
    message_id: str
    text: str
    created_at: str | None = None


class ChatAck(RelayMessage):
    """The relay has this participant's chat notice: no need to announce it again."""

    type: Literal["chat_ack"] = "chat_ack"
    message_id: str


class MeetingEnded(RelayMessage):
    """The meeting is over; the relay closes the connection."""

    type: Literal["meeting_ended"] = "meeting_ended"
    reason: str


class Removed(RelayMessage):
    """This participant left through the API (e.g. on another device): do not reconnect."""

    type: Literal["removed"] = "removed"
    reason: str


class Migrate(RelayMessage):
    """This relay is going away: reconnect elsewhere."""

    type: Literal["migrate"] = "migrate"
    reason: str


class Error(RelayMessage):
    """A refused message (answered, otherwise ignored), or why the relay closes the connection."""

    type: Literal["error"] = "error"
    code: str
    message: str


class Pong(RelayMessage):
    type: Literal["pong"] = "pong"


class SpeakerLevel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    participant_id: str
    #: Linear amplitude, smoothed: 1.0 is full scale; speech is usually 0.02-0.5.
    level: float = Field(ge=0, le=1)


class SpeakersChanged(RelayMessage):
    """Who speaks now (loudest first) and the dominant speaker, sent when either changes.

    The dominant speaker changes with hysteresis and stays through pauses (it may not be in
    ``speakers``); None until someone has spoken, or after the dominant speaker left.
    """

    type: Literal["speakers_changed"] = "speakers_changed"
    speakers: list[SpeakerLevel]
    dominant: str | None = None


ServerMessage = Annotated[
    Welcome
    | Offer
    | ParticipantJoined
    | ParticipantLeft
    | TrackPublished
    | TrackUnpublished
    | TrackMuted
    | ReactionEvent
    | ChatEvent
    | ChatAck
    | MeetingEnded
    | Removed
    | Migrate
    | Error
    | Pong
    | SpeakersChanged
    | RoleChanged
    | MutedByHost
    | HandChanged,
    Field(discriminator="type"),
]
#: Every relay -> client message, by type.
RELAY_MESSAGES: dict[str, type[RelayMessage]] = {
    m.model_fields["type"].default: m for m in get_args(get_args(ServerMessage)[0])
}
_server_messages: TypeAdapter[Any] = TypeAdapter(ServerMessage)


def message(type_: str, **fields: Any) -> str:
    """Serialise a relay -> client message, refusing what the protocol lacks.

    Raises ``ValueError`` for an unknown type, an unknown field or a value of the wrong shape: a relay
    bug, caught by the tests that exercise each message.
    """
    model = RELAY_MESSAGES.get(type_)
    if model is None:
        raise ValueError(f"the protocol has no relay message {type_!r}")
    unknown = set(fields) - set(model.model_fields)
    if unknown:
        raise ValueError(f"{type_}: unknown fields {sorted(unknown)}")
    try:
        return model.model_validate({"type": type_, **fields}).model_dump_json()
    except ValidationError as exc:
        raise ValueError(f"{type_}: {exc.errors()[0]['msg']}") from None


def parse_relay_message(raw: str | bytes) -> RelayMessage:
    """Validate one frame from the relay (for clients). Raises ProtocolError (``unknown_type`` for a
    message this version does not know: drop it)."""
    return parse_message(raw, _server_messages)  # type: ignore[no-any-return]
