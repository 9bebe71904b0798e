"""Forwarding a simulcast source (edge_relay/sfu/layered.py, switching.py, layers.py) at the RTP level.

Like tests/edge_relay/test_forwarder.py: real RTP packets in through ``PublishedTrack.on_packet``, what the
forwarder sends parsed back; fakes only at the DTLS send seam and the publisher's feedback channel. The
publisher sends two layers (rid ``l`` at 320x240 and ``h`` at 640x480), each with its own SSRC,
sequence numbers, timestamps, PictureIDs and TL0PICIDX, as Chromium's simulcast encoders do.
"""

from __future__ import annotations

import itertools
import time

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket, pack_remb_fci

from edge_relay.sfu import forwarder
from edge_relay.sfu.forwarder import PublishedTrack
from edge_relay.sfu.layers import LayerPolicy, quality_index
from edge_relay.sfu.rtp import parse_header
from edge_relay.sfu.simulcast import EXT_RID, RID_EXTENSION_ID, SimulcastSource
from edge_relay.sfu.vp8 import keyframe_size, parse_descriptor
from tests.edge_relay.test_forwarder import make_track, stats, subscribe  # noqa: F401 (stats: a fixture)

SMALL, BIG = 0x5111, 0xB166
_RID_MAP = HeaderExtensionsMap()
_RID_MAP.configure(
    RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=RID_EXTENSION_ID, uri=EXT_RID)])
)


def vp8(ssrc: int, seq: int, ts: int, pid: int, tl0: int, key: bool = False, rid: str | None = None) -> bytes:
    """One packet starting a VP8 frame: Chromium's descriptor (15-bit PictureID, TL0PICIDX, TID 0)."""
    width, height = (640, 480) if ssrc == BIG else (320, 240)
    frame = b"\x00\x00\x00\x9d\x01\x2a" + width.to_bytes(2, "little") + height.to_bytes(2, "little")
    descriptor = bytes([0x90, 0xE0, 0x80 | pid >> 8, pid & 0xFF, tl0, 0x20])
    packet = RtpPacket(
        payload_type=96,
        sequence_number=seq & 0xFFFF,
        timestamp=ts & 0xFFFFFFFF,
        ssrc=ssrc,
        payload=descriptor + (frame if key else b"\x01" + bytes(20)),
    )
    packet.marker = 1
    packet.extensions.rtp_stream_id = rid if rid is not None else ("h" if ssrc == BIG else "l")
    return packet.serialize(_RID_MAP)


def simulcast_track() -> tuple[PublishedTrack, object]:
    track, upstream = make_track("video/VP8", 90000, {RID_EXTENSION_ID: EXT_RID})
    track.simulcast = SimulcastSource(["h", "m", "l"], RID_EXTENSION_ID, 90000)
    return track, upstream


class Publisher:
    """Both layers' counters, advancing one frame at a time (30 fps)."""

    def __init__(self, track: PublishedTrack) -> None:
        self.track = track
        self.frame = 0
        self.base = {SMALL: (1000, 50_000, 200, 20), BIG: (40_000, 9_000_000, 30_000, 200)}

    async def frames(self, n: int, key: set[int] = frozenset(), only: int | None = None) -> None:  # type: ignore[assignment]
        for _ in range(n):
            for ssrc, (seq, ts, pid, tl0) in self.base.items():
                if only is not None and ssrc != only:
                    continue
                data = vp8(
                    ssrc,
                    seq + self.frame,
                    ts + 3000 * self.frame,
                    pid + self.frame,
                    tl0 + self.frame,
                    ssrc in key,
                )
                await self.track.on_packet(data, parse_header(data), 0)
            self.frame += 1


