"""Relay stacks, one per region from one class: media on the tasks' public IPs over the pinned UDP range,
TLS signalling through the NLB, health checks, scaling on CPU and participants, drain timing matched to
the relay's SIGTERM handling, and registry access limited to the region's own entries."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.synth import NEEDS_CDK, REPO, Synth

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)

from aws_cdk.assertions import Match

from edge_relay.config import RelayConfig
from infra.config import FARGATE_MAX_STOP_TIMEOUT_S
from infra.constructs import relay_metrics
from infra.stacks.relays import LIVENESS_PATH, READINESS_PATH, RelayStack

REGIONS = json.loads((REPO / "cdk.json").read_text())["context"]["meetup:regions"]


@pytest.fixture(params=REGIONS)
def region(request: pytest.FixtureRequest, synth: Synth) -> str:
    assert request.param in synth.meetup.relays
    return str(request.param)


def _one(synth: Synth, stack: RelayStack, type_: str) -> dict[str, Any]:
    (resource,) = synth.resources(stack, type_).values()
    return resource["Properties"]


def _containers(synth: Synth, stack: RelayStack) -> dict[str, dict[str, Any]]:
    task = _one(synth, stack, "AWS::ECS::TaskDefinition")
    return {c["Name"]: c for c in task["ContainerDefinitions"]}


def test_every_configured_region_has_its_relay_stack(synth: Synth) -> None:
    config = synth.meetup.config
    assert set(synth.meetup.relays) == set(config.regions)
    for region, stack in synth.meetup.relays.items():
        assert stack.region == region and type(stack) is RelayStack


def test_media_udp_range_is_pinned_and_open_on_the_tasks_public_ips(synth: Synth, region: str) -> None:
    stack = synth.meetup.relays[region]
    low, high = synth.meetup.config.media_ports
    relay = _containers(synth, stack)["relay"]
    assert relay["SystemControls"] == [
        {"Namespace": "net.ipv4.ip_local_port_range", "Value": f"{low} {high}"}
    ]
    assert {"ContainerPortRange": f"{low}-{high}", "Protocol": "udp"} in relay["PortMappings"]
    groups = synth.resources(stack, "AWS::EC2::SecurityGroup")
    relay_sg = next(g for g in groups.values() if "relay tasks" in g["Properties"]["GroupDescription"])
    gossip = synth.meetup.config.relay_cluster_port
    ingress = relay_sg["Properties"]["SecurityGroupIngress"]
    assert {
        "CidrIp": "0.0.0.0/0",
        "Description": "WebRTC media: ICE/DTLS/SRTP",
        "FromPort": low,
        "IpProtocol": "udp",
        "ToPort": high,
    } in ingress
    # Besides media, only the gossip port (UDP probes, TCP push-pull) and the TLS link port are open.
    links = synth.meetup.config.relay_cascade_port
    others = [rule for rule in ingress if rule["FromPort"] != low]
    assert sorted((r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in others) == sorted(
        [("tcp", gossip, gossip), ("udp", gossip, gossip), ("tcp", links, links)]
    )
    service = _one(synth, stack, "AWS::ECS::Service")
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "ENABLED"
    assert service["LaunchType"] == "FARGATE"
    # no NAT gateway: public subnets only
    synth.template(stack).resource_count_is("AWS::EC2::NatGateway", 0)


def test_signalling_is_tls_through_the_nlb_only(synth: Synth, region: str) -> None:
    stack = synth.meetup.relays[region]
    config = synth.meetup.config
    template = synth.template(stack)
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Type": "network", "Scheme": "internet-facing"}
    )
    listener = _one(synth, stack, "AWS::ElasticLoadBalancingV2::Listener")
    assert listener["Port"] == 443 and listener["Protocol"] == "TLS"
    assert listener["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    ingress = synth.resources(stack, "AWS::EC2::SecurityGroupIngress")
    (from_nlb,) = ingress.values()
    assert from_nlb["Properties"]["IpProtocol"] == "tcp"
    assert from_nlb["Properties"]["FromPort"] == config.relay_port == from_nlb["Properties"]["ToPort"]
    assert "SourceSecurityGroupId" in from_nlb["Properties"]
    template.has_resource_properties(
        "AWS::CertificateManager::Certificate",
        {
            "DomainName": config.relay_regional_domain(region),
            "SubjectAlternativeNames": [config.relay_domain],
            "ValidationMethod": "DNS",
        },
    )
    template.has_resource_properties(
        "AWS::Route53::RecordSet", {"Name": f"{config.relay_regional_domain(region)}.", "Type": "A"}
    )


def test_health_checks(synth: Synth, region: str) -> None:
    stack = synth.meetup.relays[region]
    group = _one(synth, stack, "AWS::ElasticLoadBalancingV2::TargetGroup")
    # Liveness for the NLB and ECS (a draining task stays healthy: its open connections are kept)...
    assert group["HealthCheckProtocol"] == "HTTP" and group["HealthCheckPath"] == LIVENESS_PATH == "/livez"
    assert group["Port"] == synth.meetup.config.relay_port and group["TargetType"] == "ip"
    check = _containers(synth, stack)["relay"]["HealthCheck"]
    assert check["Command"][:3] == ["CMD", "python", "-c"] and LIVENESS_PATH in check["Command"][3]
    # ...readiness for Route 53 (a region whose tasks all drain leaves relay.<domain>) and clients.
    route53 = synth.resources(synth.meetup.routing, "AWS::Route53::HealthCheck").values()
    assert {c["Properties"]["HealthCheckConfig"]["ResourcePath"] for c in route53} == {READINESS_PATH}


def test_drain_timing_matches_the_relay(synth: Synth, region: str) -> None:
    """ECS: deregister (no new connections, open ones kept) -> SIGTERM -> relay drains for the grace
    period -> SIGKILL at stopTimeout, which must leave the whole drain room to finish."""
    stack = synth.meetup.relays[region]
    config = synth.meetup.config
    relay = _containers(synth, stack)["relay"]
    env = {e["Name"]: e["Value"] for e in relay["Environment"]}
    grace = int(env["MEETUP_RELAY_DRAIN_GRACE_S"])
    assert grace == config.relay_drain_grace_s
    assert RelayConfig.model_fields["drain_grace_s"].default == grace  # the relay's own default agrees
    assert grace < relay["StopTimeout"] <= FARGATE_MAX_STOP_TIMEOUT_S
    attributes = {
        a["Key"]: a["Value"]
        for a in _one(synth, stack, "AWS::ElasticLoadBalancingV2::TargetGroup")["TargetGroupAttributes"]
    }
    # The NLB keeps the task's open connections (draining state) through the relay's whole drain.
    assert int(attributes["deregistration_delay.timeout_seconds"]) >= relay["StopTimeout"] > grace
    assert attributes["deregistration_delay.connection_termination.enabled"] == "false"
    service = _one(synth, stack, "AWS::ECS::Service")
    assert service["DeploymentConfiguration"]["MinimumHealthyPercent"] == 100
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }


def test_relay_configuration(synth: Synth, region: str) -> None:
    config = synth.meetup.config
    relay = _containers(synth, synth.meetup.relays[region])["relay"]
    env = {e["Name"]: e["Value"] for e in relay["Environment"]}
    assert env["MEETUP_RELAY_REGION"] == region == env["AWS_REGION"]
    assert env["MEETUP_RELAY_PUBLIC_URL"] == config.relay_url(region)
    assert env["MEETUP_RELAY_PORT"] == str(config.relay_port)
    assert env["MEETUP_RELAY_REGISTRY"] == "true"
    assert env["MEETUP_TABLE_PREFIX"] == config.table_prefix
    secrets = {s["Name"]: json.dumps(s["ValueFrom"]) for s in relay["Secrets"]}
    assert set(secrets) == {"MEETUP_JOIN_PUBLIC_KEY", "MEETUP_CLUSTER_SECRET"}
    assert secrets["MEETUP_JOIN_PUBLIC_KEY"].endswith(f':secret:{config.name}/join-public-key"]]}}')
    assert secrets["MEETUP_CLUSTER_SECRET"].endswith(f':secret:{config.name}/relay-cluster-key"]]}}')
    # The relays form one cluster across regions (wan timing, public address by STUN).
    assert env["MEETUP_RELAY_CLUSTER"] == "true" and env["MEETUP_RELAY_CLUSTER_PRESET"] == "wan"
    assert env["MEETUP_RELAY_CLUSTER_ADVERTISE"] == "stun"
    # Several STUN servers of more than one operator: one's outage must not leave the relay without
    # its public address (edge_relay/cluster/public_address.py asks them all, retries with backoff).
    stun = env["MEETUP_RELAY_STUN_URLS"].split(",")
    operators = {url.split(":")[1].split(".")[-2] for url in stun}
    assert len(stun) >= 2 and len(operators) >= 2, stun
    assert env["MEETUP_RELAY_CLUSTER_PORT"] == str(config.relay_cluster_port)
    # Links reach each task itself (several tasks per region behind one NLB), over pinned TLS.
    assert env["MEETUP_RELAY_CASCADE_PORT"] == str(config.relay_cascade_port)
    assert RelayConfig.model_validate(
        {k.removeprefix("MEETUP_RELAY_").lower(): v for k, v in env.items() if k.startswith("MEETUP_RELAY_")}
    ).cluster


def test_scaling_on_cpu_and_participants_per_task(synth: Synth, region: str) -> None:
    stack = synth.meetup.relays[region]
    config = synth.meetup.config
    target = _one(synth, stack, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (config.relay_min_tasks, config.relay_max_tasks)
    policies = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in synth.resources(stack, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    ]
    cpu = next(p for p in policies if "PredefinedMetricSpecification" in p)
    assert cpu["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    assert cpu["TargetValue"] == config.relay_target_cpu_percent
    custom = next(p for p in policies if "CustomizedMetricSpecification" in p)
    spec = custom["CustomizedMetricSpecification"]
    assert (spec["Namespace"], spec["MetricName"], spec["Statistic"]) == (
        relay_metrics.NAMESPACE,
        "relay_participants",
        "Average",
    )
    assert custom["TargetValue"] == config.relay_target_participants
    # the metric is what the sidecar publishes, under the dimension it sets
    sidecar = _containers(synth, stack)["metrics"]
    env = {e["Name"]: e["Value"] for e in sidecar["Environment"]}
    prometheus = json.loads(env["PROMETHEUS_CONFIG_CONTENT"])
    labels = prometheus["scrape_configs"][0]["static_configs"][0]["labels"]
    assert spec["Dimensions"] == [{"Name": "Service", "Value": labels["Service"]}]
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == [
        f"localhost:{config.relay_port}"
    ]
    assert sidecar["Essential"] is False
    exposed = (REPO / "edge_relay/ops/metrics.py").read_text()
    assert all(f'"{name}"' in exposed for name in relay_metrics.SERIES)  # every series exists


def test_a_split_cluster_raises_an_alarm(synth: Synth, region: str) -> None:
    """A relay that sees fewer other relays than there are other regions: the cluster is split."""
    others = len(synth.meetup.config.regions) - 1
    alarms = synth.resources(synth.meetup.relays[region], "AWS::CloudWatch::Alarm").values()
    split = [
        a["Properties"] for a in alarms if a["Properties"].get("MetricName") == "relay_cluster_live_peers"
    ]
    assert len(split) == (1 if others else 0)
    if split:
        (alarm,) = split
        assert alarm["Threshold"] == others and alarm["ComparisonOperator"] == "LessThanThreshold"
        assert alarm["Statistic"] == "Minimum" and alarm["Namespace"] == relay_metrics.NAMESPACE
        assert alarm["AlarmActions"]


def test_registry_access_is_this_regions_entries_only(synth: Synth, region: str) -> None:
    """Writes only under this region's ids; reads (the scan for cluster seeds) of every entry."""
    stack = synth.meetup.relays[region]
    config = synth.meetup.config
    statements = [
        s
        for p in synth.resources(stack, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if any(str(a).startswith("dynamodb:") for a in _actions(s))
    ]
    (write,) = [s for s in statements if "Condition" in s]
    assert sorted(_actions(write)) == ["dynamodb:DeleteItem", "dynamodb:PutItem"]
    assert write["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{region}-*"]}}
    table = f"arn::dynamodb:{region}:{config.account}:table/{config.table_name('relays')}"
    assert _arns(write["Resource"]) == [table]
    # Registrar.peers() scans the table: without this the seeds are empty and the cluster never forms.
    (read,) = [s for s in statements if "Condition" not in s]
    assert _actions(read) == ["dynamodb:Scan"] and read["Effect"] == "Allow"
    assert table in _arns(read["Resource"])


