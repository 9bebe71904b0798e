"""Meetings: create, join, participants."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from meetup_protocol.schemas.base import NAME_CHARACTERS, StrictRequest

Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120, pattern=NAME_CHARACTERS),
]
CustomPasscode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{6,16}$")]
Passcode = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Role = Literal["host", "co_host", "guest"]
RegionHint = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]


class MeetingCreate(StrictRequest):
    title: Title = "Meeting"
    max_participants: int = Field(default=100, ge=2, le=300)
    max_duration_minutes: int = Field(default=60, ge=1, le=1440)
    passcode: CustomPasscode | None = Field(default=None, description="leave out to get a generated one")
    allow_self_unmute: bool = Field(
        default=True, description="whether a participant a host muted may unmute itself"
    )
    waiting_room: bool = Field(default=False, description="guests wait for a host's admission")


class MeetingOut(BaseModel):
    meeting_id: str
    title: str
    host_id: str
    max_participants: int
    max_duration_minutes: int
    created_at: datetime
    ends_at: datetime
    status: Literal["active", "ended"]
    ended_at: datetime | None
    end_reason: str | None
    participant_count: int
    locked: bool = Field(default=False, description="a locked meeting admits nobody new")
    allow_self_unmute: bool = True
    waiting_room: bool = False
    failed_join_attempts: int | None = Field(
        default=None,
        description="host only: wrong passcodes tried against this meeting so far (none refuse anyone)",
    )


class MeetingCreated(MeetingOut):
    passcode: str = Field(description="shown once: only its hash is stored")


class JoinRequest(StrictRequest):
    passcode: Passcode | None = Field(
        default=None, description="not needed by the host or a rejoining participant"
    )
    region: RegionHint | None = Field(default=None, description="the client's region, to rank relays")


class RelayOut(BaseModel):
    url: str
    region: str


class IceServer(BaseModel):
    """A TURN server as WebRTC's ``RTCIceServer`` takes it (the browser passes it on unchanged)."""

    urls: list[str] = Field(description="turn:H:P?transport=udp|tcp and turns:H:P URLs (RFC 7065)")
    username: str = Field(description="<expiry, unix seconds>:<participant id> (meetup_protocol.turn)")
    credential: str = Field(description="base64(HMAC-SHA1(TURN secret, username)); expires with the join")


class JoinResponse(BaseModel):
    join_token: str
    expires_in: int
    participant_id: str
    role: Role
    relays: list[RelayOut]
    meeting: MeetingOut
    ice_servers: list[IceServer] = Field(
        default_factory=list,
        description="TURN servers with short-lived credentials (empty where none is configured): a client "
        "that cannot reach a relay directly connects through one of them",
    )


class ParticipantOut(BaseModel):
    user_id: str
    participant_id: str
    display_name: str
    role: Role
    active: bool
    joined_at: datetime
    left_at: datetime | None


#: A participant id as the API makes them (``p_`` and 16 hex digits).
ParticipantId = Annotated[str, StringConstraints(pattern=r"^p_[0-9a-f]{16}$")]


class RoleChange(StrictRequest):
    """Promote a participant to co-host or demote one to guest (the host only)."""

    role: Literal["co_host", "guest"]


class HostHandover(StrictRequest):
    """Hand the host role to another participant; the old host becomes a co-host."""

    participant_id: ParticipantId


class MuteRequest(StrictRequest):
    """Mute one participant's source, or (no ``participant_id``) every guest's; ``muted=False`` lifts a
    host's mute (the participant then unmutes itself)."""

    participant_id: ParticipantId | None = None
    source: Literal["camera", "microphone", "screen"] = "microphone"
    muted: bool = True


class LockRequest(StrictRequest):
    locked: bool


class HostAction(BaseModel):
    """What a host control did, as it was sent to the relays."""

    meeting_id: str
    participant_id: str | None = None
    relays_told: int = Field(description="relays that accepted the notice (gossip carries it further)")


class Waiting(BaseModel):
    """``POST /join`` in a meeting with a waiting room: wait, then ask again (no passcode needed)."""

    status: Literal["waiting"] = "waiting"
    participant_id: str = Field(description="the id it will have once a host admits it")
    retry_after_s: float = 2.0


class WaitingOut(BaseModel):
    participant_id: str
    display_name: str
    since: float = Field(description="Unix seconds")
