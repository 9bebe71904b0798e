"""``python -m bench.simulcast_forwarding``: the relay's CPU per forwarded packet for a simulcast source,
against a single-stream VP8 source measured in the same run (the baseline), in-process.

Both go through ``PublishedTrack.on_packet`` (parse, history, receive statistics, per-subscriber rewrite)
to the DTLS send seam, replaced here by a no-op so that only the forwarder's own work is timed (SRTP and
``sendto`` cost the same either way: see DESIGN.md's media-plane table). The simulcast source receives
two layers (as a 640x480 Chromium camera sends) and every subscriber gets the top one, so its figure
includes the work on packets of the layer nobody gets, plus the VP8 descriptor parse and munge.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from edge_relay.sfu.forwarder import PublishedTrack, Subscription
from edge_relay.sfu.rtp import ExtensionMap, parse_header
from edge_relay.sfu.simulcast import EXT_RID, RID_EXTENSION_ID, SimulcastSource

SUBSCRIBERS = 8
FRAMES = 3000
PACKETS_PER_FRAME = 3
_RIDS = HeaderExtensionsMap()
_RIDS.configure(
    RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=RID_EXTENSION_ID, uri=EXT_RID)])
)


class _Sink:
    async def _send_rtp(self, data: bytes) -> None:
        return None


class _Upstream:
    async def request_keyframe(self, media_ssrc: int) -> None:
        return None

    async def nack(self, media_ssrc: int, lost: list[int]) -> None:
        return None

    async def report(self, track: Any) -> None:
        return None


def _stream(ssrc: int, rid: str, size: tuple[int, int], frames: int) -> list[bytes]:
    """A VP8 stream as Chromium packetizes it: a key frame, then inter frames, ~1100-byte packets."""
    out = []
    for f in range(frames):
        for i in range(PACKETS_PER_FRAME):
            descriptor = bytes(
                [0x90 if i == 0 else 0x80, 0xE0, 0x80 | (f >> 8) & 0x7F, f & 0xFF, f & 0xFF, 0x20]
            )
            body = (
                b"\x00\x00\x00\x9d\x01\x2a" + size[0].to_bytes(2, "little") + size[1].to_bytes(2, "little")
                if f == 0 and i == 0
                else b"\x01"
            )
            packet = RtpPacket(
                payload_type=96,
                sequence_number=(f * PACKETS_PER_FRAME + i) & 0xFFFF,
                timestamp=f * 3000,
                ssrc=ssrc,
            )
            packet.payload = descriptor + body + bytes(1100 - len(body))
            packet.marker = int(i == PACKETS_PER_FRAME - 1)
            packet.extensions.rtp_stream_id = rid
            out.append(packet.serialize(_RIDS))
    return out


def _track(simulcast: bool) -> PublishedTrack:
    track = PublishedTrack(
        "bench/camera", "video", "video/VP8", 90000, {}, 0x1000, _Upstream(), {RID_EXTENSION_ID: EXT_RID}
    )
    if simulcast:
        track.simulcast = SimulcastSource(["h", "m", "l"], RID_EXTENSION_ID, 90000)
    for n in range(SUBSCRIBERS):
        sub = Subscription(track, _Sink(), 96, 0x2000 + n, ExtensionMap(track.extensions, {}))  # type: ignore[arg-type]
        sub.ready = True
        track.subscriptions.append(sub)
    return track


async def _run(track: PublishedTrack, packets: list[bytes], prime: list[bytes]) -> tuple[float, int]:
    for data in prime:  # key frames: sizes known, layers chosen, forwarding started
        await track.on_packet(data, parse_header(data), 0)
    if track.simulcast is not None:
        await track.select_layers(time.monotonic())
        for data in prime:
            await track.on_packet(data, parse_header(data), 0)
    sent = sum(s.packets for s in track.subscriptions)
    start = time.process_time()
    for data in packets:
        await track.on_packet(data, parse_header(data), 0)
    return time.process_time() - start, sum(s.packets for s in track.subscriptions) - sent


async def measure() -> dict[str, float]:
    big = _stream(0xB1, "h", (640, 480), FRAMES)
    small = _stream(0x51, "l", (320, 240), FRAMES)
    interleaved = [p for pair in zip(small, big, strict=True) for p in pair]
    single_cpu, single_out = await _run(_track(False), big[PACKETS_PER_FRAME:], big[:PACKETS_PER_FRAME])
    prime = small[:PACKETS_PER_FRAME] + big[:PACKETS_PER_FRAME]
    layered_cpu, layered_out = await _run(_track(True), interleaved[2 * PACKETS_PER_FRAME :], prime)
    single = single_cpu / single_out * 1e6
    layered = layered_cpu / layered_out * 1e6
    return {
        "subscribers": SUBSCRIBERS,
        "single_stream_us_per_forwarded_packet": round(single, 2),
        "simulcast_us_per_forwarded_packet": round(layered, 2),
        "simulcast_x_single_stream": round(layered / single, 2),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure()), indent=2))
