"""Background blur and replacement for the published camera.

The person is found by MediaPipe's selfie segmentation (``mediapipe==0.10.14``: the last release whose wheel
ships the tflite models, so nothing is downloaded at run time), landscape model, on the CPU. The model's mask
is smoothed over time (a little, so the edge does not flicker, not so much that a moving hand leaves a
ghost), its soft band is stretched and then feathered, and the frame is alpha-blended with the background:
a blur of the frame itself, or the user's image scaled and cropped to cover the frame.

Blur is computed at a quarter of the resolution and normalised by the background weight (a "masked" blur),
so the person's colours do not bleed into the blurred background as a halo around them; it costs about as
much as a small copy. Decoding and resizing use OpenCV, which mediapipe itself depends on
(``opencv-contrib-python``), as is numpy.

``BackgroundTrack`` runs the processing in one worker thread per track (the model is not thread-safe, and
the asyncio loop must never wait on it) and always processes the newest source frame: when the CPU cannot
keep up, older frames are dropped instead of queueing, so latency stays at about one frame of processing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.video.reformatter import VideoReformatter

from client_sdk.errors import EffectsNotInstalled

try:
    import cv2
except ModuleNotFoundError as exc:  # the SDK's optional extra "effects" (opencv-contrib-python, mediapipe)
    raise EffectsNotInstalled(exc.name) from exc

Mode = Literal["blur", "image"]
MODES: tuple[str, ...] = ("blur", "image")
# A segmenter maps an RGB uint8 image (H, W, 3) to a float32 mask (H, W) in [0, 1], 1 = person.
Segmenter = Callable[[np.ndarray], np.ndarray]


class SelfieSegmenter:
    """MediaPipe selfie segmentation (landscape model, CPU). Call it from one thread at a time.

    mediapipe is imported on first use: the import costs ~0.5 s (it pulls in matplotlib), which an SDK user
    who never turns the background on should not pay.
    """

    def __init__(self, model_selection: int = 1) -> None:
        try:
            import mediapipe as mp  # lazy: see the class docstring
        except ModuleNotFoundError as exc:  # no "effects" extra (0.10.14: CPython 3.8-3.12 only)
            raise EffectsNotInstalled(exc.name) from exc
        self._model: Any = mp.solutions.selfie_segmentation.SelfieSegmentation(
            model_selection=model_selection
        )

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        mask = self._model.process(np.ascontiguousarray(rgb)).segmentation_mask
        # The mask is a read-only view of the graph's output packet: clip into memory we own.
        return np.clip(mask, 0.0, 1.0, dtype=np.float32)

    def close(self) -> None:
        self._model.close()


def _odd(n: float) -> int:
    return max(1, int(n) // 2 * 2 + 1)


def refine_mask(
    raw: np.ndarray,
    previous: np.ndarray | None,
    *,
    smoothing: float = 0.35,
    low: float = 0.2,
    high: float = 0.8,
    feather: float = 0.006,
) -> tuple[np.ndarray, np.ndarray]:
    """Temporal smoothing, then edge shaping; returns ``(smoothed, alpha)``.

    ``smoothed`` is the state to pass back as ``previous`` next frame: ``smoothing`` is the weight of the
    past (0.35 at 30 fps fades a stale edge to 4 % in 3 frames). ``alpha`` maps [low, high] of it onto
    [0, 1], since the model's uncertain band is wide and a blend across all of it looks washed out, then
    feathers it with a Gaussian of ``feather`` x width so the edge is soft but narrow.
    """
    raw = raw.astype(np.float32, copy=False)
    if previous is None or previous.shape != raw.shape or smoothing <= 0:
        smoothed = raw.copy()
    else:
        smoothed = cv2.addWeighted(raw, 1.0 - smoothing, previous, smoothing, 0.0)
    alpha: np.ndarray = (smoothed - low) * (1.0 / (high - low))
    np.clip(alpha, 0.0, 1.0, out=alpha)
    sigma = feather * raw.shape[1]
    if sigma >= 0.5:
        alpha = cv2.GaussianBlur(alpha, (_odd(sigma * 6), _odd(sigma * 6)), sigma)
    return smoothed, alpha


def composite(person: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * person + (1 - alpha) * background`` per pixel (uint8 RGB, float alpha in [0, 1]).

    Where alpha is 1 the person's pixels come out unchanged (OpenCV's blendLinear divides by
    w1 + w2 + 1e-5, which rounds back to the same byte).
    """
    alpha = alpha.astype(np.float32, copy=False)
    return cv2.blendLinear(person, background, alpha, 1.0 - alpha)


