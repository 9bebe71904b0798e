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
    #: A locked meeting admits nobody who is not in it now (hosts and co-hosts excepted).
    locked = BooleanAttribute(default=False)
    #: Whether a participant muted by a host may unmute itself (Zoom's setting of the same name).
    allow_self_unmute = BooleanAttribute(default=True)
    #: Guests who pass the passcode wait for a host's admission (functions/services/waiting_room.py).
    waiting_room = BooleanAttribute(default=False)
    waiting = UnicodeAttribute(null=True)  # the waiting room's entries, JSON


class ParticipantModel(Model):
    """One row per user who was admitted to a meeting (the host included)."""

    Meta = table_meta("participants")

    meeting_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute(range_key=True)
    participant_id = UnicodeAttribute()
    role = UnicodeAttribute()  # host | co_host | guest
    display_name = UnicodeAttribute()
    joined_at = UTCDateTimeAttribute()
    left_at = UTCDateTimeAttribute(null=True)
    active = BooleanAttribute(default=False)
    #: Admissions so far (a leave and a join again make the next): join tokens carry it, and a leave
    #: revokes it at the relays, so a token from before the leave is refused there.
    generation = NumberAttribute(default=0)
    #: A host removed this participant: the API refuses its joins to this meeting from then on.
    removed = BooleanAttribute(default=False)
    #: What a host muted of it, JSON {source: may unmute itself}: its join tokens carry it.
    host_muted = UnicodeAttribute(null=True)
