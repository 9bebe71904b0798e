"""Routing: the latency-routed relay name, ``relay.<domain>``, over every region's relays.

One latency record per region (CNAME to ``relay-<region>.<domain>``, which each relay stack aliases to
its NLB), each guarded by a Route 53 health check of that region's ``/healthz`` over HTTPS, so a region
with no healthy relay drops out of DNS. Everything is derived from the configured regions and domain, the
same values the API's relay list (``MEETUP_RELAYS``) is made of: DNS and the API cannot disagree about
which relays exist. CNAMEs (not aliases) keep this stack free of cross-region references to the NLBs.

Global Accelerator was the alternative: two static anycast IPs and faster failover, but ~18 USD a month
fixed plus per-GB premiums, for signalling that is a few kB per join; media never goes through either.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_route53 as route53
from constructs import Construct

from infra.config import InfraConfig


class RoutingStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.domain
        )
        self.records: dict[str, route53.CnameRecord] = {}
        for region in config.regions:
            check = route53.HealthCheck(
                self,
                f"Health-{region}",
                type=route53.HealthCheckType.HTTPS,
                fqdn=config.relay_regional_domain(region),
                port=443,
                resource_path="/healthz",
                request_interval=Duration.seconds(30),
                failure_threshold=3,
            )
            self.records[region] = route53.CnameRecord(
                self,
                f"Latency-{region}",
                zone=zone,
                record_name=config.relay_domain,
                domain_name=config.relay_regional_domain(region),
                region=region,
                set_identifier=region,
                health_check=check,
                ttl=Duration.seconds(60),
            )
