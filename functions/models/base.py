"""What every table shares: its name and region come from configuration, billing is on demand."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pynamodb.connection import Connection
from pynamodb.transactions import TransactWrite

from functions.core.config import get_settings


def table_meta(name: str) -> Any:
    """A PynamoDB ``Meta`` for table ``name`` (``MEETUP_TABLE_PREFIX`` + name).

    ``host`` stays unset: PynamoDB honours ``AWS_ENDPOINT_URL``, which points at moto on the local stack.
    """
    settings = get_settings()

    class Meta:
        table_name = settings.table_name(name)
        region = settings.region
        billing_mode = "PAY_PER_REQUEST"

    return Meta


def utcnow() -> datetime:
    return datetime.now(UTC)


@lru_cache
def _connection() -> Connection:
    return Connection(region=get_settings().region)


def transaction() -> TransactWrite:
    """An all-or-nothing write across items and tables (DynamoDB TransactWriteItems)."""
    return TransactWrite(connection=_connection())
