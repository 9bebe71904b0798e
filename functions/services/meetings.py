"""Meeting lookups and the rules of who may see what, shared by the meetings, chat and recordings routes.

A stranger gets 404 for a meeting that exists, exactly as for one that does not: meeting ids are short
enough to enumerate, so the API never confirms one to someone who has not proven the passcode.
"""

from __future__ import annotations

from pynamodb.exceptions import UpdateError

from functions.core.errors import ApiError
from functions.models import MeetingModel, ParticipantModel
from functions.models.base import utcnow
from meetup_protocol.schemas.meetings import MeetingOut

NOT_FOUND = ApiError(404, "meeting_not_found", "no such meeting")


def wrong_meeting_or_passcode() -> ApiError:
    """What a join gets for a missing meeting and for a wrong passcode alike (ids are enumerable)."""
    return ApiError(403, "wrong_meeting_or_passcode", "no meeting with this id and passcode")


def find_meeting(meeting_id: str) -> MeetingModel | None:
    try:
        meeting = MeetingModel.get(meeting_id, consistent_read=True)
    except MeetingModel.DoesNotExist:
        return None
    _expire_if_due(meeting)
    return meeting


def find_participant(meeting_id: str, user_id: str) -> ParticipantModel | None:
    try:
        return ParticipantModel.get(meeting_id, user_id, consistent_read=True)
    except ParticipantModel.DoesNotExist:
        return None


def _expire_if_due(meeting: MeetingModel) -> None:
    """A meeting past its maximum duration ends (lazily, on first look after the deadline)."""
    if meeting.status != "active" or utcnow() < meeting.ends_at:
        return
    try:
        meeting.update(
            actions=[
                MeetingModel.status.set("ended"),
                MeetingModel.ended_at.set(meeting.ends_at),
                MeetingModel.end_reason.set("duration_reached"),
            ],
            condition=MeetingModel.status == "active",
        )
    except UpdateError:
        meeting.refresh(consistent_read=True)


def meeting_for_member(meeting_id: str, user_id: str) -> tuple[MeetingModel, ParticipantModel]:
    """The meeting and the caller's participant row, or 404 when the caller was never admitted."""
    meeting = find_meeting(meeting_id)
    participant = find_participant(meeting_id, user_id) if meeting else None
    if meeting is None or participant is None:
        raise NOT_FOUND
    return meeting, participant


def require_active(meeting: MeetingModel) -> None:
    if meeting.status != "active":
        raise ApiError(410, "meeting_ended", "the meeting has ended")


def meeting_out(meeting: MeetingModel, failed_join_attempts: int | None = None) -> MeetingOut:
    """The public view of a meeting; ``failed_join_attempts`` is for the host's eyes only."""
    return MeetingOut(
        meeting_id=meeting.meeting_id,
        title=meeting.title,
        host_id=meeting.host_id,
        max_participants=int(meeting.max_participants),
        max_duration_minutes=int(meeting.max_duration_minutes),
        created_at=meeting.created_at,
        ends_at=meeting.ends_at,
        status=meeting.status,  # type: ignore[arg-type]
        ended_at=meeting.ended_at,
        end_reason=meeting.end_reason,
        participant_count=int(meeting.active_count),
        locked=bool(meeting.locked),
        allow_self_unmute=meeting.allow_self_unmute is not False,
        waiting_room=bool(meeting.waiting_room),
        failed_join_attempts=failed_join_attempts,
    )
