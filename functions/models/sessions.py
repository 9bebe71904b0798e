"""Refresh tokens, stored as SHA-256 digests, rotated on every use and expired by DynamoDB's TTL.

A login starts a *family*: the chain of refresh tokens rotated from it. A rotated token's row stays (marked
``rotated_at``) until it expires, so presenting it again is recognised as reuse, and the family row's
``revoked_at`` then ends every token of the family at once (OAuth 2.0 Security BCP: one of the two
presenters is a thief, and the server cannot tell which). Both kinds of row share one table; family keys
are ``family#<id>``, token keys hex digests.
"""

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
    family_id = UnicodeAttribute(null=True)  # null: issued before families (its family is its digest)
    rotated_at = UTCDateTimeAttribute(null=True)  # set once it was traded for the next token


class RefreshFamilyModel(Model):
    """One login's chain of refresh tokens; revoked on logout or on the reuse of a rotated token."""

    Meta = table_meta("refresh-tokens")

    key = UnicodeAttribute(hash_key=True, attr_name="token_digest")  # family#<id>
    user_id = UnicodeAttribute(null=True)
    revoked_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute()  # that of its newest token

    @staticmethod
    def key_of(family_id: str) -> str:
        return f"family#{family_id}"
