"""Chat messages and reactions of a meeting, in one table.

``item_id`` is ``<kind>#<digest of sender + idempotency key>``: a retried send hits the same key and the
conditional put refuses a second copy. The ``by_time`` index orders items as ``<kind>#<ms>#<id>``, so a
history page is one query with ``begins_with(kind)``, never a filtered scan.
"""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import AllProjection, LocalSecondaryIndex
from pynamodb.models import Model

from functions.models.base import table_meta


class ByTimeIndex(LocalSecondaryIndex):
    class Meta:
        index_name = "by_time"
        projection = AllProjection()

    meeting_id = UnicodeAttribute(hash_key=True)
    timeline = UnicodeAttribute(range_key=True)


class ChatItemModel(Model):
    Meta = table_meta("chat")

    meeting_id = UnicodeAttribute(hash_key=True)
    item_id = UnicodeAttribute(range_key=True)
    timeline = UnicodeAttribute()
    kind = UnicodeAttribute()  # msg | react
    sender_id = UnicodeAttribute()
    sender_name = UnicodeAttribute()
    body = UnicodeAttribute()  # the text, or the emoji
    idempotency_key = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()

    by_time = ByTimeIndex()