async def test_each_subscriber_gets_its_layer_on_one_ssrc_and_switches_seamlessly(stats) -> None:  # noqa: F811
    track, upstream = simulcast_track()
    ann, ann_out = subscribe(track, pt=100, ssrc=0xAAAA)
    ben, ben_out = subscribe(track, pt=101, ssrc=0xBBBB)
    pub = Publisher(track)
    await pub.frames(1, key={SMALL, BIG})  # both layers seen, sizes known
    await ben.set_quality("low")
    await track.layers_upkeep(time.monotonic() * 1000)
    assert (ann.switch.target.rid, ben.switch.target.rid) == ("h", "l")
    await pub.frames(2, key={SMALL, BIG})
    await pub.frames(5)
    ann_packets = [RtpPacket.parse(d) for d in ann_out.sent]
    ben_packets = [RtpPacket.parse(d) for d in ben_out.sent]
    assert {p.ssrc for p in ann_packets} == {0xAAAA} and {p.ssrc for p in ben_packets} == {0xBBBB}
    assert len(ann_packets) == len(ben_packets) == 7  # one layer each, from its key frame on
    assert parse_descriptor(ann_packets[0].payload).picture_id == 30_001  # the big layer

    # Ben asks for high: a key frame of the big layer is requested; he switches at it, not before.
    track.simulcast.layers["h"].last_keyframe_request = -1e9  # (no request of the start within the throttle)
    await ben.set_quality("high")
    assert upstream.keyframe_requests[-1] == BIG
    await pub.frames(2)
    assert len(ben_out.sent) == 9 and {RtpPacket.parse(d).payload_type for d in ben_out.sent} == {101}
    await pub.frames(1, key={BIG})
    await pub.frames(3)
    ben_packets = [RtpPacket.parse(d) for d in ben_out.sent]
    descriptors = [parse_descriptor(p.payload) for p in ben_packets]
    seqs = [p.sequence_number for p in ben_packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]  # no gap at the switch
    stamps = [p.timestamp for p in ben_packets]
    assert all(0 < (b - a) & 0xFFFFFFFF < 90_000 for a, b in itertools.pairwise(stamps))
    pids = [d.picture_id for d in descriptors]
    assert pids == [(pids[0] + i) & 0x7FFF for i in range(len(pids))]
    tl0s = [d.tl0picidx for d in descriptors]
    assert tl0s == [(tl0s[0] + i) & 0xFF for i in range(len(tl0s))]
    assert stats()["layer_switches"] == 1
    # the switch came at the big layer's key frame (after that round's small frame)
    assert [keyframe_size(p.payload, d) for p, d in zip(ben_packets, descriptors, strict=True)][9:11] == [
        None,
        (640, 480),
    ]


async def test_a_nack_from_before_a_switch_gets_nothing_from_the_other_layer(stats) -> None:  # noqa: F811
    track, _ = simulcast_track()
    ben, out = subscribe(track, ssrc=0xBBBB)
    pub = Publisher(track)
    await pub.frames(1, key={SMALL, BIG})
    await ben.set_quality("low")
    await pub.frames(1, key={SMALL})
    await pub.frames(3)
    await ben.set_quality("high")
    await pub.frames(1, key={BIG})
    first_big = RtpPacket.parse(out.sent[-1]).sequence_number
    sent = len(out.sent)
    await ben.on_nack([(first_big - 2) & 0xFFFF, first_big])  # a small-layer packet, the key frame
    assert len(out.sent) == sent + 1
    assert RtpPacket.parse(out.sent[-1]).sequence_number == first_big
    assert stats()["retransmit_misses"] == 1


async def test_bad_layers_are_dropped_and_counted(stats) -> None:  # noqa: F811
    track, _ = simulcast_track()
    _, out = subscribe(track)
    unknown = vp8(0x777, 1, 1, 1, 1, key=True, rid="zz")
    await track.on_packet(unknown, parse_header(unknown), 0)
    good = vp8(BIG, 5, 5, 5, 5, key=True)
    await track.on_packet(good, parse_header(good), 0)
    for broken_payload in (b"\x90", b"\x90\x80", b"\x90\xe0\x81"):
        packet = RtpPacket.parse(good, _RID_MAP)
        packet.payload = broken_payload
        packet.sequence_number += 1
        data = packet.serialize(_RID_MAP)
        await track.on_packet(data, parse_header(data), 0)
    counted = stats()
    assert counted["unknown_rid"] == 1 and counted["malformed_vp8"] == 3
    assert len(out.sent) <= 1  # only the good key frame could have been forwarded


async def test_one_weak_subscriber_gets_a_lower_layer_without_lowering_the_others() -> None:
    track, _ = simulcast_track()
    strong, _ = subscribe(track, ssrc=0xAAAA)
    weak, _ = subscribe(track, ssrc=0xBBBB)
    pub = Publisher(track)
    await pub.frames(1, key={SMALL, BIG})
    track.simulcast.layers["l"].bitrate, track.simulcast.layers["h"].bitrate = 150_000, 900_000
    for sub, estimates in ((strong, (1_500_000, 1_600_000)), (weak, (1_400_000, 400_000))):
        for bps in estimates:  # the weak one's estimate falls below the big layer's bitrate
            sub.on_remb(pack_remb_fci(bps, [sub.ssrc]))
    await track.select_layers(time.monotonic())
    assert (strong.switch.target.rid, weak.switch.target.rid) == ("h", "l")
    # and the publisher is asked for the most, not for the weakest estimate
    assert track.target_bitrate() == forwarder.MAX_BITRATE


