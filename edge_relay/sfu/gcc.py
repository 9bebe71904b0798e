"""A send-side bandwidth estimator in the spirit of Google Congestion Control (draft-ietf-rmcat-gcc-02).

Fed with what transport-cc feedback says of the packets the relay sent one subscriber (send time, size,
arrival time in the receiver's clock or lost), it keeps an estimate of that subscriber's downlink. The
pieces and their constants follow libwebrtc (``modules/congestion_controller/goog_cc``):

* :class:`InterArrival`: packets sent within 5 ms form a group; consecutive groups give the delay
  variation ``d = arrival delta - send delta`` (a queue that grows makes ``d`` positive).
* :class:`TrendlineDetector`: the accumulated, smoothed delay over the last 20 groups, its slope by
  least squares, compared with an adaptive threshold: overusing, underusing or normal.
* :class:`AimdRate`: on overuse, 0.85 x the acknowledged bitrate; while normal, +8 %/s far from the last
  known capacity and about a packet per response time near it; never above 1.5 x acknowledged + 10 kbps.
* loss: over 10 % lost, the estimate is held at what got through (the acknowledged bitrate); under 2 %,
  the loss cap rises 8 %/s.
* a floor: with no over-use and no loss, what got through (see :meth:`GccEstimator.on_feedback`).

One difference from a browser's GCC: the relay does not pace its own sending by the estimate (it forwards
what the publisher sends; choosing layers that fit is the allocator's job), so on a saturated link the
acknowledged bitrate *is* the link's capacity, and both decreases are taken from it. Times are in ms.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import NamedTuple

BURST_MS = 5.0  # send-time length of a group (kTimestampGroupLengthMs)
WINDOW = 20  # trendline window, groups
SMOOTHING = 0.9
THRESHOLD_GAIN = 4.0
MIN_DELTAS = 60
OVERUSE_TIME_MS = 10.0
K_UP, K_DOWN = 0.0087, 0.039
BETA = 0.85
ACKED_WINDOW_MS = 500.0
LOSS_HIGH, LOSS_LOW = 0.10, 0.02
PACKET_BITS = 1200 * 8


class PacketResult(NamedTuple):
    send_ms: float
    arrival_ms: float | None  # None: reported lost
    size: int  # bytes on the wire (RTP)


class Usage(Enum):
    NORMAL = "normal"
    OVERUSING = "overusing"
    UNDERUSING = "underusing"


class InterArrival:
    """Groups packets by send time and yields the deltas between consecutive complete groups."""

    def __init__(self) -> None:
        self._current: list[float] | None = None  # [first send, last send, last arrival]
        self._previous: list[float] | None = None

    def add(self, send_ms: float, arrival_ms: float) -> tuple[float, float, float] | None:
        """(send delta, arrival delta, arrival time) when ``send_ms`` closes a group, else None."""
        cur = self._current
        if cur is None:
            self._current = [send_ms, send_ms, arrival_ms]
            return None
        if send_ms < cur[0]:
            return None  # reordered behind the current group: libwebrtc drops it too
        in_burst = arrival_ms - cur[2] < BURST_MS and (arrival_ms - cur[2]) - (send_ms - cur[1]) < 0
        if send_ms - cur[0] <= BURST_MS or in_burst:
            cur[1], cur[2] = max(cur[1], send_ms), max(cur[2], arrival_ms)
            return None
        out = None
        prev = self._previous
        if prev is not None:
            out = (cur[1] - prev[1], cur[2] - prev[2], cur[2])
        self._previous, self._current = cur, [send_ms, send_ms, arrival_ms]
        return out


class TrendlineDetector:
    """Slope of the smoothed accumulated delay against arrival time, with an adaptive threshold."""

    def __init__(self) -> None:
        self.threshold = 12.5
        self.usage = Usage.NORMAL
        self.trend = 0.0
        self._points: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self._accumulated = 0.0
        self._smoothed = 0.0
        self._first_arrival: float | None = None
        self._deltas = 0
        self._last_update: float | None = None
        self._over_ms = -1.0
        self._over_count = 0
        self._prev_trend = 0.0

    def update(self, send_delta: float, arrival_delta: float, arrival_ms: float) -> Usage:
        self._deltas = min(self._deltas + 1, 1000)
        if self._first_arrival is None:
            self._first_arrival = arrival_ms
        self._accumulated += arrival_delta - send_delta
        self._smoothed = SMOOTHING * self._smoothed + (1 - SMOOTHING) * self._accumulated
        self._points.append((arrival_ms - self._first_arrival, self._smoothed))
        if len(self._points) == WINDOW:
            self.trend = _slope(self._points) or self.trend
        self._detect(send_delta, arrival_ms)
        return self.usage

    def _detect(self, send_delta: float, now: float) -> None:
        modified = min(self._deltas, MIN_DELTAS) * self.trend * THRESHOLD_GAIN
        if modified > self.threshold:
            self._over_ms = send_delta / 2 if self._over_ms < 0 else self._over_ms + send_delta
            self._over_count += 1
            if self._over_ms > OVERUSE_TIME_MS and self._over_count > 1 and self.trend >= self._prev_trend:
                self._over_ms, self._over_count = 0.0, 0
                self.usage = Usage.OVERUSING
        elif modified < -self.threshold:
            self._over_ms, self._over_count = -1.0, 0
            self.usage = Usage.UNDERUSING
        else:
            self._over_ms, self._over_count = -1.0, 0
            self.usage = Usage.NORMAL
        self._prev_trend = self.trend
        self._adapt(modified, now)

    def _adapt(self, modified: float, now: float) -> None:
        if self._last_update is None:
            self._last_update = now
        if abs(modified) > self.threshold + 15.0:  # a spike: do not let it drag the threshold
            self._last_update = now
            return
        k = K_DOWN if abs(modified) < self.threshold else K_UP
        dt = min(now - self._last_update, 100.0)
        self.threshold = min(max(self.threshold + k * (abs(modified) - self.threshold) * dt, 6.0), 600.0)
        self._last_update = now


def _slope(points: deque[tuple[float, float]]) -> float | None:
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den if den else None


class AckedBitrate:
    """What got through: bytes received over the last ACKED_WINDOW_MS of arrival time."""

    def __init__(self) -> None:
        self._packets: deque[tuple[float, int]] = deque()
        self._bytes = 0
        self._start: float | None = None

    def add(self, arrival_ms: float, size: int) -> None:
        if self._start is None:
            self._start = arrival_ms
        self._packets.append((arrival_ms, size))
        self._bytes += size
        while self._packets and self._packets[0][0] < arrival_ms - ACKED_WINDOW_MS:
            self._bytes -= self._packets.popleft()[1]

    def bps(self) -> float | None:
        """None until a whole window was seen."""
        if self._start is None or not self._packets or self._packets[-1][0] - self._start < ACKED_WINDOW_MS:
            return None
        return self._bytes * 8000 / ACKED_WINDOW_MS


class AimdRate:
    """Additive-increase / multiplicative-decrease rate control driven by the detector's usage."""

    def __init__(self, initial_bps: float, min_bps: float, max_bps: float) -> None:
        self.bps = initial_bps
        self.min_bps, self.max_bps = min_bps, max_bps
        self.capacity: float | None = None  # acknowledged bitrate at the last overuse (smoothed)
        self._holding = False
        self._last_ms: float | None = None

    def update(self, usage: Usage, acked: float | None, now_ms: float, rtt_ms: float) -> float:
        dt_s = 0.0 if self._last_ms is None else max(0.0, min(now_ms - self._last_ms, 1000.0)) / 1000
        self._last_ms = now_ms
        if usage is Usage.OVERUSING:
            base = acked if acked is not None else self.bps
            if acked is not None:
                self.capacity = acked if self.capacity is None else 0.95 * self.capacity + 0.05 * acked
            self.bps = min(self.bps, BETA * base)
            self._holding = True
        elif usage is Usage.UNDERUSING:
            self._holding = True
        else:
            if self._holding:
                self._holding = False  # one update of hold, then increase (libwebrtc: hold -> increase)
            else:
                self.bps += self._increase(dt_s, rtt_ms)
            if acked is not None:
                if self.capacity is not None and acked > 1.5 * self.capacity:
                    self.capacity = None  # the link got wider than last measured: search again
                self.bps = min(self.bps, 1.5 * acked + 10_000)
        self.bps = min(max(self.bps, self.min_bps), self.max_bps)
        return self.bps

    def _increase(self, dt_s: float, rtt_ms: float) -> float:
        if self.capacity is not None and self.bps > 0.7 * self.capacity:  # near the known capacity
            return PACKET_BITS * 1000 / (rtt_ms + 100) * dt_s
        return self.bps * (1.08**dt_s - 1)


