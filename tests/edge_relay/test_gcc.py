"""The send-side estimator (edge_relay.sfu.gcc) on synthetic links.

:func:`simulate` plays a sender at a fixed rate (the relay forwards what the publisher sends: it does not
pace by its estimate) into one bottleneck: a FIFO served at ``capacity_bps`` with a drop-tail queue of
``queue_ms``, a propagation delay, and optional random loss, with feedback every 100 ms as Chromium sends
it. The assertions are the estimator's contract for the allocator: near the bottleneck when the link is
the limit, backing off as soon as the queue grows, well above what is sent when the link is not the limit.
"""

from __future__ import annotations

import itertools
import random

from edge_relay.sfu.gcc import GccEstimator, InterArrival, PacketResult, TrendlineDetector, Usage

SIZE = 1200


def simulate(
    est: GccEstimator,
    send_bps: float,
    capacity_bps: float,
    seconds: float,
    start_ms: float = 0.0,
    queue_ms: float = 300.0,
    loss: float = 0.0,
    seed: int = 1,
) -> tuple[list[int], float]:
    """Estimates after each feedback, and the end time (to chain phases)."""
    rng = random.Random(seed)
    interval = SIZE * 8 * 1000 / send_bps
    service = SIZE * 8 * 1000 / capacity_bps
    free_at = getattr(est, "_sim_free_at", start_ms)
    out: list[int] = []
    batch: list[PacketResult] = []
    t = start_ms
    next_fb = start_ms + 100
    while t < start_ms + seconds * 1000:
        queued = max(0.0, free_at - t)
        if queued > queue_ms or rng.random() < loss:
            batch.append(PacketResult(t, None, SIZE))
        else:
            free_at = max(free_at, t) + service
            batch.append(PacketResult(t, free_at + 20, SIZE))
        t += interval
        if t >= next_fb:
            out.append(est.on_feedback(batch, t + 40))
            batch, next_fb = [], next_fb + 100
    est._sim_free_at = free_at  # type: ignore[attr-defined]
    return out, t


def test_steady_link_estimate_grows_well_above_what_is_sent() -> None:
    est = GccEstimator(initial_bps=500_000)
    estimates, _ = simulate(est, send_bps=1_000_000, capacity_bps=5_000_000, seconds=15)
    assert est.overuse_events == 0
    assert estimates[-1] >= 1_400_000  # ~1.5 x what got through: the cap on probing without probes
    assert est.loss_fraction == 0


def test_bottleneck_converges_near_capacity() -> None:
    est = GccEstimator(initial_bps=2_000_000)
    estimates, _ = simulate(est, send_bps=2_000_000, capacity_bps=800_000, seconds=15)
    tail = estimates[-50:]
    assert est.overuse_events >= 1
    assert all(0.6 * 800_000 <= e <= 1.1 * 800_000 for e in tail), tail


def test_backs_off_as_soon_as_the_queue_grows() -> None:
    """The link narrows below what is sent: the delay trend flags it long before the queue overflows."""
    est = GccEstimator(initial_bps=1_000_000)
    _, end = simulate(est, send_bps=1_000_000, capacity_bps=3_000_000, seconds=8)
    before = est.estimate_bps
    events = est.overuse_events
    estimates, _ = simulate(est, 1_000_000, 700_000, seconds=3, start_ms=end, queue_ms=5000)
    assert before >= 1_200_000
    assert est.overuse_events > events
    first_low = next(i for i, e in enumerate(estimates) if e <= 0.9 * 1_000_000)
    assert first_low <= 15  # within 1.5 s, while the queue is still far from full (5 s here)
    assert estimates[-1] <= 700_000


def test_loss_holds_the_estimate_to_what_gets_through() -> None:
    est = GccEstimator(initial_bps=1_000_000)
    estimates, _ = simulate(est, 1_000_000, 10_000_000, seconds=10, loss=0.3)
    assert est.loss_fraction > 0.2
    assert 0.55 * 1_000_000 <= estimates[-1] <= 0.8 * 1_000_000
    clean = GccEstimator(initial_bps=1_000_000)
    assert simulate(clean, 1_000_000, 10_000_000, seconds=10)[0][-1] > 1.3 * 1_000_000


def test_recovers_after_the_limit_is_lifted() -> None:
    est = GccEstimator(initial_bps=2_000_000)
    _, end = simulate(est, 2_000_000, 600_000, seconds=8)
    assert est.estimate_bps <= 700_000
    estimates, _ = simulate(est, 2_000_000, 10_000_000, seconds=15, start_ms=end + 1000)
    # The relay keeps sending 2 Mbit/s: once it gets through (the smoothed loss decays), within ~2 s.
    assert min(estimates[20:]) >= 2_000_000, estimates[:22]


def test_reordered_and_lost_only_feedback_is_harmless() -> None:
    est = GccEstimator()
    est.on_feedback([], 0)
    est.on_feedback([PacketResult(float(i), None, SIZE) for i in range(50)], 100)
    est.on_feedback([PacketResult(float(i), float(1000 - i), SIZE) for i in range(100)], 200)
    assert est.min_bps <= est.estimate_bps <= est.max_bps


def test_inter_arrival_groups_bursts() -> None:
    ia = InterArrival()
    assert ia.add(0, 100) is None and ia.add(2, 101) is None  # same group (within 5 ms of send)
    assert ia.add(10, 110) is None  # closes group 1 (no previous group yet)
    assert ia.add(20, 125) == (8, 9, 110)  # group 2 (send 10) vs group 1 (last send 2, arrival 101)


def test_detector_flags_a_growing_queue_and_not_jitter() -> None:
    growing = TrendlineDetector()
    usages = [growing.update(10, 12, 10 * i) for i in range(60)]  # 2 ms more delay per 10 ms group
    assert Usage.OVERUSING in usages
    jitter = TrendlineDetector()
    rng = random.Random(3)
    arrivals = [10 * i + rng.uniform(-2, 2) for i in range(300)]  # jitter around a steady line
    usages = [jitter.update(10, b - a, b) for a, b in itertools.pairwise(arrivals)]
    assert Usage.OVERUSING not in usages
