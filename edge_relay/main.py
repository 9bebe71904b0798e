"""``python -m edge_relay``: one relay process (one core). Run one per core behind the registry."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import Any

import uvicorn

from edge_relay.cluster.bootstrap import link_host, refresh_seeds, start_cluster
from edge_relay.cluster.link_tls import LinkIdentity
from edge_relay.cluster.node import Cluster
from edge_relay.cluster.public_address import learn_public_ip
from edge_relay.cluster.registry import Registrar
from edge_relay.config import RelayConfig
from edge_relay.ops import logs
from edge_relay.sfu import ice_guard, seams
from edge_relay.signalling.server import Relay
from meetup_protocol.signalling import MAX_MESSAGE_BYTES

log = logging.getLogger("edge_relay")


async def serve(config: RelayConfig) -> None:
    seams.check_aiortc_version()
    census = seams.CodecCensus()
    census.install()
    ice_guard.install()
    if config.ice_addresses:
        seams.use_ice_host_addresses(a.strip() for a in config.ice_addresses.split(",") if a.strip())
    relay = Relay(config, census)
    server = _server(relay.app, config, config.port)
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
    tasks: list[asyncio.Task[Any]] = [
        asyncio.ensure_future(server.serve()),
        asyncio.ensure_future(relay.rooms.tick_forever()),
        asyncio.ensure_future(relay.lag.run()),
    ]
    # Behind a 1:1 NAT (a cloud task): learn the public address once, in the background, retrying until
    # a STUN server answers; ICE then announces it on every connection without asking STUN again.
    public_address: asyncio.Task[str] | None = None
    if config.stun_servers:
        public_address = asyncio.ensure_future(_learn_public_address(config.stun_servers))
        tasks.append(public_address)
    registrar = None
    if config.registry:
        registrar = Registrar(
            relay.relay_id,
            config.region,
            config.url,
            config.max_participants,
            load=lambda: relay.rooms.participant_count,
            draining=lambda: relay.draining or relay.clock.skewed,  # takes no joins: not offered
            interval_s=config.heartbeat_s,
            table_prefix=config.table_prefix,
            aws_region=config.aws_region,
        )
    clusters: list[Cluster] = []  # the one cluster, once joined
    link_server, identity, joining = None, None, None
    if config.cluster:
        if not config.cluster_secret:
            raise RuntimeError("set MEETUP_CLUSTER_SECRET: relays authenticate gossip and links with it")
        if config.cascade_port:  # links reach this very process, over TLS pinned through the gossip
            identity = LinkIdentity.generate(link_host(config))
            certfile, keyfile = identity.write()
            link_server = _server(relay.link_app, config, config.cascade_port, certfile, keyfile)
            tasks.append(asyncio.ensure_future(link_server.serve()))

        async def run_cluster() -> None:
            """Joins once the public address is known (no exit while STUN is silent: the relay serves
            its own region meanwhile, and the registry still lists it)."""
            cluster = await start_cluster(config, relay, registrar, identity, public_address)
            clusters.append(cluster)
            if registrar is not None:  # our gossip address in the registry now, not a heartbeat later:
                await registrar.beat_now()  # a relay starting next finds us as a seed
            jobs = [relay.coordinator.run()]  # type: ignore[union-attr]
            if registrar is not None:
                jobs.append(refresh_seeds(cluster, registrar))
            await asyncio.gather(*jobs)

        joining = asyncio.ensure_future(run_cluster())
        joining.add_done_callback(lambda job: _stop_on_error(job, stop))
        tasks.append(joining)
    if registrar is not None:
        tasks.append(asyncio.ensure_future(registrar.run()))
    log.info("relay up", extra={"url": config.url, "region": config.region, "relay_id": relay.relay_id})
    await stop.wait()
    server.should_exit = True
    if link_server is not None:
        link_server.should_exit = True
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(tasks[0], timeout=5)
    for task in tasks[1:]:
        task.cancel()
    for cluster in clusters:
        await cluster.stop(leave=True)
    if registrar is not None:
        await registrar.deregister()
    if joining is not None and joining.done() and not joining.cancelled() and joining.exception():
        raise RuntimeError("the relay could not join its cluster") from joining.exception()


async def _learn_public_address(stun_urls: list[str]) -> str:
    address = await learn_public_ip(stun_urls)
    seams.announce_public_address(address)
    return address


def _stop_on_error(job: asyncio.Future[None], stop: asyncio.Event) -> None:
    """A configuration error in the cluster's start (not a silent STUN server): stop the process."""
    if not job.cancelled() and job.exception() is not None:
        log.error("cluster failed", exc_info=job.exception())
        stop.set()


def _server(
    app: Any, config: RelayConfig, port: int, certfile: str | None = None, keyfile: str | None = None
) -> uvicorn.Server:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=port,
            log_level="warning",
            access_log=False,
            ws_max_size=MAX_MESSAGE_BYTES + 1024,
            ws_ping_interval=config.ping_interval_s,
            ws_ping_timeout=config.ping_timeout_s,
            lifespan="off",
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
    )
    # uvicorn would take SIGTERM/SIGINT for itself (and stop at once); the relay drains first instead.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


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
