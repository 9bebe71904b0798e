"""Configuration from cdk.json context: keys, parsing of ``-c key=value`` strings, refusals."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest

from tests.infra.synth import NEEDS_CDK, REPO, cdk_json_context

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

from functions.core.config import Settings
from infra.config import PLACEHOLDER_ACCOUNT, InfraConfig, _key


class Context:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def try_get_context(self, key: str) -> Any:
        return self.values.get(key)


@pytest.fixture(autouse=True)
def _no_caller_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI sets CDK_DEFAULT_ACCOUNT from whatever credentials it finds: not these tests' input."""
    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)


def config(**overrides: Any) -> InfraConfig:
    return InfraConfig.from_context(Context(cdk_json_context(**overrides)))


def test_cdk_json_keys_are_all_known_settings() -> None:
    known = {_key(f.name) for f in fields(InfraConfig)}
    used = {k for k in json.loads((REPO / "cdk.json").read_text())["context"] if k.startswith("meetup:")}
    assert used <= known, used - known
    assert _key("relay_max_tasks") == "meetup:relay:maxTasks"
    assert _key("hosted_zone_id") == "meetup:hostedZoneId"


def test_cdk_json_app_and_telemetry() -> None:
    cdk_json = json.loads((REPO / "cdk.json").read_text())
    assert cdk_json["app"] == "python -m infra.app"
    assert cdk_json["context"]["cli-telemetry"] is False
    for region in cdk_json["context"]["meetup:regions"]:  # synth needs no AWS lookup
        assert f"availability-zones:account={PLACEHOLDER_ACCOUNT}:region={region}" in cdk_json["context"]


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
    c = config()
    assert c.regions == ("us-east-1", "eu-west-1") and c.primary_region == "us-east-1"
    assert c.account == PLACEHOLDER_ACCOUNT
    assert c.relay_stop_timeout_s > c.relay_drain_grace_s
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "210987654321")
    assert config(**REAL).account == "210987654321"
    assert config(**REAL, **{"meetup:account": "111122223333"}).account == "111122223333"


#: What a DevOps user supplies for a real account (infra/README.md, "Before the first deploy").
REAL = {"meetup:domain": "meet.acme-corp.io", "meetup:hostedZoneId": "Z04123452ABCDEFGHIJK"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "meetup:domain 'meetup.example.com' is a placeholder"),
        ({}, "meetup:hostedZoneId 'Z0123456789EXAMPLE0000' is a placeholder"),
        ({"meetup:hostedZoneId": REAL["meetup:hostedZoneId"]}, "meetup:domain .* is a placeholder"),
        ({"meetup:domain": REAL["meetup:domain"]}, "hostedZoneId .* is a placeholder"),
        ({**REAL, "meetup:domain": "example.org"}, "placeholder"),
        ({**REAL, "meetup:domain": "meet.corp.test"}, "placeholder"),
        ({**REAL, "meetup:hostedZoneId": "Z12EXAMPLE"}, "placeholder"),
    ],
)
def test_placeholders_are_refused_for_a_real_account(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**{"meetup:account": "210987654321", **overrides})


def test_placeholders_pass_with_the_placeholder_account_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "210987654321")  # a CLI with real credentials
    with pytest.raises(ValueError, match="placeholder"):
        config()
    c = config(**{"meetup:account": PLACEHOLDER_ACCOUNT})  # what the synth tests pass, explicitly
    assert c.domain == "meetup.example.com" and c.account == PLACEHOLDER_ACCOUNT
    real = config(**REAL, **{"meetup:account": "210987654321"})
    assert real.api_domain == "api.meet.acme-corp.io"


