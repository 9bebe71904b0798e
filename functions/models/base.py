"""What every table shares: its name and region come from configuration, billing is on demand, and its
botocore session is this thread's shared one (functions/core/aws.py).

PynamoDB gets a session from ``pynamodb.connection.base.get_session`` (botocore's, a new one per call,
so per table); that name is pointed at the shared session here, before any table connects. A private
seam of PynamoDB 6: tests/functions/test_handler_imports.py checks it still holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pynamodb.connection.base as _pynamodb_connection
from pynamodb.connection import Connection
from pynamodb.transactions import TransactWrite

from functions.core.aws import session
from functions.core.config import get_settings

_pynamodb_connection.get_session = session


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
