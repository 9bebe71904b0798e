"""Local recording of a meeting: chosen tracks, or a composed grid.

The file writer (``file_writer.TrackFileWriter``) writes one stream per track; players show the first
stream of each kind, so chosen tracks are at most one video plus one audio. For a whole meeting,
``GridCompositor`` draws the newest frame of every video track into one grid and ``AudioMixer`` mixes
every audio track; ``MeetingRecorder(path, grid=True)`` records those two, and tracks can join and
leave while it records (participants come and go).

Both are clocked by wall time, not by their inputs: a stalled or missing participant becomes a frozen tile
or silence instead of stalling the file, and video and audio stay in step. The grid is composed in a
worker thread, in yuv420p (what the encoder wants), redrawing a tile only when its track has a new frame.

A track's frames go to whoever calls ``recv()``: to record tracks that are also shown elsewhere, give the
recorder its own ``aiortc.contrib.media.MediaRelay().subscribe(track)``. The writer encodes on the
event loop (x264 at 1280x720: a few ms per frame here; the first frames and the final flush take longer).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError, MediaStreamTrack
from av.video.reformatter import VideoReformatter

from client_sdk.media.file_writer import TrackFileWriter

Rect = tuple[int, int, int, int]  # x, y, width, height


def _even(n: float) -> int:
    return max(2, int(n) // 2 * 2)


def grid_layout(count: int, width: int, height: int) -> list[Rect]:
    """Tiles for ``count`` participants: a near-square grid, the last row centred; even-aligned for 4:2:0."""
    if count <= 0:
        return []
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    tw, th = _even(width / cols), _even(height / rows)
    y0 = (height - rows * th) // 2 // 2 * 2
    rects = []
    for i in range(count):
        row, col = divmod(i, cols)
        in_row = min(cols, count - row * cols)
        x0 = (width - in_row * tw) // 2 // 2 * 2
        rects.append((x0 + col * tw, y0 + row * th, tw, th))
    return rects


def letterbox(frame_w: int, frame_h: int, tile: Rect) -> Rect:
    """The largest rectangle of the frame's aspect centred in ``tile`` (bars fill the rest)."""
    x, y, tw, th = tile
    scale = min(tw / frame_w, th / frame_h)
    w, h = min(tw, _even(frame_w * scale)), min(th, _even(frame_h * scale))
    return x + (tw - w) // 2 // 2 * 2, y + (th - h) // 2 // 2 * 2, w, h


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> np.ndarray:
    plane = frame.planes[index]  # rows may be padded beyond the width (line_size)
    return np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[:height, :width]


@dataclass
class _Input:
    task: asyncio.Task[None] | None = None


class _Composer(MediaStreamTrack):
    """Inputs of one kind that come and go, each read by its own task from the first ``recv()`` on."""

    def __init__(self) -> None:
        super().__init__()
        self._inputs: dict[MediaStreamTrack, Any] = {}
        self._reading = False

    _input_type: type[_Input] = _Input

    async def _read(self, track: MediaStreamTrack, state: Any) -> None:
        raise NotImplementedError

    @property
    def tracks(self) -> list[MediaStreamTrack]:
        return list(self._inputs)

    def add_track(self, track: MediaStreamTrack) -> None:
        if track.kind != self.kind:
            raise ValueError(f"{type(self).__name__} takes {self.kind} tracks, not {track.kind}")
        if track not in self._inputs:
            state = self._inputs[track] = self._input_type()
            if self._reading:
                state.task = asyncio.ensure_future(self._read(track, state))

    def remove_track(self, track: MediaStreamTrack) -> None:
        state = self._inputs.pop(track, None)
        if state is not None and state.task is not None:
            state.task.cancel()

    def _start_reading(self) -> None:
        self._reading = True
        for track, state in self._inputs.items():
            if state.task is None:
                state.task = asyncio.ensure_future(self._read(track, state))

    def stop(self) -> None:
        super().stop()
        for track in list(self._inputs):
            self.remove_track(track)


@dataclass
class _VideoInput(_Input):
    frame: av.VideoFrame | None = None
    version: int = 0


