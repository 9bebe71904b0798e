"""TURN in every relay region (infra/stacks/turn.py, infra/constructs/turn_service.py) and its secret
(infra/constructs/secrets.py), from the shared synth: listeners and ports, public addresses, health,
scaling, logs and alarms, least privilege (the task reads its secret replica, the API only reads the
secret, only the rotation function writes it), the rotation schedule, and no secret value anywhere in a
template or an environment variable."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.synth import NEEDS_CDK, Synth

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

from infra.constructs.nag import flatten
from infra.stacks.turn import TurnStack


@pytest.fixture(params=["us-east-1", "eu-west-1"])
def stack(request: pytest.FixtureRequest, synth: Synth) -> TurnStack:
    return synth.meetup.turn[str(request.param)]


def _props(synth: Synth, stack: Any, type_: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in synth.resources(stack, type_).values()]


def _container(synth: Synth, stack: TurnStack) -> dict[str, Any]:
    (task,) = _props(synth, stack, "AWS::ECS::TaskDefinition")
    (container,) = task["ContainerDefinitions"]
    return container


def _statements(synth: Synth, stack: Any, role_id: str) -> list[dict[str, Any]]:
    return [
        s
        for p in _props(synth, stack, "AWS::IAM::Policy")
        if {"Ref": role_id} in p["Roles"]
        for s in p["PolicyDocument"]["Statement"]
    ]


def test_every_relay_region_has_a_turn_stack(synth: Synth) -> None:
    assert set(synth.meetup.turn) == set(synth.meetup.config.regions) == set(synth.meetup.relays)


def test_udp_and_tcp_on_3478_and_tls_on_443_all_reach_corturns_plain_port(
    synth: Synth, stack: TurnStack
) -> None:
    config = synth.meetup.config
    listeners = {
        (p["Port"], p["Protocol"]): p for p in _props(synth, stack, "AWS::ElasticLoadBalancingV2::Listener")
    }
    assert set(listeners) == {(config.turn_port, "TCP_UDP"), (443, "TLS")}
    tls = listeners[(443, "TLS")]
    assert tls["SslPolicy"].startswith("ELBSecurityPolicy-TLS13") and tls["Certificates"]
    groups = synth.resources(stack, "AWS::ElasticLoadBalancingV2::TargetGroup")
    by_listener = {
        key: groups[p["DefaultActions"][0]["TargetGroupArn"]["Ref"]]["Properties"]
        for key, p in listeners.items()
    }
    assert by_listener[(config.turn_port, "TCP_UDP")]["Protocol"] == "TCP_UDP"
    assert by_listener[(443, "TLS")]["Protocol"] == "TCP"  # TLS ends at the NLB (ACM keeps its key)
    for group in by_listener.values():
        assert group["Port"] == config.turn_port and group["TargetType"] == "ip"
        assert group["HealthCheckProtocol"] == "TCP" and group["HealthCheckPort"] == str(config.turn_port)
    (certificate,) = _props(synth, stack, "AWS::CertificateManager::Certificate")
    (alias,) = _props(synth, stack, "AWS::Route53::RecordSet")
    assert (
        certificate["DomainName"]
        == alias["Name"].rstrip(".")
        == config.turn_regional_domain(stack.turn_region)
    )


def test_tasks_have_public_ips_and_open_only_turn_and_the_relayed_range(
    synth: Synth, stack: TurnStack
) -> None:
    config = synth.meetup.config
    low, high = config.turn_relay_port_range
    (service,) = _props(synth, stack, "AWS::ECS::Service")
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "ENABLED"
    assert len(service["LoadBalancers"]) == 2
    groups = synth.resources(stack, "AWS::EC2::SecurityGroup")
    task_group = next(
        k for k, g in groups.items() if g["Properties"]["GroupDescription"].startswith("TURN tasks")
    )
    open_to_all = {
        (r["IpProtocol"], r["FromPort"], r["ToPort"])
        for r in groups[task_group]["Properties"]["SecurityGroupIngress"]
    }
    assert open_to_all == {("udp", config.turn_port, config.turn_port), ("udp", low, high)}
    (from_nlb,) = _props(synth, stack, "AWS::EC2::SecurityGroupIngress")
    assert (from_nlb["IpProtocol"], from_nlb["FromPort"]) == ("tcp", config.turn_port)
    assert from_nlb["GroupId"] == {"Fn::GetAtt": [task_group, "GroupId"]}
    env = {e["Name"]: e["Value"] for e in _container(synth, stack)["Environment"]}
    assert (env["TURN_MIN_PORT"], env["TURN_MAX_PORT"], env["TURN_PORT"]) == (
        str(low),
        str(high),
        str(config.turn_port),
    )
    assert env["TURN_REALM"] == config.turn_regional_domain(stack.turn_region)
    assert env["TURN_STUN_SERVERS"]  # how the entrypoint learns the public address for --external-ip


def test_health_scaling_logs_and_alarms_like_the_relays(synth: Synth, stack: TurnStack) -> None:
    config = synth.meetup.config
    container = _container(synth, stack)
    assert container["HealthCheck"]["Command"] == ["CMD", "/opt/meetup-turn/healthcheck.sh"]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    (log_group,) = _props(synth, stack, "AWS::Logs::LogGroup")
    assert log_group["RetentionInDays"] == config.log_retention_days
    (target,) = _props(synth, stack, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (config.turn_min_tasks, config.turn_max_tasks)
    (policy,) = _props(synth, stack, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert (
        tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    )
    assert tracking["TargetValue"] == config.turn_target_cpu_percent
    alarms = _props(synth, stack, "AWS::CloudWatch::Alarm")
    assert len(alarms) == 2
    for alarm in alarms:
        assert alarm["MetricName"] == "HealthyHostCount" and alarm["TreatMissingData"] == "breaching"
        (action,) = alarm["AlarmActions"]
        assert "Fn::ImportValue" in action  # the region's alarm topic (relay stack)


def test_the_task_reads_only_its_regions_secret_replica(synth: Synth, stack: TurnStack) -> None:
    (task,) = _props(synth, stack, "AWS::ECS::TaskDefinition")
    role = task["TaskRoleArn"]["Fn::GetAtt"][0]
    (statement,) = _statements(synth, stack, role)
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert flatten(statement["Resource"]).endswith(
        f":secretsmanager:{stack.turn_region}:123456789012:secret:meetup-edge/turn-auth-key-??????"
    )
    env = {e["Name"]: e["Value"] for e in _container(synth, stack)["Environment"]}
    assert env["TURN_SECRET_ID"] == "meetup-edge/turn-auth-key" and "Secrets" not in _container(synth, stack)


def _secret_id(synth: Synth) -> str:
    secrets = synth.resources(synth.meetup.api, "AWS::SecretsManager::Secret")
    return next(k for k, s in secrets.items() if s["Properties"]["Name"].endswith("/turn-auth-key"))


def test_the_secret_is_rotated_on_a_schedule_by_the_rotation_function(synth: Synth) -> None:
    config = synth.meetup.config
    secret = _secret_id(synth)
    (schedule,) = _props(synth, synth.meetup.api, "AWS::SecretsManager::RotationSchedule")
    assert schedule["SecretId"] == {"Ref": secret}
    assert schedule["RotationRules"]["ScheduleExpression"] == f"rate({config.turn_rotation_days} days)"
    functions = synth.resources(synth.meetup.api, "AWS::Lambda::Function")
    rotator = functions[schedule["RotationLambdaARN"]["Fn::GetAtt"][0]]["Properties"]
    assert rotator["Handler"] == "infra.runtime.turn_secret_rotation.handler"
    assert rotator["Timeout"] > int(rotator["Environment"]["Variables"]["TURN_SYNC_WAIT_S"]) >= 60
    writes = [
        s for s in _statements(synth, synth.meetup.api, rotator["Role"]["Fn::GetAtt"][0])
        if "secretsmanager:PutSecretValue" in s["Action"]
    ]  # fmt: skip
    assert [s["Resource"] for s in writes] == [{"Ref": secret}]


def test_the_api_only_reads_the_secret_and_finds_every_regions_turn_server(synth: Synth) -> None:
    config = synth.meetup.config
    secret = _secret_id(synth)
    functions = synth.resources(synth.meetup.api, "AWS::Lambda::Function")
    readers = []
    for fn in functions.values():
        props = fn["Properties"]
        for s in _statements(synth, synth.meetup.api, props["Role"]["Fn::GetAtt"][0]):
            if s["Resource"] == {"Ref": secret}:
                readers.append((props["FunctionName"], tuple(sorted(s["Action"]))))
    read = ("secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue")
    assert sorted(readers) == [
        (f"{config.name}-meetings", read),
        (
            f"{config.name}-turn-secret-rotation",
            (*read, "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage"),
        ),
    ]
    meetings = next(
        f for f in functions.values() if f["Properties"]["FunctionName"] == f"{config.name}-meetings"
    )
    env = meetings["Properties"]["Environment"]["Variables"]
    assert env["MEETUP_TURN_SECRET_ARN"] == {"Ref": secret} and "MEETUP_TURN_SECRET" not in env
    urls = [entry.split("=", 1) for entry in env["MEETUP_TURN_URLS"].split(",")]
    hosts = {(region, re.sub(r"^turns?:([^:]+):.*$", r"\1", url)) for region, url in urls}
    aliases = {
        (region, r["Properties"]["Name"].rstrip("."))
        for region, stack in synth.meetup.turn.items()
        for r in synth.resources(stack, "AWS::Route53::RecordSet").values()
    }
    assert hosts == aliases
    assert {url.split(":")[0] + ":" + url.rsplit(":", 1)[1] for _, url in urls} == {
        "turn:3478?transport=udp", "turn:3478?transport=tcp", "turns:443?transport=tcp"
    }  # fmt: skip


def test_no_secret_value_in_any_template_or_environment(synth: Synth) -> None:
    """The secret is generated by Secrets Manager (GenerateSecretString) and read at run time by ARN or
    name: no template carries a value, no environment variable a secret, no coturn flag one."""
    stacks = [synth.meetup.api, *synth.meetup.turn.values(), *synth.meetup.relays.values()]
    for stack in stacks:
        text = (synth.outdir / stack.template_file).read_text()
        assert '"SecretString"' not in text and "static-auth-secret" not in text
        template = json.loads(text)
        for resource in template["Resources"].values():
            props = resource.get("Properties", {})
            variables = props.get("Environment", {}).get("Variables", {})
            for container in props.get("ContainerDefinitions", []):
                variables |= {e["Name"]: e["Value"] for e in container.get("Environment", [])}
            for name, value in variables.items():
                if re.search(r"SECRET|KEY|PASSWORD|CREDENTIAL", name) and not name.endswith(("_ARN", "_ID")):
                    pytest.fail(f"{stack.stack_name}: {name}={value!r} in plain text")
