"""What the TURN secret tests share: Secrets Manager's own part of a rotation, on moto (AWS is mocked: the
only stand-in in these tests), around the real rotation function (infra/runtime/turn_secret_rotation.py).

Before it calls a rotation function, Secrets Manager turns rotation on and attaches ``AWSPENDING`` to a
new, still empty version whose id is the ``ClientRequestToken`` of every step. moto's ``rotate_secret``
does that only by invoking a Lambda function in Docker (none here), so :func:`begin_rotation` does it in
moto's backend (shared with a ``ThreadedMotoServer`` in the same process), then :func:`rotate` runs the
four steps as Secrets Manager would.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from infra.runtime import turn_secret_rotation

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"


def begin_rotation(name: str) -> str:
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[ACCOUNT][REGION].secrets[name]
    secret.rotation_requested = True
    secret.rotation_enabled = True
    token = str(uuid.uuid4())
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[token] = {
        "createdate": int(time.time()),
        "version_id": token,
        "version_stages": ["AWSPENDING"],
    }
    return token


def step(arn: str, token: str, name: str) -> None:
    turn_secret_rotation.handler({"SecretId": arn, "ClientRequestToken": token, "Step": name}, None)


def rotate(client: Any, name: str) -> str:
    """One whole rotation; the new current value."""
    arn = client.describe_secret(SecretId=name)["ARN"]
    token = begin_rotation(name)
    for name_ in turn_secret_rotation.STEPS:
        step(arn, token, name_)
    # (explicit stage: moto answers an unqualified get with the version it was created with)
    return str(client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
