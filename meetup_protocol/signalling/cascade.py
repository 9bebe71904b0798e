"""Relay <-> relay messages (a cascade link: the joining relay is the client, the other makes offers)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from meetup_protocol.signalling.types import CodecInfo, Message, ParticipantInfo, TrackInfo


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


class Relayed(Message):
    """An event of the peer relay's participants (chat, reaction, mute, meeting end), for ours."""

    type: Literal["relayed"]
    event: dict[str, Any]
