"""Users (by id) and the email index that makes emails unique (one conditional write, in a transaction)."""

from __future__ import annotations

from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from functions.models.base import table_meta


class UserModel(Model):
    Meta = table_meta("users")

    user_id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute()
    display_name = UnicodeAttribute()
    password_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    background_mode = UnicodeAttribute(default="none")
    background_image_key = UnicodeAttribute(null=True)
    photo_key = UnicodeAttribute(null=True)


class EmailModel(Model):
    """``email -> user_id``. Its conditional put is what rejects a second account for one email."""

    Meta = table_meta("emails")

    email = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
