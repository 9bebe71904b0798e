"""Cheap subscribers for the relay benchmark: count RTP at the ICE layer, never decrypt or decode.

Why so low: 64-128 subscribers run in the benchmark's own process on a 2-core machine shared with the
relay under test. aiortc's normal receive path (a queue hop, SRTP unprotect, parse, jitter buffer,
decoder thread) would cost the load generator more than the relay costs. SRTP leaves the RTP header in
clear (RFC 3711), so a sink reads SSRC, sequence number, marker and the abs-send-time extension straight
from the datagram, in aioice's ``Connection.data_received`` (swapped per connection), and hands
everything else (DTLS, SRTCP) to aiortc as usual. The payload's authentication tag is not checked.

A sink still behaves like a receiver towards the relay: it NACKs what it misses (and what it drops on
purpose, ``SinkPool.drop``, to provoke retransmissions), and sends a receiver report and a REMB per
second, so RTCP flows both ways while the relay is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection
from aiortc.rtp import RtcpReceiverInfo, clamp_packets_lost
from aiortc.sdp import SessionDescription

from bench.rtp_media import abs_delay_ms, abs_send_time
from edge_relay.sfu import seams
from edge_relay.sfu.rtcp import build_nack, build_remb, build_rr
from edge_relay.sfu.rtp import EXT_ABS_SEND_TIME, MalformedPacket, find_extension, parse_header

NACK_RETRY_S = 0.1
NACK_TRIES = 3


@dataclass(slots=True)
class StreamCount:
    """What one sink received of one SSRC (sequence numbers extended past the 16-bit wrap)."""

    ssrc: int
    kind: str
    abs_id: int | None
    packets: int = 0  # every datagram, duplicates included
    unique: int = 0  # distinct sequence numbers kept (first copies and recovered ones)
    octets: int = 0
    frames: int = 0  # video: marker bits; audio: packets
    ext_max: int = -1
    base: int = 0  # extended sequence number of the first packet
    dropped: int = 0  # dropped on purpose (to provoke NACKs)
    recovered: int = 0  # missing packets that arrived later (retransmissions)
    duplicates: int = 0
    given_up: int = 0  # still missing after NACK_TRIES NACKs
    missing: dict[int, list[float]] = field(default_factory=dict)  # ext seq -> [NACKs sent, last at]
    reported_expected: int = 0
    reported_unique: int = 0


class CountingSink:
    """One subscriber connection's RTP counter (attach it once the connection has a transport)."""

    def __init__(self, pool: SinkPool, label: str = "") -> None:
        self.pool = pool
        self.label = label
        self.rtcp_ssrc = secrets.randbits(32)
        self.streams: dict[int, StreamCount] = {}
        self.latencies_ms: list[float] = []
        self.pc: RTCPeerConnection | None = None
        self._kinds: dict[int, tuple[str, int | None]] = {}
        self._original: Callable[[bytes, int], None] | None = None
        pool.sinks.append(self)

    def attach(self, pc: RTCPeerConnection) -> None:
        if self.pc is pc:
            return
        self.pc = pc
        connection = seams.bundled_transport(pc).transport._connection
        self._original = connection.data_received
        connection.data_received = self._datagram  # type: ignore[method-assign]

    def _kind_of(self, ssrc: int) -> tuple[str, int | None]:
        """An SSRC's kind and abs-send-time id, from the remote description's ``a=ssrc`` lines."""
        if ssrc not in self._kinds and self.pc is not None and self.pc.remoteDescription is not None:
            for media in SessionDescription.parse(self.pc.remoteDescription.sdp).media:
                ids = {e.uri: e.id for e in media.rtp.headerExtensions}
                for s in media.ssrc:
                    self._kinds[s.ssrc] = (media.kind, ids.get(EXT_ABS_SEND_TIME))
        return self._kinds.get(ssrc, ("unknown", None))

    def _datagram(self, data: bytes, component: int) -> None:
        if len(data) < 12 or not 128 <= data[0] < 192 or 192 <= data[1] <= 208:
            assert self._original is not None
            self._original(data, component)  # DTLS, SRTCP: aiortc's own path
            return
        ssrc = int.from_bytes(data[8:12], "big")
        s = self.streams.get(ssrc)
        if s is None:
            kind, abs_id = self._kind_of(ssrc)
            s = self.streams[ssrc] = StreamCount(ssrc, kind, abs_id)
        seq = (data[2] << 8) | data[3]
        s.packets += 1
        s.octets += len(data)
        if s.ext_max < 0:
            s.base = s.ext_max = seq + 0x10000
            self._keep(s, data)
            return
        delta = (seq - s.ext_max) & 0xFFFF
        if delta == 0:
            s.duplicates += 1
        elif delta < 0x8000:
            ext = s.ext_max + delta
            now = time.monotonic()
            for gap in range(max(s.ext_max + 1, ext - 64), ext):
                s.missing[gap] = [0, 0.0]  # lost on the way: NACK it like a receiver would
            s.ext_max = ext
            if self.pool.drop and random.random() < self.pool.drop:
                s.dropped += 1
                s.missing[ext] = [0, now - NACK_RETRY_S]
                return
            self._keep(s, data)
        else:
            ext = s.ext_max - (0x10000 - delta)
            if s.missing.pop(ext, None) is not None:
                s.recovered += 1
                s.unique += 1
            else:
                s.duplicates += 1

    def _keep(self, s: StreamCount, data: bytes) -> None:
        s.unique += 1
        if s.kind == "audio" or data[1] & 0x80:
            s.frames += 1
        if s.abs_id is not None and self.pool.recording and data[0] & 0x10:
            sent = _abs_value(data, s.abs_id)
            if sent is not None:
                self.latencies_ms.append(abs_delay_ms(sent, abs_send_time()))

    async def feedback(self, now: float, report: bool) -> None:
        """NACK what is missing (retrying), and once a second a receiver report and a REMB."""
        if self.pc is None:
            return
        transport = seams.bundled_transport(self.pc)
        for s in self.streams.values():
            due = []
            for ext, state in list(s.missing.items()):
                if now - state[1] < NACK_RETRY_S:
                    continue
                if state[0] >= NACK_TRIES:
                    del s.missing[ext]
                    s.given_up += 1
                    continue
                state[0] += 1
                state[1] = now
                due.append(ext & 0xFFFF)
            if due:
                self.pool.nacks_sent += 1
                await _send(transport, build_nack(self.rtcp_ssrc, s.ssrc, due))
        if report and self.streams:
            blocks = []
            for s in self.streams.values():
                expected = s.ext_max - s.base + 1 if s.ext_max >= 0 else 0
                lost_interval = (expected - s.reported_expected) - (s.unique - s.reported_unique)
                interval = max(1, expected - s.reported_expected)
                s.reported_expected, s.reported_unique = expected, s.unique
                blocks.append(
                    RtcpReceiverInfo(
                        ssrc=s.ssrc,
                        fraction_lost=min(255, max(0, lost_interval) * 256 // interval),
                        packets_lost=clamp_packets_lost(expected - s.unique),
                        highest_sequence=s.ext_max & 0xFFFFFFFF,
                        jitter=0,
                        lsr=0,
                        dlsr=0,
                    )
                )
            rtcp = build_rr(self.rtcp_ssrc, blocks)
            video = [s.ssrc for s in self.streams.values() if s.kind == "video"]
            if video and self.pool.remb_bps:
                rtcp += build_remb(self.rtcp_ssrc, self.pool.remb_bps, video)
            await _send(transport, rtcp)


async def _send(transport: object, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        await seams.send_rtp(transport, data)  # type: ignore[arg-type]


def _abs_value(data: bytes, abs_id: int) -> int | None:
    """The abs-send-time value of the packet, or None."""
    try:
        value = find_extension(data, parse_header(data), abs_id)
    except MalformedPacket:
        return None
    return int.from_bytes(value, "big") if value is not None and len(value) == 3 else None


@dataclass
class Totals:
    expected: int = 0  # sequence numbers spanned (first to highest received), per stream, summed
    packets: int = 0
    unique: int = 0
    octets: int = 0
    frames: int = 0
    dropped: int = 0
    recovered: int = 0
    duplicates: int = 0
    given_up: int = 0
    nacks_sent: int = 0

    def __sub__(self, other: Totals) -> Totals:
        return Totals(*(a - b for a, b in zip(vars(self).values(), vars(other).values(), strict=True)))

    @property
    def gap_loss_pct(self) -> float:
        """Sequence numbers the subscribers never got (after NACK repair), in % of those they expected."""
        return (
            max(0.0, (self.expected - self.unique) * 100 / self.expected) if self.expected else float("nan")
        )


class SinkPool:
    """All sinks of a run, and the one task that sends their RTCP (no task per sink)."""

    def __init__(self, drop: float = 0.0, remb_bps: int = 1_500_000) -> None:
        self.sinks: list[CountingSink] = []
        self.drop = drop
        self.remb_bps = remb_bps
        self.recording = False
        self.nacks_sent = 0

    def totals(self, sinks: list[CountingSink] | None = None) -> Totals:
        t = Totals(nacks_sent=self.nacks_sent)
        for sink in self.sinks if sinks is None else sinks:
            for s in sink.streams.values():
                t.expected += s.ext_max - s.base + 1 if s.ext_max >= 0 else 0
                t.packets += s.packets
                t.unique += s.unique
                t.octets += s.octets
                t.frames += s.frames
                t.dropped += s.dropped
                t.recovered += s.recovered
                t.duplicates += s.duplicates
                t.given_up += s.given_up
        return t

    def clear_latencies(self) -> None:
        for sink in self.sinks:
            sink.latencies_ms.clear()

    async def run(self, interval_s: float = 0.02) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(interval_s)
            ticks += 1
            now = time.monotonic()
            report = ticks % round(1 / interval_s) == 0
            for sink in list(self.sinks):
                await sink.feedback(now, report)
