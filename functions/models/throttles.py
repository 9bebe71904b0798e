"""Failure counters for brute-force throttling, one item per (scope, subject, window); TTL cleans up."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.models import Model

from functions.models.base import table_meta


class ThrottleModel(Model):
    Meta = table_meta("throttles")

    key = UnicodeAttribute(hash_key=True)
    failures = NumberAttribute(default=0)
    expires_at = TTLAttribute()
