"""API stack: one function per concern from the real handlers, every FastAPI route wired to the function
that serves it, a throttled and logged stage, alarms, secrets, and least privilege per concern."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.synth import NEEDS_CDK, Synth

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

from aws_cdk.assertions import Match

from functions.app import ROUTERS
from infra.stacks.api import ACCESS, READ, REGISTRY, WRITE

CONCERNS = ("auth", "settings", "meetings", "chat", "recordings")


def _functions(synth: Synth) -> dict[str, dict[str, Any]]:
    found = synth.resources(synth.meetup.api, "AWS::Lambda::Function")
    return {r["Properties"]["FunctionName"]: {"id": k, **r} for k, r in found.items()}


def _policy_statements(synth: Synth, role_logical_id: str) -> list[dict[str, Any]]:
    statements = []
    for policy in synth.resources(synth.meetup.api, "AWS::IAM::Policy").values():
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _flat(value: Any) -> str:
    """An ARN built with Fn::Join, as text (``${AWS::Partition}`` kept as a marker)."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(_flat(v) for v in value["Fn::Join"][1])
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return json.dumps(value)


def test_one_arm64_function_per_concern_running_the_real_handlers(synth: Synth) -> None:
    config = synth.meetup.config
    functions = _functions(synth)
    for concern in CONCERNS:
        props = functions[f"{config.name}-{concern}"]["Properties"]
        assert props["Handler"] == f"functions.handlers.{concern}"
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == f"python{config.lambda_python}"
        assert props["TracingConfig"] == {"Mode": "Active"}
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == f"meetup-{concern}"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "MeetupEdge"
        assert env["MEETUP_TABLE_PREFIX"] == config.table_prefix
        assert "Ref" in env["MEETUP_JWT_SECRET_ARN"]
        assert ("MEETUP_BUCKET" in env) == (concern in ("settings", "recordings"))
        assert ("MEETUP_JOIN_PRIVATE_KEY_ARN" in env) == (concern in ("meetings", "chat"))
    assert functions[f"{config.name}-auth"]["Properties"]["MemorySize"] == config.lambda_auth_memory_mib


def test_every_function_logs_to_its_own_group_with_retention(synth: Synth) -> None:
    groups = synth.resources(synth.meetup.api, "AWS::Logs::LogGroup")
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == synth.meetup.config.log_retention_days
    for fn in _functions(synth).values():
        ref = fn["Properties"]["LoggingConfig"]["LogGroup"]
        assert ref["Ref"] in groups


def test_every_fastapi_route_reaches_the_function_that_serves_it(synth: Synth) -> None:
    api = synth.meetup.api
    integrations = synth.resources(api, "AWS::ApiGatewayV2::Integration")
    functions = {v["id"]: name for name, v in _functions(synth).items()}
    target_of = {
        lid: functions[i["Properties"]["IntegrationUri"]["Fn::GetAtt"][0]] for lid, i in integrations.items()
    }
    routes = {
        r["Properties"]["RouteKey"]: target_of[r["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]]
        for r in synth.resources(api, "AWS::ApiGatewayV2::Route").values()
    }
    expected = {"$default": f"{synth.meetup.config.name}-auth"}
    for concern, router in ROUTERS.items():
        for route in router.routes:
            for method in route.methods:  # type: ignore[attr-defined]
                expected[f"{method} {route.path}"] = f"{synth.meetup.config.name}-{concern}"  # type: ignore[attr-defined]
    assert routes == expected


def test_stage_is_throttled_and_access_logged_behind_the_custom_domain(synth: Synth) -> None:
    config = synth.meetup.config
    template = synth.template(synth.meetup.api)
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingBurstLimit": config.api_throttle_burst,
                "ThrottlingRateLimit": config.api_throttle_rate,
            },
            "AccessLogSettings": Match.object_like({"Format": Match.string_like_regexp(r"routeKey")}),
        },
    )
    template.has_resource_properties("AWS::ApiGatewayV2::Api", {"DisableExecuteApiEndpoint": True})
    template.has_resource_properties("AWS::ApiGatewayV2::DomainName", {"DomainName": config.api_domain})
    template.has_resource_properties(
        "AWS::Route53::RecordSet", {"Name": f"{config.api_domain}.", "Type": "A"}
    )


