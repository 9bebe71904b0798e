"""Relays, one stack per region (same class, parameterised by region): VPC, cluster, NLB, service, DNS.

Nothing here references another stack: the registry table and the join public key are found by their
configured names in this region (global table replica, replicated secret), and the hosted zone by id.
That keeps regional stacks independent (deploy, roll back or remove one region alone); the app only
orders them after the data and API stacks.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs import fargate, relay_metrics
from infra.constructs.alarm_topic import AlarmTopic
from infra.constructs.buckets import log_bucket
from infra.constructs.lambda_bundle import REPO
from infra.constructs.nag import acknowledge
from infra.constructs.relay_service import RelayService
from infra.constructs.secrets import cluster_secret_name, join_public_key_secret_name

#: Liveness: 200 while the process serves, draining included. The NLB's target health asks this, so a
#: draining task stays healthy and the NLB keeps forwarding its open connections (AWS: a deregistered
#: target's connections are kept only while it stays healthy). Readiness (``/healthz``, 503 while
#: draining) is for clients' probes and Route 53; new connections stop by deregistration, not health.
LIVENESS_PATH = "/livez"
READINESS_PATH = "/healthz"


def deregistration_delay(config: InfraConfig) -> Duration:
    """How long the NLB keeps a deregistered task in ``draining`` (open connections forwarded, no new
    ones): the relay's whole drain (grace + shutdown margin, = stopTimeout), so that wherever the SIGTERM
    falls in it, the last messages and the ``migrate`` reach clients over the sockets they have."""
    return Duration.seconds(config.relay_stop_timeout_s)


class RelayStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: InfraConfig, region: str, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.relay_region = region
        retention = config.log_retention

        # Public subnets only: tasks need public IPs for media anyway, and NAT gateways would cost
        # ~33 USD a month per AZ for nothing.
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            # Non-overlapping per region (10.<n>.0.0/16): private paths (peering, TGW) stay possible.
            ip_addresses=ec2.IpAddresses.cidr(config.relay_vpc_cidr(region)),
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=22)
            ],
        )
        self.vpc.add_flow_log(
            "RejectedFlows",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "FlowLogs", retention=retention)
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,  # ALL would log every media flow
        )
        self.cluster = cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            cluster_name=f"{config.name}-relays",
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        image = fargate.image(self, REPO, arm64=config.relay_arm64, file="edge_relay/Dockerfile")
        join_public_key = secretsmanager.Secret.from_secret_name_v2(
            self, "JoinPublicKey", join_public_key_secret_name(config.name)
        )
        cluster_secret = secretsmanager.Secret.from_secret_name_v2(
            self, "ClusterSecret", cluster_secret_name(config.name)
        )

        self.nlb_security_group = ec2.SecurityGroup(
            self,
            "NlbSecurityGroup",
            vpc=self.vpc,
            description="relay NLB: public TLS signalling",
            allow_all_outbound=False,
        )
        self.nlb_security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "wss:// from clients"
        )
        acknowledge(
            self.nlb_security_group,
            "EC23",
            "The relay's signalling endpoint is public by design (any client joins over wss:// on 443); "
            "joins are authorised by signed join tokens",
        )
        self.relays = RelayService(
            self,
            "Relay",
            config=config,
            region=region,
            cluster=cluster,
            image=image,
            join_public_key=join_public_key,
            cluster_secret=cluster_secret,
            signalling_from=self.nlb_security_group,
        )
        self.nlb_security_group.add_egress_rule(
            self.relays.security_group, ec2.Port.tcp(config.relay_port), "to relay tasks"
        )
        self.nlb = self._load_balancer(config, region)
        self._alarms(config)

    def _load_balancer(self, config: InfraConfig, region: str) -> elbv2.NetworkLoadBalancer:
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.domain
        )
        regional_name = config.relay_regional_domain(region)
        certificate = acm.Certificate(
            self,
            "Certificate",
            domain_name=regional_name,
            # The latency-routed name resolves here too (via CNAME), so TLS must answer for it.
            subject_alternative_names=[config.relay_domain],
            validation=acm.CertificateValidation.from_dns(zone),
        )
        nlb = elbv2.NetworkLoadBalancer(
            self,
            "Nlb",
            vpc=self.vpc,
            internet_facing=True,
            cross_zone_enabled=True,
            security_groups=[self.nlb_security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        )
        nlb.log_access_logs(log_bucket(self, "NlbLogs", expire_days=90), prefix=f"relay-nlb-{region}")
        self.target_group = elbv2.NetworkTargetGroup(
            self,
            "Signalling",
            vpc=self.vpc,
            port=config.relay_port,
            protocol=elbv2.Protocol.TCP,
            target_type=elbv2.TargetType.IP,
            deregistration_delay=deregistration_delay(config),
            connection_termination=False,
            health_check=elbv2.HealthCheck(
                protocol=elbv2.Protocol.HTTP,
                path=LIVENESS_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(10),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=2,
            ),
            targets=[
                self.relays.service.load_balancer_target(
                    container_name="relay", container_port=config.relay_port
                )
            ],
        )
        nlb.add_listener(
            "Tls",
            port=443,
            protocol=elbv2.Protocol.TLS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            default_target_groups=[self.target_group],
        )
        route53.ARecord(
            self,
            "RegionalAlias",
            zone=zone,
            record_name=regional_name,
            target=route53.RecordTarget.from_alias(targets.LoadBalancerTarget(nlb)),
        )
        return nlb

    def _alarms(self, config: InfraConfig) -> None:
        """No healthy relay task behind the NLB: this region cannot take joins. A relay that sees fewer
        peers than there are other regions: the cluster is split (or a region is down), so meetings
        spanning the cut lose the media between its sides."""
        topic = AlarmTopic(
            self, "Alarms", name=f"{config.name}-{self.relay_region}", email=config.alarm_email
        )
        self.alarm_topic = topic  # the region's TURN stack alarms to it too
        alarm = cloudwatch.Metric(
            namespace="AWS/NetworkELB",
            metric_name="HealthyHostCount",
            dimensions_map={
                "LoadBalancer": self.nlb.load_balancer_full_name,
                "TargetGroup": self.target_group.target_group_full_name,
            },
            statistic="Minimum",
            period=Duration.minutes(1),
        ).create_alarm(
            self,
            "NoHealthyRelay",
            alarm_description=f"{self.relay_region}: no healthy relay task",
            threshold=1,
            evaluation_periods=3,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(topic.topic))
        self._metrics_missing_alarm(topic)
        other_regions = len(config.regions) - 1
        if other_regions:
            split = relay_metrics.live_peers(self.relays.service_name).create_alarm(
                self,
                "ClusterSplit",
                alarm_description=f"{self.relay_region}: a relay sees < {other_regions} other relays",
                threshold=other_regions,
                evaluation_periods=5,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            split.add_alarm_action(cw_actions.SnsAction(topic.topic))

    def _metrics_missing_alarm(self, topic: AlarmTopic) -> None:
        """The participants metric (a scaling input) comes from each task's non-essential CloudWatch agent
        sidecar; when an agent dies, its task's load silently leaves the metric (and with every agent
        dead, scaling on participants stops). Alarm when fewer than 80 % of the running tasks' scrapes
        arrive over 5 minutes, or none at all (missing data is breaching)."""
        period = Duration.minutes(5)
        samples = relay_metrics.series("relay_participants", self.relays.service_name, "SampleCount").with_(
            period=period
        )
        tasks = cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={
                "ClusterName": self.relays.service.cluster.cluster_name,
                "ServiceName": self.relays.service_name,
            },
            statistic="Average",
            period=period,
        )
        scrapes = int(period.to_seconds() / relay_metrics.SCRAPE_INTERVAL_S)
        reporting = cloudwatch.MathExpression(
            expression=f"IF(FILL(tasks, 0) > 0, FILL(samples, 0) / ({scrapes} * tasks), 1)",
            using_metrics={"samples": samples, "tasks": tasks},
            period=period,
            label="share of running tasks whose relay metrics arrive",
        )
        alarm = reporting.create_alarm(
            self,
            "RelayMetricsMissing",
            alarm_description=(
                f"{self.relay_region}: relay metrics (participants, a scaling input) missing for some "
                "tasks: their CloudWatch agent sidecar is down"
            ),
            threshold=0.8,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(topic.topic))