def test_the_relay_role_allows_every_call_the_registrar_makes(synth: Synth) -> None:
    """The DynamoDB operations of edge_relay/cluster/registry.py (boto3 client calls and paginators) are
    all granted."""
    import ast

    calls = {"put_item": "dynamodb:PutItem", "delete_item": "dynamodb:DeleteItem", "scan": "dynamodb:Scan"}
    calls |= {"query": "dynamodb:Query", "get_item": "dynamodb:GetItem", "update_item": "dynamodb:UpdateItem"}
    tree = ast.parse((REPO / "edge_relay/cluster/registry.py").read_text())
    used = {calls[n.attr] for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in calls}
    used |= {  # get_paginator("scan")
        calls[arg.value]
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get_paginator"
        for arg in n.args
        if isinstance(arg, ast.Constant) and arg.value in calls
    }
    assert used == {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"}
    stack = next(iter(synth.meetup.relays.values()))
    granted = {
        a
        for p in synth.resources(stack, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        for a in _actions(s)
    }
    assert used <= granted, used - granted


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return list(action) if isinstance(action, list) else [action]


def _arns(resource: Any) -> list[str]:
    """Resource ARNs as text, their tokens (partition) dropped: ``:dynamodb:<region>:...``."""
    resources = resource if isinstance(resource, list) else [resource]
    return [
        "".join(p if isinstance(p, str) else "" for p in r["Fn::Join"][1]) if isinstance(r, dict) else r
        for r in resources
    ]


def test_image_comes_from_the_relay_dockerfile_and_is_not_built(synth: Synth, region: str) -> None:
    stack = synth.meetup.relays[region]
    manifest = json.loads((synth.outdir / f"{stack.artifact_id}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "edge_relay/Dockerfile"
    arch = "linux/arm64" if synth.meetup.config.relay_arm64 else "linux/amd64"
    assert image["source"]["platform"] == arch
    staged = synth.outdir / image["source"]["directory"]
    assert (staged / "edge_relay" / "Dockerfile").exists()
    assert not (staged / ".venv").exists() and not (staged / "node_modules").exists()
    task = _one(synth, stack, "AWS::ECS::TaskDefinition")
    assert task["RuntimePlatform"]["CpuArchitecture"] == (
        "ARM64" if synth.meetup.config.relay_arm64 else "X86_64"
    )
    assert task["RequiresCompatibilities"] == ["FARGATE"]


def test_cluster_and_network_observability(synth: Synth, region: str) -> None:
    template = synth.template(synth.meetup.relays[region])
    template.has_resource_properties(
        "AWS::ECS::Cluster",
        {"ClusterSettings": Match.array_with([{"Name": "containerInsights", "Value": "enabled"}])},
    )
    template.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "REJECT"})
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "HealthyHostCount", "Threshold": 1}
    )