def blur_background(rgb: np.ndarray, alpha: np.ndarray, *, strength: float = 0.03) -> np.ndarray:
    """The frame blurred with the person left out of the average, so no halo of their colours.

    Works at 1/4 resolution (a Gaussian of ``strength`` x width at full size would cost ~10x more and look
    the same). Each output pixel averages background pixels only, weighted by ``1 - alpha``; a tiny floor
    keeps the division defined inside the person, where the result is hidden by the blend anyway.
    """
    h, w = rgb.shape[:2]
    sw, sh = max(1, w // 4), max(1, h // 4)
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    background = 1.0 - alpha.astype(np.float32, copy=False)
    weight: np.ndarray = cv2.resize(background, (sw, sh), interpolation=cv2.INTER_AREA) + np.float32(1e-3)
    sigma = max(0.5, strength * w / 4)
    ksize = _odd(sigma * 6)
    num = cv2.GaussianBlur(small * weight[..., None], (ksize, ksize), sigma)
    den = cv2.GaussianBlur(weight, (ksize, ksize), sigma)
    out = np.clip(num / den[..., None], 0, 255).astype(np.uint8)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


def decode_image(data: bytes) -> np.ndarray:
    """JPEG/PNG/WebP (anything OpenCV decodes) to RGB uint8; EXIF orientation applied, alpha dropped."""
    if not data:
        raise ValueError("background image is empty")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("background image could not be decoded (expected JPEG, PNG or WebP)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``image`` to cover width x height (keeping its aspect) and crop the centre: no bars."""
    ih, iw = image.shape[:2]
    scale = max(width / iw, height / ih)
    sw, sh = max(width, round(iw * scale)), max(height, round(ih * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (sw, sh), interpolation=interp)
    x0, y0 = (sw - width) // 2, (sh - height) // 2
    return np.ascontiguousarray(scaled[y0 : y0 + height, x0 : x0 + width])


class FrameConverter:
    """frame <-> RGB ndarray with swscale contexts kept between frames.

    ``frame.to_ndarray(format=...)`` and ``frame.reformat(...)`` build a new swscale context for every
    new frame object (~1.2 ms each at 640x480 here, 4x the conversion itself); a reformatter per direction
    reuses its context as long as size and format stay the same.
    """

    def __init__(self) -> None:
        self._in = VideoReformatter()
        self._out = VideoReformatter()

    def to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return self._in.reformat(frame, format="rgb24").to_ndarray()

    def from_rgb(self, rgb: np.ndarray, like: av.VideoFrame) -> av.VideoFrame:
        """An RGB image as a frame in ``like``'s pixel format, with its pts and time base."""
        out = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if like.format.name != "rgb24":
            out = self._out.reformat(out, format=like.format.name)
        out.pts = like.pts
        if like.time_base is not None:
            out.time_base = like.time_base
        return out


class BackgroundProcessor:
    """Applies one background setting to frames; keeps the mask state between frames of one stream.

    The mask is computed at ``mask_width`` (default 320 px) and scaled up for the blend: the model sees
    256x144 anyway, and smoothing and feathering a quarter of the pixels costs a quarter.
    ``segmenter`` defaults to :class:`SelfieSegmenter`; tests inject a function returning a known mask.
    Not thread-safe: use one processor per stream, from one thread at a time.
    """

    def __init__(
        self,
        mode: Mode,
        image: bytes | None = None,
        *,
        segmenter: Segmenter | None = None,
        blur_strength: float = 0.03,
        smoothing: float = 0.35,
        feather: float = 0.006,
        mask_width: int = 320,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"background mode must be one of {MODES}, not {mode!r}")
        if mode == "image" and image is None:
            raise ValueError('background mode "image" needs the image bytes')
        self.mode = mode
        self._image = decode_image(image) if mode == "image" and image is not None else None
        self._fitted: dict[tuple[int, int], np.ndarray] = {}
        self._segmenter: Segmenter = segmenter if segmenter is not None else SelfieSegmenter()
        self.blur_strength = blur_strength
        self.smoothing = smoothing
        self.feather = feather
        self.mask_width = mask_width
        self._state: np.ndarray | None = None
        self._converter = FrameConverter()

    def mask(self, rgb: np.ndarray) -> np.ndarray:
        """The blend alpha at analysis size (float32, 1 = person); advances the temporal state."""
        h, w = rgb.shape[:2]
        if w > self.mask_width:
            size = (self.mask_width, max(1, round(h * self.mask_width / w)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        self._state, alpha = refine_mask(
            self._segmenter(rgb), self._state, smoothing=self.smoothing, feather=self.feather
        )
        return alpha

    def background(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """What goes behind the person in this frame (``alpha`` at any size)."""
        if self._image is None:
            return blur_background(rgb, alpha, strength=self.blur_strength)
        h, w = rgb.shape[:2]
        fitted = self._fitted.get((w, h))
        if fitted is None:  # one entry per frame size: a camera rarely changes size
            fitted = self._fitted[(w, h)] = fit_image(self._image, w, h)
        return fitted

    def process_rgb(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        alpha = self.mask(rgb)
        background = self.background(rgb, alpha)
        if alpha.shape != (h, w):
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        return composite(rgb, background, alpha)

    def process(self, frame: av.VideoFrame) -> av.VideoFrame:
        """The frame with its background replaced; same size, pixel format, pts and time base."""
        return self._converter.from_rgb(self.process_rgb(self._converter.to_rgb(frame)), like=frame)

    def reset(self) -> None:
        """Forget the previous mask (after a camera switch or a long pause)."""
        self._state = None

    def close(self) -> None:
        close = getattr(self._segmenter, "close", None)
        if close is not None:
            close()


class BackgroundTrack(MediaStreamTrack):
    """A video track applying a :class:`BackgroundProcessor` to a source track, off the event loop.

    A pump task reads the source as fast as it delivers and keeps only the newest frame; ``recv()`` takes
    that frame and processes it in this track's worker thread. A frame that arrives while another is being
    processed replaces any unprocessed one, which is counted in ``frames_dropped``: under overload the
    output rate falls, the latency does not grow. ``processor=None`` passes frames through (background off);
    :meth:`set_processor` changes the setting mid-meeting.

    If processing fails the error propagates to the consumer (the sender stops sending video) rather than
    publishing the unprocessed frame: a background the user chose to hide is never shown by accident.
    """

    kind = "video"

    def __init__(
        self,
        source: MediaStreamTrack,
        processor: BackgroundProcessor | None,
        *,
        stop_source: bool = True,
    ) -> None:
        super().__init__()
        if source.kind != "video":
            raise ValueError("BackgroundTrack needs a video source")
        self.source = source
        self._processor = processor
        self._stop_source = stop_source
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background")
        self._latest: av.VideoFrame | None = None
        self._fresh = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._source_ended = False
        self.frames_in = 0
        self.frames_out = 0
        self.frames_dropped = 0

    @property
    def processor(self) -> BackgroundProcessor | None:
        return self._processor

    def set_processor(self, processor: BackgroundProcessor | None) -> None:
        """Switch the setting; the old processor is closed in the worker after any frame in flight."""
        old, self._processor = self._processor, processor
        if old is not None and old is not processor:
            with contextlib.suppress(RuntimeError):  # executor already shut down
                self._executor.submit(old.close)

    async def _read_source(self) -> None:
        try:
            while True:
                frame = cast(av.VideoFrame, await self.source.recv())
                self.frames_in += 1
                if self._latest is not None:
                    self.frames_dropped += 1
                self._latest = frame
                self._fresh.set()
        except MediaStreamError:
            pass
        finally:
            self._source_ended = True
            self._fresh.set()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._read_source())
        while self._latest is None:
            if self._source_ended:
                self.stop()
                raise MediaStreamError
            self._fresh.clear()
            await self._fresh.wait()
            if self.readyState != "live":
                raise MediaStreamError
        frame, self._latest = self._latest, None
        processor = self._processor
        if processor is not None:
            loop = asyncio.get_running_loop()
            frame = await loop.run_in_executor(self._executor, processor.process, frame)
        self.frames_out += 1
        return frame

    def stop(self) -> None:
        if self.readyState == "ended":
            return
        super().stop()
        if self._pump is not None:
            self._pump.cancel()
        self._fresh.set()
        if self._stop_source:
            self.source.stop()
        self.set_processor(None)
        self._executor.shutdown(wait=False)
