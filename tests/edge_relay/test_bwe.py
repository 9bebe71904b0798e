"""A subscriber connection's estimate (edge_relay.sfu.bwe) from the RTCP it would really receive.

Packets go through :meth:`SubscriberBandwidth.stamp` (the send-path hook) on a fake clock, a simulated
bottleneck decides when each arrives, and the feedback comes back as transport-cc bytes built here the way
libwebrtc builds them (2-bit status vectors, small and large deltas), through :meth:`on_rtcp` like the
relay's RTCP tap passes it. Hostile feedback, REMB fallback, receiver-report RTT and the SDP both ways.
"""

from __future__ import annotations

import struct

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, clock
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpReceiverInfo, RtcpRrPacket, RtpPacket

from edge_relay.sfu import bwe
from edge_relay.sfu.bwe import SubscriberBandwidth
from edge_relay.sfu.rtcp import build_remb
from edge_relay.sfu.twcc import (
    EXT_TRANSPORT_CC,
    answered_transport_cc,
    free_extension_id,
    offer_transport_cc,
)

RTP = struct.pack("!BBHII", 0x80, 96, 1, 2, 3) + bytes(1188)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def build_feedback(base: int, statuses: list[int | None], reference: int, fb_count: int = 0) -> bytes:
    """Transport feedback for ``statuses`` (arrival in 250 us ticks from the reference, or None: lost)."""
    chunks, deltas = b"", b""
    last = reference * 256  # ticks
    symbols = []
    for arrival in statuses:
        if arrival is None:
            symbols.append(0)
            continue
        delta, last = arrival - last, arrival
        if 0 <= delta <= 255:
            symbols.append(1)
            deltas += bytes((delta,))
        else:
            symbols.append(2)
            deltas += struct.pack("!h", delta)
    for i in range(0, len(symbols), 7):
        group = (symbols[i : i + 7] + [0] * 7)[:7]
        value = 0xC000
        for j, s in enumerate(group):
            value |= s << (2 * (6 - j))
        chunks += struct.pack("!H", value)
    body = struct.pack("!IIHHI", 1, 2, base & 0xFFFF, len(statuses), ((reference & 0xFFFFFF) << 8) | fb_count)
    body += chunks + deltas
    body += bytes(-len(body) % 4)
    return struct.pack("!BBH", 0x8F, 205, len(body) // 4) + body


def run_link(
    sb: SubscriberBandwidth, fake: FakeClock, send_bps: float, capacity_bps: float, seconds: float
) -> list[int | None]:
    """Send through a bottleneck (drop-tail, 300 ms) with feedback every 100 ms; estimates after each."""
    interval = len(RTP) * 8 / send_bps
    free_at, estimates = fake.now, []
    pending: list[tuple[int, float | None]] = []
    end, next_fb = fake.now + seconds, fake.now + 0.1
    while fake.now < end:
        seq = sb._next
        sb.stamp(RTP)
        if free_at - fake.now > 0.3:
            pending.append((seq, None))
        else:
            free_at = max(free_at, fake.now) + (len(RTP) + 8) * 8 / capacity_bps
            pending.append((seq, free_at + 0.02))
        fake.now += interval
        if fake.now >= next_fb and pending:
            ref = int(pending[0][1] * 1000 / 64) if pending[0][1] is not None else int(fake.now * 1000 / 64)
            ticks = [None if a is None else round(a * 4000) for _, a in pending]
            assert not sb.on_rtcp(build_feedback(pending[0][0], ticks, ref))  # nothing left for aiortc
            estimates.append(sb.estimate_bps)
            pending, next_fb = [], next_fb + 0.1
    return estimates


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


def test_stamp_numbers_every_packet(fake: FakeClock) -> None:
    sb = SubscriberBandwidth("p", now=fake)
    sb.enable(5)
    ext_map = HeaderExtensionsMap()
    extensions = [RTCRtpHeaderExtensionParameters(5, EXT_TRANSPORT_CC)]
    ext_map.configure(RTCRtpParameters(headerExtensions=extensions))
    seqs = [RtpPacket.parse(sb.stamp(RTP), ext_map).extensions.transport_sequence_number for _ in range(3)]
    assert seqs == [0, 1, 2]


def test_feedback_through_a_bottleneck_lands_near_it(fake: FakeClock) -> None:
    sb = SubscriberBandwidth("p", now=fake)
    sb.enable(5)
    free = run_link(sb, fake, 1_000_000, 10_000_000, 8)
    assert sb.source == "transport-cc" and free[-1] is not None and free[-1] > 1_300_000
    capped = run_link(sb, fake, 1_000_000, 400_000, 8)
    assert all(e is not None and 0.6 * 400_000 <= e <= 1.15 * 400_000 for e in capped[-30:]), capped[-30:]


def test_hostile_feedback_is_dropped_and_counted(fake: FakeClock) -> None:
    sb = SubscriberBandwidth("p", now=fake)
    sb.enable(5)
    run_link(sb, fake, 1_000_000, 10_000_000, 3)
    before = sb.estimate_bps
    malformed, absurd = bwe.STATS.feedback_malformed, bwe.STATS.feedback_absurd
    good = build_feedback(sb._next - 3, [10, 20, 30], 0)
    assert sb.on_rtcp(good[:-4]) == b""  # truncated: the compound's length no longer adds up
    assert sb.on_rtcp(good[:14] + b"\xff\xff" + good[16:]) == b""  # chunks that announce too much
    assert bwe.STATS.feedback_malformed == malformed + 1
    arrival = round(fake.now * 4000)
    hour_later = arrival // 256 + 56_250  # in 64 ms ticks
    for _ in range(2):  # arrivals an hour later than packets sent just now
        sb.on_rtcp(build_feedback(sb._next - 2, [hour_later * 256 + 4, hour_later * 256 + 8], hour_later))
    assert bwe.STATS.feedback_absurd == absurd + 2
    sb.on_rtcp(build_feedback(sb._next + 100, [arrival], arrival // 256))  # numbers never sent
    sb.on_rtcp(build_feedback(sb._next - 2, [None] * 65000, 0))  # claims 65000 statuses, all lost
    assert sb.estimate_bps is not None and sb.estimate_bps >= 0.5 * (before or 0)


def test_other_rtcp_passes_through_and_feeds_rtt_and_loss(fake: FakeClock) -> None:
    sb = SubscriberBandwidth("p", now=fake)
    lsr = (
        (clock.current_ntp_time() - (100 << 32) // 1000) >> 16
    ) & 0xFFFFFFFF  # our SR 100 ms ago; held 20 ms
    report = RtcpReceiverInfo(
        ssrc=9, fraction_lost=64, packets_lost=3, highest_sequence=10, jitter=0, lsr=lsr, dlsr=1310
    )
    rr = bytes(RtcpRrPacket(ssrc=7, reports=[report]))
    fb = build_feedback(0, [1], 0)
    assert sb.on_rtcp(rr + fb) == rr  # the transport feedback is taken out, the RR left for aiortc
    assert sb.loss == 0.25
    assert sb.rtt_ms is not None and 70 <= sb.rtt_ms <= 100


def test_remb_is_the_estimate_without_transport_cc(fake: FakeClock) -> None:
    sb = SubscriberBandwidth("p", now=fake)
    assert sb.estimate_bps is None and sb.source is None
    sb.on_rtcp(build_remb(7, 300_000, [11]))
    sb.on_rtcp(build_remb(7, 200_000, [12]))  # aiortc: one REMB per received video stream
    sb.on_rtcp(build_remb(7, 250_000, [12]))
    assert (sb.source, sb.estimate_bps) == ("remb", 550_000)
    fake.now += 10
    assert sb.estimate_bps is None  # stale


def test_offer_and_answer() -> None:
    async def offer() -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    import asyncio

    sdp = asyncio.run(offer())
    ext_id = free_extension_id(sdp)
    assert ext_id not in (1, 2, 3) and ext_id is not None  # aiortc's own ids
    munged = offer_transport_cc(sdp, ext_id)
    audio, video = munged.split("\r\nm=")[1:]
    assert EXT_TRANSPORT_CC not in audio  # where the relay receives: the publisher is not asked for it
    assert f"a=extmap:{ext_id} {EXT_TRANSPORT_CC}" in video
    vp8 = next(line.split()[0][9:] for line in video.split("\r\n") if "VP8/90000" in line)
    rtx = next(line.split()[0][9:] for line in video.split("\r\n") if "rtx/90000" in line)
    assert f"a=rtcp-fb:{vp8} transport-cc" in video and f"a=rtcp-fb:{rtx} transport-cc" not in video
    assert offer_transport_cc(munged, ext_id) == munged  # idempotent
    assert offer_transport_cc(sdp, 1) == sdp  # never reuse an id that means something else

    async def aiortc_answer() -> str:
        pc = RTCPeerConnection()
        await pc.setRemoteDescription(RTCSessionDescription(munged, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = pc.localDescription.sdp
        await pc.close()
        return answer

    assert answered_transport_cc(asyncio.run(aiortc_answer())) is None  # aiortc drops it: REMB then
    browser_like = munged.replace("a=sendonly", "a=recvonly")
    assert answered_transport_cc(browser_like) == ext_id
    assert answered_transport_cc(browser_like.replace("transport-cc\r\n", "goog-remb\r\n")) is None
    hostile = browser_like.replace(f"a=extmap:{ext_id} ", "a=extmap:200 ")  # not an id we offer
    assert answered_transport_cc(hostile) is None
    assert answered_transport_cc(browser_like.replace(f"a=extmap:{ext_id} ", "a=extmap:x ")) is None
