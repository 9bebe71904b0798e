"""Relay configuration, from the environment (``MEETUP_RELAY_*``) in this one place."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RelayConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEETUP_RELAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 7001
    region: str = "local"
    #: The URL clients are given for this relay (defaults to ws://host:port/ws).
    public_url: str | None = None
    #: Ed25519 public key (PEM) that verifies join tokens; shared name with the API's configuration.
    join_public_key: str = Field(default="", validation_alias="MEETUP_JOIN_PUBLIC_KEY")
    #: Addresses ICE offers as host candidates (comma list); empty: every interface but loopback.
    ice_addresses: str = ""
    #: STUN servers (comma list of stun:host:port). Behind a 1:1 NAT (a Fargate task's public IP) they
    #: give the relay its public address as a server-reflexive candidate; empty on a LAN or loopback.
    stun_urls: str = ""
    #: Seconds a joining client has to send its ``join`` message, and to answer an offer.
    join_timeout_s: float = 10.0
    answer_timeout_s: float = 15.0
    #: WebSocket keepalive: a client that stops answering pings is gone within interval + timeout.
    ping_interval_s: float = 2.0
    ping_timeout_s: float = 2.5
    #: Per connection: messages allowed per second (burst twice that) before they are refused.
    messages_per_second: float = 20.0
    #: On SIGTERM: refuse new joins, keep serving rooms this long, then tell clients to move.
    drain_grace_s: float = 30.0
    #: Who may read /metrics (CIDR list): the task's own scraper by default. Signalling is public (the
    #: load balancer forwards the port), and room and participant counts are nobody else's business.
    metrics_from: str = "127.0.0.0/8,::1/128"
    #: Participants per relay process beyond which joins are refused (capacity, not the meeting limit).
    max_participants: int = 500
    #: Delay added to /healthz answers, emulating distance for the SDK's RTT probe in tests and demos on
    #: one machine (no netem here). Always 0 in production.
    probe_delay_ms: float = 0.0
    #: Cluster: this relay's id (default: region + random), and the secret relays share to link up.
    relay_id: str = ""
    cluster_secret: str = Field(default="", validation_alias="MEETUP_CLUSTER_SECRET")
    #: Gossip cluster (membership, room state, cascades to relays holding the same meeting): on when
    #: ``cluster`` is set and ``MEETUP_CLUSTER_SECRET`` is shared by every relay.
    cluster: bool = False
    #: Timing preset: ``local`` (one machine, tests), ``lan`` (one region), ``wan`` (across regions).
    cluster_preset: str = "lan"
    #: UDP and TCP port of the gossip (memberlist's default); bind address defaults to ``host``.
    cluster_port: int = 7946
    cluster_bind: str = ""
    #: Address the other relays reach this one at; defaults to the bind address; ``stun``: the public
    #: address the STUN servers (``stun_urls``) see, for a cloud task behind its 1:1 NAT.
    cluster_advertise: str = ""
    #: Initial peers ("host:port" comma list); with ``registry`` the registered relays are seeds too.
    cluster_seeds: str = ""
    #: A second port serving ``/ws`` over TLS (a certificate made at start-up, its fingerprint gossiped),
    #: where the other relays dial links to this very process; 0: they dial ``url`` (fine with one
    #: relay per URL; behind a load balancer with several tasks, a link could reach the wrong one).
    cascade_port: int = 0
    #: Heartbeat into the relay registry (DynamoDB table ``MEETUP_TABLE_PREFIX`` + "relays").
    registry: bool = False
    heartbeat_s: float = 2.0
    #: Where the registry table is: the API's names for the same settings (the endpoint, moto's on the
    #: local stack, comes from boto3's standard ``AWS_ENDPOINT_URL``).
    table_prefix: str = Field(default="meetup-", validation_alias="MEETUP_TABLE_PREFIX")
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")

    @property
    def stun_servers(self) -> list[str]:
        return [u.strip() for u in self.stun_urls.split(",") if u.strip()]

    @property
    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [
            ipaddress.ip_network(n.strip(), strict=False) for n in self.metrics_from.split(",") if n.strip()
        ]

    @property
    def seeds(self) -> list[str]:
        return [s.strip() for s in self.cluster_seeds.split(",") if s.strip()]

    @property
    def gossip_address(self) -> str:
        """``host:port`` other relays use as a seed for this one."""
        return f"{self.cluster_advertise or self.cluster_bind or self.host}:{self.cluster_port}"

    @property
    def url(self) -> str:
        return self.public_url or f"ws://{self.host}:{self.port}/ws"


@lru_cache
def get_config() -> RelayConfig:
    return RelayConfig()
