"""``meet join``: take part in a meeting from the terminal, publishing a test source, a file or a device,
optionally recording everyone into one file that is uploaded to the meeting's recordings afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import av
import typer
from aiortc.mediastreams import MediaStreamTrack
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from client_sdk.cli import credentials
from client_sdk.cli.common import ApiOption, chat_line, console, run, terminal_text, user_text
from client_sdk.cli.meetings import MeetingId, meeting_id_of
from client_sdk.client import Client
from client_sdk.media.devices import open_source
from client_sdk.media.recorder import MeetingRecorder
from client_sdk.media.sources import read_stamp
from client_sdk.meeting import Meeting, MeetingEvent
from meetup_protocol.turn import PATH_ORDER


@dataclass
class TrackStats:
    name: str
    source: str
    frames: int = 0
    size: str = ""
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def latency_ms(self) -> float | None:
        return sorted(self.latencies_ms)[len(self.latencies_ms) // 2] if self.latencies_ms else None


class Observer:
    """Counts what arrives from each remote track, records it if asked, and logs chat and reactions."""

    def __init__(self, meeting: Meeting, recorder: MeetingRecorder | None, quiet: bool = False) -> None:
        self.meeting = meeting
        self.recorder = recorder
        self.quiet = quiet
        self.tracks: dict[str, TrackStats] = {}
        self.chat: list[tuple[str, str]] = []
        self._seen: set[MediaStreamTrack] = set()
        self.reactions: list[tuple[str, str]] = []
        self._tasks: list[asyncio.Task[None]] = []
        meeting.on("*", self._on_event)

    async def start(self) -> None:
        """Take in the tracks that arrived before this observer existed."""
        for remote in list(self.meeting.remote_tracks.values()):
            await self._on_event(MeetingEvent("track_added", remote.info.model_dump(), remote))

    async def _on_event(self, event: MeetingEvent) -> None:
        if event.type == "track_added" and event.track is not None:
            if event.track.track in self._seen:
                return  # start() and the event both brought it
            self._seen.add(event.track.track)
            info = event.track.info
            name = self.meeting.participants.get(info.participant_id, {}).get("name", info.participant_id)
            stats = self.tracks.setdefault(info.track_id, TrackStats(name, info.source))
            self._tasks.append(asyncio.ensure_future(self._count(self.meeting.media(event.track), stats)))
            if self.recorder is not None:
                self.recorder.add_track(self.meeting.media(event.track))
                if not self.recorder.started:
                    await self.recorder.start()
        elif event.type == "chat":
            self.chat.append(
                (event.data.get("name") or event.data.get("sender_name", "?"), event.data["text"])
            )
            self._say(chat_line(*self.chat[-1]))
        elif event.type == "reaction":
            self.reactions.append((event.data.get("name", "?"), event.data["emoji"]))
            self._say(user_text(f"{self.reactions[-1][0]} reacted {self.reactions[-1][1]}"))
        elif event.type == "hand_changed":
            names = [self.meeting.participants.get(p, {}).get("name", "you") for p in self.meeting.hands]
            self._say(user_text(f"hands up, in order: {', '.join(names) or 'none'}", "dim"))
        elif event.type in ("role_changed", "muted_by_host", "error"):
            self._say(user_text(f"{event.type.replace('_', ' ')}: {event.data}", "dim"))
        elif event.type == "media_path_changed":
            data = event.data
            self._say(user_text(f"media path: {data['previous']} -> {data['path']} (via {data['relay']})"))
        elif event.type in ("participant_joined", "participant_left", "reconnecting", "reconnected", "ended"):
            who = event.data.get("participant", {}).get("name") or event.data.get("participant_id") or ""
            self._say(
                user_text(f"{event.type.replace('_', ' ')} {who} {event.data.get('reason', '')}", "dim")
            )

    def _say(self, text: Text) -> None:
        if not self.quiet:
            console.print(text)

    async def _count(self, track: MediaStreamTrack, stats: TrackStats) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                stats.frames += 1
                if isinstance(frame, av.VideoFrame):
                    stats.size = f"{frame.width}x{frame.height}"
                    stamp = read_stamp(frame)
                    if stamp:
                        stats.latencies_ms.append((time.time_ns() // 1000 - stamp) / 1000)

    def table(self) -> Table:
        table = Table("from", "track", "frames", "size", "latency")
        for stats in self.tracks.values():
            latency = f"{stats.latency_ms:.0f} ms" if stats.latency_ms is not None else "-"
            table.add_row(
                user_text(stats.name), user_text(stats.source), str(stats.frames), stats.size, latency
            )
        return table

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


async def upload(client: Client, meeting_id: str, path: Path) -> None:
    """Upload a recording with a progress bar (multipart; a failed part is retried, then resumable)."""
    size = path.stat().st_size
    with Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(terminal_text(f"uploading {path.name}"), total=size)
        rec = await client.upload_recording(
            meeting_id,
            path,
            _content_type(path),
            on_progress=lambda done, _: bar.update(task, completed=done),
        )
    console.print(user_text(f"stored as recording {rec.recording_id} ({rec.size / 1e6:.1f} MB)"))


def _content_type(path: Path) -> str:
    return {".webm": "video/webm", ".mkv": "video/x-matroska", ".ogg": "audio/ogg"}.get(
        path.suffix, "video/mp4"
    )


def _local_tracks(publish: str, audio: str | None, screen: str | None) -> dict[str, MediaStreamTrack]:
    tracks: dict[str, MediaStreamTrack] = {}
    if publish != "none":
        tracks["camera"] = open_source(publish, "video")
    microphone = audio if audio is not None else ("testsrc" if publish == "testsrc" else publish)
    if microphone not in ("none", "") and not microphone.startswith(("v4l2:", "x11:")):
        tracks["microphone"] = open_source(microphone, "audio")
    if screen:
        tracks["screen"] = open_source(screen, "video", screen=True)
    return tracks


def _media_path(value: str | None) -> str | None:
    if value is not None and value not in PATH_ORDER:
        raise typer.BadParameter(f"{value!r} is no media path (choose from {', '.join(PATH_ORDER)})")
    return value


def join(
    meeting_id: MeetingId,
    passcode: Annotated[str | None, typer.Option(help="Needed the first time (not by the host).")] = None,
    publish: Annotated[
        str, typer.Option(help="Camera: testsrc, a media file, v4l2:/dev/video0, or none.")
    ] = "testsrc",
    audio: Annotated[
        str | None, typer.Option(help="Microphone: testsrc, a file, pulse:default, alsa:default, none.")
    ] = None,
    screen: Annotated[
        str | None, typer.Option(help="Also share a screen: testsrc, a file or x11:0.0.")
    ] = None,
    record: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Record everyone to this file, then upload it.")
    ] = None,
    duration: Annotated[float, typer.Option(min=1, help="Seconds to stay before leaving.")] = 30,
    region: Annotated[str | None, typer.Option(help="Your region, to rank relays.")] = None,
    pin_region: Annotated[
        bool, typer.Option(help="Only use relays of --region (the others reach you by cascade).")
    ] = False,
    hand: Annotated[bool, typer.Option(help="Raise your hand once in (hands are shown in order).")] = False,
    path: Annotated[
        str | None,
        typer.Option(
            callback=_media_path,
            help="Use only this media path: direct, turn/udp, turn/tcp or turn/tls (default: each in turn).",
        ),
    ] = None,
    api: ApiOption = None,
) -> None:
    """Join a meeting, show what arrives live, leave after --duration (or when the host ends it)."""

    async def go() -> None:
        async with credentials.client(api) as client:
            meeting = await Meeting.join(
                client,
                meeting_id_of(meeting_id),
                passcode,
                publish=_local_tracks(publish, audio, screen),
                region=region,
                pin_region=pin_region,
                path=path,
            )
            via = meeting.media_path or "not yet (nothing to receive or send)"
            took = f" in {meeting.connect_time_s:.1f} s" if meeting.connect_time_s is not None else ""
            console.print(
                user_text(f"joined via {meeting.relay_url} as {meeting.role}; media path: {via}{took}")
            )
            if hand:
                await meeting.raise_hand()
            recorder = MeetingRecorder(record, grid=True) if record else None
            observer = Observer(meeting, recorder)
            await observer.start()
            with Live(observer.table(), console=console, refresh_per_second=2, transient=True) as live:
                deadline = time.monotonic() + duration
                while time.monotonic() < deadline and not meeting.ended.is_set():
                    await asyncio.sleep(0.5)
                    live.update(observer.table())
            if not meeting.ended.is_set():
                await meeting.leave()
            observer.stop()
            console.print(observer.table())
            if meeting.end_reason and meeting.end_reason != "left":
                console.print(user_text(f"the meeting ended ({meeting.end_reason})"))
            if recorder is not None and recorder.started:
                await recorder.stop()
                await upload(client, meeting.meeting_id, recorder.path)

    run(go())
