"""Secrets Manager rotation of the TURN shared secret (coturn's REST API secret), without cutting anyone off.

Who holds the secret: the API signs TURN credentials with ``AWSCURRENT`` (cached up to five minutes in
warm functions); every TURN task copies ``AWSPENDING``, ``AWSCURRENT`` and ``AWSPREVIOUS`` into coturn's
secret table every ``TURN_SYNC_S`` seconds (infra/turn/secret_sync.py), and coturn tries each secret
in that table for every allocation. So during and after a rotation:

* ``createSecret`` puts a new random secret as ``AWSPENDING``: TURN tasks start accepting it;
* ``setSecret`` waits ``TURN_SYNC_WAIT_S`` (two sync periods plus replication to the other regions),
  so that every TURN task accepts the new secret *before* any function signs with it;
* ``testSecret`` checks the pending value is one coturn can take;
* ``finishSecret`` makes it ``AWSCURRENT``; the old one becomes ``AWSPREVIOUS`` and stays accepted, so
  credentials signed by functions whose cache still holds it keep working. The one before it (the
  *retired* secret) leaves coturn's table at the next sync.

A credential lives no longer than a join token (minutes) and coturn checks it only when an allocation is
made (an allocation made in time lives on), so with rotations days apart nobody is cut off mid-meeting.
Each step is idempotent (Secrets Manager retries them): the contract of a rotation function.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)

PENDING, CURRENT = "AWSPENDING", "AWSCURRENT"
#: Length of a generated secret: alphanumeric only (coturn reads it from a config line or a table; no
#: quoting questions), 64 characters ~ 380 bits.
SECRET_LENGTH = 64
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class RotationError(RuntimeError):
    """A rotation event that must not proceed (Secrets Manager shows the message and retries)."""


def acceptable_secret(value: str) -> bool:
    """What coturn can take as a ``static-auth-secret`` / secret table row: printable ASCII, no spaces
    or quotes, long enough to be a key."""
    return 32 <= len(value) <= 256 and value.isascii() and value.isalnum()


def _client() -> Any:
    import boto3

    return boto3.client("secretsmanager")


def _check_event(client: Any, arn: str, token: str) -> bool:
    """False when this version is already current (a retried finish); raises on events that do not fit."""
    metadata = client.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"rotation is not enabled on {arn}")
    versions = metadata.get("VersionIdsToStages", {})
    if token not in versions:
        raise RotationError(f"version {token} is not a version of {arn}")
    if CURRENT in versions[token]:
        return False
    if PENDING not in versions[token]:
        raise RotationError(f"version {token} of {arn} is not pending rotation")
    return True


def create_secret(client: Any, arn: str, token: str) -> None:
    try:
        client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)
        return  # a retry: the pending secret exists already
    except client.exceptions.ResourceNotFoundException:
        pass
    value = client.get_random_password(PasswordLength=SECRET_LENGTH, ExcludePunctuation=True)[
        "RandomPassword"
    ]
    client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=value, VersionStages=[PENDING]
    )
    log.info("TURN secret: new pending version %s", token)  # never the value


def set_secret(wait_s: float) -> None:
    """The TURN tasks pull the pending secret themselves: wait until each has had time to."""
    if wait_s > 0:
        log.info("TURN secret: waiting %.0f s for every TURN task to accept the pending secret", wait_s)
        time.sleep(wait_s)


def verify_secret(client: Any, arn: str, token: str) -> None:
    value = client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)["SecretString"]
    if not acceptable_secret(value):
        raise RotationError("the pending TURN secret is not one coturn can use (32-256 alphanumerics)")


def finish_secret(client: Any, arn: str, token: str) -> None:
    versions = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    current = next((v for v, stages in versions.items() if CURRENT in stages), None)
    if current == token:
        return
    client.update_secret_version_stage(
        SecretId=arn, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current
    )
    # The pending label has done its job (the version is current): a later rotation's pending secret
    # must be the only one under it.
    client.update_secret_version_stage(SecretId=arn, VersionStage=PENDING, RemoveFromVersionId=token)
    log.info("TURN secret: version %s is current (previous: %s)", token, current)


def handler(event: dict[str, Any], context: Any) -> None:
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    if step not in STEPS:
        raise RotationError(f"unknown rotation step {step!r}")
    client = _client()
    if not _check_event(client, arn, token):
        log.info("TURN secret: version %s is already current", token)
        return
    if step == "createSecret":
        create_secret(client, arn, token)
    elif step == "setSecret":
        set_secret(float(os.environ.get("TURN_SYNC_WAIT_S", "150")))
    elif step == "testSecret":
        verify_secret(client, arn, token)
    else:
        finish_secret(client, arn, token)
