"""``python -m bench --relay [--quick]``: the media relay benchmark, as tables and ``results/relay.json``.

Parts (each measured against a baseline in the same run, since a shared 2-core machine moves absolute
numbers from run to run):

1. fan-out: relay CPU per forwarded video stream-second at 1..64 subscribers of one publisher, against
   aiortc's ``MediaRelay`` (decode once, encode per subscriber) fed the very same publisher;
2. capacity: packets forwarded per CPU-second at 64+ subscribers with RTCP, NACK and SR running, against
   the loss-free step, ``MediaRelay`` and LiveKit's published figure; py-spy says where the time goes;
3. rooms: many rooms of 4, everyone publishing audio + video: relay CPU and loss;
4. latency: join to first decoded frame, and per-packet delay added by the relay, against a direct
   aiortc-to-aiortc path.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bench import mediarelay_baseline, relay_fanout, relay_report, relay_rooms
from bench.relay_fanout import FanoutPlan
from bench.rtp_media import encode_audio_clip, encode_video_clip

PARTS = ("fanout", "mediarelay", "rooms")


@dataclass(frozen=True)
class RelayPlan:
    clip_s: float
    fanout: FanoutPlan
    baseline_levels: list[int]
    baseline_estimate_at: list[int]
    rooms: int
    rooms_window_s: float


FULL = RelayPlan(
    clip_s=3.0,
    fanout=FanoutPlan(
        levels=[1, 4, 16, 64],
        capacity_levels=[64, 128, 256],
        drop=0.02,
        window_s=6.0,
        settle_s=1.0,
        max_settle_s=8.0,
        join_samples=5,
        profile_at=64,
        profile_s=5.0,
    ),
    baseline_levels=[1, 4, 16],
    baseline_estimate_at=[64],
    rooms=20,
    rooms_window_s=6.0,
)
QUICK = RelayPlan(
    clip_s=2.0,
    fanout=FanoutPlan(
        levels=[1, 16],
        capacity_levels=[64],
        drop=0.02,
        window_s=2.5,
        settle_s=0.5,
        max_settle_s=3.0,
        join_samples=2,
        profile_at=64,
        profile_s=2.0,
    ),
    baseline_levels=[1, 16],
    baseline_estimate_at=[64],
    rooms=5,
    rooms_window_s=2.5,
)
LIVEKIT_PACKETS_PER_CORE = 56_000  # LiveKit's published SFU figure, forwarded packets per second per core


async def run(plan: RelayPlan, console: Console, parts: tuple[str, ...] = PARTS) -> dict[str, Any]:
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": asdict(plan),
        "parts": list(parts),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": os.getloadavg(),
        },
        "livekit_packets_per_core": LIVEKIT_PACKETS_PER_CORE,
    }
    started = time.perf_counter()
    video = encode_video_clip(plan.clip_s)
    audio = encode_audio_clip()
    report["clip"] = {
        "video": "640x480 VP8 (aiortc Vp8Encoder, 1 Mbps target), key frame at frame 0, looped",
        "video_fps": video.fps,
        "video_kbps": video.kbps,
        "video_packets_per_s": video.packets_per_s,
        "audio": "Opus 48 kHz, 20 ms (aiortc OpusEncoder)",
        "audio_kbps": audio.kbps,
        "audio_packets_per_s": audio.packets_per_s,
    }
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        if "fanout" in parts:
            report["fanout"] = await relay_fanout.run(video, plan.fanout, progress)
        if "mediarelay" in parts:
            report["mediarelay"] = await mediarelay_baseline.run(
                video,
                plan.baseline_levels,
                plan.fanout.window_s,
                plan.fanout.settle_s,
                plan.baseline_estimate_at,
                progress,
            )
        if "rooms" in parts:
            report["rooms"] = await relay_rooms.run(
                video, audio, plan.rooms, plan.rooms_window_s, progress, plan.fanout.max_settle_s
            )
    report["ratios"] = relay_report.ratios(report)
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["duration_s"] = round(time.perf_counter() - started, 1)
    return report


def show(report: dict[str, Any], console: Console) -> None:
    for table in relay_report.tables(report):
        console.print(table)
    for line in relay_report.notes(report):
        console.print(f"- {line}", highlight=False)
