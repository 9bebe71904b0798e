"""A finished load test as raw numbers (what ``--json`` writes), a summary across tracks, and the
failures that make ``meet load-test`` exit non-zero."""

from __future__ import annotations

import math
import os
from typing import Any

from client_sdk.loadtest.engine import STAMP_MIN_WIDTH, LoadTest, TrackStats

#: Summary rows: key, what it is, unit, whether a higher value is the worse one.
METRICS: list[tuple[str, str, str, bool]] = [
    ("api_join_s", "join: API admission", "s", True),
    ("relay_connect_s", "join: relay probe + connect", "s", True),
    ("join_s", "join: total", "s", True),
    ("first_video_frame_s", "first video frame after both joined", "s", True),
    ("video_kbps", "video bitrate", "kbit/s", False),
    ("video_fps", "video frames decoded", "fps", False),
    ("video_loss_pct", "video packet loss", "%", True),
    ("video_jitter_ms", "video jitter", "ms", True),
    ("video_latency_ms", "video glass-to-glass (per-track median)", "ms", True),
    ("audio_kbps", "audio bitrate", "kbit/s", False),
    ("audio_loss_pct", "audio packet loss", "%", True),
    ("audio_jitter_ms", "audio jitter", "ms", True),
]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def track_numbers(test: LoadTest, stats: TrackStats, names: dict[str, str]) -> dict[str, Any]:
    start = stats.at_window_start or (0, 0, 0, 0)
    end = stats.at_window_end or stats.snapshot()
    window = test.window_s or float("nan")
    frames, size, received, lost = (end[i] - start[i] for i in range(4))
    lost = max(0, lost)
    joined = [t for t in (stats.receiver.joined_at, _joined_at(test, stats.publisher_id)) if t is not None]
    first = stats.first_frame_at - max(joined) if stats.first_frame_at is not None and joined else None
    return {
        "receiver": stats.receiver.name,
        "publisher": names.get(stats.publisher_id, stats.publisher_id),
        "kind": stats.kind,
        "source": stats.source,
        "frames": frames,
        "frames_total": stats.frames,
        "fps": _round(frames / window, 2),
        "bytes": size,
        "kbps": _round(size * 8 / window / 1000, 1),
        "packets_received": received,
        "packets_lost": lost,
        "loss_pct": _round(100 * lost / (received + lost), 2) if received + lost else None,
        "jitter_ms": _round(stats.packets[2], 2),
        "latency_ms": {
            "p50": _round(percentile(stats.latencies_ms, 50), 1),
            "p95": _round(percentile(stats.latencies_ms, 95), 1),
            "samples": len(stats.latencies_ms),
        },
        "first_frame_s": _round(max(0.0, first) if first is not None else None),
    }


def _joined_at(test: LoadTest, participant_id: str) -> float | None:
    for p in test.participants:
        if p.meeting is not None and p.meeting.participant_id == participant_id:
            return p.joined_at
    return None


def build_report(test: LoadTest, *, run_id: str, load_start: tuple[float, ...]) -> dict[str, Any]:
    names = {p.meeting.participant_id: p.name for p in test.participants if p.meeting is not None}
    participants = [
        {
            "name": p.name,
            "role": p.role,
            "participant_id": p.meeting.participant_id if p.meeting else None,
            "relay": p.meeting.relay_url if p.meeting else None,
            "login_s": _round(p.login_s),
            "api_join_s": _round(p.client.api_join_s if p.client else None),
            "join_s": _round(p.join_s),
            "reconnects": p.reconnects,
            "error": p.error or None,
            "code": p.code or None,
        }
        for p in test.participants
    ]
    tracks = [track_numbers(test, s, names) for s in test.tracks.values()]
    c = test.config
    report = {
        "run_id": run_id,
        "api_url": test.api_url,
        "meeting_id": test.meeting_id,
        "config": {
            "publishers": c.publishers,
            "subscribers": c.subscribers,
            "duration_s": c.duration_s,
            "video": {"width": c.width, "height": c.height, "fps": c.fps},
            "audio": c.audio,
            "region": c.region,
            "join_concurrency": c.join_concurrency,
        },
        "window_s": round(test.window_s, 3),
        "latency_available": c.width >= STAMP_MIN_WIDTH,
        "participants": participants,
        "tracks": tracks,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
    }
    report["summary"] = summarize(participants, tracks)
    report["failures"] = failures(test, participants, tracks)
    return report


def summarize(participants: list[dict[str, Any]], tracks: list[dict[str, Any]]) -> dict[str, Any]:
    """p5, p50, p95 and the worst value (the highest, or for rates the lowest) of each metric across
    participants (joins) or tracks."""
    joined = [p for p in participants if p["join_s"] is not None]
    values: dict[str, list[float]] = {
        "api_join_s": [p["api_join_s"] for p in joined if p["api_join_s"] is not None],
        "relay_connect_s": [p["join_s"] - p["api_join_s"] for p in joined if p["api_join_s"] is not None],
        "join_s": [p["join_s"] for p in joined],
    }
    for kind in ("video", "audio"):
        mine = [t for t in tracks if t["kind"] == kind]
        values[f"{kind}_kbps"] = [t["kbps"] for t in mine if t["kbps"] is not None]
        values[f"{kind}_loss_pct"] = [t["loss_pct"] for t in mine if t["loss_pct"] is not None]
        values[f"{kind}_jitter_ms"] = [t["jitter_ms"] for t in mine if t["jitter_ms"] is not None]
        if kind == "video":
            values["video_fps"] = [t["fps"] for t in mine if t["fps"] is not None]
            values["video_latency_ms"] = [t["latency_ms"]["p50"] for t in mine if t["latency_ms"]["p50"]]
            values["first_video_frame_s"] = [
                t["first_frame_s"] for t in mine if t["first_frame_s"] is not None
            ]
    summary = {}
    for key, _, _, higher_is_worse in METRICS:
        got = values.get(key, [])
        worst = (max(got) if higher_is_worse else min(got)) if got else None
        summary[key] = {
            "n": len(got),
            "p5": _round(percentile(got, 5)),
            "p50": _round(percentile(got, 50)),
            "p95": _round(percentile(got, 95)),
            "worst": _round(worst),
        }
    return summary


def failures(test: LoadTest, participants: list[dict[str, Any]], tracks: list[dict[str, Any]]) -> list[str]:
    """Why this run fails as a post-deploy check: a participant that could not join, or a participant
    that received no frames of a kind from a publisher during the measurement window."""
    found = [f"{p['name']} could not join: {p['error']} ({p['code']})" for p in participants if p["error"]]
    got = {(t["receiver"], t["publisher"], t["kind"]): t["frames"] for t in tracks}
    publishers = [p for p in participants if p["role"] == "publisher" and p["join_s"] is not None]
    kinds = ["video", "audio"] if test.config.audio else ["video"]
    for receiver in participants:
        if receiver["join_s"] is None:
            continue
        for publisher in publishers:
            if publisher["name"] == receiver["name"]:
                continue
            for kind in kinds:
                frames = got.get((receiver["name"], publisher["name"], kind))
                if frames is None:
                    found.append(f"{receiver['name']} was never sent {publisher['name']}'s {kind}")
                elif frames == 0:
                    found.append(
                        f"{receiver['name']} decoded no {kind} from {publisher['name']} during the test"
                    )
    return found
