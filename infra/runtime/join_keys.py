"""CloudFormation custom resource: mint the Ed25519 key pair that signs (API) and verifies (relays) join
tokens, straight into Secrets Manager.

Secrets Manager can generate passwords, not key pairs, and a key pair typed into a template or a
parameter would sit in plain text in CloudFormation. Here the private key exists only in this function's
memory and in its secret. ``Create`` and a changed ``Generation`` property mint a fresh pair (rotation:
relays pick the new public key up when their tasks restart); other updates and ``Delete`` keep the
secrets as they are (CloudFormation deletes them with the stack).

The handler speaks the custom resource protocol itself (a PUT to the presigned ``ResponseURL``), so no
provider framework function is needed.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)


def _respond(event: dict[str, Any], status: str, reason: str = "") -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:500] or status,
            "PhysicalResourceId": event.get("PhysicalResourceId") or f"join-key-pair-{event['RequestId']}",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": True,
            "Data": {},
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 (the https URL CloudFormation gave us)
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    with urllib.request.urlopen(request, timeout=30):  # noqa: S310
        pass


def _mint(properties: dict[str, Any]) -> None:
    import boto3

    from meetup_protocol.tokens import generate_join_keypair

    private_pem, public_pem = generate_join_keypair()
    client = boto3.client("secretsmanager")
    client.put_secret_value(SecretId=properties["PrivateKeySecretArn"], SecretString=private_pem)
    client.put_secret_value(SecretId=properties["PublicKeySecretArn"], SecretString=public_pem)


#: A change to any of these mints a new pair; a new ServiceToken (the function replaced) does not.
MINT_ON_CHANGE = ("PrivateKeySecretArn", "PublicKeySecretArn", "Generation")


def handler(event: dict[str, Any], context: Any) -> None:
    request = event["RequestType"]
    log.info("join key pair: %s", request)  # never the keys
    try:
        properties = event["ResourceProperties"]
        old = event.get("OldResourceProperties") or {}
        changed = any(old.get(k) != properties.get(k) for k in MINT_ON_CHANGE)
        if request == "Create" or (request == "Update" and changed):
            _mint(properties)
        _respond(event, "SUCCESS")
    except Exception as exc:
        log.exception("join key pair failed")
        _respond(event, "FAILED", f"{type(exc).__name__}: {exc}")
