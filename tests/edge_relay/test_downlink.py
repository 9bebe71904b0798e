"""A subscriber connection's allocation (edge_relay/sfu/downlink.py) driving simulcast layer switches.

Real simulcast packets through the forwarder as in test_simulcast_forwarding.py; the connection's estimate
is set directly (its sources, transport-cc and REMB, are tested in test_bwe.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from edge_relay.sfu.downlink import AUDIO_RESERVE_BPS, Downlink
from edge_relay.sfu.switching import UNDECIDED
from tests.edge_relay.test_forwarder import make_track, subscribe
from tests.edge_relay.test_simulcast_forwarding import BIG, SMALL, Publisher, simulcast_track

LOW_BPS, HIGH_BPS = 150_000, 600_000


@dataclass
class Estimate:
    """What the downlink reads of a connection's bandwidth (edge_relay/sfu/bwe.py)."""

    estimate_bps: float | None = None
    source: str = "transport-cc"


async def publishing_two_layers():
    track, upstream = simulcast_track()
    pub = Publisher(track)
    await pub.frames(1, key={SMALL, BIG})
    for layer in track.simulcast.layers.values():
        if layer.ssrc == SMALL:
            layer.bitrate = LOW_BPS
        elif layer.ssrc == BIG:
            layer.bitrate = HIGH_BPS
    return track, pub


async def apply(downlink: Downlink, subs, tracks) -> None:
    now = time.monotonic()
    downlink.allocate(subs, now)
    for track in tracks:
        await track.select_layers(now)


async def test_the_layer_follows_the_connections_estimate_and_pauses_below_the_lowest() -> None:
    track, pub = await publishing_two_layers()
    sub, out = subscribe(track, pt=100, ssrc=0xAAAA)
    bandwidth = Estimate(2_000_000)
    downlink = Downlink(bandwidth)  # type: ignore[arg-type]
    await apply(downlink, [sub], [track])
    assert sub.switch.allotted.ssrc == BIG and sub.switch.target.ssrc == BIG

    bandwidth.estimate_bps = 300_000  # down at once
    await apply(downlink, [sub], [track])
    assert sub.switch.target.ssrc == SMALL
    await pub.frames(1, key={SMALL})
    assert out.sent  # the small layer flows

    bandwidth.estimate_bps = 100_000  # not even the small layer fits: video paused, nothing sent
    await apply(downlink, [sub], [track])
    assert sub.switch.allotted is None and sub.switch.layer is None
    sent = len(out.sent)
    await pub.frames(3, key={SMALL, BIG})
    assert len(out.sent) == sent


async def test_tracks_of_one_subscriber_share_its_estimate() -> None:
    # Before, each track compared the connection's whole REMB with its own layer: two 600 kbit/s layers
    # both "fitted" in 800 kbit/s.
    (first, _), (second, _) = await publishing_two_layers(), await publishing_two_layers()
    second.track_id = "p2/cam"
    a, _ = subscribe(first, pt=100, ssrc=0xA)
    b, _ = subscribe(second, pt=101, ssrc=0xB)
    downlink = Downlink(Estimate(800_000))  # type: ignore[arg-type]
    await apply(downlink, [a, b], [first, second])
    assert (a.switch.allotted.ssrc, b.switch.allotted.ssrc) == (BIG, SMALL)


async def test_audio_is_set_aside_and_the_asked_quality_caps_the_layer() -> None:
    track, _ = await publishing_two_layers()
    video, _ = subscribe(track, pt=100, ssrc=0xA)
    voice_track, _ = make_track("audio/opus", 48000)
    voice, _ = subscribe(voice_track, pt=111, ssrc=0xC)
    bandwidth = Estimate(HIGH_BPS + AUDIO_RESERVE_BPS - 1)  # the audio reserve leaves too little for big
    downlink = Downlink(bandwidth)  # type: ignore[arg-type]
    await apply(downlink, [video, voice], [track])
    assert video.switch.allotted.ssrc == SMALL
    bandwidth.estimate_bps = 10_000_000
    video.switch.policy.quality = "low"
    await apply(downlink, [video, voice], [track])
    assert video.switch.allotted.ssrc == SMALL


async def test_without_an_estimate_the_switch_keeps_its_own_policy() -> None:
    track, _ = await publishing_two_layers()
    sub, _ = subscribe(track, pt=100, ssrc=0xA)
    await apply(Downlink(Estimate(None)), [sub], [track])  # type: ignore[arg-type]
    assert sub.switch.allotted is UNDECIDED and sub.switch.target.ssrc == BIG  # "high" by default
