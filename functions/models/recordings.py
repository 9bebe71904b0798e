"""Recordings uploaded to S3 by clients, by meeting; ``status`` goes uploading -> complete (or aborted)."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from functions.models.base import table_meta


class RecordingModel(Model):
    Meta = table_meta("recordings")

    meeting_id = UnicodeAttribute(hash_key=True)
    recording_id = UnicodeAttribute(range_key=True)
    owner_id = UnicodeAttribute()
    s3_key = UnicodeAttribute()
    upload_id = UnicodeAttribute()
    filename = UnicodeAttribute()
    content_type = UnicodeAttribute()
    size = NumberAttribute()
    part_size = NumberAttribute()
    status = UnicodeAttribute(default="uploading")  # uploading | complete | aborted
    created_at = UTCDateTimeAttribute()
    completed_at = UTCDateTimeAttribute(null=True)
    #: Counted in the meeting's and the owner's quotas (uploads started before quotas existed are not).
    quota_counted = BooleanAttribute(null=True)


class RecordingQuotaModel(Model):
    """A meeting's recording quotas, kept in the recordings table next to its recordings (same keys, so
    one transaction covers the counters and the new recording; no table of its own to deploy).

    ``recording_id`` is ``quota#meeting`` (``declared_bytes``) or ``quota#user#<user id>`` (``started``,
    ``in_progress``); recording ids are ``r_<hex>``, so they never collide, and the listing's filter on
    ``status`` skips these items. Not in ``ALL_MODELS``: the table is ``RecordingModel``'s.
    """

    Meta = table_meta("recordings")

    meeting_id = UnicodeAttribute(hash_key=True)
    recording_id = UnicodeAttribute(range_key=True)
    declared_bytes = NumberAttribute(null=True)
    started = NumberAttribute(null=True)
    in_progress = NumberAttribute(null=True)

    @classmethod
    def for_meeting(cls, meeting_id: str) -> RecordingQuotaModel:
        return cls(meeting_id, "quota#meeting")

    @classmethod
    def for_user(cls, meeting_id: str, user_id: str) -> RecordingQuotaModel:
        return cls(meeting_id, f"quota#user#{user_id}")