def test_the_policy_falls_at_once_waits_then_climbs_one_layer() -> None:
    policy = LayerPolicy()
    rates = [150_000.0, 400_000.0, 1_000_000.0]
    assert policy.choose(rates, None, 0.0) == 2  # no estimate yet: the wanted quality
    policy.on_estimate(1_600_000, 0.0)
    assert policy.choose(rates, 2, 0.1) == 2
    policy.on_estimate(500_000, 1.0)  # a fall below the top layer's bitrate
    assert policy.choose(rates, 2, 1.0) == 1  # at once, to the best that fits
    policy.on_estimate(600_000, 2.0)
    assert policy.choose(rates, 1, 2.0) == 1  # holding after the fall
    assert policy.choose(rates, 1, 1.0 + LayerPolicy.HOLD_S + 0.1) == 2  # then one layer up
    policy.on_estimate(450_000, 6.0)  # the receiver's estimate lags what it now gets: grace
    assert policy.choose(rates, 2, 6.0) == 2
    policy.on_estimate(300_000, 9.0)  # a real fall after the grace period: down, a longer hold
    assert policy.choose(rates, 2, 9.0) == 0
    assert policy.choose(rates, 0, 9.0 + LayerPolicy.HOLD_S + 0.1) == 0  # the hold doubled
    policy.on_estimate(300_000, 16.0)  # (steady: no further fall)
    assert policy.choose(rates, 0, 9.0 + 2 * LayerPolicy.HOLD_S + 0.1) == 1
    policy.on_estimate(100_000, 30.0)  # an estimate below even what it gets: no try upwards
    assert policy.choose(rates, 0, 30.0) == 0


def test_the_policy_obeys_the_wanted_quality() -> None:
    policy = LayerPolicy()
    rates = [150_000.0, 400_000.0, 1_000_000.0]
    policy.on_estimate(5_000_000, 0.0)
    policy.quality = "low"
    assert policy.choose(rates, 2, 0.0) == 0
    policy.quality = "medium"
    assert policy.choose(rates, 0, 0.1) == 1  # no fall happened: straight up to the wanted quality
    policy.quality = "high"
    assert policy.choose(rates, 1, 0.2) == 2
    policy.quality = "low"
    assert policy.choose(rates, 2, 60.0) == 0  # a stale estimate is no constraint, the quality is
    assert [quality_index(q, 2) for q in ("low", "medium", "high")] == [0, 1, 1]
    assert [quality_index(q, 1) for q in ("low", "medium", "high")] == [0, 0, 0]


async def test_a_layer_that_stops_is_left_for_one_still_flowing() -> None:
    """Browsers drop layers when short of CPU: a subscriber on a layer that stopped moves to a live one."""
    track, upstream = simulcast_track()
    ann, out = subscribe(track, ssrc=0xAAAA)
    pub = Publisher(track)
    await pub.frames(1, key={SMALL, BIG})
    await track.layers_upkeep(time.monotonic() * 1000)
    await pub.frames(1, key={BIG})
    assert ann.switch.layer.rid == "h"
    track.simulcast.layers["h"].last_packet_at -= 5  # nothing from the big layer for 5 s
    await track.layers_upkeep(time.monotonic() * 1000)
    assert ann.switch.target.rid == "l" and upstream.keyframe_requests[-1] == SMALL
    await pub.frames(1, key={SMALL}, only=SMALL)
    await pub.frames(2, only=SMALL)
    assert ann.switch.layer.rid == "l" and len(out.sent) == 4
    seqs = [RtpPacket.parse(d).sequence_number for d in out.sent]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(4)]


async def test_layers_whose_key_frames_were_lost_are_asked_for_one() -> None:
    track, upstream = simulcast_track()
    subscribe(track)
    pub = Publisher(track)
    await pub.frames(2)  # inter frames only: no layer's size is known, nothing can be chosen
    await track.layers_upkeep(time.monotonic() * 1000)
    assert sorted(upstream.keyframe_requests) == [SMALL, BIG]