class GridCompositor(_Composer):
    """One video track showing the newest frame of each input track, letterboxed in a grid, at ``fps``."""

    kind = "video"
    _input_type = _VideoInput

    def __init__(
        self,
        tracks: Iterable[MediaStreamTrack] = (),
        *,
        width: int = 1280,
        height: int = 720,
        fps: float = 30,
    ) -> None:
        super().__init__()
        if width % 2 or height % 2:
            raise ValueError("grid width and height must be even (4:2:0 video)")
        self.width, self.height, self.fps = width, height, fps
        self._canvas = np.full((height * 3 // 2, width), 128, np.uint8)
        self._canvas[:height] = 16  # black (limited-range BT.601 luma 16, chroma 128)
        self._drawn: dict[MediaStreamTrack, tuple[int, Rect]] = {}  # what each tile shows: (version, rect)
        # One scaler per input, reused: a fresh frame's reformat() would set up swscale anew each time.
        self._scalers: dict[MediaStreamTrack, VideoReformatter] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grid")
        self._start: float | None = None
        self._next = 0
        for track in tracks:
            self.add_track(track)

    async def _read(self, track: MediaStreamTrack, state: _VideoInput) -> None:
        try:
            while True:
                frame = cast(av.VideoFrame, await track.recv())
                state.frame, state.version = frame, state.version + 1
        except MediaStreamError:  # the track ended: its tile goes black
            state.frame, state.version = None, state.version + 1

    def _compose(self, inputs: list[tuple[MediaStreamTrack, av.VideoFrame | None, int]]) -> Any:
        """Draw changed tiles into the canvas (worker thread); returns the output frame."""
        w, h = self.width, self.height
        flat = self._canvas.reshape(-1)
        y_plane = flat[: w * h].reshape(h, w)
        u_plane = flat[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
        v_plane = flat[w * h * 5 // 4 :].reshape(h // 2, w // 2)
        if [t for t, _, _ in inputs] != list(self._drawn):  # someone joined or left: redraw all
            y_plane[:] = 16
            flat[w * h :] = 128
            self._drawn = {}
            self._scalers = {t: self._scalers.get(t) or VideoReformatter() for t, _, _ in inputs}
        rects = grid_layout(len(inputs), w, h)
        for (track, frame, version), tile in zip(inputs, rects, strict=True):
            if self._drawn.get(track) == (version, tile):
                continue
            self._drawn[track] = (version, tile)
            x, y, tw, th = tile
            y_plane[y : y + th, x : x + tw] = 16
            u_plane[y // 2 : (y + th) // 2, x // 2 : (x + tw) // 2] = 128
            v_plane[y // 2 : (y + th) // 2, x // 2 : (x + tw) // 2] = 128
            if frame is None:
                continue
            fx, fy, fw, fh = letterbox(frame.width, frame.height, tile)
            scaled = self._scalers[track].reformat(frame, width=fw, height=fh, format="yuv420p")
            y_plane[fy : fy + fh, fx : fx + fw] = _plane(scaled, 0, fw, fh)
            u_plane[fy // 2 : (fy + fh) // 2, fx // 2 : (fx + fw) // 2] = _plane(scaled, 1, fw // 2, fh // 2)
            v_plane[fy // 2 : (fy + fh) // 2, fx // 2 : (fx + fw) // 2] = _plane(scaled, 2, fw // 2, fh // 2)
        return av.VideoFrame.from_ndarray(self._canvas, format="yuv420p")

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
            self._start_reading()
        else:
            due = self._start + self._next / self.fps
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 1 / self.fps:  # fell behind (a slow consumer): skip frames, keep the clock
                self._next = int((now - self._start) * self.fps)
        n, self._next = self._next, self._next + 1
        snapshot = [(t, s.frame, s.version) for t, s in self._inputs.items()]
        loop = asyncio.get_running_loop()
        frame = await loop.run_in_executor(self._executor, self._compose, snapshot)
        frame.pts = round(n * VIDEO_CLOCK_RATE / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        self._executor.shutdown(wait=False)


def mix_pcm(chunks: list[np.ndarray], length: int) -> np.ndarray:
    """Sum int16 sample arrays into one of ``length`` samples, clipping; short or no input is silence."""
    total = np.zeros(length, np.int32)
    for chunk in chunks:
        n = min(length, chunk.size)
        total[:n] += chunk[:n]
    return np.clip(total, -32768, 32767).astype(np.int16)


@dataclass
class _AudioInput(_Input):
    buffer: bytearray = field(default_factory=bytearray)
    primed: bool = False


class AudioMixer(_Composer):
    """One audio track mixing the input tracks: s16, 48 kHz, ``frame_ms`` frames, clocked by wall time.

    Each input is resampled to the output format into its own buffer. An input plays once it has
    ``prime_ms`` buffered (a small jitter cushion) and until it runs dry, when it waits to refill; meanwhile
    it contributes silence. Beyond ``max_buffer_ms`` the oldest samples go, so a bursty input cannot build
    up delay.
    """

    kind = "audio"
    _input_type = _AudioInput

    def __init__(
        self,
        tracks: Iterable[MediaStreamTrack] = (),
        *,
        sample_rate: int = 48000,
        layout: str = "stereo",
        frame_ms: int = 20,
        prime_ms: int = 40,
        max_buffer_ms: int = 200,
    ) -> None:
        super().__init__()
        self.sample_rate, self.layout = sample_rate, layout
        self.channels = av.AudioLayout(layout).nb_channels
        self.samples = sample_rate * frame_ms // 1000
        step = self.channels * 2  # bytes of one s16 sample over all channels
        per_ms = sample_rate // 1000 * step  # whole samples: buffers are always cut between samples
        self._frame_bytes = self.samples * step
        self._prime_bytes = prime_ms * per_ms
        self._max_bytes = max(max_buffer_ms * per_ms, self._prime_bytes + self._frame_bytes)
        self._start: float | None = None
        self._pts = 0
        for track in tracks:
            self.add_track(track)

    async def _read(self, track: MediaStreamTrack, state: _AudioInput) -> None:
        resampler = av.AudioResampler(format="s16", layout=self.layout, rate=self.sample_rate)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = cast(av.AudioFrame, await track.recv())
                for out in resampler.resample(frame):
                    state.buffer += out.to_ndarray().tobytes()
                excess = len(state.buffer) - self._max_bytes
                if excess > 0:
                    del state.buffer[:excess]

    def _take(self, state: _AudioInput) -> np.ndarray:
        want = self._frame_bytes
        if not state.primed:
            if len(state.buffer) < self._prime_bytes:
                return np.zeros(0, np.int16)
            state.primed = True
        chunk = bytes(state.buffer[:want])
        del state.buffer[:want]
        if len(chunk) < want:
            state.primed = False  # ran dry: silence until it has a cushion again
        return np.frombuffer(chunk, np.int16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
            self._start_reading()
        else:
            delay = self._start + self._pts / self.sample_rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        pcm = mix_pcm([self._take(s) for s in self._inputs.values()], self.samples * self.channels)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=self.layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        self._pts += self.samples
        return frame


class MeetingRecorder:
    """Records to ``path`` (container from its suffix, or ``fmt``): chosen tracks or, with ``grid``, all.

    Without ``grid``: at most one video and one audio track, added before ``start()``. With ``grid``: any
    number of each, added or removed at any time; the file holds the grid (``size`` at ``fps``) and the mix.
    The recorder never stops the tracks it records; they belong to the meeting.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: str | None = None,
        *,
        grid: bool = False,
        size: tuple[int, int] = (1280, 720),
        fps: float = 30,
        options: dict[str, str] | None = None,
    ) -> None:
        self.path, self.fmt, self.options = Path(path), fmt, options
        self.compositor = GridCompositor(width=size[0], height=size[1], fps=fps) if grid else None
        self.mixer = AudioMixer() if grid else None
        self._chosen: dict[str, MediaStreamTrack] = {}
        self._recorder: TrackFileWriter | None = None
        self.grid = grid
        self.started = False

    def _composer(self, track: MediaStreamTrack) -> _Composer | None:
        if self.compositor is None or self.mixer is None:
            return None
        return self.compositor if track.kind == "video" else self.mixer

    def add_track(self, track: MediaStreamTrack) -> None:
        if track.kind not in ("audio", "video"):
            raise ValueError(f"cannot record a {track.kind!r} track")
        composer = self._composer(track)
        if composer is not None:
            composer.add_track(track)
            return
        if self.started:
            raise RuntimeError("tracks are fixed once recording started (use grid=True to add later)")
        if track.kind in self._chosen and self._chosen[track.kind] is not track:
            raise ValueError(f"already recording a {track.kind} track; use grid=True to record several")
        self._chosen[track.kind] = track

    def remove_track(self, track: MediaStreamTrack) -> None:
        """Take a track out of the grid (a participant left). Chosen tracks stay until ``stop()``."""
        composer = self._composer(track)
        if composer is None:
            raise RuntimeError("only a grid recording can drop tracks while it records")
        composer.remove_track(track)

    async def start(self) -> None:
        """Open the file and start recording (the file is created here, not in ``__init__``)."""
        if self.started:
            return
        composers: list[MediaStreamTrack] = [t for t in (self.compositor, self.mixer) if t is not None]
        tracks = composers or list(self._chosen.values())
        if not tracks:
            raise ValueError("nothing to record: add a track first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recorder = TrackFileWriter(self.path, self.fmt, self.options)
        for track in tracks:
            grid = self.compositor if track is self.compositor else None
            self._recorder.add_track(track, (grid.width, grid.height) if grid else None)
        await self._recorder.start()
        self.started = True

    async def stop(self) -> None:
        """Flush the encoders and close the file; safe to call twice or before ``start()``."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            await recorder.stop()
        for composer in (self.compositor, self.mixer):
            if composer is not None:
                composer.stop()

    async def __aenter__(self) -> MeetingRecorder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
