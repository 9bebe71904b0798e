"""TURN (Debian's coturn) in a relay region: Fargate tasks with public IPs behind a regional NLB.

Why Fargate and not EC2 (infra/README.md, "TURN"): the relays already run there in the same VPC and
cluster, with public IPs per task; the same patterns (logs, scaling, alarms, nag) apply, and there are no
instances to patch. What a TURN server needs from its host, Fargate gives: a public IPv4 per task (the
internet gateway maps it 1:1, ports preserved) for the relayed transport addresses, a pinned UDP port range
(coturn's ``--min-port``/``--max-port``) opened in the security group.

Clients reach the TURN *listener* through the NLB at ``turn-<region>.<domain>``:

* UDP and TCP 3478: a ``TCP_UDP`` listener to the tasks' port 3478 (UDP flows are sticky per 5-tuple;
  the client's address is preserved, so the tasks' security group opens UDP 3478 to any address);
* TLS on 443 (``turns:``): an NLB TLS listener with the region's ACM certificate, forwarding plain TCP to
  the same port 3478. ACM never hands out a private key, so coturn cannot terminate TLS with it; the NLB
  can, and coturn then sees TURN over TCP, which is exactly what is inside the TLS.

Relayed traffic (coturn <-> the relay's media ports) goes straight to and from each task's public IP,
which coturn advertises with ``--external-ip`` (learnt by STUN at start: infra/turn/entrypoint.sh).
"""

from __future__ import annotations

from aws_cdk import Duration
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
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs import fargate
from infra.constructs.buckets import log_bucket
from infra.constructs.lambda_bundle import REPO
from infra.constructs.nag import acknowledge, allow
from infra.constructs.secrets import TURN_SYNC_S, turn_secret_name

#: The image's folder (its whole build context: Dockerfile, entrypoint, health check, secret sync).
IMAGE_DIR = REPO / "infra" / "turn"
#: A stopped task ends its allocations (clients fall back to another path): give the NLB's TCP flows
#: that long to finish before the task gets SIGTERM.
DEREGISTRATION_DELAY_S = 60


