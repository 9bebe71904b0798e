"""Meetings and their participants.

``active_count`` on the meeting and ``active`` on each participant change together in one transaction, so
the participant limit holds under concurrent joins.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from functions.models.base import table_meta


class MeetingModel(Model):
    Meta = table_meta("meetings")

    meeting_id = UnicodeAttribute(hash_key=True)
    host_id = UnicodeAttribute()
    title = UnicodeAttribute()
    passcode_hash = UnicodeAttribute()
    max_participants = NumberAttribute()
    max_duration_minutes = NumberAttribute()
    created_at = UTCDateTimeAttribute()
    ends_at = UTCDateTimeAttribute()
    status = UnicodeAttribute(default="active")  # active | ended
    ended_at = UTCDateTimeAttribute(null=True)
    end_reason = UnicodeAttribute(null=True)  # host_ended | duration_reached
    active_count = NumberAttribute(default=0)


class ParticipantModel(Model):
    """One row per user who was admitted to a meeting (the host included)."""

    Meta = table_meta("participants")

    meeting_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute(range_key=True)
    participant_id = UnicodeAttribute()
    role = UnicodeAttribute()  # host | guest
    display_name = UnicodeAttribute()
    joined_at = UTCDateTimeAttribute()
    left_at = UTCDateTimeAttribute(null=True)
    active = BooleanAttribute(default=False)
    #: Admissions so far (a leave and a join again make the next): join tokens carry it, and a leave
    #: revokes it at the relays, so a token from before the leave is refused there.
    generation = NumberAttribute(default=0)
