"""Synthetic publishers for the relay benchmark: pre-encoded VP8 and Opus replayed as RTP.

Why not aiortc's own senders: a 640x480 VP8 encoder costs ~10 ms of CPU per frame, so 80 encoding
publishers would need several cores and would starve the relay being measured on a 2-core machine. The
clip is encoded once (by aiortc's own ``Vp8Encoder`` / ``OpusEncoder``, with aiortc's settings) and its
payloads are replayed: real, decodable VP8 (a key frame at frame 0, the clip loops on it), so the same
publisher feeds the forwarding relay and aiortc's decoding ``MediaRelay`` baseline.

A stream is injected through the publisher connection's ``RTCDtlsTransport._send_rtp`` (the seam the
relay itself uses). It answers the relay's PLI by restarting the clip at its key frame on the next
frame (as an encoder forces one), NACKs from a small history, and its sender's periodic SRs are
rewritten with a real NTP <-> RTP mapping (aiortc's are all zero for a track that never yields). Video
packets carry abs-send-time, stamped at the moment of sending. The relay writes its own send time there
toward each subscriber (for the subscriber's bandwidth estimate), on the same monotonic clock as
:func:`abs_send_time`: so what a sink measures is the delay from the relay's send of that copy, not from
the publisher (the relay's fan-out queueing before it is left out; the sink only sees RTP headers).
"""

from __future__ import annotations

import asyncio
import fractions
import heapq
import secrets
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc import RTCRtpTransceiver, clock
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
)

from edge_relay.sfu import seams
from edge_relay.sfu.rtp import EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL, EXT_MID

_HEADER = struct.Struct("!BBHII")
ABS_UNITS_PER_S = 1 << 18  # abs-send-time: 6.18 fixed-point seconds, 24 bits (wraps every 64 s)


