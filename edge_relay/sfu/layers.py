"""Simulcast layers of one published source, and the choice of a layer for one subscriber.

A browser publishing simulcast sends several encodings of one camera, each its own SSRC, named by the
``rid`` it carries in the rtp-stream-id header extension (at least until the relay's RTCP tells it that
SSRC is known). :class:`Layer` is the relay's state for one encoding: what a single-stream
:class:`~edge_relay.sfu.forwarder.PublishedTrack` keeps for its one SSRC (history for NACKs, receive
statistics, the SR mapping), plus its measured bitrate and its size, read from its key frames (the rid
names say nothing reliable about which is largest: the browser assigns the scale factors).

:class:`LayerPolicy` decides which layer one subscriber should get, from its own REMB: so a weak
subscriber gets a lower layer without lowering anyone else's video. A receiver-side estimate only
grows to about 1.5 times what the receiver gets (libwebrtc's AIMD control caps it there), so it cannot
say "a higher layer would fit"; it only says "too much" by falling. Hence the rules: switch down when
the estimate falls below the current layer's bitrate; otherwise, while the estimate covers the current
layer, go up to the wanted quality, except after a recent fall, when the policy waits (doubling the
wait on each fall, up to a minute) and then tries one layer up; after each switch up, the estimate is
not judged for a grace period while the receiver's estimate follows what it now receives. Real
probing (padding, transport-cc) is later work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from edge_relay.sfu.history import PacketHistory
from edge_relay.sfu.rtcp import SenderReportMapper
from edge_relay.sfu.sequence import ReceiveStats

#: Qualities a subscriber may ask for, lowest first (``meetup_protocol.signalling``'s VideoQuality).
QUALITIES = ("low", "medium", "high")
RATE_WINDOW_S = 1.0  # bitrate measured over about this long, then smoothed
RATE_SMOOTHING = 0.5
STALE_S = 1.0  # a layer with no packet for this long has stopped


class Layer:
    """One simulcast encoding as received from the publisher."""

    __slots__ = (
        "_bytes",
        "_rate_at",
        "bitrate",
        "height",
        "history",
        "last_keyframe_request",
        "last_packet_at",
        "receive_stats",
        "rid",
        "sender_reports",
        "ssrc",
        "width",
    )

    def __init__(self, rid: str, clock_rate: int) -> None:
        self.rid = rid
        self.ssrc = 0  # learnt from its first packet
        self.history = PacketHistory()
        self.receive_stats = ReceiveStats(0)
        self.sender_reports = SenderReportMapper(clock_rate)
        self.width = self.height = 0  # from its last key frame
        self.bitrate = 0.0  # bit/s, smoothed
        self.last_keyframe_request = -1e9
        self.last_packet_at = -1e9
        self._bytes = 0
        self._rate_at: float | None = None

    def learn(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.receive_stats = ReceiveStats(ssrc)

    def count(self, size: int) -> None:
        self._bytes += size
        self.last_packet_at = time.monotonic()

    def measure(self, now: float) -> None:
        """Update :attr:`bitrate` (called from the track's upkeep, every ~200 ms)."""
        if self._rate_at is None:
            self._rate_at = now
            self._bytes = 0
            return
        elapsed = now - self._rate_at
        if elapsed < RATE_WINDOW_S:
            return
        rate = self._bytes * 8 / elapsed
        self.bitrate = rate if self.bitrate == 0 else self.bitrate + RATE_SMOOTHING * (rate - self.bitrate)
        self._bytes = 0
        self._rate_at = now

    @property
    def rank(self) -> tuple[int, float]:
        """What orders layers from lowest to highest quality: size, then bitrate."""
        return self.width * self.height, self.bitrate


def ranked(layers: Sequence[Layer], now: float) -> list[Layer]:
    """The layers flowing (a key frame seen, a packet within STALE_S), lowest quality first. A layer the
    browser stopped sending (it drops layers when short of CPU or bandwidth) is no choice any more."""
    live = (layer for layer in layers if layer.width and now - layer.last_packet_at < STALE_S)
    return sorted(live, key=lambda layer: layer.rank)


def quality_index(quality: str, count: int) -> int:
    """The index (in :func:`ranked` order) of the best layer a subscriber asking ``quality`` gets."""
    if count <= 0:
        return 0
    wanted = QUALITIES.index(quality)
    return min(count - 1, -(-wanted * (count - 1) // (len(QUALITIES) - 1)))  # medium of two: the top


class LayerPolicy:
    """Which layer one subscriber gets: its wanted quality, bounded by its own estimate."""

    HOLD_S = 4.0  # after a fall, wait this long before trying a layer up (doubles per fall)
    MAX_HOLD_S = 60.0
    GRACE_S = 3.0  # after a switch up, the estimate is not judged for this long
    CALM_S = 30.0  # a hold resets after this long without a fall
    FALL = 0.95  # an estimate below this share of the previous one is a fall

    def __init__(self) -> None:
        self.quality = "high"
        self.estimate: float | None = None  # bit/s, the subscriber's last REMB
        self._previous: float | None = None
        self._estimated_at = -1e9
        self._hold = self.HOLD_S
        self._wait_until = -1e9
        self._grace_until = -1e9
        self._last_fall = -1e9

    def on_estimate(self, bps: float, now: float) -> None:
        self._previous, self.estimate, self._estimated_at = self.estimate, bps, now

    def choose(self, rates: Sequence[float], current: int | None, now: float, max_age_s: float = 5.0) -> int:
        """The index of the layer to get, from layer bitrates lowest first and the current index."""
        cap = quality_index(self.quality, len(rates))
        estimate = self.estimate if now - self._estimated_at < max_age_s else None
        if estimate is None:
            return cap
        if current is None:  # a start: the best that fits what the subscriber says it can take
            return max((i for i in range(cap + 1) if rates[i] <= estimate), default=0)
        current = min(current, len(rates) - 1)
        if current > cap:
            return cap
        falling = self._previous is not None and estimate < self.FALL * self._previous
        too_much = estimate < rates[current] and (falling or estimate < rates[current] / 2)
        if too_much and now >= self._grace_until and current > 0:
            self._fell(now)
            return max((i for i in range(current) if rates[i] <= estimate), default=0)
        if current < cap and now >= self._wait_until and estimate >= rates[current]:
            self._grace_until = now + self.GRACE_S
            recent_fall = now - self._last_fall < self.CALM_S
            return current + 1 if recent_fall else cap
        return current

    def _fell(self, now: float) -> None:
        self._hold = (
            self.HOLD_S if now - self._last_fall > self.CALM_S else min(2 * self._hold, self.MAX_HOLD_S)
        )
        self._last_fall = now
        self._wait_until = now + self._hold
        self._previous = self.estimate  # one fall is judged once
