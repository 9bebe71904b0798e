"""Helpers for media tests: join a meeting through the API and a real relay, and count decoded frames."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from client_sdk.client import Client
from client_sdk.media.sources import read_stamp
from client_sdk.rtc.connection import Event, RelayConnection, RemoteTrack
from tests.conftest import User


@dataclass
class Received:
    """What one subscriber decoded of one remote track."""

    info: dict[str, Any]
    frames: int = 0
    size: tuple[int, int] | None = None
    subscribed_at: float = 0.0
    first_frame_at: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    error: str | None = None


class Peer:
    """A participant: an SDK API client and its relay connection, consuming every remote track."""

    def __init__(self, conn: RelayConnection, name: str) -> None:
        self.conn = conn
        self.name = name
        self.received: dict[str, Received] = {}
        self.events: list[Event] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._pump = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            event = await self.conn.events.get()
            self.events.append(event)
            if event.type == "track" and event.track is not None:
                self._tasks.append(asyncio.ensure_future(self._consume(event.track)))
            if event.type == "closed":
                return

    async def _consume(self, remote: RemoteTrack) -> None:
        got = Received(remote.info.model_dump(), subscribed_at=time.monotonic())
        self.received[remote.info.track_id] = got
        while True:
            try:
                frame = await remote.track.recv()
            except Exception as exc:  # MediaStreamError when the track ends
                got.error = type(exc).__name__
                return
            got.frames += 1
            if got.first_frame_at is None:
                got.first_frame_at = time.monotonic()
            if remote.info.kind == "video":
                got.size = (frame.width, frame.height)
                stamp = read_stamp(frame)
                if stamp:
                    got.latencies_ms.append((time.time_ns() // 1000 - stamp) / 1000)

    def frames(self, track_id: str) -> int:
        got = self.received.get(track_id)
        return got.frames if got else 0

    def event_types(self) -> list[str]:
        return [e.type for e in self.events]

    async def send_raw(self, body: dict[str, Any]) -> None:
        """Send ``body`` as it is, past the SDK's typed messages: what a hostile or broken client sends."""
        await self.conn._ws.send(json.dumps(body))

    async def close(self, leave: bool = True) -> None:
        await self.conn.close(leave=leave)
        for task in [*self._tasks, self._pump]:
            task.cancel()


async def join(
    stack: Any,
    user: User,
    meeting: dict[str, Any],
    publish: dict[str, MediaStreamTrack],
    region: str | None = "local",
    **options: Any,
) -> Peer:
    async with Client(stack.api_url, access_token=user.access_token, refresh_token=user.refresh_token) as api:
        admission = await api.join_meeting(meeting["meeting_id"], meeting["passcode"], region=region)
    conn = RelayConnection(admission.relays[0].url, admission.join_token, publish, **options)
    await conn.connect()
    return Peer(conn, user.display_name)


async def wait_until(condition: Any, timeout_s: float = 10.0, interval_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(interval_s)
    return bool(condition())
