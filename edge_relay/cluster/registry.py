"""Heartbeats into the relay registry (DynamoDB), so the API offers this relay to joining clients.

Every ``interval_s`` the relay writes its region, URL, gossip address, load and draining flag with a fresh
timestamp; on shutdown it deletes its entry. The registry is also where a relay finds its first cluster
peers (``peers``): in the cloud, the seeds of the gossip. Calls run in a worker thread: boto3 must never
block the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

log = logging.getLogger("edge_relay.registry")


class Registrar:
    def __init__(
        self,
        relay_id: str,
        region: str,
        url: str,
        capacity: int,
        load: Callable[[], int],
        draining: Callable[[], bool],
        interval_s: float = 2.0,
        gossip: str | None = None,
    ) -> None:
        from functions.models import RelayModel  # PynamoDB only where the registry is used

        self.model = RelayModel
        self.relay_id = relay_id
        self.region = region
        self.url = url
        self.capacity = capacity
        self.load = load
        self.draining = draining
        self.interval_s = interval_s
        self.gossip = gossip

    def _beat(self) -> None:
        now = time.time()
        self.model(
            self.relay_id,
            region=self.region,
            url=self.url,
            gossip=self.gossip,
            participants=self.load(),
            capacity=self.capacity,
            draining=self.draining(),
            heartbeat_at=now,
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
        ).save()

    async def beat_now(self) -> None:
        try:
            await asyncio.to_thread(self._beat)
        except Exception as exc:  # keep serving; the API falls back to other relays meanwhile
            log.warning("registry heartbeat failed", extra={"error": repr(exc)[:200]})

    async def run(self) -> None:
        while True:
            await self.beat_now()
            await asyncio.sleep(self.interval_s)

    async def peers(self, fresh_s: float | None = None) -> list[str]:
        """Gossip addresses of the other relays that heartbeat recently (any region: the table is
        global; fresh: within three heartbeats, at least 30 s). Empty when the registry cannot be read:
        the configured seeds still apply."""
        window = fresh_s if fresh_s is not None else max(30.0, 3 * self.interval_s)

        def scan() -> list[str]:
            cutoff = time.time() - window
            return [
                r.gossip
                for r in self.model.scan()
                if r.gossip and r.relay_id != self.relay_id and r.heartbeat_at >= cutoff
            ]

        try:
            return await asyncio.to_thread(scan)
        except Exception as exc:
            log.warning("registry read failed", extra={"error": repr(exc)[:200]})
            return []

    async def deregister(self) -> None:
        try:
            await asyncio.to_thread(self.model(self.relay_id).delete)
        except Exception as exc:
            log.warning("registry deregistration failed", extra={"error": repr(exc)[:200]})
