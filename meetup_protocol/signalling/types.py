"""Values the messages carry: sources, kinds, codecs, tracks and participants."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from meetup_protocol.signalling.json_text import MAX_MESSAGE_BYTES

PROTOCOL_VERSION = 1
#: A signed notice (meetup_protocol/tokens.py): a chat message of 2000 characters, base64, fits.
Notice = Annotated[str, StringConstraints(min_length=1, max_length=16 * 1024)]

Source = Literal["camera", "microphone", "screen"]
Kind = Literal["audio", "video"]
SOURCE_KIND: dict[str, Kind] = {"camera": "video", "microphone": "audio", "screen": "video"}
#: Video codecs a publisher may choose; the relay offers only that one on the m-line (default: both).
VideoCodec = Literal["video/VP8", "video/H264"]
#: The best quality a subscriber wants of a simulcast video (the relay may send less: its link decides).
VideoQuality = Literal["low", "medium", "high"]
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_BYTES)]


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
    role: Literal["host", "co_host", "guest"]
    tracks: list[TrackInfo] = []
    #: When its hand went up (the relay's clock, Unix seconds), None while down: hands are shown in
    #: raise order, across relays too (their link states carry it).
    hand_raised_at: float | None = None


class CodecInfo(BaseModel):
    mime_type: str
    parameters: dict[str, str | int] = {}


class Message(BaseModel):
    """A message a peer sends the relay: strict (no coercion), no extra fields, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
