"""The relay as an ECS Fargate service: task, security group, drain timing, auto scaling.

Media: each task has its own public IP and takes WebRTC media straight on it (UDP, ICE); a load balancer
cannot carry ICE (see infra/README.md). The kernel's ephemeral port range inside the task is pinned by
sysctl to ``meetup:relay:mediaPorts``, so aioice's sockets (bound to port 0) land in a known range that
the security group opens, and nothing else is reachable. Signalling (WebSocket) arrives through the
regional NLB, which terminates TLS.

Drain: on scale-in or deployment ECS deregisters the task from the NLB (no new connections; open ones
stay while the target is healthy: its health check is liveness, ``/livez``, which a draining relay still
answers 200), waits ``deregistration_delay`` (grace + margin), then sends SIGTERM. The relay then refuses
joins (``/healthz``, readiness, says 503), serves its rooms for ``MEETUP_RELAY_DRAIN_GRACE_S`` and tells
clients to migrate; ``stop_timeout`` (grace + a margin) is when SIGKILL would cut whatever is left.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import InfraConfig
from infra.constructs import fargate, relay_metrics
from infra.constructs.nag import acknowledge, allow
from infra.constructs.tables import table_specs

#: Liveness (``/livez``): a draining task is alive; ECS must not replace it for refusing joins.
HEALTH_PROBE = (
    "import os, urllib.request as u; "
    "u.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('MEETUP_RELAY_PORT', '7001'), timeout=2)"
)
#: What a relay process writes in the registry table (edge_relay/cluster/registry.py): its own entry,
#: saved on every heartbeat and deleted on shutdown (scoped to its region's ids).
REGISTRY_ACTIONS = ("dynamodb:PutItem", "dynamodb:DeleteItem")
#: What it reads there: ``Registrar.peers()`` scans the (global) table for the other relays' gossip
#: addresses, the seeds of the cluster. Without it every task stays alone and the cluster never forms.
REGISTRY_READ_ACTIONS = ("dynamodb:Scan",)


class RelayService(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        region: str,
        cluster: ecs.ICluster,
        image: ecs.ContainerImage,
        join_public_key: secretsmanager.ISecret,
        cluster_secret: secretsmanager.ISecret,
        signalling_from: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service_name = f"{config.name}-relay"
        low, high = config.media_ports
        retention = config.log_retention

        self.task = fargate.task_definition(
            self, cpu=config.relay_cpu, memory_mib=config.relay_memory_mib, arm64=config.relay_arm64
        )
        relay_logs = logs.LogGroup(self, "Logs", retention=retention)
        self.container = self.task.add_container(
            "relay",
            image=image,
            essential=True,
            environment={
                "AWS_REGION": region,
                "MEETUP_RELAY_HOST": "0.0.0.0",  # noqa: S104 (inside the task's own network namespace)
                "MEETUP_RELAY_PORT": str(config.relay_port),
                "MEETUP_RELAY_REGION": region,
                "MEETUP_RELAY_PUBLIC_URL": config.relay_url(region),
                "MEETUP_RELAY_DRAIN_GRACE_S": str(config.relay_drain_grace_s),
                "MEETUP_RELAY_MAX_PARTICIPANTS": str(config.relay_max_participants),
                "MEETUP_RELAY_REGISTRY": "true",
                "MEETUP_RELAY_HEARTBEAT_S": str(config.relay_heartbeat_s),
                "MEETUP_TABLE_PREFIX": config.table_prefix,
                # For the public (server-reflexive) ICE candidate: see infra/README.md, "Media and ICE".
                "MEETUP_RELAY_STUN_URLS": ",".join(config.relay_stun_urls),
                # One cluster across regions: seeds from the (global) registry, the public address
                # learnt by STUN, memberlist's WAN timing. See infra/README.md, "Regions".
                "MEETUP_RELAY_CLUSTER": "true",
                "MEETUP_RELAY_CLUSTER_PRESET": "wan",
                "MEETUP_RELAY_CLUSTER_BIND": "0.0.0.0",  # noqa: S104 (the task's own network namespace)
                "MEETUP_RELAY_CLUSTER_PORT": str(config.relay_cluster_port),
                "MEETUP_RELAY_CLUSTER_ADVERTISE": "stun",
                "MEETUP_RELAY_CASCADE_PORT": str(config.relay_cascade_port),
            },
            secrets={
                "MEETUP_JOIN_PUBLIC_KEY": ecs.Secret.from_secrets_manager(join_public_key),
                "MEETUP_CLUSTER_SECRET": ecs.Secret.from_secrets_manager(cluster_secret),
            },
            port_mappings=[
                ecs.PortMapping(
                    container_port=config.relay_port, protocol=ecs.Protocol.TCP, name="signalling"
                ),
                ecs.PortMapping(container_port=config.relay_cluster_port, protocol=ecs.Protocol.UDP),
                ecs.PortMapping(
                    container_port=config.relay_cascade_port, protocol=ecs.Protocol.TCP, name="links"
                ),
                ecs.PortMapping(
                    container_port=config.relay_cluster_port, protocol=ecs.Protocol.TCP, name="gossip"
                ),
                ecs.PortMapping(
                    container_port=ecs.ContainerDefinition.CONTAINER_PORT_USE_RANGE,
                    container_port_range=f"{low}-{high}",
                    protocol=ecs.Protocol.UDP,
                ),
            ],
            system_controls=[
                ecs.SystemControl(namespace="net.ipv4.ip_local_port_range", value=f"{low} {high}")
            ],
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", HEALTH_PROBE],
                interval=Duration.seconds(10),
                timeout=Duration.seconds(3),
                retries=3,
                start_period=Duration.seconds(20),
            ),
            stop_timeout=Duration.seconds(config.relay_stop_timeout_s),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="relay", log_group=relay_logs),
        )
        self._metrics_sidecar(config, retention)
        acknowledge(
            self.task.obtain_execution_role(),
            "IAM5[Resource::*]",
            "ecr:GetAuthorizationToken (pulling the relay image) has no resource-level scoping",
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=cluster.vpc,
            description="relay tasks: signalling from the NLB, WebRTC media (UDP) from anyone",
            allow_all_outbound=True,
        )
        self.security_group.add_ingress_rule(
            signalling_from, ec2.Port.tcp(config.relay_port), "WebSocket signalling and health checks"
        )
        self.security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.udp_range(low, high), "WebRTC media: ICE/DTLS/SRTP"
        )
        gossip = config.relay_cluster_port
        self.security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.udp(gossip), "relay gossip (other regions' relays)"
        )
        self.security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(gossip), "relay gossip push-pull (other regions' relays)"
        )
        self.security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(config.relay_cascade_port),
            "cascade links from other relays (TLS, pinned)",
        )
        acknowledge(
            self.security_group,
            "EC23",
            "WebRTC media must reach the relay from any client address; only the pinned UDP ICE port range "
            "is open, and every packet there is ICE-authenticated (STUN integrity) then DTLS/SRTP. The "
            "gossip port takes other regions' relays, whose public IPs change with every task: every "
            "message is AES-GCM sealed with the cluster secret, fresh and accepted once (replay window). "
            "The cascade port takes links from those relays: TLS with a certificate pinned through the "
            "gossip, and a link token signed with the cluster secret before anything else is accepted",
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            service_name=self.service_name,
            task_definition=self.task,
            assign_public_ip=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[self.security_group],
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(60),
            enable_execute_command=False,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self._grant_registry(config, region)
        self._scaling(config)

    def _metrics_sidecar(self, config: InfraConfig, retention: logs.RetentionDays) -> None:
        metrics_logs = logs.LogGroup(self, "MetricsLogs", retention=retention)
        self.task.add_container(
            "metrics",
            image=ecs.ContainerImage.from_registry(config.relay_metrics_agent_image),
            essential=False,  # losing metrics must never take media down
            memory_reservation_mib=64,
            environment={
                "CW_CONFIG_CONTENT": relay_metrics.agent_config(metrics_logs.log_group_name),
                "PROMETHEUS_CONFIG_CONTENT": relay_metrics.prometheus_config(
                    config.relay_port, self.service_name
                ),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="metrics", log_group=metrics_logs),
        )
        allow(
            self.task.task_role,
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [metrics_logs.log_group_arn],
        )
        acknowledge(
            self.task,
            "ECS2",
            "The environment holds configuration only (ports, region, URLs, table prefix, agent config); "
            "the keys, MEETUP_JOIN_PUBLIC_KEY and MEETUP_CLUSTER_SECRET, come from Secrets Manager",
        )

    def _grant_registry(self, config: InfraConfig, region: str) -> None:
        """Heartbeat into this region's replica of the registry, only under this region's ids
        (``<region>-<uuid>``): a compromised relay cannot forge or delete another region's entries.
        Read every entry (any region's: they are the gossip seeds), which a Scan cannot narrow by key."""
        table = Stack.of(self).format_arn(
            service="dynamodb", resource="table", resource_name=config.table_name("relays")
        )
        allow(
            self.task.task_role,
            REGISTRY_ACTIONS,
            [table],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{region}-*"]}},
        )
        allow(self.task.task_role, REGISTRY_READ_ACTIONS, [table, *self._index_arns(config, table)])

    @staticmethod
    def _index_arns(config: InfraConfig, table: str) -> list[str]:
        """The registry's secondary indexes, if the model has any (a scan or query may name one)."""
        spec = next((s for s in table_specs() if s.name == "relays"), None)
        return [f"{table}/index/{name}" for name in (spec.index_names if spec else ())]

    def _scaling(self, config: InfraConfig) -> None:
        """Out fast (a minute) on CPU or participants per task; in slowly (scale-in moves people)."""
        scaling = self.service.auto_scale_task_count(
            min_capacity=config.relay_min_tasks, max_capacity=config.relay_max_tasks
        )
        scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=config.relay_target_cpu_percent,
            scale_out_cooldown=Duration.minutes(1),
            scale_in_cooldown=Duration.minutes(15),
        )
        scaling.scale_to_track_custom_metric(
            "Participants",
            metric=relay_metrics.participants_per_task(self.service_name),
            target_value=config.relay_target_participants,
            scale_out_cooldown=Duration.minutes(1),
            scale_in_cooldown=Duration.minutes(15),
        )
