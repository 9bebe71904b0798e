"""Host controls: remove a participant, mute others, promote and demote co-hosts, hand over, lock, and
admit or deny the waiting room's guests (functions/services/waiting_room.py).

The API is the authority on who may do what (roles live in the participants table) and on admission
(removal and the lock are enforced at ``POST /join``); what must take effect at once in the media plane
goes to the relays as a signed notice (functions/services/relay_notices.py): a removal revokes the
participant's join tokens (the relays close its session and refuse them), a mute makes the relay stop
forwarding the track whatever the client keeps sending, a role change reaches everyone's client.

Who may: the host and its co-hosts moderate (``MODERATORS``); co-hosts cannot touch the host (remove,
demote, or mute it) nor end the meeting; only the host hands the host role over. Nobody removes itself
(that is ``leave``).
"""

from __future__ import annotations

import json
from typing import Literal

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action

from functions.core.deps import UserId
from functions.core.errors import ApiError, error_responses
from functions.core.observability import count
from functions.core.security import normalize_meeting_id
from functions.models import MeetingModel, ParticipantModel
from functions.models.base import transaction, utcnow
from functions.routes.meetings_router import router
from functions.services import relay_notices, waiting_room
from functions.services.meetings import meeting_for_member, meeting_out, require_active
from meetup_protocol.schemas.base import MeetingIdPath
from meetup_protocol.schemas.meetings import (
    HostAction,
    HostHandover,
    LockRequest,
    MeetingOut,
    MuteRequest,
    ParticipantId,
    RoleChange,
    WaitingOut,
)
from meetup_protocol.tokens import MODERATORS

RESPONSES = error_responses(403, 404, 410)


def _moderator(meeting_id: str, user_id: str) -> tuple[MeetingModel, ParticipantModel]:
    """The active meeting and the caller, who must be its host or a co-host (else 403 ``not_allowed``)."""
    meeting, caller = meeting_for_member(normalize_meeting_id(meeting_id), user_id)
    require_active(meeting)
    if caller.role not in MODERATORS:
        raise ApiError(403, "not_allowed", "only the host and co-hosts can do that")
    return meeting, caller


def _target(meeting: MeetingModel, caller: ParticipantModel, participant_id: str) -> ParticipantModel:
    """The meeting's participant with that id (404 for an unknown one, or one of another meeting); a
    co-host may not act on the host."""
    target = next(
        (p for p in ParticipantModel.query(meeting.meeting_id) if p.participant_id == participant_id), None
    )
    if target is None:
        raise ApiError(404, "participant_not_found", "no such participant in this meeting")
    if target.role == "host" and caller.role != "host":
        raise ApiError(403, "not_allowed", "a co-host cannot act on the host")
    return target


@router.post("/{meeting_id}/participants/{participant_id}/remove", responses=RESPONSES)
def remove_participant(
    meeting_id: MeetingIdPath, participant_id: ParticipantId, user_id: UserId
) -> HostAction:
    """Remove a participant: its seat frees, its join tokens die at the relays (which close its session at
    once, everyone seeing it leave with ``removed_by_host``), and its joins are refused from now on."""
    meeting, caller = _moderator(meeting_id, user_id)
    target = _target(meeting, caller, participant_id)
    if target.user_id == caller.user_id:
        raise ApiError(403, "not_allowed", "leave the meeting instead of removing yourself")
    if target.role == "host":
        raise ApiError(403, "not_allowed", "the host cannot be removed")
    actions: list[Action] = [ParticipantModel.removed.set(True), ParticipantModel.active.set(False)]
    try:
        with transaction() as tx:
            if target.active:  # its seat frees once: not if a concurrent leave freed it already
                still_in = ParticipantModel.active == True  # noqa: E712
                tx.update(
                    target, actions=[*actions, ParticipantModel.left_at.set(utcnow())], condition=still_in
                )
                tx.update(meeting, actions=[MeetingModel.active_count.add(-1)])
            else:
                tx.update(target, actions=actions)
    except TransactWriteError:
        target.update(actions=actions)  # a concurrent leave freed the seat already: removed all the same
    count("ParticipantsRemoved")
    data = {
        "participant_id": participant_id,
        "generation": int(target.generation or 0),
        "reason": "removed_by_host",
    }
    told = relay_notices.push("participant_revoked", meeting.meeting_id, data)
    return HostAction(meeting_id=meeting.meeting_id, participant_id=participant_id, relays_told=told)


@router.post("/{meeting_id}/participants/{participant_id}/role", responses=RESPONSES)
def change_role(
    meeting_id: MeetingIdPath, participant_id: ParticipantId, body: RoleChange, user_id: UserId
) -> HostAction:
    """Promote a participant to co-host, or demote a co-host to guest (the host role is handed over
    with ``POST /meetings/{id}/host``, never taken)."""
    meeting, caller = _moderator(meeting_id, user_id)
    target = _target(meeting, caller, participant_id)
    if target.role == "host":
        raise ApiError(403, "not_allowed", "the host's role changes only by a hand-over")
    target.update(actions=[ParticipantModel.role.set(body.role)])
    told = relay_notices.push("role_changed", meeting.meeting_id, {"roles": {participant_id: body.role}})
    return HostAction(meeting_id=meeting.meeting_id, participant_id=participant_id, relays_told=told)


