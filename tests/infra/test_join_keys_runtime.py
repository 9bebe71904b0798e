"""The join key pair custom resource (infra/runtime/join_keys.py), run against moto's Secrets Manager
with a local HTTP server standing in for CloudFormation's presigned response URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.runtime import join_keys
from meetup_protocol.tokens import (
    JoinClaims,
    issue_join_token,
    load_private_key,
    load_public_key,
    verify_join_token,
)


class _Responses(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_PUT(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cloudformation() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Responses,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/response", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        yield client


def _event(
    url: str, client: Any, request: str, generation: str = "1", old: str | None = None
) -> dict[str, Any]:
    private = client.create_secret(Name=f"priv-{request}-{generation}", SecretString="placeholder")["ARN"]
    public = client.create_secret(Name=f"pub-{request}-{generation}", SecretString="placeholder")["ARN"]
    props = {"PrivateKeySecretArn": private, "PublicKeySecretArn": public, "Generation": generation}
    event: dict[str, Any] = {
        "RequestType": request,
        "ResponseURL": url,
        "StackId": "stack",
        "RequestId": "req-1",
        "LogicalResourceId": "JoinKeyPair",
        "ResourceProperties": {"ServiceToken": "arn:fn", **props},
    }
    if old is not None:
        event["PhysicalResourceId"] = "join-key-pair-req-0"
        event["OldResourceProperties"] = {"ServiceToken": "arn:old-fn", **props, "Generation": old}
    return event


def _value(client: Any, arn: str) -> str:
    return str(client.get_secret_value(SecretId=arn)["SecretString"])


def test_create_mints_a_working_pair(cloudformation: tuple[str, list], secrets: Any) -> None:
    url, received = cloudformation
    event = _event(url, secrets, "Create")
    join_keys.handler(event, None)
    assert received[-1]["Status"] == "SUCCESS" and received[-1]["NoEcho"] is True
    props = event["ResourceProperties"]
    private = load_private_key(_value(secrets, props["PrivateKeySecretArn"]))
    public = load_public_key(_value(secrets, props["PublicKeySecretArn"]))
    claims = JoinClaims("m", "p", "u", "n", "guest", 2**31, 2**31, 10)
    assert verify_join_token(issue_join_token(claims, private), public).meeting_id == "m"


def test_update_keeps_the_pair_unless_the_generation_changes(
    cloudformation: tuple[str, list], secrets: Any
) -> None:
    url, received = cloudformation
    same = _event(url, secrets, "Update", generation="1", old="1")  # e.g. a new ServiceToken only
    join_keys.handler(same, None)
    assert received[-1]["Status"] == "SUCCESS"
    assert received[-1]["PhysicalResourceId"] == "join-key-pair-req-0"
    assert _value(secrets, same["ResourceProperties"]["PublicKeySecretArn"]) == "placeholder"

    bumped = _event(url, secrets, "Update", generation="2", old="1")
    join_keys.handler(bumped, None)
    assert _value(secrets, bumped["ResourceProperties"]["PublicKeySecretArn"]).startswith(
        "-----BEGIN PUBLIC KEY"
    )


def test_delete_leaves_secrets_to_cloudformation(cloudformation: tuple[str, list], secrets: Any) -> None:
    url, received = cloudformation
    event = _event(url, secrets, "Delete", old="1")
    event.pop("OldResourceProperties")
    join_keys.handler(event, None)
    assert received[-1]["Status"] == "SUCCESS"
    assert _value(secrets, event["ResourceProperties"]["PrivateKeySecretArn"]) == "placeholder"


def test_failures_are_reported_not_left_hanging(cloudformation: tuple[str, list], secrets: Any) -> None:
    url, received = cloudformation
    event = _event(url, secrets, "Create")
    event["ResourceProperties"]["PublicKeySecretArn"] = (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone"
    )
    join_keys.handler(event, None)
    assert received[-1]["Status"] == "FAILED" and "ResourceNotFound" in received[-1]["Reason"]
