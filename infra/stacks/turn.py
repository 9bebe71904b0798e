"""TURN, one stack per relay region: coturn on Fargate behind its own NLB (infra/constructs/turn_service.py).

Its own stack, beside the region's relay stack rather than inside it: TURN deploys, scales and rolls back
on its own, and the relay stack stays the relays'. It runs in the relay stack's VPC and ECS cluster and
alarms to its topic (same-region references: CloudFormation exports), so there is one network per region
and one place alarms arrive. The TURN secret is its replica in this region, found by name.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs.turn_service import TurnService


class TurnStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        region: str,
        cluster: ecs.ICluster,
        alarm_topic: sns.ITopic,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.turn_region = region
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.domain
        )
        self.turn = TurnService(
            self, "Turn", config=config, region=region, cluster=cluster, zone=zone, alarm_topic=alarm_topic
        )
