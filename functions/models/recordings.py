"""Recordings uploaded to S3 by clients, by meeting; ``status`` goes uploading -> complete (or aborted)."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
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
