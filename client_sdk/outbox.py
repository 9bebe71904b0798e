"""Chat and reactions that must reach the API exactly once, even across a dropped network.

Each item gets its idempotency key when it is queued; the outbox retries with that same key until the API
stores it (a retry after a lost answer returns the stored item, never a duplicate) or refuses it for good
(the meeting ended, the text is invalid). Items are sent in order, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from client_sdk.client import Client, new_idempotency_key
from client_sdk.errors import ConnectionFailed, MeetupError, RateLimited, ServerError

log = logging.getLogger("client_sdk.outbox")

Kind = Literal["chat", "reaction"]


@dataclass
class OutboxItem:
    kind: Kind
    body: str  # the text, or the emoji
    idempotency_key: str = field(default_factory=new_idempotency_key)
    attempts: int = 0
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Outbox:
    def __init__(
        self,
        client: Client,
        meeting_id: str,
        on_stored: Callable[[OutboxItem, Any], Awaitable[None]],
        max_backoff_s: float = 5.0,
    ) -> None:
        self.client = client
        self.meeting_id = meeting_id
        self.on_stored = on_stored
        self.max_backoff_s = max_backoff_s
        self.pending: list[OutboxItem] = []
        self._wake = asyncio.Event()
        self._worker = asyncio.ensure_future(self._run())

    def put(self, kind: Kind, body: str) -> OutboxItem:
        item = OutboxItem(kind, body)
        self.pending.append(item)
        self._wake.set()
        return item

    async def _send(self, item: OutboxItem) -> Any:
        if item.kind == "chat":
            return await self.client.send_chat(self.meeting_id, item.body, item.idempotency_key)
        return await self.client.react(self.meeting_id, item.body, item.idempotency_key)

    async def _run(self) -> None:
        backoff = 0.25
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = self.pending[0]
            item.attempts += 1
            try:
                stored = await self._send(item)
            except (ConnectionFailed, ServerError, RateLimited) as exc:  # worth retrying, same key
                delay = exc.retry_after if isinstance(exc, RateLimited) else backoff
                log.info("outbox retry", extra={"attempt": item.attempts, "in_s": delay})
                await asyncio.sleep(delay)
                backoff = min(self.max_backoff_s, backoff * 2)
                continue
            except Exception as exc:  # refused for good (or an answer the SDK cannot read): report, move on
                if not isinstance(exc, MeetupError):
                    log.exception("outbox send failed")
                self.pending.pop(0)
                if not item.done.done():
                    item.done.set_exception(exc)
                continue
            backoff = 0.25
            self.pending.pop(0)
            if not item.done.done():
                item.done.set_result(stored)
            try:
                await self.on_stored(item, stored)
            except Exception:
                log.exception("outbox callback failed")

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until everything queued so far was stored or refused; TimeoutError after ``timeout_s``
        (the items stay queued: giving up waiting cancels nothing)."""
        futures = [item.done for item in self.pending]
        if futures:
            _, waiting = await asyncio.wait(futures, timeout=timeout_s)
            if waiting:
                raise TimeoutError(f"{len(waiting)} outbox items not stored within {timeout_s} s")

    async def close(self) -> None:
        self._worker.cancel()
        for item in self.pending:
            if not item.done.done():
                item.done.cancel()
