"""Heartbeats into the relay registry (DynamoDB), so the API offers this relay to joining clients.

Every ``interval_s`` the relay writes its region, URL, load and draining flag with a fresh timestamp; on
shutdown it deletes its entry. Writes run in a worker thread: boto3 must never block the event loop.
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

    def _beat(self) -> None:
        now = time.time()
        self.model(
            self.relay_id,
            region=self.region,
            url=self.url,
            participants=self.load(),
            capacity=self.capacity,
            draining=self.draining(),
            heartbeat_at=now,
            expires_at=datetime.now(UTC) + timedelta(minutes=5),
        ).save()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._beat)
            except Exception as exc:  # keep serving; the API falls back to other relays meanwhile
                log.warning("registry heartbeat failed", extra={"error": repr(exc)[:200]})
            await asyncio.sleep(self.interval_s)

    async def deregister(self) -> None:
        try:
            await asyncio.to_thread(self.model(self.relay_id).delete)
        except Exception as exc:
            log.warning("registry deregistration failed", extra={"error": repr(exc)[:200]})
