"""Meetings: create, get, join (passcode -> join token + relays), participants, leave, end.

The host controls (remove, mute, roles, lock) live in functions/routes/host_controls.py, on this router.
When the host leaves, the meeting goes on without a host (co-hosts keep their powers); the host role
stays with the host's account, which gets it back on rejoining. To leave the meeting to someone else
for good, the host hands the role over first (``POST /meetings/{id}/host``).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError

from functions.core.client_address import client_address, throttle_subject
from functions.core.config import get_settings
from functions.core.deps import CurrentUser, UserId
from functions.core.errors import ApiError, error_responses
from functions.core.observability import count
from functions.core.security import (
    dummy_hash,
    hash_secret,
    join_signing_key,
    new_meeting_id,
    new_passcode,
    normalize_meeting_id,
    normalize_passcode,
    verify_secret,
)
from functions.core.throttle import Attempt, Bucket, count_meeting_failure, meeting_failures
from functions.models import MeetingModel, ParticipantModel
from functions.models.base import transaction, utcnow
from functions.routes import host_controls
from functions.routes.meetings_router import router
from functions.services import relay_notices, waiting_room
from functions.services.meetings import (
    find_meeting,
    find_participant,
    meeting_for_member,
    meeting_out,
    require_active,
    wrong_meeting_or_passcode,
)
from functions.services.relays import rank_relays
from functions.services.turn import ice_servers
from meetup_protocol.schemas.base import MeetingIdPath
from meetup_protocol.schemas.meetings import (
    JoinRequest,
    JoinResponse,
    MeetingCreate,
    MeetingCreated,
    MeetingOut,
    ParticipantOut,
    Waiting,
)
from meetup_protocol.tokens import MODERATORS, JoinClaims, issue_join_token

__all__ = ["host_controls", "router"]  # host_controls: its routes are on this router too


@router.post("", status_code=201)
def create_meeting(body: MeetingCreate, user: CurrentUser) -> MeetingCreated:
    passcode = normalize_passcode(body.passcode) if body.passcode else new_passcode()
    now = utcnow()
    meeting = MeetingModel(
        "",
        host_id=user.user_id,
        title=body.title,
        passcode_hash=hash_secret(passcode),
        max_participants=body.max_participants,
        max_duration_minutes=body.max_duration_minutes,
        created_at=now,
        ends_at=now + timedelta(minutes=body.max_duration_minutes),
        allow_self_unmute=body.allow_self_unmute,
        waiting_room=body.waiting_room,
    )
    for _ in range(5):  # ids are random; a collision is rare and simply retried
        meeting.meeting_id = new_meeting_id()
        try:
            meeting.save(condition=MeetingModel.meeting_id.does_not_exist())
            break
        except PutError:
            continue
    else:
        raise RuntimeError("could not allocate a meeting id")
    ParticipantModel(
        meeting.meeting_id,
        user.user_id,
        participant_id=f"p_{secrets.token_hex(8)}",
        role="host",
        display_name=user.display_name,
        joined_at=now,
    ).save()
    count("MeetingsCreated")
    return MeetingCreated(**meeting_out(meeting).model_dump(), passcode=passcode)


@router.get("/{meeting_id}")
def get_meeting(meeting_id: MeetingIdPath, user_id: UserId) -> MeetingOut:
    """The meeting, to its members; its host also sees how many wrong passcodes were tried."""
    meeting, participant = meeting_for_member(normalize_meeting_id(meeting_id), user_id)
    if participant.role == "host":
        return meeting_out(meeting, failed_join_attempts=meeting_failures(meeting.meeting_id))
    return meeting_out(meeting)


def _check_passcode(
    meeting_id: str, meeting: MeetingModel | None, passcode: str | None, user_id: str, ip: str
) -> MeetingModel:
    """The meeting, if it exists and ``passcode`` is its passcode; else 403 ``wrong_meeting_or_passcode``.

    A missing meeting and a wrong passcode are answered alike and cost alike (the caller's two buckets, one
    argon2 verification, one count of the meeting's failures), so meeting ids cannot be enumerated by
    their answers. Only the caller's own buckets refuse a guess: why, in functions/core/throttle.py.
    """
    settings = get_settings()
    attempt = Attempt(
        [
            Bucket("passcode-user", user_id, settings.passcode_failures_per_user, strict=True),
            Bucket("passcode-ip", throttle_subject(ip), settings.passcode_failures_per_ip),
        ]
    )
    hashed = meeting.passcode_hash if meeting is not None else dummy_hash()
    if verify_secret(hashed, normalize_passcode(passcode or "")) and meeting is not None:
        attempt.succeeded()
        return meeting
    count("WrongPasscodes")
    attempt.failed()
    count_meeting_failure(meeting_id)
    raise wrong_meeting_or_passcode()


def _admit(meeting: MeetingModel, participant: ParticipantModel) -> None:
    """Mark the participant active and count it, atomically, within the meeting's limit."""
    try:
        with transaction() as tx:
            tx.update(
                meeting,
                actions=[MeetingModel.active_count.add(1)],
                condition=(MeetingModel.status == "active")
                & (MeetingModel.active_count < meeting.max_participants),
            )
            tx.save(
                participant,
                condition=ParticipantModel.user_id.does_not_exist() | (ParticipantModel.active == False),  # noqa: E712
            )
    except TransactWriteError as exc:
        meeting.refresh(consistent_read=True)
        if meeting.status != "active":
            raise ApiError(410, "meeting_ended", "the meeting has ended") from exc
        current = find_participant(meeting.meeting_id, participant.user_id)
        if current is not None and current.active:
            return  # a concurrent join of the same user won: it is admitted
        if meeting.active_count >= meeting.max_participants:
            raise ApiError(409, "meeting_full", "the meeting is full") from exc
        raise ApiError(409, "join_conflict", "the meeting changed during the join; try again") from exc


_WAITING: dict[int | str, dict[str, Any]] = {
    202: {"model": Waiting, "description": "in the waiting room: ask again after retry_after_s"}
}


@router.post("/{meeting_id}/join", responses={**error_responses(403, 409, 410, 429), **_WAITING})
def join_meeting(
    meeting_id: MeetingIdPath, body: JoinRequest, user: CurrentUser, request: Request
) -> JoinResponse:
    """Join with the passcode (the host and returning participants need none) and get a join token. In a
    meeting with a waiting room a new guest gets 202 until a host admits it (it asks again without the
    passcode), or 403 ``denied_by_host`` once."""
    settings = get_settings()
    meeting_id = normalize_meeting_id(meeting_id)
    meeting = find_meeting(meeting_id)
    participant = find_participant(meeting_id, user.user_id)  # asked for a missing meeting too: same cost
    knocked = waiting_room.entries(meeting).get(user.user_id) if meeting and participant is None else None
    if meeting is None or (participant is None and knocked is None):
        # Guessing meeting ids costs attempts like guessing passcodes does, and is answered the same.
        meeting = _check_passcode(meeting_id, meeting, body.passcode, user.user_id, client_address(request))
    require_active(meeting)
    if participant is not None and participant.removed:
        raise ApiError(403, "removed_by_host", "a host removed you from this meeting")
    present = participant is not None and (participant.active or participant.role in MODERATORS)
    if meeting.locked and not (present or (knocked or {}).get("state") == "admitted"):
        raise ApiError(403, "meeting_locked", "the meeting is locked: nobody new is admitted")
    participant_id = f"p_{secrets.token_hex(8)}"
    if participant is None and meeting.waiting_room:
        state, participant_id = waiting_room.knock(meeting, user.user_id, user.display_name)
        if state == "waiting":
            waiting = Waiting(participant_id=participant_id)
            return JSONResponse(waiting.model_dump(), status_code=202)  # type: ignore[return-value]
        if state == "denied":
            raise ApiError(403, "denied_by_host", "a host denied you entry; join again to ask anew")
    if participant is None:
        participant = ParticipantModel(
            meeting.meeting_id,
            user.user_id,
            participant_id=participant_id,
            role="guest",
            display_name=user.display_name,
            joined_at=utcnow(),
        )
    if not participant.active:
        participant.generation = int(participant.generation or 0) + 1
        participant.active = True
        participant.left_at = None
        participant.display_name = user.display_name
        _admit(meeting, participant)
        meeting.refresh(consistent_read=True)
        count("Joins")
    expires_at = int(time.time()) + settings.join_token_ttl_s
    claims = JoinClaims(
        meeting_id=meeting.meeting_id,
        participant_id=participant.participant_id,
        user_id=user.user_id,
        display_name=user.display_name,
        role=participant.role,  # type: ignore[arg-type]
        expires_at=expires_at,
        meeting_ends_at=int(meeting.ends_at.timestamp()),
        max_participants=int(meeting.max_participants),
        generation=int(participant.generation or 0),
        host_muted=json.loads(participant.host_muted or "{}"),
    )
    relays = rank_relays(body.region)
    return JoinResponse(
        join_token=issue_join_token(claims, join_signing_key()),
        expires_in=settings.join_token_ttl_s,
        participant_id=participant.participant_id,
        role=claims.role,
        relays=relays,
        meeting=meeting_out(meeting),
        # The TURN server of the region of the relay the client will most likely use first.
        ice_servers=ice_servers(
            settings, participant.participant_id, expires_at, relays[0].region if relays else body.region
        ),
    )


@router.get("/{meeting_id}/participants")
def list_participants(meeting_id: MeetingIdPath, user_id: UserId) -> list[ParticipantOut]:
    meeting, _ = meeting_for_member(normalize_meeting_id(meeting_id), user_id)
    return [
        ParticipantOut(
            user_id=p.user_id,
            participant_id=p.participant_id,
            display_name=p.display_name,
            role=p.role,  # type: ignore[arg-type]
            active=bool(p.active) and meeting.status == "active",
            joined_at=p.joined_at,
            left_at=p.left_at,
        )
        for p in ParticipantModel.query(meeting.meeting_id, consistent_read=True)
    ]


@router.post("/{meeting_id}/leave", status_code=204, response_class=Response)
def leave_meeting(meeting_id: MeetingIdPath, user_id: UserId) -> Response:
    """Leave the meeting (idempotent: leaving twice is fine). The seat frees up for someone else."""
    meeting, participant = meeting_for_member(normalize_meeting_id(meeting_id), user_id)
    if participant.active:
        try:
            with transaction() as tx:
                tx.update(
                    participant,
                    actions=[ParticipantModel.active.set(False), ParticipantModel.left_at.set(utcnow())],
                    condition=ParticipantModel.active == True,  # noqa: E712
                )
                tx.update(meeting, actions=[MeetingModel.active_count.add(-1)])
        except TransactWriteError:
            pass  # a concurrent leave already did it
        count("Leaves")
        if meeting.status == "active":
            # The relays refuse this admission's join tokens from now on, and close its session if open.
            generation = int(participant.generation or 0)
            data = {"participant_id": participant.participant_id, "generation": generation}
            relay_notices.push("participant_revoked", meeting.meeting_id, data)
    return Response(status_code=204)


@router.post("/{meeting_id}/end", responses=error_responses(403))
def end_meeting(meeting_id: MeetingIdPath, user_id: UserId) -> MeetingOut:
    """End the meeting for everyone (host only): the relays close it and refuse its join tokens, and
    later joins are refused here. Ending twice is fine (and tells the relays again)."""
    meeting, participant = meeting_for_member(normalize_meeting_id(meeting_id), user_id)
    if participant.role != "host":
        raise ApiError(403, "not_host", "only the host can end the meeting")
    if meeting.status == "active":
        try:
            meeting.update(
                actions=[
                    MeetingModel.status.set("ended"),
                    MeetingModel.ended_at.set(utcnow()),
                    MeetingModel.end_reason.set("host_ended"),
                ],
                condition=MeetingModel.status == "active",
            )
            count("MeetingsEnded")
        except UpdateError:
            meeting.refresh(consistent_read=True)
    relay_notices.push("meeting_ended", meeting.meeting_id, {"reason": meeting.end_reason or "host_ended"})
    return meeting_out(meeting)