def test_command_line_strings_are_parsed() -> None:
    c = config(
        **{
            "meetup:regions": "eu-central-1, ap-southeast-1",
            "meetup:relay:maxTasks": "8",
            "meetup:relay:arm64": "false",
            "meetup:relay:stunUrls": '["stun:a.example:3478", "stun:b.example:3478"]',
        }
    )
    assert c.regions == ("eu-central-1", "ap-southeast-1")
    assert c.relay_max_tasks == 8 and c.relay_arm64 is False
    assert c.relay_stun_urls == ("stun:a.example:3478", "stun:b.example:3478")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("meetup:regions", "us-east-1,us-east-1", "distinct"),
        ("meetup:regions", "mars-north-1x", "not a region"),
        ("meetup:domain", "not a domain", "DNS name"),
        ("meetup:relay:drainGraceS", "110", "SIGKILL"),
        ("meetup:relay:mediaPorts", "80-90", "mediaPorts"),
        ("meetup:relay:maxTasks", "0", "minTasks"),
        ("meetup:logRetentionDays", "45", "logRetentionDays"),
        ("meetup:hostedZoneId", "not-a-zone", "not a Route 53 zone id"),
        # one relay process per task uses one core: a bigger task could never reach the CPU target
        ("meetup:relay:cpu", "2048", "one process, which uses one core"),
        ("meetup:relay:memoryMib", "1536", "not a Fargate size"),
        (
            "meetup:relay:metricsAgentImage",
            "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:latest",
            "pinned",
        ),
        ("meetup:relay:metricsAgentImage", "public.ecr.aws/cloudwatch-agent/cloudwatch-agent", "pinned"),
        ("meetup:relay:heartbeatS", "0", "heartbeatS"),
        ("meetup:regions", "us-east-1,xx-north-9", "RELAY_VPC_REGIONS"),
    ],
)
def test_refuses_what_would_fail_at_deploy(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**{key: value})


def test_relay_endpoints_are_what_the_api_parses() -> None:
    c = config()
    relays = Settings(relays=json.dumps(c.relay_endpoints())).relays  # type: ignore[arg-type]
    assert [(r.region, r.url) for r in relays] == [(region, c.relay_url(region)) for region in c.regions]
    assert all(r.url.startswith("wss://relay-") and r.url.endswith("/ws") for r in relays)


def test_relay_vpcs_never_overlap_and_keep_their_cidr() -> None:
    from infra.config import RELAY_VPC_REGIONS

    c = config(**{"meetup:regions": ",".join(RELAY_VPC_REGIONS)})
    cidrs = [c.relay_vpc_cidr(r) for r in c.regions]
    assert len(set(cidrs)) == len(cidrs) and all(x.endswith(".0.0/16") for x in cidrs)
    # a region's CIDR does not depend on which other regions are configured, or their order
    assert config(**{"meetup:regions": "eu-west-1,us-east-1"}).relay_vpc_cidr(
        "eu-west-1"
    ) == c.relay_vpc_cidr("eu-west-1")


def test_pinned_agent_images_pass() -> None:
    digest = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent@sha256:" + "a" * 64
    assert config(**{"meetup:relay:metricsAgentImage": digest}).relay_metrics_agent_image == digest
    assert not config().relay_metrics_agent_image.endswith(":latest")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("meetup:turn:relayPorts", "3000-4000", "meetup:turn:relayPorts"),  # holds the TURN port itself
        ("meetup:turn:relayPorts", "80-90", "meetup:turn:relayPorts"),
        ("meetup:turn:relayPorts", "60000-50000", "meetup:turn:relayPorts"),
        ("meetup:turn:minTasks", "0", "meetup:turn:minTasks"),
        ("meetup:turn:cpu", "768", "not a Fargate size"),
        ("meetup:turn:rotationDays", "0", "meetup:turn:rotationDays"),
    ],
)
def test_turn_settings_that_would_not_deploy_are_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config(**{key: value, "meetup:account": PLACEHOLDER_ACCOUNT})


def test_turn_urls_are_every_regions_name_with_udp_tcp_and_tls_on_443() -> None:
    turn = config(**{"meetup:regions": "us-east-1,eu-west-1", "meetup:account": PLACEHOLDER_ACCOUNT})
    assert _key("turn_relay_ports") == "meetup:turn:relayPorts"
    entries = turn.turn_endpoints().split(",")
    assert entries[:3] == [
        "us-east-1=turn:turn-us-east-1.meetup.example.com:3478?transport=udp",
        "us-east-1=turn:turn-us-east-1.meetup.example.com:3478?transport=tcp",
        "us-east-1=turns:turn-us-east-1.meetup.example.com:443?transport=tcp",
    ]
    assert len(entries) == 6
    assert Settings(turn_urls=turn.turn_endpoints()).turn_urls_by_region()["eu-west-1"] == turn.turn_urls(  # type: ignore[arg-type]
        "eu-west-1"
    )
