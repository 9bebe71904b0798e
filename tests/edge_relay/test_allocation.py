"""The per-subscriber allocator: which layer of each source fits, tile and stage view, hysteresis."""

from __future__ import annotations

import math

import pytest

from edge_relay.sfu.allocation import (
    TRIAL_GRACE_S,
    TRIAL_HOLD_S,
    UP_HOLD_S,
    UP_MARGIN,
    Allocator,
    Layer,
    Source,
    allocate,
)

LOW = Layer(0, 2, 180, 30, 150_000)
MID = Layer(1, 2, 360, 30, 500_000)
HIGH = Layer(2, 2, 720, 30, 1_500_000)
SIMULCAST = (HIGH, LOW, MID)  # any order: the allocator sorts by quality


def cam(name: str, layers: tuple[Layer, ...] = SIMULCAST, max_height: int | None = None) -> Source:
    return Source(name, layers, max_height)


def picked(allocation, *names: str) -> list[int | None]:
    return [None if (x := allocation.layer(n)) is None else x.height for n in names]


@pytest.mark.parametrize(
    ("estimate", "height"),
    [(3_000_000, 720), (1_500_000, 720), (1_499_999, 360), (600_000, 360), (150_000, 180), (149_999, None)],
)
def test_one_source_gets_the_best_layer_that_fits(estimate: int, height: int | None) -> None:
    allocation = allocate(estimate, [cam("a")])
    assert picked(allocation, "a") == [height]
    assert allocation.total_bps <= estimate
    assert allocation.ideal_bps == HIGH.bitrate_bps


def test_tile_view_gives_everyone_a_low_layer_before_anyone_a_high_one() -> None:
    allocation = allocate(1_200_000, [cam("a"), cam("b"), cam("c")], strategy="tile")
    assert picked(allocation, "a", "b", "c") == [360, 360, 180]
    allocation = allocate(600_000, [cam("a"), cam("b"), cam("c")], strategy="tile")
    assert picked(allocation, "a", "b", "c") == [180, 180, 180]


def test_stage_view_serves_the_first_source_up_to_the_preferred_height_first() -> None:
    allocation = allocate(600_000, [cam("a"), cam("b"), cam("c")], strategy="stage")
    assert picked(allocation, "a", "b", "c") == [360, None, None]
    assert allocation.paused == ["b", "c"]


def test_stage_view_skips_high_layers_at_a_low_frame_rate_for_the_stage() -> None:
    slow_high = Layer(2, 0, 720, 7.5, 700_000)  # the base temporal layer of the top encoding
    layers = (LOW, MID, slow_high, HIGH)
    assert picked(allocate(1_000_000, [cam("a", layers)], strategy="stage"), "a") == [360]
    assert picked(allocate(1_000_000, [cam("a", layers)], strategy="tile"), "a") == [720]


def test_constraints_cap_the_layer_and_zero_means_no_video() -> None:
    sources = [cam("a", max_height=180), cam("b", max_height=0), cam("c", max_height=400)]
    allocation = allocate(10_000_000, sources)
    assert picked(allocation, "a", "b", "c") == [180, None, 360]
    assert allocation.ideal_bps == LOW.bitrate_bps + MID.bitrate_bps


def test_a_sender_without_simulcast_still_gets_through_above_the_constraint_when_it_fits() -> None:
    single = (Layer(0, 0, 720, 30, 1_000_000),)
    assert picked(allocate(2_000_000, [cam("a", single, max_height=180)]), "a") == [720]
    assert picked(allocate(900_000, [cam("a", single, max_height=180)]), "a") == [None]


def test_last_n_leaves_video_only_for_the_first_n() -> None:
    allocation = allocate(10_000_000, [cam("a"), cam("b"), cam("c")], last_n=2)
    assert picked(allocation, "a", "b", "c") == [720, 720, None]
    assert picked(allocate(10_000_000, [cam("a")], last_n=0), "a") == [None]


def test_layers_the_publisher_does_not_send_are_not_chosen() -> None:
    stalled = Layer(2, 2, 720, 30, 1_500_000, active=False)
    assert picked(allocate(10_000_000, [cam("a", (LOW, MID, stalled))]), "a") == [360]


@pytest.mark.parametrize("estimate", [0, -5, math.nan])
def test_no_or_nonsense_estimate_pauses_video(estimate: float) -> None:
    allocation = allocate(estimate, [cam("a"), cam("b")])
    assert allocation.paused == ["a", "b"] and allocation.total_bps == 0


def test_no_sources_is_an_empty_allocation() -> None:
    allocation = allocate(1_000_000, [], strategy="stage")
    assert allocation.layers == {} and allocation.total_bps == 0


def test_the_allocator_goes_down_at_once_and_up_only_after_the_estimate_held() -> None:
    allocator = Allocator()
    sources = [cam("a")]
    assert picked(allocator.update(3_000_000, sources, now=0.0), "a") == [720]  # new: what fits
    assert picked(allocator.update(600_000, sources, now=1.0), "a") == [360]  # down at once
    assert allocator.probe_bps == pytest.approx((MID.bitrate_bps + 1_000_000) * UP_MARGIN)
    assert picked(allocator.update(3_000_000, sources, now=2.0), "a") == [360]  # up waits
    assert picked(allocator.update(3_000_000, sources, now=2.0 + UP_HOLD_S / 2), "a") == [360]
    assert picked(allocator.update(3_000_000, sources, now=2.0 + UP_HOLD_S), "a") == [720]
    assert allocator.probe_bps == 0  # nothing better to probe for


