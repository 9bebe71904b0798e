"""Headless media sources: a moving test pattern, a tone, and media files.

The pattern stamps each frame with its capture time (64 luma blocks along the top edge) so a receiver
can measure end-to-end latency from the decoded picture, without trusting any metadata on the way.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import time

import av
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError, MediaStreamTrack

STAMP_BITS = 64
STAMP_BLOCK = 8  # each bit is an 8x8 block: it survives VP8/H.264 at test bitrates


def stamp(y: bytearray, width: int, value: int) -> None:
    """Write ``value`` (64 bits) into the first STAMP_BLOCK rows of a Y plane."""
    for bit in range(STAMP_BITS):
        level = 235 if (value >> (STAMP_BITS - 1 - bit)) & 1 else 16
        x = bit * STAMP_BLOCK
        for row in range(STAMP_BLOCK):
            start = row * width + x
            y[start : start + STAMP_BLOCK] = bytes([level]) * STAMP_BLOCK


def read_stamp(frame: av.VideoFrame) -> int | None:
    """The value stamped into a decoded frame, or None if the frame is too small to carry one."""
    if frame.width < STAMP_BITS * STAMP_BLOCK or frame.height < STAMP_BLOCK:
        return None
    plane = frame.planes[0]
    data = bytes(plane)
    value = 0
    for bit in range(STAMP_BITS):
        center = (STAMP_BLOCK // 2) * plane.line_size + bit * STAMP_BLOCK + STAMP_BLOCK // 2
        value = (value << 1) | (1 if data[center] > 125 else 0)
    return value


class PatternVideoTrack(MediaStreamTrack):
    """Moving bars and a moving box (so every frame differs), stamped with its capture time in µs."""

    kind = "video"

    def __init__(self, width: int = 640, height: int = 480, fps: float = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._period = 256
        self._row = bytes((x * 3) % 256 for x in range(width + self._period))
        self._chroma = bytes([128]) * (width // 2 * (height // 2))
        self._frames = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._frames / self.fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        n = self._frames
        self._frames += 1
        offset = (n * 4) % self._period
        y = bytearray(self._row[offset : offset + self.width] * self.height)
        box = self.width // 8
        bx, by = (n * 7) % (self.width - box), STAMP_BLOCK + (n * 3) % (self.height - box - STAMP_BLOCK)
        for row in range(by, by + box):
            y[row * self.width + bx : row * self.width + bx + box] = b"\xeb" * box
        if self.width >= STAMP_BITS * STAMP_BLOCK:
            stamp(y, self.width, time.time_ns() // 1000)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(bytes(y))
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = int(n * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        return frame


class ToneAudioTrack(MediaStreamTrack):
    """A sine tone, 48 kHz mono, 20 ms frames."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self._samples = 960
        # One second of tone plus one frame, so every frame is a plain slice (whole seconds loop cleanly
        # for whole-Hz tones).
        self._pcm = b"".join(
            struct.pack("<h", int(6000 * math.sin(2 * math.pi * frequency * i / 48000)))
            for i in range(48000 + self._samples)
        )
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._pts / 48000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        offset = (self._pts % 48000) * 2
        chunk = self._pcm[offset : offset + self._samples * 2]
        frame = av.AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(chunk)
        frame.pts = self._pts
        frame.sample_rate = 48000
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += self._samples
        return frame


def file_tracks(path: str, loop: bool = True) -> tuple[MediaStreamTrack | None, MediaStreamTrack | None]:
    """(video, audio) tracks of a media file, decoded and re-encoded by aiortc as it is sent."""
    player = MediaPlayer(path, loop=loop)
    return player.video, player.audio
