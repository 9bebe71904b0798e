"""Refresh tokens, stored as SHA-256 digests, rotated on every use and expired by DynamoDB's TTL."""

from __future__ import annotations

from pynamodb.attributes import TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from functions.models.base import table_meta


class RefreshTokenModel(Model):
    Meta = table_meta("refresh-tokens")

    token_digest = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = TTLAttribute()
