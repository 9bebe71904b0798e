"""Readiness and liveness during a drain, in-process (no sockets): what the NLB, ECS, Route 53 and the
clients' probes see while a relay drains.

* ``/healthz`` (readiness): 503 ``draining`` from the SIGTERM on: clients' RTT probes and Route 53 send
  new joins elsewhere. Public through the NLB, so it carries no room or participant counts.
* ``/livez`` (liveness): 200 for as long as the process serves, draining included: the NLB's target
  health and the task's health check, so the NLB keeps the draining task's open connections (the rooms
  it still serves through the grace) and ECS does not replace it mid-drain.
"""

from __future__ import annotations

import asyncio

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_relay.config import RelayConfig
from edge_relay.sfu.seams import CodecCensus
from edge_relay.signalling.server import Relay


def _relay() -> Relay:
    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return Relay(RelayConfig(MEETUP_JOIN_PUBLIC_KEY=public, region="test-1"), CodecCensus())


async def test_a_draining_relay_is_live_but_not_ready() -> None:
    relay = _relay()
    transport = httpx.ASGITransport(app=relay.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
        ready, live = await http.get("/healthz"), await http.get("/livez")
        assert (ready.status_code, ready.json()["status"]) == (200, "ok")
        assert (live.status_code, live.json()["status"]) == (200, "ok")
        assert set(ready.json()) == {"status", "region", "relay_id"}  # no room or participant counts

        relay.rooms.rooms["held"] = object()  # type: ignore[assignment]  # a room the drain waits on
        drain = asyncio.ensure_future(relay.drain(0.6))
        await asyncio.sleep(0.1)
        for _ in range(3):  # all through the grace: not ready, still live
            ready, live = await http.get("/healthz"), await http.get("/livez")
            assert (ready.status_code, ready.json()["status"]) == (503, "draining")
            assert (live.status_code, live.json()["status"]) == (200, "draining")
            assert not drain.done()
            await asyncio.sleep(0.1)
        relay.rooms.rooms.clear()  # the room ends: the drain finishes early
        await asyncio.wait_for(drain, 1)
        assert (await http.get("/livez")).status_code == 200
        assert (await http.get("/healthz")).status_code == 503
