"""Deployment configuration: every knob of the CDK app, read from ``cdk.json`` context in this one place.

Keys are flat (``meetup:regions``, ``meetup:relay:maxTasks`` ...) so that any of them can be overridden on
the command line (``cdk synth -c meetup:regions=us-east-1,eu-west-1``); values given there arrive as
strings and are parsed here. Everything has a default, so a bare ``cdk synth`` works; what a real deploy
must change (domain, hosted zone) is called out in infra/README.md.

The relay endpoints the API hands out are derived here from the same regions and domain that the DNS
records are made of (:meth:`InfraConfig.relay_endpoints`), so the two cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from typing import Any, Protocol

from aws_cdk import aws_logs as logs

#: The AWS documentation's example account: synth works offline with it (its availability zones are
#: committed in cdk.json); a deploy uses the caller's account (``CDK_DEFAULT_ACCOUNT``) or ``meetup:account``.
#: Only with this account may the domain and hosted zone be cdk.json's placeholders (a deploy there fails
#: at once: the CLI refuses credentials of another account, before any stack exists).
PLACEHOLDER_ACCOUNT = "123456789012"
#: Names reserved for documentation and tests (RFC 2606 / RFC 6761): never a deployable domain.
PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org")
PLACEHOLDER_TLDS = ("example", "test", "invalid", "localhost")
#: Fargate sends SIGKILL at most 120 s after SIGTERM, whatever the task definition asks for.
FARGATE_MAX_STOP_TIMEOUT_S = 120
#: Seconds the relay needs after its drain grace: stop the server (<= 5 s), deregister, close sockets.
RELAY_SHUTDOWN_MARGIN_S = 15

#: Fargate task sizes (CPU units -> memory MiB) for the CPU sizes a relay can use (see ``validate``).
FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
}
#: Relay VPCs get 10.<n>.0.0/16, n from this append-only list (never reordered: a VPC's CIDR must not
#: change when regions are added or removed), so regions never overlap and could be peered privately.
RELAY_VPC_REGIONS = (
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
    "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-central-2", "eu-north-1",
    "eu-south-1", "eu-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1",
    "ap-south-2", "ap-east-1", "me-south-1", "me-central-1", "il-central-1", "af-south-1",
    "ca-west-1", "mx-central-1", "ap-southeast-5", "ap-southeast-7",
)  # fmt: skip

#: CloudWatch Logs accepts these retentions only (days -> aws_logs.RetentionDays member name).
LOG_RETENTIONS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS",
}  # fmt: skip

_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_DOMAIN = re.compile(r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$")


class _Context(Protocol):
    def try_get_context(self, key: str) -> Any: ...


_GROUPS = {"api", "lambda", "relay", "backup", "turn"}


def _key(name: str) -> str:
    """``relay_max_tasks`` -> ``meetup:relay:maxTasks`` (the first word before ``_`` may be a group)."""
    group, _, rest = name.partition("_")
    if group in _GROUPS and rest:
        head, *tail = rest.split("_")
        return f"meetup:{group}:{head}{''.join(t.title() for t in tail)}"
    head, *tail = name.split("_")
    return f"meetup:{head}{''.join(t.title() for t in tail)}"


@dataclass(frozen=True)
class InfraConfig:
    """All deployment settings. Field ``relay_max_tasks`` is context key ``meetup:relay:maxTasks``."""

    #: Regions with relays and table replicas; the first one also hosts the API, bucket and backups.
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1")
    #: Public DNS name; the API is ``api.<domain>``, relays ``relay.<domain>`` (latency-routed) and
    #: ``relay-<region>.<domain>``. Its Route 53 public hosted zone must already exist.
    domain: str = "meetup.example.com"
    hosted_zone_id: str = "Z0123456789EXAMPLE0000"
    account: str = ""
    #: Prefix of resource names; stacks are ``<Name>-Data`` etc.
    name: str = "meetup-edge"
    table_prefix: str = "meetup-"
    #: Origins allowed to upload to / download from the media bucket with presigned URLs (browsers).
    cors_origins: tuple[str, ...] = ()
    alarm_email: str = ""
    log_retention_days: int = 30
    #: Recordings move to Infrequent Access after this many days; old object versions expire.
    recordings_ia_days: int = 30
    noncurrent_version_days: int = 30
    api_throttle_rate: int = 200
    api_throttle_burst: int = 400
    api_latency_alarm_ms: int = 1500
    lambda_memory_mib: int = 512
    #: argon2id (19 MiB, t=2) costs ~0.2 s of one core; Lambda's CPU share grows with memory.
    lambda_auth_memory_mib: int = 1024
    lambda_timeout_s: int = 15
    lambda_python: str = "3.13"
    #: One relay process per task, and a process uses one core: more than 1024 (one vCPU) would be paid
    #: for and never used, and the CPU scaling target could never be reached (``validate`` refuses it).
    relay_cpu: int = 1024
    relay_memory_mib: int = 2048
    relay_min_tasks: int = 1
    relay_max_tasks: int = 4
    relay_target_cpu_percent: int = 60
    #: Scale out before a task's ``max_participants`` is reached (target for the per-task average).
    relay_target_participants: int = 150
    relay_max_participants: int = 500
    relay_port: int = 7001
    #: UDP + TCP port of the relays' gossip (membership and room state across regions).
    relay_cluster_port: int = 7946
    #: TLS port where each relay task takes cascade links from other relays (pinned by the gossip).
    relay_cascade_port: int = 7443
    #: UDP ports of ICE host candidates (the kernel's ephemeral range inside each task, by sysctl).
    relay_media_ports: str = "40000-49999"
    relay_drain_grace_s: int = 30
    #: Registry heartbeat of each relay task. Every beat is a write replicated to every region of the
    #: global table: 2 s (the local default) would be regions x tasks x 0.5 replicated writes a second.
    #: The API's freshness window (three beats) is derived from it (``MEETUP_RELAY_HEARTBEAT_S``).
    relay_heartbeat_s: int = 10
    relay_arm64: bool = True
    #: Asked all at once, once per task start (the first answer wins; retried with backoff while none
    #: answers): more than one operator, so that one's outage neither stops nor slows a relay.
    relay_stun_urls: tuple[str, ...] = (
        "stun:stun.l.google.com:19302",
        "stun:stun.cloudflare.com:3478",
        "stun:stun1.l.google.com:19302",
    )
    #: Pinned: ``:latest`` would change the scaling metric's producer under a running service.
    relay_metrics_agent_image: str = "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300062.0b1304"
    #: TURN (coturn) beside the relays in every region: see infra/README.md, "TURN".
    turn_min_tasks: int = 1
    turn_max_tasks: int = 4
    #: coturn is multi-threaded but light: relaying a stream costs a fraction of the relay's forwarding.
    turn_cpu: int = 512
    turn_memory_mib: int = 1024
    turn_target_cpu_percent: int = 60
    #: TURN over UDP and TCP (clients reach it through the regional TURN NLB; TLS arrives on 443).
    turn_port: int = 3478
    #: UDP ports of relayed transport addresses on each task's public IP (coturn min-port/max-port).
    turn_relay_ports: str = "50000-59999"
    #: Days between rotations of the TURN shared secret (rotated without cutting anyone off).
    turn_rotation_days: int = 30
    backup_daily_retention_days: int = 35
    backup_monthly_retention_days: int = 365
    #: Change to mint a new join-token key pair (then restart relays: see infra/README.md).
    key_generation: str = "1"
    #: Run cdk-nag's AwsSolutions pack on every synth (findings fail the synth).
    nag: bool = True

    # --- derived ----------------------------------------------------------------------------------

    @property
    def primary_region(self) -> str:
        return self.regions[0]

    @property
    def api_domain(self) -> str:
        return f"api.{self.domain}"

    @property
    def relay_domain(self) -> str:
        """The latency-routed name: resolves to the nearest healthy region's relays."""
        return f"relay.{self.domain}"

    def relay_regional_domain(self, region: str) -> str:
        return f"relay-{region}.{self.domain}"

    def relay_url(self, region: str) -> str:
        return f"wss://{self.relay_regional_domain(region)}/ws"

    def relay_endpoints(self) -> list[dict[str, str]]:
        """What the API offers with join tokens (``MEETUP_RELAYS``): one entry per region, the same
        names the routing stack points at. The relay registry adds live entries on top of these."""
        return [{"url": self.relay_url(region), "region": region} for region in self.regions]

    def turn_regional_domain(self, region: str) -> str:
        return f"turn-{region}.{self.domain}"

    def turn_urls(self, region: str) -> list[str]:
        """A region's TURN server as clients try it: UDP, TCP (both on ``turn_port``), TLS on 443."""
        host = self.turn_regional_domain(region)
        return [
            f"turn:{host}:{self.turn_port}?transport=udp",
            f"turn:{host}:{self.turn_port}?transport=tcp",
            f"turns:{host}:443?transport=tcp",
        ]

    def turn_endpoints(self) -> str:
        """``MEETUP_TURN_URLS`` for the API: every region's URLs as ``region=url`` (the API puts the
        region of the client's relay first: functions/services/turn.py)."""
        return ",".join(f"{region}={url}" for region in self.regions for url in self.turn_urls(region))

    @property
    def turn_relay_port_range(self) -> tuple[int, int]:
        low, _, high = self.turn_relay_ports.partition("-")
        return int(low), int(high)

    @property
    def media_ports(self) -> tuple[int, int]:
        low, _, high = self.relay_media_ports.partition("-")
        return int(low), int(high)

    def relay_vpc_cidr(self, region: str) -> str:
        return f"10.{RELAY_VPC_REGIONS.index(region) + 1}.0.0/16"

    @property
    def relay_stop_timeout_s(self) -> int:
        """SIGTERM -> SIGKILL: the relay's whole drain must fit, or clients are cut instead of moved."""
        return self.relay_drain_grace_s + RELAY_SHUTDOWN_MARGIN_S

    @property
    def log_retention(self) -> logs.RetentionDays:
        return logs.RetentionDays[LOG_RETENTIONS[self.log_retention_days]]

    @property
    def bucket_name(self) -> str:
        return f"{self.name}-media-{self.account}-{self.primary_region}"

    @property
    def stack_prefix(self) -> str:
        return "".join(part.title() for part in self.name.split("-"))

    def table_name(self, table: str) -> str:
        return f"{self.table_prefix}{table}"

    @property
    def web_origins(self) -> tuple[str, ...]:
        return self.cors_origins or (f"https://{self.domain}", f"https://app.{self.domain}")

    # --- loading ----------------------------------------------------------------------------------

    @classmethod
    def from_context(cls, node: _Context) -> InfraConfig:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = node.try_get_context(_key(f.name))
            if raw is not None:
                values[f.name] = _coerce(raw, f.default)
        if not values.get("account"):
            values["account"] = os.environ.get("CDK_DEFAULT_ACCOUNT") or PLACEHOLDER_ACCOUNT
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Refuse settings that would synthesise but fail (or misbehave) at deploy time."""
        problems: list[str] = []
        if not self.regions or len(set(self.regions)) != len(self.regions):
            problems.append("meetup:regions must list distinct regions")
        problems += [f"not a region: {r!r}" for r in self.regions if not _REGION.match(r)]
        if not _DOMAIN.match(self.domain):
            problems.append(f"meetup:domain is not a DNS name: {self.domain!r}")
        if not re.fullmatch(r"\d{12}", self.account):
            problems.append(f"meetup:account must be 12 digits: {self.account!r}")
        if not _HOSTED_ZONE_ID.match(self.hosted_zone_id):
            problems.append(f"meetup:hostedZoneId is not a Route 53 zone id: {self.hosted_zone_id!r}")
        if self.account != PLACEHOLDER_ACCOUNT:
            problems += self.placeholder_problems()
        low, high = self.media_ports
        if not 1024 <= low < high <= 65535:
            problems.append(
                f"meetup:relay:mediaPorts must be 'LOW-HIGH' above 1023: {self.relay_media_ports!r}"
            )
        low, high = self.turn_relay_port_range
        if not 1024 <= low < high <= 65535 or low <= self.turn_port <= high:
            problems.append(
                f"meetup:turn:relayPorts must be 'LOW-HIGH' above 1023, without meetup:turn:port: "
                f"{self.turn_relay_ports!r}"
            )
        if not 1 <= self.turn_min_tasks <= self.turn_max_tasks:
            problems.append("need 1 <= meetup:turn:minTasks <= meetup:turn:maxTasks")
        if self.turn_cpu not in FARGATE_MEMORY or self.turn_memory_mib not in FARGATE_MEMORY[self.turn_cpu]:
            problems.append(
                f"meetup:turn:cpu/memoryMib: not a Fargate size: {self.turn_cpu}/{self.turn_memory_mib}"
            )
        if not 1 <= self.turn_rotation_days <= 365:
            problems.append("meetup:turn:rotationDays must be within [1, 365]")
        if self.relay_stop_timeout_s > FARGATE_MAX_STOP_TIMEOUT_S:
            problems.append(
                f"meetup:relay:drainGraceS={self.relay_drain_grace_s} leaves no time to shut down before "
                f"Fargate's SIGKILL ({FARGATE_MAX_STOP_TIMEOUT_S} s); use at most "
                f"{FARGATE_MAX_STOP_TIMEOUT_S - RELAY_SHUTDOWN_MARGIN_S}"
            )
        if self.relay_cpu not in FARGATE_MEMORY:
            problems.append(
                f"meetup:relay:cpu={self.relay_cpu}: a relay task runs one process, which uses one core; "
                f"use one of {sorted(FARGATE_MEMORY)} (more tasks, not bigger ones)"
            )
        elif self.relay_memory_mib not in FARGATE_MEMORY[self.relay_cpu]:
            problems.append(
                f"meetup:relay:memoryMib={self.relay_memory_mib} is not a Fargate size for cpu "
                f"{self.relay_cpu}: one of {list(FARGATE_MEMORY[self.relay_cpu])}"
            )
        problems += [
            f"no VPC CIDR for region {r!r}: append it to infra/config.py RELAY_VPC_REGIONS"
            for r in self.regions
            if _REGION.match(r) and r not in RELAY_VPC_REGIONS
        ]
        image = self.relay_metrics_agent_image.rsplit("/", 1)[-1]
        if "@sha256:" not in image and (":" not in image or image.endswith(":latest")):
            problems.append(
                f"meetup:relay:metricsAgentImage must be pinned (a version tag or digest): "
                f"{self.relay_metrics_agent_image!r}"
            )
        if not 1 <= self.relay_heartbeat_s <= 60:
            problems.append("meetup:relay:heartbeatS must be within [1, 60]")
        if self.log_retention_days not in LOG_RETENTIONS:
            problems.append(f"meetup:logRetentionDays must be one of {sorted(LOG_RETENTIONS)}")
        if not 1 <= self.relay_min_tasks <= self.relay_max_tasks:
            problems.append("need 1 <= meetup:relay:minTasks <= meetup:relay:maxTasks")
        if not 0 < self.relay_target_participants <= self.relay_max_participants:
            problems.append("meetup:relay:targetParticipants must be within (0, maxParticipants]")
        if self.lambda_python not in ("3.12", "3.13", "3.14"):
            problems.append("meetup:lambda:python must be 3.12, 3.13 or 3.14")
        if problems:
            raise ValueError("invalid cdk.json context:\n  " + "\n  ".join(problems))

    def placeholder_problems(self) -> list[str]:
        """cdk.json's placeholders (``meetup.example.com``, a zone id with ``EXAMPLE``): fine for a synth
        with the placeholder account, refused for a real one, where the first deploy would fail half-way
        (certificate validation in a zone that is not there) after the retained data stack exists."""
        problems = []
        labels = self.domain.split(".")
        if (
            self.domain.endswith(tuple(f".{d}" for d in PLACEHOLDER_DOMAINS))
            or self.domain in PLACEHOLDER_DOMAINS
            or labels[-1] in PLACEHOLDER_TLDS
        ):
            problems.append(
                f"meetup:domain {self.domain!r} is a placeholder: give your domain (-c meetup:domain=...)"
            )
        if "EXAMPLE" in self.hosted_zone_id.upper():
            problems.append(
                f"meetup:hostedZoneId {self.hosted_zone_id!r} is a placeholder: give the id of the public "
                "hosted zone of meetup:domain (-c meetup:hostedZoneId=Z...)"
            )
        return [
            f"{p} (account {self.account}; placeholders are only accepted with the placeholder account "
            f"{PLACEHOLDER_ACCOUNT}, for a synth without AWS)"
            for p in problems
        ]


def _coerce(raw: Any, default: Any) -> Any:
    """Context from cdk.json keeps its JSON type; from ``-c key=value`` it is a string."""
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, tuple):
        if isinstance(raw, str):
            raw = json.loads(raw) if raw.strip().startswith("[") else [s for s in raw.split(",") if s.strip()]
        return tuple(str(item).strip() for item in raw)
    return str(raw)
