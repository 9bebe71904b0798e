"""Encode live tracks into one container file, every stream in it, whichever track delivers first.

aiortc's ``MediaRecorder`` encodes each track in its own task and muxes each packet at once. The first
mux writes the container's header, which needs every stream's encoder open; a video stream learns its
size only from its first frame. So when an audio packet is muxed before the first video frame arrived
(the grid compositor's first frame is composed in a worker thread, the mixer's is ready at once), the
video stream is silently lost: the file holds audio only (seen in a CI run of ``meet demo``, and
reproduced with a video track whose first frame comes 0.5 s after the audio's).

``TrackFileWriter`` holds packets back until every stream has started (or its size was given up front),
then muxes them in order. A stream whose track never delivers gets a placeholder size at ``stop()``, so
the file is still valid and that stream holds a single black frame (MP4 drops a track with no samples).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

PLACEHOLDER_SIZE = (640, 360)  # a video stream that never got a frame
MAX_HELD_PACKETS = 3000  # ~60 s of audio held while waiting for the video's first frame


@dataclass
class _Stream:
    stream: Any  # av's AudioStream | VideoStream
    started: bool = False
    task: asyncio.Task[None] | None = None


class TrackFileWriter:
    """Writes tracks to ``path``: H.264/AAC in MP4 and most containers, VP8/Opus in WebM (as aiortc)."""

    def __init__(
        self, path: str | Path, fmt: str | None = None, options: dict[str, str] | None = None
    ) -> None:
        self._container: Any = av.open(str(path), format=fmt, mode="w", options=options)
        self._streams: dict[MediaStreamTrack, _Stream] = {}
        self._held: list[av.Packet] = []
        self._header_written = False

    def add_track(self, track: MediaStreamTrack, size: tuple[int, int] | None = None) -> None:
        """Add a stream for ``track``; a video ``size`` given here lets the file start without waiting."""
        name = self._container.format.name
        if track.kind == "audio":
            codec = "libopus" if name in ("ogg", "opus", "webm") else "aac"
            stream = self._container.add_stream(codec)
        else:
            stream = self._container.add_stream("libvpx" if name == "webm" else "libx264", rate=30)
            stream.pix_fmt = "yuv420p"
        entry = self._streams[track] = _Stream(stream)
        if size is not None and track.kind == "video":
            stream.width, stream.height = size
            entry.started = True
        elif track.kind == "audio":
            entry.started = True  # audio needs nothing from its first frame

    def _ready(self) -> bool:
        return all(s.started for s in self._streams.values())

    def _mux(self, packets: list[av.Packet]) -> None:
        if not self._header_written and not self._ready():
            self._held.extend(packets)
            del self._held[:-MAX_HELD_PACKETS]  # bounded: the oldest go
            return
        self._header_written = True
        held, self._held = self._held, []
        for packet in held + packets:
            self._container.mux(packet)

    async def _run(self, track: MediaStreamTrack, entry: _Stream) -> None:
        video = track.kind == "video"
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if video and not entry.started:
                entry.stream.width, entry.stream.height = frame.width, frame.height
                entry.started = True
            self._mux(list(entry.stream.encode(frame)))

    async def start(self) -> None:
        for track, entry in self._streams.items():
            if entry.task is None:
                entry.task = asyncio.ensure_future(self._run(track, entry))

    async def stop(self) -> None:
        """Stop reading, flush the encoders and close the file; safe to call twice."""
        if self._container is None:
            return
        for entry in self._streams.values():
            if entry.task is not None:
                entry.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await entry.task
        for entry in self._streams.values():
            if not entry.started:  # its track never delivered: an empty stream of a placeholder size
                entry.stream.width, entry.stream.height = PLACEHOLDER_SIZE
                entry.started = True
                # MP4 leaves out a track with no sample: one black frame keeps the stream in the file.
                black = av.VideoFrame(*PLACEHOLDER_SIZE, "yuv420p")
                for plane, value in zip(black.planes, (16, 128, 128), strict=True):
                    plane.update(bytes([value]) * plane.buffer_size)
                self._held.extend(entry.stream.encode(black))
        if self._held or any(e.task is not None for e in self._streams.values()):
            self._mux([])
            for entry in self._streams.values():
                self._mux(list(entry.stream.encode(None)))
        self._container.close()
        self._container = None
