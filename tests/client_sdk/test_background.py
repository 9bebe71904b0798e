"""Background blur/replace: the blend and the track wrapper with known masks, then the real model once.

A synthetic "person" the model reliably finds is hard to draw, so the blend is tested with injected masks
(properties that hold whatever the segmentation quality), and the model itself on a real portrait that
ships with matplotlib (a dependency of mediapipe 0.10.14): Grace Hopper's official photo.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from client_sdk.media.background import (
    BackgroundProcessor,
    BackgroundTrack,
    SelfieSegmenter,
    decode_image,
    fit_image,
    refine_mask,
)
from client_sdk.media.sources import PatternVideoTrack

W, H = 320, 240
PERSON = (slice(60, 200), slice(100, 220))  # rows, cols of the injected "person"
INNER = (slice(80, 180), slice(120, 200))  # well inside it: beyond the feathered edge


def person_mask(rgb: np.ndarray) -> np.ndarray:
    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[PERSON] = 1.0
    return mask


def textured(seed: int = 0) -> np.ndarray:
    """High-detail RGB (noise), so any blur shows."""
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def encoded(rgb: tuple[int, int, int], ext: str, size: tuple[int, int] = (300, 100)) -> bytes:
    image = np.empty((size[1], size[0], 3), np.uint8)
    image[:] = rgb[::-1]  # OpenCV writes BGR
    ok, buf = cv2.imencode(ext, image, [cv2.IMWRITE_JPEG_QUALITY, 100] if ext == ".jpg" else [])
    assert ok
    return buf.tobytes()


def test_blur_changes_background_and_keeps_the_person() -> None:
    rgb = textured()
    out = BackgroundProcessor("blur", segmenter=person_mask).process_rgb(rgb)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[INNER], rgb[INNER]), "confident person pixels must come out untouched"
    outside = np.ones((H, W), bool)
    outside[40:220, 80:240] = False  # background beyond the feathered edge
    diff = np.abs(out.astype(int) - rgb.astype(int))[outside]
    assert diff.mean() > 40, "background pixels should be replaced by their blur"
    # A blur of uniform noise is close to its mean everywhere.
    assert out[outside].std() < 0.25 * rgb[outside].std()


def test_blur_does_not_smear_the_person_into_the_background() -> None:
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:] = (20, 40, 200)  # blue room
    rgb[PERSON] = (230, 20, 20)  # red shirt
    out = BackgroundProcessor("blur", segmenter=person_mask).process_rgb(rgb)
    near = out[PERSON[0], 222:232]  # just outside the person's right edge, past the feather
    naive = cv2.GaussianBlur(rgb, (0, 0), 0.03 * W)[PERSON[0], 222:232]
    assert naive[..., 0].mean() > 60, "a plain blur would bleed red here"
    assert near[..., 0].max() < 35, "the masked blur keeps the background's own colour"


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp"])
def test_image_mode_puts_the_image_where_the_mask_is_background(ext: str) -> None:
    green = (0, 200, 0)
    rgb = textured(1)
    out = BackgroundProcessor("image", encoded(green, ext), segmenter=person_mask).process_rgb(rgb)
    assert np.array_equal(out[INNER], rgb[INNER])
    corner = out[:30, :60].reshape(-1, 3).astype(int)
    assert np.abs(corner - green).max() <= 3  # lossy formats are close, not exact
    all_green = BackgroundProcessor(
        "image", encoded(green, ".png"), segmenter=lambda x: np.zeros(x.shape[:2], np.float32)
    ).process_rgb(rgb)
    assert (all_green == green).all()


def test_fit_image_covers_the_frame_and_crops_the_centre() -> None:
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, :200] = (255, 0, 0)
    wide[:, 200:] = (0, 0, 255)
    fitted = fit_image(wide, 100, 100)  # scale to 100 high, keep the middle 100 columns
    assert fitted.shape == (100, 100, 3)
    assert (fitted[:, :45] == (255, 0, 0)).all() and (fitted[:, 55:] == (0, 0, 255)).all()
    tall = fit_image(np.full((500, 50, 3), 7, np.uint8), 640, 480)
    assert tall.shape == (480, 640, 3) and (tall == 7).all()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="decoded"):
        decode_image(b"not an image")
    with pytest.raises(ValueError, match="needs the image"):
        BackgroundProcessor("image", segmenter=person_mask)
    with pytest.raises(ValueError, match="mode"):
        BackgroundProcessor("sepia", segmenter=person_mask)  # type: ignore[arg-type]


def test_mask_is_smoothed_over_time_and_feathered() -> None:
    zeros, ones = np.zeros((H, W), np.float32), np.ones((H, W), np.float32)
    state, alpha = refine_mask(ones, zeros)
    assert 0.6 < state.mean() < 0.7  # a sudden change is followed quickly, not at once
    for _ in range(3):
        state, alpha = refine_mask(ones, state)
    assert state.min() > 0.95 and alpha.min() == pytest.approx(1.0)
    state, _ = refine_mask(ones, np.zeros((10, 10), np.float32))  # size change: no stale state
    assert (state == 1).all()
    _, alpha = refine_mask(person_mask(np.zeros((H, W, 3))), None)
    row = alpha[130, 90:120]  # across the person's left edge at column 100
    assert row[0] == 0 and row[-1] == 1
    assert np.all(np.diff(row) >= 0) and ((row > 0.05) & (row < 0.95)).sum() >= 4, "a soft edge"


@pytest.mark.parametrize("fmt", ["yuv420p", "rgb24"])
def test_process_keeps_size_format_and_timing(fmt: str) -> None:
    frame = av.VideoFrame.from_ndarray(textured(), format="rgb24").reformat(format=fmt)
    frame.pts, frame.time_base = 123456, fractions.Fraction(1, 90000)
    out = BackgroundProcessor("blur", segmenter=person_mask).process(frame)
    assert (out.width, out.height, out.format.name) == (W, H, fmt)
    assert out.pts == 123456 and out.time_base == fractions.Fraction(1, 90000)


class SlowProcessor(BackgroundProcessor):
    """Takes 100 ms a frame (GIL released, as the model and OpenCV do): a CPU that cannot keep up."""

    def process(self, frame: av.VideoFrame) -> av.VideoFrame:
        time.sleep(0.1)
        return super().process(frame)


async def consume(track: BackgroundTrack, seconds: float) -> tuple[list[av.VideoFrame], list[int], float]:
    """Frames received in ``seconds``, the source's count at each delivery, and the loop's worst lag."""
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - t - 0.01)

    tick = asyncio.create_task(ticker())
    frames, seen = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frames.append(await track.recv())
        seen.append(track.frames_in)
    tick.cancel()
    return frames, seen, max(lags)


async def test_track_keeps_the_source_rate() -> None:
    track = BackgroundTrack(
        PatternVideoTrack(W, H, fps=30), BackgroundProcessor("blur", segmenter=person_mask)
    )
    frames, _, _ = await consume(track, 1.0)
    track.stop()
    assert 25 <= len(frames) <= 33
    assert track.frames_dropped <= 2
    assert all(f.pts == i * 3000 for i, f in enumerate(frames[:10])), "in order, none skipped"


async def test_track_drops_frames_under_overload_without_blocking_the_loop() -> None:
    source = PatternVideoTrack(W, H, fps=30)
    track = BackgroundTrack(source, SlowProcessor("blur", segmenter=person_mask))
    frames, seen, worst_lag = await consume(track, 1.2)
    track.stop()
    assert 7 <= len(frames) <= 13  # ~10 fps out of 30
    assert track.frames_dropped >= 15
    assert worst_lag < 0.06, "processing must not run on the event loop"
    indices = [(f.pts or 0) // 3000 for f in frames]
    assert all(b - a >= 2 for a, b in itertools.pairwise(indices)), "old frames are skipped"
    # Each delivered frame was the newest or nearly: no queue builds up behind the slow processor.
    assert all(count - 1 - index <= 5 for index, count in zip(indices, seen, strict=True))
    assert source.readyState == "ended"


async def test_track_passthrough_switching_and_end_of_source() -> None:
    source = PatternVideoTrack(W, H, fps=60)
    track = BackgroundTrack(source, None, stop_source=False)
    frame = await track.recv()
    assert frame.format.name == "yuv420p"
    track.set_processor(BackgroundProcessor("blur", segmenter=person_mask))
    processed = await track.recv()
    assert (processed.pts or 0) > (frame.pts or 0) and processed.width == W
    source.stop()  # the camera goes away: the wrapper ends too
    with pytest.raises(MediaStreamError):
        for _ in range(5):
            await track.recv()
    assert track.readyState == "ended"


def hopper_frame() -> np.ndarray:
    cbook = pytest.importorskip("matplotlib.cbook")
    path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return fit_image(decode_image(path.read_bytes()), 640, 480)


def test_real_model_finds_the_person() -> None:
    pytest.importorskip("mediapipe", reason="mediapipe 0.10.14 has no wheel for this Python")
    rgb = hopper_frame()
    segmenter = SelfieSegmenter()
    try:
        mask = segmenter(rgb)
    finally:
        segmenter.close()
    assert mask.shape == (480, 640) and mask.dtype == np.float32
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask[200:440, 240:400].mean() > 0.9, "face and body"
    assert mask[:120, :120].mean() < 0.1 and mask[:120, -120:].mean() < 0.1, "flag and wall"
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    frame.pts = 0
    processor = BackgroundProcessor("blur")
    out = processor.process(frame)
    processor.close()
    assert (out.width, out.height, out.format.name) == (640, 480, "yuv420p")