def test_relay_vpcs_do_not_overlap_across_regions(synth: Synth) -> None:
    config = synth.meetup.config
    cidrs = {
        region: _one(synth, stack, "AWS::EC2::VPC")["CidrBlock"]
        for region, stack in synth.meetup.relays.items()
    }
    assert cidrs == {region: config.relay_vpc_cidr(region) for region in config.regions}
    assert len(set(cidrs.values())) == len(cidrs)


def test_registry_heartbeat_is_slow_enough_for_a_global_table(synth: Synth, region: str) -> None:
    """Every beat is a write replicated to every region: 10-15 s, not the local 2 s. The API counts an
    entry fresh for three beats, from the same setting."""
    import subprocess
    import sys

    config = synth.meetup.config
    env = {
        e["Name"]: e["Value"] for e in _containers(synth, synth.meetup.relays[region])["relay"]["Environment"]
    }
    beat = float(env["MEETUP_RELAY_HEARTBEAT_S"])
    assert 10 <= beat <= 15 and beat == config.relay_heartbeat_s
    functions = synth.resources(synth.meetup.api, "AWS::Lambda::Function").values()
    api_beats = {
        f["Properties"]["Environment"]["Variables"].get("MEETUP_RELAY_HEARTBEAT_S")
        for f in functions
        if "MEETUP_RELAYS" in f["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert api_beats == {str(config.relay_heartbeat_s)}
    fresh = subprocess.run(
        [sys.executable, "-c", "from functions.services.relays import HEARTBEAT_FRESH_S as f; print(f)"],
        env={**__import__("os").environ, "MEETUP_RELAY_HEARTBEAT_S": str(beat)},
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert float(fresh) >= 2 * beat  # a missed beat or two never hides a live relay


def test_metrics_agent_is_pinned_and_its_silence_alarms(synth: Synth, region: str) -> None:
    stack = synth.meetup.relays[region]
    image = _containers(synth, stack)["metrics"]["Image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    alarms = [a["Properties"] for a in synth.resources(stack, "AWS::CloudWatch::Alarm").values()]
    (missing,) = [a for a in alarms if "sidecar" in a.get("AlarmDescription", "")]
    assert missing["TreatMissingData"] == "breaching" and missing["AlarmActions"]
    ids = {m["Id"]: m for m in missing["Metrics"]}
    assert ids["samples"]["MetricStat"]["Metric"]["MetricName"] == "relay_participants"
    assert ids["tasks"]["MetricStat"]["Metric"]["MetricName"] == "RunningTaskCount"
