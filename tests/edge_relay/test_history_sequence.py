"""Packet history (edge_relay.sfu.history) and upstream receive statistics (edge_relay.sfu.sequence)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_relay.sfu.history import PacketHistory
from edge_relay.sfu.sequence import ReceiveStats

# ----------------------------------------------------------------------------- PacketHistory


def test_history_put_get_and_overwrite() -> None:
    h = PacketHistory(8)
    assert h.size == 8
    assert h.get(3) is None
    for seq in range(65530, 65536):
        h.put(seq, b"p%d" % seq)
    for seq in range(6):  # across the wrap
        h.put(seq, b"p%d" % seq)
    assert h.get(65535) == b"p65535" and h.get(0) == b"p0" and h.get(5) == b"p5"
    assert h.get(65530) is None  # slot reused by seq 2
    assert h.get(2) == b"p2"
    assert h.get(2 + 65536) is None  # same slot, another number: not confused
    assert h.get(10) is None  # never stored
    h.clear()
    assert h.get(5) is None


@pytest.mark.parametrize("size", [0, 3, 1000, 1 << 17])
def test_history_size_must_be_power_of_two(size: int) -> None:
    with pytest.raises(ValueError):
        PacketHistory(size)


@given(st.lists(st.integers(0, 0xFFFF), max_size=200))
def test_history_returns_the_latest_packet_or_none(seqs: list[int]) -> None:
    h = PacketHistory(32)
    latest: dict[int, int] = {}  # slot -> last seq put there
    for i, seq in enumerate(seqs):
        h.put(seq, b"%d:%d" % (seq, i))
        latest[seq & 31] = seq
    for seq in set(seqs):
        got = h.get(seq)
        if latest[seq & 31] == seq:
            assert got is not None and got.startswith(b"%d:" % seq)
        else:
            assert got is None


# ----------------------------------------------------------------------------- ReceiveStats


def feed(stats: ReceiveStats, seqs: list[int], t0: float = 0.0) -> list[list[int]]:
    return [stats.update(s & 0xFFFF, 3000 * i, t0 + i, 90000) for i, s in enumerate(seqs)]


def test_gap_is_reported_once_and_recovered() -> None:
    s = ReceiveStats(ssrc=42)
    assert feed(s, [100, 101, 104]) == [[], [], [102, 103]]
    assert s.missing == [102, 103]
    assert s.update(103, 0, 10, 90000) == []  # late / retransmitted
    assert s.missing == [102]
    assert s.update(103, 0, 11, 90000) == []  # duplicate
    assert s.received == 4 and s.lost_packets() == 1
    assert s.extended_highest_seq == 104


def test_wrap_around_extends_the_sequence_number() -> None:
    s = ReceiveStats()
    assert feed(s, [65533, 65534, 1, 0, 2]) == [[], [], [65535, 0], [], []]
    assert s.extended_highest_seq == 65536 + 2
    assert s.missing == [65535]
    assert s.lost_packets() == 1
    assert s.receiver_info(0.0).highest_sequence == 65538


def test_duplicates_and_packets_before_the_first_are_ignored() -> None:
    s = ReceiveStats()
    feed(s, [10, 10, 11, 9, 11, 10])
    assert s.received == 2 and s.lost_packets() == 0 and s.missing == []


def test_large_gap_is_capped_to_the_newest_missing() -> None:
    s = ReceiveStats(max_missing=16)
    feed(s, [0])
    newly = s.update(101, 0, 1, 90000)
    assert newly == list(range(85, 101))
    assert s.missing == newly
    assert s.lost_packets() == 100  # the loss is still counted
    s.update(105, 0, 2, 90000)  # 3 more missing: the oldest go
    assert s.missing == [*range(88, 101), 102, 103, 104]
    s.update(50, 0, 3, 90000)  # a forgotten seq that arrives late still counts as received
    assert s.lost_packets() == 103 - 1


def test_missing_seqs_older_than_the_window_are_forgotten() -> None:
    s = ReceiveStats(window=64)
    feed(s, [0, 2])
    assert s.missing == [1]
    feed(s, list(range(3, 65)))
    assert s.missing == [1]  # 63 behind
    s.update(65, 0, 100, 90000)  # 64 behind: very old
    assert s.missing == []
    assert s.update(1, 0, 101, 90000) == [] and s.lost_packets() == 1  # too old to count


def test_big_jump_needs_confirmation_then_restarts() -> None:
    s = ReceiveStats()
    feed(s, [100, 101])
    assert s.update(40000, 0, 2, 90000) == []  # a stray packet: ignored
    assert s.extended_highest_seq == 101 and s.missing == []
    assert s.update(102, 0, 3, 90000) == []
    assert s.update(50000, 0, 4, 90000) == []
    assert s.update(50001, 0, 5, 90000) == []  # confirmed: the stream restarted
    assert s.extended_highest_seq == 50001 and s.lost_packets() == 0
    assert s.update(50003, 0, 6, 90000) == [50002]


def test_nack_retries_then_gives_up() -> None:
    s = ReceiveStats(max_nacks=3)
    feed(s, [0, 3])  # 1, 2 missing, NACKed once at t=1 ms
    assert s.nacks_due(50, retry_ms=100) == []
    assert s.nacks_due(101, retry_ms=100) == [1, 2]
    s.update(2, 0, 120, 90000)
    assert s.nacks_due(150, retry_ms=100) == []
    assert s.nacks_due(201, retry_ms=100) == [1]
    assert s.nacks_due(301, retry_ms=100) == []  # NACKed 3 times: given up
    assert s.missing == []
    assert s.lost_packets() == 1


def test_jitter_is_zero_for_a_steady_stream_and_follows_rfc3550() -> None:
    s = ReceiveStats()
    for i in range(50):  # 30 fps, 3 packets per frame arriving together
        for k in range(3):
            s.update(3 * i + k, 3000 * i, 1000 + i * 100 / 3, 90000)
    assert s.jitter == 0
    s2 = ReceiveStats()
    s2.update(0, 0, 0.0, 90000)
    s2.update(1, 3000, 43.3333333, 90000)  # 10 ms late: D = 900 ticks -> J = 900/16
    assert s2.jitter == 900 // 16


def test_jitter_handles_the_timestamp_wrap() -> None:
    s = ReceiveStats()
    ts = 0xFFFFFFFF - 1000
    for i in range(20):
        s.update(i, (ts + 3000 * i) & 0xFFFFFFFF, i * 100 / 3, 90000)
    assert s.jitter <= 1


def test_fraction_lost_and_receiver_info() -> None:
    s = ReceiveStats(ssrc=0xABCDEF01)
    feed(s, [0, 1, 2, 3, 6, 7, 8, 9])  # 10 expected, 8 received
    s.on_sender_report(ntp_timestamp=0x1122334455667788, arrival_monotonic=100.0)
    info = s.receiver_info(now_monotonic=100.5)
    assert info.ssrc == 0xABCDEF01
    assert info.fraction_lost == (2 << 8) // 10
    assert info.packets_lost == 2
    assert info.highest_sequence == 9
    assert info.lsr == 0x33445566
    assert info.dlsr == 32768  # 0.5 s in 1/65536 s
    feed(s, [10, 11, 12, 13, 14], t0=20)
    assert s.fraction_lost_since_last_report() == 0  # nothing lost in this interval
    feed(s, [15, 17], t0=30)
    assert s.fraction_lost_since_last_report() == 256 // 3
    assert ReceiveStats().receiver_info(1.0).lsr == 0  # no SR yet: LSR and DLSR are 0


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[int, list[int]]:
    """A start seq, then the extended seqs that arrive, in arrival order (loss, reordering, dups)."""
    start = draw(st.integers(0, 0xFFFF))
    n = draw(st.integers(1, 120))
    lost = draw(st.sets(st.integers(1, n - 1), max_size=n // 2)) if n > 1 else set()
    order = [i for i in range(1, n) if i not in lost]
    # local reordering: swap neighbours
    for k in draw(st.lists(st.integers(0, max(len(order) - 2, 0)), max_size=10)):
        if k + 1 < len(order):
            order[k], order[k + 1] = order[k + 1], order[k]
    # duplicates of already-sent packets, and late retransmissions of lost ones
    for k in draw(st.lists(st.integers(0, max(len(order) - 1, 0)), max_size=10)):
        if order:
            order.insert(k + 1, order[k])
    late = draw(st.lists(st.sampled_from(sorted(lost)), max_size=5)) if lost else []
    return start, [start, *[start + i for i in order], *[start + i for i in late]]


@settings(max_examples=300, deadline=None)
@given(arrivals())
def test_reports_exactly_the_missing_seqs(case: tuple[int, list[int]]) -> None:
    """Against a model: each update returns the seqs newly skipped over, 16-bit, in order."""
    start, seqs = case
    s = ReceiveStats()
    got_max = start
    received: set[int] = set()
    for t, ext in enumerate(seqs):
        newly = s.update(ext & 0xFFFF, 0, float(t), 90000)
        expect = [m & 0xFFFF for m in range(got_max + 1, ext)] if ext > got_max else []
        assert newly == expect
        got_max = max(got_max, ext)
        received.add(ext)
        missing_now = [m & 0xFFFF for m in range(start, got_max) if m not in received]
        assert s.missing == missing_now
    assert s.extended_highest_seq == got_max
    assert s.received == len(received)
    assert s.lost_packets() == got_max - start + 1 - len(received)


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError):
        ReceiveStats(window=0)
    with pytest.raises(ValueError):
        ReceiveStats(max_missing=0)
