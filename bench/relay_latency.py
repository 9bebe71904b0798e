"""Latency through the relay: join to first decoded frame, and the delay forwarding adds per packet.

Join: a real SDK client (``RelayConnection``, aiortc decoding VP8) joins a meeting whose publisher is
already sending, and the clock runs from opening the WebSocket to the first decoded frame of the
publisher's camera. Baseline: an aiortc peer connected straight to the publisher, from creating the offer
to its first decoded frame. Both publishers send a key frame at their next frame tick once asked (the
relay asks when the subscriber connects; a direct peer gets one as the stream starts), as an encoder
would.

Forwarding: the publisher sends every frame at the same instant to the relay and, on a second
connection, straight to one more subscriber; each packet carries its send time in abs-send-time, which
the relay forwards untouched. Relayed minus direct delay, at the same percentile, is what the relay adds;
all ends share one process and one clock, and both paths cross the same event loop on the way in.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender

from bench.common import percentile
from bench.relay_harness import RelayUnderTest, wait_until
from bench.rtp_media import Clip, OutStream, Scheduler
from bench.rtp_sink import CountingSink
from client_sdk.rtc.connection import RelayConnection
from client_sdk.rtc.paths import PathPlan
from edge_relay.sfu.seams import SilentTrack, use_ice_host_addresses


async def direct_pair(
    clip: Clip, sink: CountingSink | None
) -> tuple[RTCPeerConnection, RTCPeerConnection, OutStream]:
    """An aiortc publisher connected straight to one aiortc subscriber: the no-relay baseline path."""
    use_ice_host_addresses(["127.0.0.1"])
    config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    pub, sub = RTCPeerConnection(config), RTCPeerConnection(config)
    transceiver = pub.addTransceiver(SilentTrack(clip.kind), direction="sendonly")
    mime = "video/VP8" if clip.kind == "video" else "audio/opus"
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities(clip.kind).codecs if c.mimeType == mime]
    )
    await pub.setLocalDescription(await pub.createOffer())
    await sub.setRemoteDescription(pub.localDescription)
    await sub.setLocalDescription(await sub.createAnswer())
    if sink is not None:
        sink.attach(sub)
    await pub.setRemoteDescription(sub.localDescription)
    return pub, sub, OutStream(transceiver, clip)


async def relay_join(
    relay: RelayUnderTest, meeting_id: str, participant_id: str, path: PathPlan | None = None
) -> dict[str, float]:
    """One real client joining through the relay: ms to welcome, to media connected, to first frame.
    ``path``: how its media goes (client_sdk/rtc/paths.py; default direct)."""
    started = time.monotonic()
    conn = RelayConnection(relay.url, relay.token(meeting_id, participant_id), {}, path=path)
    try:
        await conn.connect()
        welcome = time.monotonic()
        while True:
            event = await asyncio.wait_for(conn.events.get(), 10)
            if event.type == "track" and event.track is not None and event.track.info.kind == "video":
                break
        await asyncio.wait_for(event.track.track.recv(), 10)
        first_frame = time.monotonic()
        connected_at = getattr(conn, "connected_at", None)
    finally:
        await conn.close()
    return {
        "welcome_ms": (welcome - started) * 1000,
        "connected_ms": (connected_at - started) * 1000 if connected_at else float("nan"),
        "first_frame_ms": (first_frame - started) * 1000,
    }


async def direct_join(clip: Clip, scheduler: Scheduler) -> dict[str, float]:
    """The same from a peer connected straight to a (fresh) publisher stream: the no-relay baseline."""
    started = time.monotonic()
    pub, sub, stream = await direct_pair(clip, None)
    scheduler.add([stream])
    try:
        track = sub.getTransceivers()[0].receiver.track
        recv = asyncio.ensure_future(track.recv())
        await wait_until(lambda: sub.connectionState == "connected", 10, interval_s=0.002)
        connected = time.monotonic()
        await asyncio.wait_for(recv, 10)
        first_frame = time.monotonic()
    finally:
        stream.stopped = True
        await pub.close()
        await sub.close()
    return {
        "welcome_ms": float("nan"),
        "connected_ms": (connected - started) * 1000,
        "first_frame_ms": (first_frame - started) * 1000,
    }


async def join_samples(
    relay: RelayUnderTest, meeting_id: str, clip: Clip, scheduler: Scheduler, samples: int
) -> dict[str, Any]:
    relayed = [await relay_join(relay, meeting_id, f"joiner-{i}") for i in range(samples)]
    direct = [await direct_join(clip, scheduler) for _ in range(samples)]

    def summary(rows: list[dict[str, float]]) -> dict[str, float]:
        out = {}
        for key in rows[0]:
            values = [r[key] for r in rows if r[key] == r[key]]
            out[f"{key}_median"] = statistics.median(values) if values else float("nan")
            out[f"{key}_max"] = max(values) if values else float("nan")
        return out

    relay_s, direct_s = summary(relayed), summary(direct)
    return {
        "samples": samples,
        "relay": relay_s,
        "direct": direct_s,
        "relay_rows": relayed,
        "direct_rows": direct,
        "added_median_ms": relay_s["first_frame_ms_median"] - direct_s["first_frame_ms_median"],
    }


def latency_summary(relayed: list[float], direct: list[float]) -> dict[str, float]:
    """p50/p99 one-way delay of relayed and direct packets, and their difference (what the relay adds)."""
    out = {
        "relayed_p50_ms": percentile(relayed, 50),
        "relayed_p99_ms": percentile(relayed, 99),
        "direct_p50_ms": percentile(direct, 50),
        "direct_p99_ms": percentile(direct, 99),
        "samples": len(relayed),
    }
    out["added_p50_ms"] = out["relayed_p50_ms"] - out["direct_p50_ms"]
    out["added_p99_ms"] = out["relayed_p99_ms"] - out["direct_p99_ms"]
    return out