def abs_send_time(ns: int | None = None) -> int:
    """This machine's monotonic clock as abs-send-time (3.8 us resolution): the clock the relay stamps
    with too (edge_relay.sfu.rtp.abs_send_time_now), so senders, relay and sinks share one clock."""
    return (((time.monotonic_ns() if ns is None else ns) << 18) // 1_000_000_000) & 0xFFFFFF


def abs_delay_ms(sent: int, arrived: int) -> float:
    """One-way delay between two abs-send-time stamps (mod 64 s), in ms."""
    return ((arrived - sent) & 0xFFFFFF) * 1000 / ABS_UNITS_PER_S


@dataclass(frozen=True)
class Clip:
    """Encoded media as RTP payloads, frame by frame (video frame 0 is a key frame)."""

    kind: str
    clock_rate: int
    frame_ticks: int  # RTP timestamp increment per frame
    frames: list[list[bytes]]

    @property
    def frame_s(self) -> float:
        return self.frame_ticks / self.clock_rate

    @property
    def fps(self) -> float:
        return self.clock_rate / self.frame_ticks

    @property
    def packets_per_s(self) -> float:
        return sum(len(f) for f in self.frames) / (len(self.frames) * self.frame_s)

    @property
    def kbps(self) -> float:
        return sum(len(p) for f in self.frames for p in f) * 8 / (len(self.frames) * self.frame_s) / 1000


def encode_video_clip(seconds: float = 3.0, width: int = 640, height: int = 480, fps: int = 30) -> Clip:
    """Moving bars, a moving box and a band of noise (so the encoder has to spend bits), ~1 Mbps VP8.

    The 8-row noise band holds aiortc's CBR encoder near its 1 Mbps target (~110 packets/s): a flat
    pattern would undershoot to a few hundred kbps, far from a real camera.
    """
    from aiortc.codecs.vpx import Vp8Encoder

    encoder = Vp8Encoder()
    encoder.target_bitrate = 1_000_000
    rng = np.random.default_rng(7)
    ramp = (np.arange(width) * 3).astype(np.uint16)
    chroma = np.full(width * height // 2, 128, np.uint8)
    frames = []
    for n in range(round(seconds * fps)):
        y = np.broadcast_to(((ramp + n * 4) % 256).astype(np.uint8), (height, width)).copy()
        bx, by = (n * 7) % (width - 80), (n * 3) % (height - 80)
        y[by : by + 80, bx : bx + 80] = 235
        y[200:208] = rng.integers(0, 256, (8, width), dtype=np.uint8)
        planes = np.concatenate([y.reshape(-1), chroma]).reshape(height * 3 // 2, width)
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts, frame.time_base = n * 90000 // fps, fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=n == 0)
        frames.append(payloads)
    return Clip("video", 90000, 90000 // fps, frames)


def encode_audio_clip(seconds: float = 1.0) -> Clip:
    """A 440 Hz tone as Opus, 20 ms frames (what aiortc's audio sender would send)."""
    from aiortc.codecs.opus import OpusEncoder

    encoder = OpusEncoder()
    samples = 960
    t = np.arange(round(seconds * 48000) + samples) / 48000
    pcm = (6000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    frames = []
    for n in range(round(seconds * 50)):
        frame = av.AudioFrame.from_ndarray(
            pcm[n * samples : (n + 1) * samples].reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = 48000, n * samples
        payloads, _ = encoder.encode(frame)
        if payloads:
            frames.append(payloads)
    return Clip("audio", 48000, samples, frames)


class OutStream:
    """One synthetic RTP stream on one DTLS transport (one sending m-line of a publisher)."""

    HISTORY = 512

    def __init__(self, transceiver: RTCRtpTransceiver, clip: Clip) -> None:
        sender = transceiver.sender
        self.transport: RTCDtlsTransport = sender.transport
        self.clip = clip
        self.ssrc = seams.sender_ssrc(sender)
        payload_type = seams.negotiated_codecs(transceiver)[0].payloadType
        assert payload_type is not None  # negotiated codecs always carry one
        self.payload_type: int = payload_type
        ids = seams.negotiated_extensions(transceiver)
        mid = str(transceiver.mid).encode()
        # one-byte header extension elements: MID (constant), then abs-send-time or audio level
        self._mid_elem = bytes([(ids[EXT_MID] << 4) | (len(mid) - 1)]) + mid if EXT_MID in ids else b""
        self._abs_id = ids.get(EXT_ABS_SEND_TIME) if clip.kind == "video" else None
        level_id = ids.get(EXT_AUDIO_LEVEL, 0) if clip.kind == "audio" else 0
        self._level_elem = bytes([level_id << 4, 0x80 | 30]) if level_id else b""  # voice, -30 dBov
        self.seq = secrets.randbits(16)  # RFC 3550: random initial sequence number and timestamp
        self.ts_origin = secrets.randbits(32)
        self.started_at: float | None = None  # monotonic time of RTP timestamp ts_origin
        self.frame_index = 0
        self.keyframe_wanted = False
        self.history: list[bytes | None] = [None] * self.HISTORY
        self.packets = self.octets = self.frames = self.retransmissions = self.keyframes = 0
        self.keyframe_requests = self.nacks = 0
        self.stopped = False  # the scheduler forgets a stream once it is stopped
        seams.on_sender_rtcp(sender, self.on_rtcp)
        seams.rewrite_sender_reports(sender, self.sender_reports)

    @property
    def connected(self) -> bool:
        return self.transport.state == "connected"

    def _extension(self) -> bytes:
        body = self._mid_elem + self._level_elem
        if self._abs_id is not None:
            body += bytes([(self._abs_id << 4) | 2]) + abs_send_time().to_bytes(3, "big")
        if not body:
            return b""
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("!HH", 0xBEDE, len(body) // 4) + body

    async def send_frame(self, now: float) -> None:
        """Send the next frame of the clip (restarting at its key frame if one was asked for)."""
        if not self.connected:
            return
        if self.started_at is None:
            self.started_at = now
            self.frame_index = 0  # like a fresh encoder: start on a key frame
        if self.keyframe_wanted and self.clip.kind == "video":
            self.keyframe_wanted = False
            self.frame_index = 0
        clip = self.clip
        payloads = clip.frames[self.frame_index % len(clip.frames)]
        if self.frame_index % len(clip.frames) == 0 and clip.kind == "video":
            self.keyframes += 1
        self.frame_index += 1
        ts = (self.ts_origin + round((now - self.started_at) * clip.clock_rate)) & 0xFFFFFFFF
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            marker = 0x80 if i == last and clip.kind == "video" else 0
            ext = self._extension()
            head = _HEADER.pack(0x90 if ext else 0x80, marker | self.payload_type, self.seq, ts, self.ssrc)
            packet = head + ext + payload
            self.history[self.seq % self.HISTORY] = packet
            self.seq = (self.seq + 1) & 0xFFFF
            try:
                await seams.send_rtp(self.transport, packet)
            except ConnectionError:
                return
            self.packets += 1
            self.octets += len(payload)
        self.frames += 1

    async def on_rtcp(self, packet: Any) -> None:
        """The relay's feedback: a key frame now (PLI/FIR), or a retransmission (NACK)."""
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.keyframe_requests += 1
            self.keyframe_wanted = True
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            self.nacks += 1
            for seq in packet.lost:
                data = self.history[seq % self.HISTORY]
                if data is not None and struct.unpack_from("!H", data, 2)[0] == seq:
                    try:
                        await seams.send_rtp(self.transport, data)
                        self.retransmissions += 1
                    except ConnectionError:
                        return

    def sender_reports(self, packets: list[Any]) -> list[Any]:
        """aiortc's SRs for this sender carry zeros (its track never yields): fill in the truth."""
        for packet in packets:
            if isinstance(packet, RtcpSrPacket) and self.started_at is not None:
                now = time.monotonic()
                rtp = self.ts_origin + round((now - self.started_at) * self.clip.clock_rate)
                packet.sender_info = RtcpSenderInfo(
                    ntp_timestamp=clock.current_ntp_time(),
                    rtp_timestamp=rtp & 0xFFFFFFFF,
                    packet_count=self.packets & 0xFFFFFFFF,
                    octet_count=self.octets & 0xFFFFFFFF,
                )
        return packets


class Scheduler:
    """Paces every stream at its clip's frame rate from one task (no task per stream).

    Each entry has its own phase, as independent publishers would; an entry may hold several streams
    that send the same frame at the same instant (a publisher's relay and direct connections, for the
    latency baseline), taken in alternating order so neither path is systematically first.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, list[OutStream]]] = []
        self._count = 0
        self.late_s = 0.0  # worst lateness of a frame, a sign of an overloaded load generator

    def add(self, streams: Sequence[OutStream], phase_s: float = 0.0) -> None:
        self._count += 1
        heapq.heappush(self._heap, (time.monotonic() + phase_s, self._count, list(streams)))

    async def run(self) -> None:
        while True:
            if not self._heap:
                await asyncio.sleep(0.01)
                continue
            due, key, streams = self._heap[0]
            if all(s.stopped for s in streams):
                heapq.heappop(self._heap)
                continue
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
                continue
            heapq.heapreplace(self._heap, (due + streams[0].clip.frame_s, key, streams))
            self.late_s = max(self.late_s, now - due)
            if len(streams) > 1 and streams[0].frame_index % 2:
                streams = streams[::-1]
            for stream in streams:
                await stream.send_frame(due)
            # Sending never suspends (aiortc's send path has no real await): let the receivers run
            # between frames, or a late scheduler would starve them and inflate every delay measured.
            await asyncio.sleep(0)