class TurnService(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        region: str,
        cluster: ecs.ICluster,
        zone: route53.IHostedZone,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service_name = f"{config.name}-turn"
        self.domain = config.turn_regional_domain(region)
        low, high = config.turn_relay_port_range
        port = config.turn_port
        secret = secretsmanager.Secret.from_secret_name_v2(self, "Secret", turn_secret_name(config.name))

        self.task = fargate.task_definition(
            self, cpu=config.turn_cpu, memory_mib=config.turn_memory_mib, arm64=config.relay_arm64
        )
        image = fargate.image(self, IMAGE_DIR, arm64=config.relay_arm64)
        self.log_group = logs.LogGroup(self, "Logs", retention=config.log_retention)
        self.container = self.task.add_container(
            "turn",
            image=image,
            essential=True,
            environment={
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "TURN_REALM": self.domain,
                # The secret's name (its replica in this region), never its value: the sync reads it.
                "TURN_SECRET_ID": turn_secret_name(config.name),
                "TURN_SYNC_S": str(TURN_SYNC_S),
                "TURN_PORT": str(port),
                "TURN_MIN_PORT": str(low),
                "TURN_MAX_PORT": str(high),
                "TURN_STUN_SERVERS": " ".join(
                    url.removeprefix("stun:") for url in config.relay_stun_urls if url.startswith("stun:")
                ),
            },
            port_mappings=[
                ecs.PortMapping(container_port=port, protocol=ecs.Protocol.UDP, name="turn-udp"),
                ecs.PortMapping(container_port=port, protocol=ecs.Protocol.TCP, name="turn-tcp"),
                ecs.PortMapping(
                    container_port=ecs.ContainerDefinition.CONTAINER_PORT_USE_RANGE,
                    container_port_range=f"{low}-{high}",
                    protocol=ecs.Protocol.UDP,
                ),
            ],
            health_check=ecs.HealthCheck(
                command=["CMD", "/opt/meetup-turn/healthcheck.sh"],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(30),
            ),
            stop_timeout=Duration.seconds(30),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="turn", log_group=self.log_group),
        )
        # The secret sync reads the pending, current and previous versions of this region's replica:
        # GetSecretValue on that one secret, nothing else (DescribeSecret is not needed).
        # (imported by name: its ARN ends in a random suffix, matched by "-??????", as grant_read does)
        allow(self.task.task_role, ["secretsmanager:GetSecretValue"], [f"{secret.secret_arn}-??????"])
        acknowledge(
            self.task.obtain_execution_role(),
            "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken (pulling the TURN image) has no resource-level scoping",
        )
        acknowledge(
            self.task,
            "ECS2",
            "The environment holds configuration only (realm, ports, the secret's name, STUN servers); the "
            "TURN secret itself is read from Secrets Manager at run time by the task role",
        )

        self.nlb_security_group = ec2.SecurityGroup(
            self, "NlbSecurityGroup", vpc=cluster.vpc, description="TURN NLB", allow_all_outbound=False
        )
        for peer_port, why in (
            (ec2.Port.udp(port), "TURN over UDP"),
            (ec2.Port.tcp(port), "TURN over TCP"),
            (ec2.Port.tcp(443), "TURN over TLS (turns:)"),
        ):
            self.nlb_security_group.add_ingress_rule(ec2.Peer.any_ipv4(), peer_port, why)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=cluster.vpc,
            description="TURN tasks: TURN from clients (via the NLB), relayed media from peers",
            allow_all_outbound=True,
        )
        # UDP through the NLB keeps the client's address (not configurable for UDP target groups), so the
        # tasks see clients' own IPs there; TCP (and TLS, decrypted by the NLB) comes from the NLB itself.
        self.security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.udp(port), "TURN over UDP (via the NLB)"
        )
        self.security_group.add_ingress_rule(
            self.nlb_security_group, ec2.Port.tcp(port), "TURN over TCP/TLS from the NLB"
        )
        self.security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.udp_range(low, high), "relayed transports (coturn permissions)"
        )
        self.nlb_security_group.add_egress_rule(self.security_group, ec2.Port.udp(port), "to TURN tasks")
        self.nlb_security_group.add_egress_rule(self.security_group, ec2.Port.tcp(port), "to TURN tasks")
        for group in (self.nlb_security_group, self.security_group):
            acknowledge(
                group,
                "EC23",
                "A TURN server serves clients on any network by design: only TURN's port (3478 UDP/TCP, TLS "
                "443 at the NLB) and coturn's relayed UDP range are open. Every allocation is authenticated "
                "with a short-lived HMAC credential (TURN REST API); coturn forwards from a peer only to an "
                "allocation that created a permission for it, and never into private or loopback networks",
            )

        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            service_name=self.service_name,
            task_definition=self.task,
            assign_public_ip=True,  # the relayed transport addresses: see the module's docstring
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[self.security_group],
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(60),
            enable_execute_command=False,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.nlb = self._load_balancer(config, region, zone)
        self._scaling(config)
        self._alarms(region, alarm_topic)

    def _load_balancer(
        self, config: InfraConfig, region: str, zone: route53.IHostedZone
    ) -> elbv2.NetworkLoadBalancer:
        port = config.turn_port
        vpc = self.service.cluster.vpc
        nlb = elbv2.NetworkLoadBalancer(
            self,
            "Nlb",
            vpc=vpc,
            internet_facing=True,
            cross_zone_enabled=True,
            security_groups=[self.nlb_security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        )
        nlb.log_access_logs(log_bucket(self, "NlbLogs", expire_days=90), prefix=f"turn-nlb-{region}")
        health = elbv2.HealthCheck(
            protocol=elbv2.Protocol.TCP,
            port=str(port),
            interval=Duration.seconds(10),
            timeout=Duration.seconds(5),
            healthy_threshold_count=2,
            unhealthy_threshold_count=2,
        )

        def target_group(
            name: str, protocol: elbv2.Protocol, ecs_protocol: ecs.Protocol
        ) -> elbv2.NetworkTargetGroup:
            return elbv2.NetworkTargetGroup(
                self,
                name,
                vpc=vpc,
                port=port,
                protocol=protocol,
                target_type=elbv2.TargetType.IP,
                deregistration_delay=Duration.seconds(DEREGISTRATION_DELAY_S),
                health_check=health,
                targets=[
                    self.service.load_balancer_target(
                        container_name="turn", container_port=port, protocol=ecs_protocol
                    )
                ],
            )

        self.udp_tcp_targets = target_group("TurnUdpTcp", elbv2.Protocol.TCP_UDP, ecs.Protocol.UDP)
        self.tls_targets = target_group("TurnTls", elbv2.Protocol.TCP, ecs.Protocol.TCP)
        nlb.add_listener(
            "Turn", port=port, protocol=elbv2.Protocol.TCP_UDP, default_target_groups=[self.udp_tcp_targets]
        )
        certificate = acm.Certificate(
            self, "Certificate", domain_name=self.domain, validation=acm.CertificateValidation.from_dns(zone)
        )
        nlb.add_listener(
            "Turns",
            port=443,
            protocol=elbv2.Protocol.TLS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            default_target_groups=[self.tls_targets],
        )
        route53.ARecord(
            self,
            "Alias",
            zone=zone,
            record_name=self.domain,
            target=route53.RecordTarget.from_alias(targets.LoadBalancerTarget(nlb)),
        )
        return nlb

    def _scaling(self, config: InfraConfig) -> None:
        """Out fast on CPU; in slowly: a stopped task ends the allocations on it (clients fall back)."""
        scaling = self.service.auto_scale_task_count(
            min_capacity=config.turn_min_tasks, max_capacity=config.turn_max_tasks
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=config.turn_target_cpu_percent,
            scale_out_cooldown=Duration.minutes(1),
            scale_in_cooldown=Duration.minutes(15),
        )

    def _alarms(self, region: str, topic: sns.ITopic) -> None:
        """As for the relays: no healthy TURN task behind a listener means clients on UDP-blocking
        networks cannot join in this region."""
        for name, group in (("NoHealthyTurn", self.udp_tcp_targets), ("NoHealthyTurnTls", self.tls_targets)):
            alarm = cloudwatch.Metric(
                namespace="AWS/NetworkELB",
                metric_name="HealthyHostCount",
                dimensions_map={
                    "LoadBalancer": self.nlb.load_balancer_full_name,
                    "TargetGroup": group.target_group_full_name,
                },
                statistic="Minimum",
                period=Duration.minutes(1),
            ).create_alarm(
                self,
                name,
                alarm_description=f"{region}: no healthy TURN task ({group.node.id})",
                threshold=1,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
