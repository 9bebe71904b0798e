"""``python -m bench.background [--frames N]``: per-frame cost of background blur and replacement at 640x480.

Four pipelines run on the same camera-like frames (yuv420p, a real portrait shifted a little every frame so
the mask moves), interleaved in small batches so a neighbour's load on this shared machine hits them alike:
- ``copy``: frame -> RGB ndarray -> frame, the conversions any per-pixel effect pays (baseline);
- ``segment``: the conversion to RGB plus the selfie segmentation model alone, on the frame scaled to the
  processor's mask width as the processor does (baseline), and ``segment@640`` on the full frame;
- ``blur`` and ``image``: the whole ``BackgroundProcessor.process``.

CPU is ``time.process_time`` (all threads of this process: OpenCV's pool and the model's XNNPACK threads
count), so ms of CPU per frame is the figure to budget against 33 ms per frame at 30 fps; wall time is
shown too. Results go to the terminal and to ``bench/results/background.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from client_sdk.media.background import (
    BackgroundProcessor,
    FrameConverter,
    SelfieSegmenter,
    decode_image,
    fit_image,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WIDTH, HEIGHT = 640, 480
BATCH = 10


def portrait() -> np.ndarray:
    """A real person in front of a real background (matplotlib's sample photo), or a drawn stand-in."""
    try:
        from matplotlib import cbook

        data = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).read_bytes()
        return fit_image(decode_image(data), WIDTH, HEIGHT)
    except (ImportError, OSError, ValueError):
        rgb = np.full((HEIGHT, WIDTH, 3), (90, 120, 160), np.uint8)
        cv2.ellipse(rgb, (320, 180), (70, 90), 0, 0, 360, (200, 160, 140), -1)
        cv2.rectangle(rgb, (200, 280), (440, 480), (30, 30, 60), -1)
        return rgb


def camera_frames(count: int = 20) -> list[av.VideoFrame]:
    """yuv420p frames of the portrait panning a few pixels a frame, as a webcam would deliver them."""
    base = portrait()
    frames = []
    for i in range(count):
        shift = int(12 * np.sin(2 * np.pi * i / count))
        frame = av.VideoFrame.from_ndarray(np.roll(base, shift, axis=1), format="rgb24").reformat(
            format="yuv420p"
        )
        frame.pts = i * 3000
        frames.append(frame)
    return frames


def background_jpeg() -> bytes:
    """A 1920x1080 JPEG (a typical user upload), so ``image`` mode also pays a realistic scale-and-crop."""
    y, x = np.mgrid[0:1080, 0:1920]
    image = np.stack([(x // 8) % 256, (y // 5) % 256, ((x + y) // 12) % 256], axis=-1).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def run(frames: int = 100, console: Console | None = None) -> dict[str, Any]:
    """Measure every pipeline over ``frames`` frames; returns the report written to JSON."""
    t0, c0 = time.perf_counter(), time.process_time()
    import mediapipe  # timed here: the first use of a background pays it

    import_ms = {"wall": (time.perf_counter() - t0) * 1000, "cpu": (time.process_time() - c0) * 1000}
    t0, c0 = time.perf_counter(), time.process_time()
    segmenter = SelfieSegmenter()
    init_ms = {"wall": (time.perf_counter() - t0) * 1000, "cpu": (time.process_time() - c0) * 1000}

    blur = BackgroundProcessor("blur")
    image = BackgroundProcessor("image", background_jpeg())
    copy, to_rgb = FrameConverter(), FrameConverter()
    small = (blur.mask_width, blur.mask_width * HEIGHT // WIDTH)
    pipelines: dict[str, Callable[[av.VideoFrame], object]] = {
        "copy": lambda f: copy.from_rgb(copy.to_rgb(f), like=f),
        # what the processor runs the model on: the frame in RGB, scaled to the mask width
        "segment": lambda f: segmenter(cv2.resize(to_rgb.to_rgb(f), small, interpolation=cv2.INTER_AREA)),
        "segment@640": lambda f: segmenter(to_rgb.to_rgb(f)),
        "blur": blur.process,
        "image": image.process,
    }
    inputs = camera_frames()
    for fn in pipelines.values():  # warm-up: first inferences, allocations, the fitted image
        for frame in inputs[:5]:
            fn(frame)
    cpu: dict[str, list[float]] = {name: [] for name in pipelines}
    wall: dict[str, list[float]] = {name: [] for name in pipelines}
    done = 0
    while done < frames:
        batch = min(BATCH, frames - done)
        for name, fn in pipelines.items():
            for i in range(done, done + batch):
                frame = inputs[i % len(inputs)]
                t, c = time.perf_counter(), time.process_time()
                fn(frame)
                wall[name].append((time.perf_counter() - t) * 1000)
                cpu[name].append((time.process_time() - c) * 1000)
        done += batch
        if console is not None and console.is_terminal:
            console.print(f"  {done}/{frames} frames", end="\r", highlight=False)
    for closable in (segmenter, blur, image):
        closable.close()

    results = {}
    for name in pipelines:
        results[name] = {
            "cpu_ms_mean": statistics.fmean(cpu[name]),
            "cpu_ms_median": statistics.median(cpu[name]),
            "wall_ms_median": statistics.median(wall[name]),
            "wall_ms_p95": sorted(wall[name])[int(0.95 * (len(wall[name]) - 1))],
        }
    for r in results.values():
        r["x_copy"] = r["cpu_ms_mean"] / results["copy"]["cpu_ms_mean"]
        r["x_segment"] = r["cpu_ms_mean"] / results["segment"]["cpu_ms_mean"]
        r["share_of_30fps_core"] = r["cpu_ms_mean"] / (1000 / 30)
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "plan": {"frames": frames, "width": WIDTH, "height": HEIGHT, "input": "yuv420p", "batch": BATCH},
        "mediapipe": {"version": mediapipe.__version__, "import_ms": import_ms, "model_init_ms": init_ms},
        "opencv_threads": cv2.getNumThreads(),
        "results": results,
    }


def table(report: dict[str, Any]) -> Table:
    plan = report["plan"]
    table = Table(
        title=f"Background per frame at {plan['width']}x{plan['height']} over {plan['frames']} frames "
        "(CPU = all threads; baselines: copy, segment)"
    )
    for col in ("pipeline", "CPU ms mean", "CPU ms p50", "wall ms p50", "wall ms p95", "x copy", "x segment",
                "of a core at 30 fps"):  # fmt: skip
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    for name, r in report["results"].items():
        table.add_row(
            name,
            f"{r['cpu_ms_mean']:.2f}",
            f"{r['cpu_ms_median']:.2f}",
            f"{r['wall_ms_median']:.2f}",
            f"{r['wall_ms_p95']:.2f}",
            f"{r['x_copy']:.1f}",
            f"{r['x_segment']:.2f}",
            f"{r['share_of_30fps_core'] * 100:.0f} %",
        )
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.background", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames per pipeline (default 100)")
    parser.add_argument("--quick", action="store_true", help="30 frames per pipeline")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR / "background.json", help="where to write JSON"
    )
    args = parser.parse_args(argv)
    console = Console() if Console().is_terminal else Console(width=160)
    report = run(30 if args.quick else args.frames, console)
    console.print(table(report))
    mp = report["mediapipe"]
    console.print(
        f"mediapipe {mp['version']}: import {mp['import_ms']['wall']:.0f} ms, model init "
        f"{mp['model_init_ms']['wall']:.0f} ms (wall); OpenCV threads: {report['opencv_threads']}",
        highlight=False,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