def test_an_estimate_that_dips_restarts_the_wait_to_switch_up() -> None:
    allocator = Allocator()
    sources = [cam("a")]
    allocator.update(600_000, sources, now=0.0)
    allocator.update(3_000_000, sources, now=1.0)
    allocator.update(1_000_000, sources, now=1.5)  # not enough for 720p with the margin
    assert picked(allocator.update(3_000_000, sources, now=1.0 + UP_HOLD_S), "a") == [360]
    assert picked(allocator.update(3_000_000, sources, now=1.5 + 2 * UP_HOLD_S), "a") == [720]


def test_the_up_margin_keeps_a_layer_that_barely_fits_from_flapping() -> None:
    allocator = Allocator()
    sources = [cam("a")]
    allocator.update(600_000, sources, now=0.0)
    for t in range(1, 20):  # 1.52 Mbps fits 720p but not with the margin: it stays at 360p
        assert picked(allocator.update(1_520_000, sources, now=float(t)), "a") == [360]


def test_paused_video_resumes_only_after_the_estimate_held() -> None:
    allocator = Allocator()
    sources = [cam("a")]
    allocator.update(3_000_000, sources, now=0.0)
    assert picked(allocator.update(100_000, sources, now=1.0), "a") == [None]  # paused at once
    assert allocator.probe_bps == pytest.approx(LOW.bitrate_bps * UP_MARGIN)
    assert picked(allocator.update(400_000, sources, now=2.0), "a") == [None]
    assert picked(allocator.update(400_000, sources, now=2.0 + UP_HOLD_S), "a") == [180]


def test_a_new_participant_gets_video_at_once_if_it_fits() -> None:
    allocator = Allocator()
    allocator.update(1_000_000, [cam("a")], now=0.0)
    allocation = allocator.update(1_000_000, [cam("a"), cam("b")], now=0.1)
    assert picked(allocation, "a", "b") == [360, 360]
    assert allocation.total_bps <= 1_000_000


def test_a_layer_the_publisher_stops_sending_moves_its_subscribers_down_not_to_a_pause() -> None:
    allocator = Allocator()
    allocator.update(3_000_000, [cam("a")], now=0.0)
    stalled = Layer(2, 2, 720, 30, 1_500_000, active=False)
    assert picked(allocator.update(3_000_000, [cam("a", (LOW, MID, stalled))], now=0.5), "a") == [360]


def test_a_tighter_constraint_applies_at_once() -> None:
    allocator = Allocator()
    allocator.update(3_000_000, [cam("a")], now=0.0)
    assert picked(allocator.update(3_000_000, [cam("a", max_height=180)], now=0.1), "a") == [180]
    assert picked(allocator.update(3_000_000, [cam("a", max_height=0)], now=0.2), "a") == [None]


def test_a_participant_who_leaves_drops_out_of_the_allocation() -> None:
    allocator = Allocator()
    allocator.update(3_000_000, [cam("a"), cam("b")], now=0.0)
    allocation = allocator.update(3_000_000, [cam("b")], now=0.1)
    assert list(allocation.layers) == ["b"]


def test_without_a_prober_the_allocator_tries_the_next_layer_and_backs_off_after_a_fall() -> None:
    # A receiver's estimate stays near 1.5x what it gets: it never shows room for 720p by itself.
    allocator = Allocator(trials=True)
    sources = [cam("a")]
    assert picked(allocator.update(600_000, sources, now=0.0), "a") == [360]
    assert picked(allocator.update(750_000, sources, now=TRIAL_HOLD_S - 0.1), "a") == [360]
    assert picked(allocator.update(750_000, sources, now=TRIAL_HOLD_S), "a") == [720]  # the trial
    assert allocator.trial_count == 1
    # During the grace the estimate has not caught up yet: the trial stands.
    assert picked(allocator.update(800_000, sources, now=TRIAL_HOLD_S + 1), "a") == [720]
    # After it the link says no: back down, and the next trial waits twice as long.
    t = TRIAL_HOLD_S + TRIAL_GRACE_S + 0.1
    assert picked(allocator.update(800_000, sources, now=t), "a") == [360]
    assert allocator.falls == 1
    assert picked(allocator.update(750_000, sources, now=t + 2 * TRIAL_HOLD_S - 0.1), "a") == [360]
    assert picked(allocator.update(750_000, sources, now=t + 2 * TRIAL_HOLD_S), "a") == [720]
    assert allocator.trial_count == 2


def test_a_trial_that_fits_stays() -> None:
    allocator = Allocator(trials=True)
    sources = [cam("a")]
    allocator.update(600_000, sources, now=0.0)
    allocator.update(750_000, sources, now=TRIAL_HOLD_S)  # trial to 720p
    assert picked(allocator.update(2_000_000, sources, now=TRIAL_HOLD_S + 5), "a") == [720]
    assert allocator.falls == 0


def test_a_real_fall_during_the_grace_goes_down_at_once() -> None:
    allocator = Allocator(trials=True)
    sources = [cam("a")]
    allocator.update(600_000, sources, now=0.0)
    allocator.update(750_000, sources, now=TRIAL_HOLD_S)
    assert picked(allocator.update(300_000, sources, now=TRIAL_HOLD_S + 0.5), "a") == [180]


def test_a_tighter_constraint_is_not_a_fall() -> None:
    allocator = Allocator(trials=True)
    allocator.update(3_000_000, [cam("a")], now=0.0)
    allocator.update(3_000_000, [cam("a", max_height=180)], now=0.1)
    assert allocator.falls == 0
