"""One botocore session per thread for every AWS client of the control plane (each table's, S3's).

A botocore session caches what building a client reads from disk (the service model, endpoint rules,
partitions: ~35 ms of JSON per service and session). PynamoDB opens a fresh session per table, so each
table a request touched first paid it again; on one shared session the first DynamoDB client costs that
and every further table ~2 ms (S3's client: ~18 ms instead of ~45). Sessions are not thread-safe, so there
is one per thread (Lambda has one; uvicorn's worker threads get their own, as PynamoDB intends).
"""

from __future__ import annotations

import threading

import botocore.session

_local = threading.local()


def session() -> botocore.session.Session:
    """This thread's botocore session (credentials, region and ``AWS_ENDPOINT_URL`` from the environment)."""
    current: botocore.session.Session | None = getattr(_local, "session", None)
    if current is None:
        current = _local.session = botocore.session.get_session()
    return current