class GccEstimator:
    """One subscriber's estimate: min(delay-based AIMD, loss cap)."""

    def __init__(
        self, initial_bps: float = 1_000_000, min_bps: float = 50_000, max_bps: float = 20e6
    ) -> None:
        self.inter_arrival = InterArrival()
        self.detector = TrendlineDetector()
        self.acked = AckedBitrate()
        self.delay_based = AimdRate(initial_bps, min_bps, max_bps)
        self.loss_cap = max_bps
        self.min_bps, self.max_bps = min_bps, max_bps
        self.loss_fraction = 0.0
        self._loss_ms: float | None = None
        self.overuse_events = 0

    @property
    def estimate_bps(self) -> int:
        return int(min(self.delay_based.bps, self.loss_cap))

    def on_feedback(
        self, results: list[PacketResult], now_ms: float, rtt_ms: float = 50.0, lost: int = 0
    ) -> int:
        """Take one feedback's packets (any order; ``lost`` more were reported lost without being listed)
        and return the new estimate."""
        received = sorted((r for r in results if r.arrival_ms is not None), key=lambda r: r.arrival_ms or 0)
        usage = self.detector.usage
        for r in received:
            assert r.arrival_ms is not None
            self.acked.add(r.arrival_ms, r.size)
            deltas = self.inter_arrival.add(r.send_ms, r.arrival_ms)
            if deltas is not None:
                before = usage
                usage = self.detector.update(*deltas)
                if usage is Usage.OVERUSING and before is not Usage.OVERUSING:
                    self.overuse_events += 1
        acked = self.acked.bps()
        self.delay_based.update(usage, acked, now_ms, rtt_ms)
        if results or lost:
            self._on_loss(1 - len(received) / (len(results) + lost), acked, now_ms)
        if acked is not None and usage is Usage.NORMAL and self.loss_fraction < LOSS_LOW:
            # What got through with no queue growing and no loss, the link carries: a floor. A sender that
            # paces by its estimate needs probes to find that out; the relay forwards what the publisher
            # sends whatever the estimate, so once a cap lifts, the estimate follows at once.
            self.delay_based.bps = min(max(self.delay_based.bps, acked), self.max_bps)
            self.loss_cap = max(self.loss_cap, acked)
        return self.estimate_bps

    def _on_loss(self, loss: float, acked: float | None, now_ms: float) -> None:
        self.loss_fraction = 0.8 * self.loss_fraction + 0.2 * loss  # smoothed over feedbacks
        dt_s = 0.0 if self._loss_ms is None else max(0.0, min(now_ms - self._loss_ms, 1000.0)) / 1000
        self._loss_ms = now_ms
        if self.loss_fraction > LOSS_HIGH and acked is not None:
            self.loss_cap = max(acked, self.min_bps)
        elif self.loss_fraction < LOSS_LOW:
            self.loss_cap = min(self.loss_cap * 1.08**dt_s + 1000 * dt_s, self.max_bps)
