"""``python -m edge_relay``: one relay process (one core). Run one per core behind the registry."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

import uvicorn

from edge_relay.cluster.config import ClusterConfig
from edge_relay.cluster.coordinator import Coordinator
from edge_relay.cluster.node import Cluster
from edge_relay.cluster.public_address import public_ip
from edge_relay.cluster.registry import Registrar
from edge_relay.config import RelayConfig
from edge_relay.ops import logs
from edge_relay.sfu import seams
from edge_relay.signalling.protocol import MAX_MESSAGE_BYTES
from edge_relay.signalling.server import Relay

log = logging.getLogger("edge_relay")


async def serve(config: RelayConfig) -> None:
    seams.check_aiortc_version()
    census = seams.CodecCensus()
    census.install()
    if config.ice_addresses:
        seams.use_ice_host_addresses(a.strip() for a in config.ice_addresses.split(",") if a.strip())
    relay = Relay(config, census)
    server = uvicorn.Server(
        uvicorn.Config(
            relay.app,
            host=config.host,
            port=config.port,
            log_level="warning",
            access_log=False,
            ws_max_size=MAX_MESSAGE_BYTES + 1024,
            ws_ping_interval=config.ping_interval_s,
            ws_ping_timeout=config.ping_timeout_s,
            lifespan="off",
        )
    )
    # uvicorn would take SIGTERM/SIGINT for itself (and stop at once); the relay drains first instead.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    async def shut_down(grace_s: float) -> None:
        await relay.drain(grace_s)
        stop.set()

    # SIGTERM (ECS, Kubernetes): drain for the grace period. SIGINT (Ctrl-C): move everyone now.
    pending: set[asyncio.Task[None]] = set()

    def on_signal(grace_s: float) -> None:
        pending.add(asyncio.ensure_future(shut_down(grace_s)))

    loop.add_signal_handler(signal.SIGTERM, on_signal, config.drain_grace_s)
    loop.add_signal_handler(signal.SIGINT, on_signal, 0.0)
    tasks = [
        asyncio.ensure_future(server.serve()),
        asyncio.ensure_future(relay.rooms.tick_forever()),
        asyncio.ensure_future(relay.lag.run()),
    ]
    registrar = None
    if config.registry:
        registrar = Registrar(
            relay.relay_id,
            config.region,
            config.url,
            config.max_participants,
            load=lambda: relay.rooms.participant_count,
            draining=lambda: relay.draining,
            interval_s=config.heartbeat_s,
        )
    cluster = None
    if config.cluster:
        cluster = await start_cluster(config, relay, registrar)
        tasks.append(asyncio.ensure_future(relay.coordinator.run()))  # type: ignore[union-attr]
        if registrar is not None:
            tasks.append(asyncio.ensure_future(_refresh_seeds(cluster, registrar)))
    if registrar is not None:
        tasks.append(asyncio.ensure_future(registrar.run()))
    log.info("relay up", extra={"url": config.url, "region": config.region, "relay_id": relay.relay_id})
    await stop.wait()
    server.should_exit = True
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(tasks[0], timeout=5)
    for task in tasks[1:]:
        task.cancel()
    if cluster is not None:
        await cluster.stop(leave=True)
    if registrar is not None:
        await registrar.deregister()


async def start_cluster(config: RelayConfig, relay: Relay, registrar: Registrar | None) -> Cluster:
    """Join the gossip (seeds: configured, plus the registry's relays) and let the coordinator link
    this relay's rooms to the other relays holding the same meetings."""
    if not config.cluster_secret:
        raise RuntimeError("set MEETUP_CLUSTER_SECRET: relays authenticate gossip and links with it")
    seeds = config.seeds + (await registrar.peers() if registrar is not None else [])
    advertise = config.cluster_advertise or None
    if advertise == "stun":  # a cloud task: its public address, as the STUN servers see it
        advertise = await public_ip(config.stun_servers)
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
        )
    )
    relay.coordinator = Coordinator(cluster, relay.rooms, config.cluster_secret, config.stun_servers)
    await cluster.start()
    host, port = cluster.address
    if registrar is not None:
        registrar.gossip = f"{host}:{port}"
    log.info("cluster joined", extra={"gossip": f"{host}:{port}", "seeds": len(seeds)})
    return cluster


async def _refresh_seeds(cluster: Cluster, registrar: Registrar, interval_s: float = 30.0) -> None:
    """Relays that registered after us are seeds too (a cluster split at start-up finds itself)."""
    while True:
        await asyncio.sleep(interval_s)
        cluster.add_seeds(await registrar.peers())


def main() -> None:
    parser = argparse.ArgumentParser(description="meetup-edge relay (WebRTC SFU)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--region")
    args = parser.parse_args()
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    config = RelayConfig(**overrides)
    logs.configure(region=config.region)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()
