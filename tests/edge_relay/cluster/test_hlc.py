"""The hybrid logical clock never goes back, and orders a write after every timestamp it has seen."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_relay.cluster.hlc import HLC, Ts


class FakeClock:
    def __init__(self) -> None:
        self.ms = 1_000

    def __call__(self) -> int:
        return self.ms


@given(st.lists(st.tuples(st.integers(-500, 500), st.booleans(), st.integers(0, 3_000), st.integers(0, 5))))
def test_monotonic_and_after_everything_observed(steps: list[tuple[int, bool, int, int]]) -> None:
    clock = FakeClock()
    hlc = HLC("a", clock, max_offset_ms=1_000)
    last = hlc.now()
    for jump, remote, wall, counter in steps:
        clock.ms = max(0, clock.ms + jump)  # the wall clock steps back as well as forward
        if remote:
            seen = Ts(wall, counter, "b")
            hlc.observe(seen)
            stamp = hlc.now()
            if wall <= clock.ms + hlc.max_offset_ms:
                assert stamp > seen
        else:
            stamp = hlc.now()
        assert stamp > last
        assert stamp.wall >= clock.ms  # never behind the wall clock
        last = stamp


def test_stays_close_to_wall_time_and_refuses_a_clock_far_ahead() -> None:
    clock = FakeClock()
    hlc = HLC("a", clock, max_offset_ms=1_000)
    assert hlc.now() == Ts(1_000, 0, "a")
    assert hlc.now() == Ts(1_000, 1, "a")
    clock.ms = 2_000
    assert hlc.now() == Ts(2_000, 0, "a")
    hlc.observe(Ts(10_000_000, 0, "evil"))  # a relay with a broken clock cannot drag ours along
    assert hlc.rejected_offsets == 1
    assert hlc.now().wall == 2_000
    hlc.observe(Ts(2_500, 7, "b"))
    assert hlc.now() == Ts(2_500, 8, "a")


def test_timestamps_of_two_nodes_never_tie() -> None:
    clock = FakeClock()
    a, b = HLC("a", clock), HLC("b", clock)
    assert a.now() != b.now()
    assert a.now() < b.now()  # same wall and counter: the node id decides, deterministically
