"""A meeting participant as a process, to run inside a region's namespace (``Wan.run_in``).

It joins with the real SDK (``Meeting.join``: API admission, relay RTT probe, WebRTC through the relay),
publishes a test pattern and a tone, decodes every remote track and reports what it saw: one JSON line
on stdout every ``--interval-s``, and after every command::

    {"name", "participant_id", "role", "relay": url, "relays": [every relay used, in order],
     "frames": {participant_id: {"video": n, "audio": n}}, "participants": [ids known now],
     "video_delay_ms": {participant_id: median capture-to-decode delay of the last 30 frames} (only for
     senders at least 512 pixels wide: the pattern's time stamp needs them),
     "chats": [{"message_id", "text", "from", "name"}...] (received, in order), "sent": [{"message_id",
     "text"}...], "ended": reason or null, "events": [types, in order], "reconnects": n,
     "reconnect_reasons": [why, for each], "errors": [...],
     "media_path": "direct" | "turn/udp" | "turn/tcp" | "turn/tls" | null, "connect_s": seconds from
     asking to join to media flowing, "path_errors": {path: why it failed}}

A failed join prints ``{"error": message, "code": code, "after_s": seconds, "attempts": {path: why}}``
and exits with status 2. ``MEETUP_AGENT_ICE_SERVERS`` (JSON, the API's ``ice_servers`` shape) replaces
the TURN servers the API hands out.

Commands on stdin, one a line: ``chat TEXT``, ``mute SOURCE``, ``unmute SOURCE``, ``end`` (the host ends
the meeting; the agent keeps reporting), ``leave`` (leave, then exit), ``quit`` (leave unless the meeting
is over, then exit). EOF and SIGTERM act as ``quit``.

Tokens come from the environment (``MEETUP_AGENT_ACCESS_TOKEN``, ``MEETUP_AGENT_REFRESH_TOKEN``), not
argv: secrets must not show in ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import statistics
import sys
import time
from typing import Any

import av
from aiortc.mediastreams import MediaStreamTrack

from client_sdk.client import Client
from client_sdk.errors import MeetupError
from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack, read_stamp
from client_sdk.meeting import Meeting, MeetingEvent
from meetup_protocol.schemas.meetings import IceServer
from meetup_protocol.signalling import End


class Agent:
    def __init__(self, meeting: Meeting, name: str) -> None:
        self.meeting = meeting
        self.name = name
        self.frames: dict[str, dict[str, int]] = {}
        self.delays: dict[str, collections.deque[float]] = {}
        self.events: list[str] = []
        self.chats: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.relays = [meeting.relay_url]
        self.reconnects = 0
        self.reconnect_reasons: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def status(self) -> dict[str, Any]:
        m = self.meeting
        return {
            "name": self.name,
            "participant_id": m.participant_id,
            "role": m.role,
            "relay": m.relay_url,
            "relays": self.relays,
            "frames": self.frames,
            "video_delay_ms": {p: round(statistics.median(d), 1) for p, d in self.delays.items() if d},
            "participants": sorted(m.participants),
            "chats": self.chats,
            "sent": self.sent,
            "ended": m.end_reason if m.ended.is_set() else None,
            "events": self.events,
            "reconnects": self.reconnects,
            "reconnect_reasons": self.reconnect_reasons,
            "errors": self.errors,
            "media_path": m.media_path,
            "connect_s": m.connect_time_s,
            "path_errors": m.path_errors,
        }

    def report(self) -> None:
        print(json.dumps(self.status()), flush=True)

    # --- what the meeting tells us -------------------------------------------------------------------

    async def watch(self) -> None:
        """Every event in order (the SDK queues them from the moment of joining, so none is missed)."""
        async for event in self.meeting.events():
            self.on_event(event)

    def on_event(self, event: MeetingEvent) -> None:
        self.events.append(event.type)
        if event.type == "track_added" and event.track is not None:
            info = event.track.info
            self.spawn(self.consume(info.participant_id, info.kind, self.meeting.media(event.track)))
        elif event.type == "chat":
            data = event.data
            self.chats.append(
                {
                    "message_id": data.get("message_id"),
                    "text": data.get("text"),
                    "from": data.get("participant_id") or data.get("sender_id"),
                    "name": data.get("name") or data.get("sender_name"),
                }
            )
        elif event.type == "reconnecting":
            self.reconnect_reasons.append(str(event.data.get("reason", "")))
        elif event.type == "reconnected":
            self.reconnects += 1
            self.relays.append(self.meeting.relay_url)

    async def consume(self, participant_id: str, kind: str, track: MediaStreamTrack) -> None:
        """Decode a remote track (aiortc decodes before ``recv`` returns) and count its frames. Video at
        least 512 wide carries its capture time (PatternVideoTrack): keep the last glass-to-glass delays."""
        counts = self.frames.setdefault(participant_id, {"video": 0, "audio": 0})
        delays = self.delays.setdefault(participant_id, collections.deque(maxlen=30))
        with contextlib.suppress(Exception):  # MediaStreamError when the track ends
            while True:
                frame = await track.recv()
                counts[kind] = counts.get(kind, 0) + 1
                if isinstance(frame, av.VideoFrame) and (stamp := read_stamp(frame)) is not None:
                    delays.append((time.time_ns() // 1000 - stamp) / 1000)

    # --- what the test tells us ----------------------------------------------------------------------

    async def command(self, line: str) -> bool:
        """Carry out one command; False when the agent should exit."""
        verb, _, rest = line.strip().partition(" ")
        try:
            if verb == "chat" and rest:
                self.spawn(self.chat(rest))
            elif verb in ("mute", "unmute") and rest:
                await self.meeting.mute(rest, verb == "mute")
            elif verb == "end":  # through the API (which tells every relay) and the relay
                await self.meeting.end()
            elif verb == "move":  # drop this relay's connection: the SDK moves to the next nearest
                assert self.meeting.connection is not None
                await self.meeting.connection.close(leave=False)
            elif verb == "end-on-relay":  # the host's relay only: the cluster must carry it
                assert self.meeting.connection is not None
                await self.meeting.connection.send_message(End(type="end"))
            elif verb in ("leave", "quit"):
                if not self.meeting.ended.is_set():
                    await self.meeting.leave()
                return False
            elif verb:
                self.errors.append(f"unknown command: {line.strip()}")
        except MeetupError as exc:
            self.errors.append(f"{verb}: {exc.code}: {exc}")
        return True

    async def chat(self, text: str) -> None:
        try:
            stored = await self.meeting.send_chat(text).done
        except Exception as exc:
            self.errors.append(f"chat: {exc!r}")
            return
        self.sent.append({"message_id": stored.message_id, "text": stored.text})
        self.report()


async def run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    client = Client(
        args.api,
        access_token=os.environ.get("MEETUP_AGENT_ACCESS_TOKEN"),
        refresh_token=os.environ.get("MEETUP_AGENT_REFRESH_TOKEN"),
    )
    camera, microphone = PatternVideoTrack(args.width, args.height, args.fps), ToneAudioTrack(args.tone_hz)
    ice_servers = None
    if os.environ.get("MEETUP_AGENT_ICE_SERVERS"):
        ice_servers = [IceServer(**s) for s in json.loads(os.environ["MEETUP_AGENT_ICE_SERVERS"])]
    started = time.monotonic()
    try:
        meeting = await Meeting.join(
            client,
            args.meeting,
            args.passcode or None,
            publish={} if args.no_publish else {"camera": camera, "microphone": microphone},
            region=args.region,
            pin_region=args.pin_region,
            background=False,  # the user's background effect would load mediapipe: not what is tested
            ice_servers=ice_servers,
        )
    except MeetupError as exc:
        failed = {"error": str(exc), "code": exc.code, "after_s": round(time.monotonic() - started, 3)}
        failed["attempts"] = getattr(exc, "attempts", {})
        print(json.dumps(failed), flush=True)
        await client.aclose()
        return 2
    agent = Agent(meeting, args.name)
    agent.spawn(agent.watch())

    lines: asyncio.Queue[str] = asyncio.Queue()  # "" for EOF or SIGTERM
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def read_stdin() -> None:
        while line := (await reader.readline()).decode():
            await lines.put(line)
        await lines.put("")

    async def tick() -> None:
        while True:
            agent.report()
            await asyncio.sleep(args.interval_s)

    agent.spawn(read_stdin())
    agent.spawn(tick())
    loop.add_signal_handler(signal.SIGTERM, lines.put_nowait, "")
    while (line := await lines.get()) and await agent.command(line):
        agent.report()
    if not meeting.ended.is_set():  # EOF or SIGTERM: leave like "quit"
        with contextlib.suppress(Exception):
            await asyncio.wait_for(meeting.leave(), 10)
    agent.report()
    for task in list(agent.tasks):
        task.cancel()
    camera.stop()
    microphone.stop()
    await client.aclose()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="A meeting participant that reports what it sees.")
    parser.add_argument("--api", required=True, help="the API's base URL")
    parser.add_argument("--meeting", required=True)
    parser.add_argument("--passcode", default="")
    parser.add_argument("--region", default=None, help="region hint for the API's relay ranking")
    parser.add_argument("--pin-region", action="store_true", help="only that region's relays")
    parser.add_argument("--name", default="agent")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=float, default=15)
    parser.add_argument("--tone-hz", type=float, default=440)
    parser.add_argument("--no-publish", action="store_true", help="publish nothing (only receive)")
    parser.add_argument("--interval-s", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("MEETUP_AGENT_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
