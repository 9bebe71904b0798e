"""TURN servers as the CDK app configures the API: every region's URLs (``region=url``) and the secret's
ARN in Secrets Manager (moto: AWS is the only thing mocked here). A join gets one ICE server per region,
the region of its best relay first (clients use the first TURN server), signed with the secret's current
version; configuration that would hand out URLs clients ignore is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from functions.core.config import Settings
from functions.services.turn import ice_servers

US = ["turn:turn-us-east-1.x.io:3478?transport=udp", "turns:turn-us-east-1.x.io:443?transport=tcp"]
EU = ["turn:turn-eu-west-1.x.io:3478?transport=udp", "turns:turn-eu-west-1.x.io:443?transport=tcp"]
CONFIGURED = ",".join([*(f"us-east-1={u}" for u in US), *(f"eu-west-1={u}" for u in EU)])


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name in ("MEETUP_TURN_URLS", "MEETUP_TURN_SECRET", "MEETUP_TURN_SECRET_ARN"):  # a local stack's
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def _credential(secret: str, username: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def test_one_server_per_region_the_relays_region_first(secrets: Any) -> None:
    arn = secrets.create_secret(Name="meetup-edge/turn-auth-key", SecretString="s" * 64)["ARN"]
    settings = Settings(turn_urls=CONFIGURED, turn_secret_arn=arn)  # type: ignore[arg-type]
    eu_first = ice_servers(settings, "p_1", 1_900_000_000, region="eu-west-1")
    assert [s.urls for s in eu_first] == [EU, US]
    assert [s.urls for s in ice_servers(settings, "p_1", 1_900_000_000, region="us-east-1")] == [US, EU]
    assert [s.urls for s in ice_servers(settings, "p_1", 1_900_000_000, region="ap-south-1")] == [US, EU]
    for server in eu_first:
        assert server.username == "1900000000:p_1"
        assert server.credential == _credential("s" * 64, server.username)


def test_unlabelled_urls_stay_one_server(secrets: Any) -> None:
    settings = Settings(turn_urls=",".join(US), turn_secret="k" * 40)  # type: ignore[arg-type]
    (server,) = ice_servers(settings, "p_2", 1_900_000_000, region="eu-west-1")
    assert server.urls == US


def test_no_secret_no_servers(secrets: Any) -> None:
    assert ice_servers(Settings(turn_urls=CONFIGURED), "p_3", 1_900_000_000) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "us-east-1=turn:h:3478?transport=tls",  # ignored by browsers and aiortc: refused
        "us-east-1=",
        "us-east-1=http://turn.example",
    ],
)
def test_urls_clients_would_ignore_are_refused_with_or_without_a_region(bad: str, secrets: Any) -> None:
    with pytest.raises(ValidationError, match="not a TURN URL"):
        Settings(turn_urls=bad)  # type: ignore[arg-type]
