"""Routing: ``relay.<domain>`` is latency-routed over every region, each guarded by a health check of
that region's relays; the API's relay list, the relays' own URLs and the DNS names are the same set."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest

from tests.infra.synth import NEEDS_CDK, Synth

pytest.importorskip("aws_cdk", reason=NEEDS_CDK)


def test_latency_records_with_health_checks_per_region(synth: Synth) -> None:
    config = synth.meetup.config
    routing = synth.meetup.routing
    records = synth.resources(routing, "AWS::Route53::RecordSet")
    checks = synth.resources(routing, "AWS::Route53::HealthCheck")
    assert len(records) == len(checks) == len(config.regions)
    by_region = {r["Properties"]["Region"]: r["Properties"] for r in records.values()}
    assert set(by_region) == set(config.regions)
    for region, record in by_region.items():
        assert record["Name"] == f"{config.relay_domain}."
        assert record["Type"] == "CNAME" and record["SetIdentifier"] == region
        assert record["ResourceRecords"] == [config.relay_regional_domain(region)]
        assert record["HostedZoneId"] == config.hosted_zone_id
        check = checks[record["HealthCheckId"]["Ref"]]["Properties"]["HealthCheckConfig"]
        assert check["Type"] == "HTTPS" and check["ResourcePath"] == "/healthz" and check["Port"] == 443
        assert check["FullyQualifiedDomainName"] == config.relay_regional_domain(region)


def test_api_relay_list_relay_urls_and_dns_agree(synth: Synth) -> None:
    config = synth.meetup.config
    functions = synth.resources(synth.meetup.api, "AWS::Lambda::Function")
    meetings = next(
        f for f in functions.values() if f["Properties"]["FunctionName"] == f"{config.name}-meetings"
    )
    offered = json.loads(meetings["Properties"]["Environment"]["Variables"]["MEETUP_RELAYS"])
    api_hosts = {(r["region"], urlparse(r["url"]).hostname) for r in offered}

    relay_hosts = set()
    alias_hosts = set()
    for region, stack in synth.meetup.relays.items():
        (task,) = synth.resources(stack, "AWS::ECS::TaskDefinition").values()
        relay = next(c for c in task["Properties"]["ContainerDefinitions"] if c["Name"] == "relay")
        env = {e["Name"]: e["Value"] for e in relay["Environment"]}
        relay_hosts.add((region, urlparse(env["MEETUP_RELAY_PUBLIC_URL"]).hostname))
        for record in synth.resources(stack, "AWS::Route53::RecordSet").values():
            alias_hosts.add((region, record["Properties"]["Name"].rstrip(".")))

    latency_targets = {
        (r["Properties"]["Region"], r["Properties"]["ResourceRecords"][0])
        for r in synth.resources(synth.meetup.routing, "AWS::Route53::RecordSet").values()
    }
    assert api_hosts == relay_hosts == alias_hosts == latency_targets
    assert {region for region, _ in api_hosts} == set(config.regions)
    assert all(urlparse(r["url"]).scheme == "wss" for r in offered)