def test_alarms_on_errors_and_latency_notify_an_encrypted_topic(synth: Synth) -> None:
    alarms = synth.resources(synth.meetup.api, "AWS::CloudWatch::Alarm")
    by_metric: dict[str, int] = {}
    for alarm in alarms.values():
        props = alarm["Properties"]
        by_metric[props["MetricName"]] = by_metric.get(props["MetricName"], 0) + 1
        assert props["AlarmActions"], props["AlarmDescription"]
    assert by_metric["Errors"] == len(CONCERNS)
    assert by_metric["Duration"] == len(CONCERNS)
    assert by_metric["Throttles"] == len(CONCERNS)
    assert by_metric["5xx"] == 1 and by_metric["Latency"] == 1
    template = synth.template(synth.meetup.api)
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_secrets_and_the_join_key_pair(synth: Synth) -> None:
    config = synth.meetup.config
    secrets = {
        s["Properties"]["Name"]: s["Properties"]
        for s in synth.resources(synth.meetup.api, "AWS::SecretsManager::Secret").values()
    }
    assert set(secrets) == {
        f"{config.name}/jwt-signing-key",
        f"{config.name}/join-private-key",
        f"{config.name}/join-public-key",
        f"{config.name}/relay-cluster-key",
        f"{config.name}/turn-auth-key",
    }
    for relay_reads in ("join-public-key", "relay-cluster-key", "turn-auth-key"):
        replicas = {r["Region"] for r in secrets[f"{config.name}/{relay_reads}"]["ReplicaRegions"]}
        assert replicas == set(config.regions[1:])  # every relay region outside the primary
    assert secrets[f"{config.name}/relay-cluster-key"]["GenerateSecretString"]["PasswordLength"] >= 64
    assert "ReplicaRegions" not in secrets[f"{config.name}/join-private-key"]
    (key_pair,) = synth.resources(synth.meetup.api, "Custom::JoinKeyPair").values()
    assert key_pair["Properties"]["Generation"] == config.key_generation
    minter = _functions(synth)[f"{config.name}-join-key-minter"]["Properties"]
    assert minter["Handler"] == "infra.runtime.join_keys.handler"


# --- least privilege -------------------------------------------------------------------------------


def test_no_wildcard_actions_and_no_wildcard_data_resources(synth: Synth) -> None:
    data_services = ("dynamodb:", "s3:", "secretsmanager:", "kms:")
    stacks = (synth.meetup.api, synth.meetup.data, *synth.meetup.relays.values(), *synth.meetup.turn.values())
    for stack in stacks:
        for policy in synth.resources(stack, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                resources = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                assert all(a != "*" and not a.endswith(":*") for a in actions), actions
                if actions == ["secretsmanager:GetRandomPassword"]:
                    continue  # the TURN secret's rotation: an action with no resource to scope to
                if any(a.startswith(data_services) for a in actions):
                    assert "*" not in resources, statement


#: The spec, written out independently of infra/stacks/api.py: (table -> "r" read or "w" read-write).
EXPECTED_TABLES = {
    "auth": {"users": "w", "emails": "w", "refresh-tokens": "w", "throttles": "w"},
    "settings": {"users": "w"},
    "meetings": {"meetings": "w", "participants": "w", "throttles": "w", "users": "r", "relays": "scan"},
    "chat": {"chat": "w", "meetings": "w", "participants": "r", "users": "r", "throttles": "w"},
    "recordings": {"recordings": "w", "meetings": "w", "participants": "r"},
}
EXPECTED_PREFIXES = {"settings": "users/", "recordings": "recordings/"}


def test_access_map_is_the_reviewed_one() -> None:
    levels = {READ: "r", WRITE: "w", REGISTRY: "scan"}
    assert {
        c: {t: levels[a] for t, a in access.tables.items()} for c, access in ACCESS.items()
    } == EXPECTED_TABLES
    assert {c: a.bucket_prefix for c, a in ACCESS.items() if a.bucket_prefix} == EXPECTED_PREFIXES
    assert "dynamodb:Scan" not in READ + WRITE and "dynamodb:DeleteItem" not in READ


def test_each_concern_reaches_only_its_tables_and_prefixes(synth: Synth) -> None:
    config = synth.meetup.config
    functions = _functions(synth)
    for concern, access in ACCESS.items():
        role = functions[f"{config.name}-{concern}"]["Properties"]["Role"]["Fn::GetAtt"][0]
        statements = _policy_statements(synth, role)
        tables: dict[str, set[str]] = {}
        s3: dict[str, set[str]] = {}
        for s in statements:
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            for resource in map(_flat, resources):
                if ":dynamodb:" in resource:
                    name = resource.split(":table/", 1)[1].split("/", 1)[0]
                    tables.setdefault(name, set()).update(actions)
                if ":s3:::" in resource:
                    s3.setdefault(resource.split(":s3:::", 1)[1], set()).update(actions)
        assert tables == {config.table_name(t): set(a) for t, a in access.tables.items()}, concern
        objects = f"{config.bucket_name}/{access.bucket_prefix}*"
        if access.bucket_prefix:
            assert s3[objects] == set(access.bucket_actions), concern
            assert set(s3) <= {objects, config.bucket_name}, concern
        else:
            assert s3 == {}, concern
        granted_secrets = {
            s["Resource"]["Ref"] for s in statements if s["Action"][0].startswith("secretsmanager:")
        }
        assert len(granted_secrets) == 1 + access.join_key + access.turn, concern


def test_chat_may_query_its_time_index(synth: Synth) -> None:
    role = _functions(synth)[f"{synth.meetup.config.name}-chat"]["Properties"]["Role"]["Fn::GetAtt"][0]
    resources = {
        _flat(r)
        for s in _policy_statements(synth, role)
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    }
    assert any(r.endswith(f"table/{synth.meetup.config.table_name('chat')}/index/by_time") for r in resources)


def test_settings_lists_only_its_prefix(synth: Synth) -> None:
    role = _functions(synth)[f"{synth.meetup.config.name}-settings"]["Properties"]["Role"]["Fn::GetAtt"][0]
    (listing,) = [s for s in _policy_statements(synth, role) if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["users/*"]}}
