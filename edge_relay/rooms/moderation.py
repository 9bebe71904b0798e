"""Host controls at the relay: a host's mute and role changes, as the API's notices say, and the rule
for a participant unmuting itself.

The API decides who may moderate (functions/routes/host_controls.py) and pushes a signed notice to
every relay; each applies it here to its own participants. A mute is enforced where the track enters the
cluster: the relay holding the publisher stops forwarding it (``PublishedTrack.blocked``), so neither its
subscribers nor a cascade link get a packet more, whatever the muted client keeps sending; that relay
tells the others' participants through the links (``track_muted``), as it does for a self-mute. A role
change reaches every relay by its own notice, and each tells its own participants (no relaying: once).
"""

from __future__ import annotations

from typing import Any

from edge_relay.rooms.participant import Participant
from edge_relay.rooms.room import Room
from meetup_protocol.signalling import SOURCE_KIND
from meetup_protocol.tokens import MODERATORS, ROLES

#: A role notice names at most this many participants (a hand-over names two).
MAX_ROLES_PER_NOTICE = 16


class BadNotice(ValueError):
    """A verified notice whose data has the wrong shape (an API bug, never acted on in part)."""


def _mute_fields(data: dict[str, Any]) -> tuple[str, str, bool, bool, str]:
    target, source = data.get("participant_id"), data.get("source")
    muted, allow, by = data.get("muted"), data.get("allow_unmute"), data.get("by", "")
    if not isinstance(target, str) or source not in SOURCE_KIND or type(muted) is not bool:
        raise BadNotice("the mute lacks its participant, source or state")
    if type(allow) is not bool or not isinstance(by, str):
        raise BadNotice("the mute lacks its unmute rule")
    return target, str(source), muted, allow, by


async def apply_mute(room: Room | None, data: dict[str, Any]) -> int:
    """A host muted (or let unmute) a participant's source, or every guest's (``participant_id`` "*":
    hosts, co-hosts and the one who asked are spared). Returns how many of ours it touched."""
    target, source, muted, allow, by = _mute_fields(data)
    touched = 0
    if room is None:
        return touched  # checked all the same: a bad notice is refused whether or not the meeting is here
    for participant in list(room.participants.values()):
        if target == "*" and (participant.role in MODERATORS or participant.id == by):
            continue
        if target not in ("*", participant.id):
            continue
        touched += 1
        await _mute_one(room, participant, source, muted, allow)
    return touched


async def _mute_one(room: Room, participant: Participant, source: str, muted: bool, allow: bool) -> None:
    if muted:
        participant.host_muted[source] = allow
    else:
        participant.host_muted.pop(source, None)
    participant.block(source, muted)
    room.host_mutes[participant.id] = dict(participant.host_muted)
    told = {"type": "muted_by_host", "source": source, "muted": muted, "can_unmute": allow or not muted}
    await participant.signals.event(told)
    if muted and not participant.muted.get(source, False):
        participant.muted[source] = True
        event = {"type": "track_muted", "track_id": f"{participant.id}/{source}", "muted": True}
        await room.relay_event(event, source=participant)
    if not muted:
        for track, info in participant.tracks:
            if info.source == source and track.kind == "video":
                await track.request_keyframe(force=True)  # subscribers resume at a keyframe


def self_unmute_refused(room: Room, participant: Participant, source: str) -> bool:
    """Whether a participant's own unmute of ``source`` is refused (a host muted it, and the meeting
    does not let participants unmute themselves); an allowed one lifts the host's mute."""
    if source not in participant.host_muted:
        return False
    if not participant.host_muted[source]:
        return True
    del participant.host_muted[source]
    room.host_mutes[participant.id] = dict(participant.host_muted)
    participant.block(source, False)
    return False


def restore(room: Room, participant: Participant, from_token: dict[str, bool]) -> None:
    """A participant (re)joining keeps what a host muted of it, as its join token says (the API stores
    mutes) and as this room remembers (newer than a token issued before the mute): reconnecting, here
    or to another relay, unmutes nothing."""
    for source, may_unmute in {**from_token, **room.host_mutes.get(participant.id, {})}.items():
        participant.host_muted[source] = may_unmute
        participant.muted[source] = True


def _roles(data: dict[str, Any]) -> dict[str, str]:
    roles = data.get("roles")
    if not isinstance(roles, dict) or not 0 < len(roles) <= MAX_ROLES_PER_NOTICE:
        raise BadNotice("the role change lacks its roles")
    if not all(isinstance(pid, str) and role in ROLES for pid, role in roles.items()):
        raise BadNotice("the role change names an unknown role")
    return roles


async def apply_roles(room: Room | None, data: dict[str, Any]) -> int:
    """Participants' roles changed: ours take them (the host's ``end`` is checked against it), and our
    participants hear of each one in the meeting, here or behind a link. Returns how many were told."""
    roles = _roles(data)
    if room is None:
        return 0
    changed = False
    for pid, role in roles.items():
        participant = room.participants.get(pid)
        if participant is not None and participant.role != role:
            participant.role = role
            changed = True
    visible = room.visible()
    told = 0
    for pid, role in roles.items():
        if pid in visible:
            told += 1
            event = {"type": "role_changed", "participant_id": pid, "role": role}
            await room.tell(lambda signals: signals.event(event))  # noqa: B023 (awaited at once)
    if changed:
        await room.sync_links()  # the links' states carry our participants' roles
    return told
