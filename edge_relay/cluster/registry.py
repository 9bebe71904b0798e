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
from typing import Any

from meetup_protocol.registry import ENTRY_TTL_S, KEY, RelayRecord, table_name

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
        table_prefix: str = "meetup-",
        aws_region: str = "us-east-1",
    ) -> None:
        import boto3  # only where the registry is used (honours AWS_ENDPOINT_URL: moto locally)

        self.dynamodb: Any = boto3.client("dynamodb", region_name=aws_region)
        self.table = table_name(table_prefix)
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
        record = RelayRecord(
            relay_id=self.relay_id,
            region=self.region,
            url=self.url,
            gossip=self.gossip,
            participants=self.load(),
            capacity=self.capacity,
            draining=self.draining(),
            heartbeat_at=now,
            expires_at=int(now) + ENTRY_TTL_S,
        )
        self.dynamodb.put_item(TableName=self.table, Item=record.to_item())

    def _records(self) -> list[RelayRecord]:
        records = []
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.table):
            for item in page.get("Items", []):
                try:
                    records.append(RelayRecord.from_item(item))
                except (KeyError, ValueError, TypeError):
                    log.warning("registry entry skipped: not a relay record")
        return records

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
                for r in self._records()
                if r.gossip and r.relay_id != self.relay_id and r.heartbeat_at >= cutoff
            ]

        try:
            return await asyncio.to_thread(scan)
        except Exception as exc:
            log.warning("registry read failed", extra={"error": repr(exc)[:200]})
            return []

    async def deregister(self) -> None:
        try:
            await asyncio.to_thread(
                self.dynamodb.delete_item, TableName=self.table, Key={KEY: {"S": self.relay_id}}
            )
        except Exception as exc:
            log.warning("registry deregistration failed", extra={"error": repr(exc)[:200]})