@router.post("/{meeting_id}/host", responses=RESPONSES)
def hand_over(meeting_id: MeetingIdPath, body: HostHandover, user_id: UserId) -> HostAction:
    """The host gives the host role to another participant and becomes a co-host (e.g. before leaving,
    so that someone can end the meeting for all)."""
    meeting, caller = _moderator(meeting_id, user_id)
    if caller.role != "host":
        raise ApiError(403, "not_allowed", "only the host can hand over the host role")
    target = _target(meeting, caller, body.participant_id)
    if target.user_id != caller.user_id:
        with transaction() as tx:
            tx.update(target, actions=[ParticipantModel.role.set("host")])
            tx.update(caller, actions=[ParticipantModel.role.set("co_host")])
            tx.update(meeting, actions=[MeetingModel.host_id.set(target.user_id)])
    roles = {target.participant_id: "host", caller.participant_id: "co_host"}
    if target.user_id == caller.user_id:
        roles = {caller.participant_id: "host"}
    told = relay_notices.push("role_changed", meeting.meeting_id, {"roles": roles})
    return HostAction(meeting_id=meeting.meeting_id, participant_id=target.participant_id, relays_told=told)


@router.post("/{meeting_id}/mute", responses=RESPONSES)
def mute(meeting_id: MeetingIdPath, body: MuteRequest, user_id: UserId) -> HostAction:
    """Mute one participant's source, or every guest's microphone (no ``participant_id``; hosts and
    co-hosts are spared, as in Zoom's "mute all"). The relay holding the track stops forwarding it; the
    participant may unmute itself only if the meeting allows it (``allow_self_unmute``) or after a
    moderator lifts the mute (``muted: false``)."""
    meeting, caller = _moderator(meeting_id, user_id)
    target = "*"
    if body.participant_id is not None:
        target = _target(meeting, caller, body.participant_id).participant_id
    _remember_mute(meeting, caller, target, body.source, body.muted)
    data = {
        "participant_id": target,
        "source": body.source,
        "muted": body.muted,
        "allow_unmute": meeting.allow_self_unmute is not False,
        "by": caller.participant_id,
    }
    count("ParticipantsMuted")
    told = relay_notices.push("muted", meeting.meeting_id, data)
    return HostAction(meeting_id=meeting.meeting_id, participant_id=body.participant_id, relays_told=told)


def _remember_mute(
    meeting: MeetingModel, caller: ParticipantModel, target: str, source: str, muted: bool
) -> None:
    """Store the mute on the participants it hits, so their next join tokens carry it (a reconnect, to
    any relay, escapes no mute)."""
    allow = meeting.allow_self_unmute is not False
    for p in ParticipantModel.query(meeting.meeting_id):
        everyone = target == "*" and p.role not in MODERATORS and p.user_id != caller.user_id
        if not (everyone or p.participant_id == target):
            continue
        current = json.loads(p.host_muted or "{}")
        if muted:
            current[source] = allow
        else:
            current.pop(source, None)
        p.update(actions=[ParticipantModel.host_muted.set(json.dumps(current))])


@router.post("/{meeting_id}/lock", responses=RESPONSES)
def lock(meeting_id: MeetingIdPath, body: LockRequest, user_id: UserId) -> MeetingOut:
    """Lock the meeting (nobody new is admitted, not even with the passcode) or unlock it. Who is in
    stays in; hosts and co-hosts can always come back."""
    meeting, _ = _moderator(meeting_id, user_id)
    meeting.update(actions=[MeetingModel.locked.set(body.locked)])
    return meeting_out(meeting)


@router.get("/{meeting_id}/waiting", responses=RESPONSES)
def waiting_list(meeting_id: MeetingIdPath, user_id: UserId) -> list[WaitingOut]:
    """Who waits for admission, first come first (hosts and co-hosts)."""
    meeting, _ = _moderator(meeting_id, user_id)
    waiting = [e for e in waiting_room.entries(meeting).values() if e.get("state") == "waiting"]
    return [
        WaitingOut(
            participant_id=str(e["participant_id"]),
            display_name=str(e.get("display_name", "")),
            since=float(e.get("since", 0)),
        )
        for e in sorted(waiting, key=lambda e: float(e.get("since", 0)))
    ]


@router.post("/{meeting_id}/waiting/{participant_id}/{decision}", responses=RESPONSES)
def admit_or_deny(
    meeting_id: MeetingIdPath,
    participant_id: ParticipantId,
    decision: Literal["admit", "deny"],
    user_id: UserId,
) -> HostAction:
    """Admit a waiting guest (its next join gets a join token, no passcode asked) or deny it (told so)."""
    meeting, _ = _moderator(meeting_id, user_id)
    waiting_room.decide(meeting, participant_id, "admitted" if decision == "admit" else "denied")
    count("WaitingDecisions")
    return HostAction(meeting_id=meeting.meeting_id, participant_id=participant_id, relays_told=0)
