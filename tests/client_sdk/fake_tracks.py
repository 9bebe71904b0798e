"""Deterministic test tracks: solid colours and constant PCM, paced like a real source."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError, MediaStreamTrack


class SolidVideoTrack(MediaStreamTrack):
    """Frames of one RGB colour (yuv420p, as a camera or decoder gives them); starts after ``delay_s``."""

    kind = "video"

    def __init__(
        self,
        rgb: tuple[int, int, int],
        width: int = 320,
        height: int = 240,
        fps: float = 30,
        delay_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.fps, self.delay_s = fps, delay_s
        self._image = np.empty((height, width, 3), np.uint8)
        self._image[:] = rgb
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic() + self.delay_s
        delay = self._start + self._n / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame.from_ndarray(self._image, format="rgb24").reformat(format="yuv420p")
        frame.pts = round(self._n * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self._n += 1
        return frame


class ConstAudioTrack(MediaStreamTrack):
    """20 ms frames of s16 48 kHz stereo where every sample is ``value``; starts after ``delay_s``."""

    kind = "audio"

    def __init__(self, value: int, delay_s: float = 0.0) -> None:
        super().__init__()
        self.value, self.delay_s = value, delay_s
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic() + self.delay_s
        delay = self._start + self._pts / 48000 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.AudioFrame.from_ndarray(
            np.full((1, 960 * 2), self.value, np.int16), format="s16", layout="stereo"
        )
        frame.sample_rate = 48000
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, 48000)
        self._pts += 960
        return frame


class SilentTrack(MediaStreamTrack):
    """A track that never delivers (a participant whose media never arrives)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> av.AudioFrame:
        await asyncio.Event().wait()
        raise MediaStreamError
