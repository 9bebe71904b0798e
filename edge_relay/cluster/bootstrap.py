"""Start this relay's cluster membership: seeds, advertised addresses, the coordinator.

Seeds are the configured ones plus the relays in the registry (a global table in the cloud, so a new
region finds the others by itself). The advertised gossip address is the bind address, or the public
address the STUN servers see (a cloud task behind its 1:1 NAT), learnt once by the relay and retried
with backoff until some server answers (edge_relay/cluster/public_address.py). Links reach this relay
at its own TLS endpoint when it has one (``cascade_port``, pinned by the gossiped certificate
fingerprint), else at its signalling URL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from edge_relay.cluster.config import ClusterConfig
from edge_relay.cluster.coordinator import Coordinator
from edge_relay.cluster.link_tls import CERT_KEY, LinkIdentity
from edge_relay.cluster.node import Cluster
from edge_relay.cluster.public_address import learn_public_ip
from edge_relay.cluster.registry import Registrar
from edge_relay.config import RelayConfig
from edge_relay.signalling.server import Relay

log = logging.getLogger("edge_relay.cluster")

UNSPECIFIED = ("0.0.0.0", "::", "")  # noqa: S104 (names, not binds)


def link_host(config: RelayConfig, advertised: str | None = None) -> str:
    """The address other relays dial this one at (for its TLS link endpoint)."""
    host = advertised or config.cluster_advertise or config.cluster_bind or config.host
    if host in UNSPECIFIED or host == "stun":
        return advertised or ""
    return host


async def start_cluster(
    config: RelayConfig,
    relay: Relay,
    registrar: Registrar | None,
    identity: LinkIdentity | None,
    public_address: Awaitable[str] | None = None,
) -> Cluster:
    """Join the gossip and let the coordinator link this relay's rooms to the other relays that hold
    the same meetings. ``public_address``: the relay's own learning of its address (edge_relay/main.py),
    awaited rather than asked again; it waits for as long as no STUN server answers."""
    if not config.cluster_secret:
        raise RuntimeError("set MEETUP_CLUSTER_SECRET: relays authenticate gossip and links with it")
    advertise = config.cluster_advertise or None
    if advertise == "stun":  # a cloud task: its public address, as the STUN servers see it
        advertise = await (public_address or learn_public_ip(config.stun_servers))
    seeds = config.seeds + (await registrar.peers() if registrar is not None else [])
    cascade_url, extra = "", {}
    if identity is not None:
        host = link_host(config, advertise)
        if not host:
            raise RuntimeError("set MEETUP_RELAY_CLUSTER_ADVERTISE: links need an address to dial")
        cascade_url = f"wss://{host}:{config.cascade_port}/ws"
        extra[CERT_KEY] = identity.fingerprint
    cluster = Cluster(
        ClusterConfig.preset(
            config.cluster_preset,
            relay.relay_id,
            secrets=(config.cluster_secret,),
            bind_host=config.cluster_bind or config.host,
            bind_port=config.cluster_port,
            advertise_host=advertise,
            seeds=tuple(seeds),
            region=config.region,
            signalling_url=config.url,
            cascade_url=cascade_url,
            extra=extra,
        )
    )
    relay.coordinator = Coordinator(cluster, relay.rooms, config.cluster_secret, config.stun_servers)
    cluster.swim.codec.on_clock = relay.clock.observe_peer  # the other relays' clocks, authenticated
    await cluster.start()
    host, port = cluster.address
    if registrar is not None:
        registrar.gossip = f"{host}:{port}"
    log.info("cluster joined", extra={"gossip": f"{host}:{port}", "seeds": len(seeds), "links": cascade_url})
    return cluster


async def refresh_seeds(cluster: Cluster, registrar: Registrar, interval_s: float = 30.0) -> None:
    """Relays that registered after us are seeds too (a cluster split at start-up finds itself).

    While this relay knows no peer, it looks again sooner (1 s, doubling up to ``interval_s``): two
    relays starting together can each read the registry before the other's gossip address is in it."""
    alone_wait = 1.0
    while True:
        alone = not cluster.members()
        await asyncio.sleep(min(alone_wait, interval_s) if alone else interval_s)
        alone_wait = alone_wait * 2 if alone else 1.0
        cluster.add_seeds(await registrar.peers())
