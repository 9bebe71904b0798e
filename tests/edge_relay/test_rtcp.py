"""RTCP builders and the sender-report mapping (edge_relay.sfu.rtcp), checked with aiortc's parser."""

from __future__ import annotations

import pytest
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_relay.sfu.rtcp import (
    SenderReportMapper,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sr,
)
from edge_relay.sfu.sequence import ReceiveStats

NTP_SECOND = 1 << 32


def parse_one(data: bytes):
    packets = RtcpPacket.parse(data)
    assert len(packets) == 1
    return packets[0]


def test_pli() -> None:
    p = parse_one(build_pli(0x1111, 0x2222))
    assert isinstance(p, RtcpPsfbPacket)
    assert (p.fmt, p.ssrc, p.media_ssrc, p.fci) == (RTCP_PSFB_PLI, 0x1111, 0x2222, b"")


def test_nack_packs_runs_across_the_wrap_into_one_pair() -> None:
    data = build_nack(1, 2, [65534, 65535, 0, 1, 14])
    p = parse_one(data)
    assert isinstance(p, RtcpRtpfbPacket) and p.fmt == RTCP_RTPFB_NACK
    assert (p.ssrc, p.media_ssrc) == (1, 2)
    assert len(data) == 12 + 4  # one (PID, BLP) pair: 65534 + 16 following
    assert sorted(x & 0xFFFF for x in p.lost) == [0, 1, 14, 65534, 65535]
    assert len(build_nack(1, 2, [65534, 15])) == 12 + 8  # 17 apart: two pairs


def test_nack_needs_a_seq() -> None:
    with pytest.raises(ValueError):
        build_nack(1, 2, [])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 0x3FFFF), min_size=1, max_size=60))
def test_nack_round_trip(lost: list[int]) -> None:
    p = parse_one(build_nack(7, 8, lost))
    assert sorted({x & 0xFFFF for x in p.lost}) == sorted({x & 0xFFFF for x in lost})
    assert len(p.lost) == len({x & 0xFFFF for x in lost})  # no seq twice


def test_nack_from_receive_stats_is_compact() -> None:
    s = ReceiveStats()
    s.update(65530, 0, 0, 90000)
    missing = s.update(20, 0, 1, 90000)
    assert len(missing) == 25
    data = build_nack(1, 2, missing)
    assert len(data) == 12 + 2 * 4  # 25 consecutive seqs: 2 pairs


@pytest.mark.parametrize("bitrate", [0, 30_000, 500_000, 2_500_000, 123_456_789])
def test_remb(bitrate: int) -> None:
    p = parse_one(build_remb(0x1234, bitrate, [5, 6]))
    assert isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP
    assert (p.ssrc, p.media_ssrc) == (0x1234, 0)
    got, ssrcs = unpack_remb_fci(p.fci)
    assert ssrcs == [5, 6]
    assert got <= bitrate and bitrate - got < max(1, bitrate >> 17)  # 18-bit mantissa


def test_remb_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        build_remb(1, -1, [2])
    with pytest.raises(ValueError):
        build_remb(1, 1000, list(range(256)))


def report(i: int) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(
        ssrc=i, fraction_lost=i % 256, packets_lost=-i, highest_sequence=i * 7, jitter=i, lsr=i, dlsr=i
    )


def test_rr_round_trip_and_split_above_31_reports() -> None:
    p = parse_one(build_rr(9, [report(1), report(2)]))
    assert isinstance(p, RtcpRrPacket) and p.ssrc == 9 and p.reports == [report(1), report(2)]
    empty = parse_one(build_rr(9, []))
    assert isinstance(empty, RtcpRrPacket) and empty.reports == []
    many = RtcpPacket.parse(build_rr(9, [report(i) for i in range(40)]))
    assert [len(p.reports) for p in many] == [31, 9]
    assert [r for p in many for r in p.reports] == [report(i) for i in range(40)]


def test_rr_from_receive_stats() -> None:
    s = ReceiveStats(ssrc=0xCAFE)
    for seq in (1, 2, 4):
        s.update(seq, seq * 960, seq * 20.0, 48000)
    p = parse_one(build_rr(1, [s.receiver_info(0.0)]))
    (r,) = p.reports
    assert (r.ssrc, r.packets_lost, r.highest_sequence, r.fraction_lost) == (0xCAFE, 1, 4, 64)


def test_sr_round_trip() -> None:
    data = build_sr(5, (1 << 64) + 7, (1 << 32) + 9, 1 << 32, 100, [report(1)])
    p = parse_one(data)
    assert isinstance(p, RtcpSrPacket) and p.ssrc == 5
    info = p.sender_info
    assert (info.ntp_timestamp, info.rtp_timestamp, info.packet_count, info.octet_count) == (7, 9, 0, 100)
    assert p.reports == [report(1)]
    both = RtcpPacket.parse(build_sr(5, 1, 2, 3, 4, [report(i) for i in range(33)]))
    assert [type(p) for p in both] == [RtcpSrPacket, RtcpRrPacket]
    assert [len(p.reports) for p in both] == [31, 2]


# ----------------------------------------------------------------------------- SenderReportMapper


def test_mapper_before_and_after_the_first_sender_report() -> None:
    m = SenderReportMapper(90000)
    assert not m.has_mapping and m.map(123, 0) is None
    ntp_pub = 0xE000_0000_0000_0000
    m.on_sender_report(ntp_pub, 1000)
    assert m.has_mapping
    assert m.map(ntp_pub, 0) == (ntp_pub, 1000)
    assert m.map(ntp_pub + NTP_SECOND, 5) == (ntp_pub + NTP_SECOND, 1000 + 5 + 90000)
    assert m.map(ntp_pub + NTP_SECOND // 2, -1000) == (ntp_pub + NTP_SECOND // 2, 45000)
    assert m.map(ntp_pub - NTP_SECOND, 0) == (ntp_pub - NTP_SECOND, (1000 - 90000) & 0xFFFFFFFF)


def test_mapper_wraps_rtp_and_ntp() -> None:
    m = SenderReportMapper(48000)
    m.on_sender_report(0xFFFFFFFF_80000000, 0xFFFFFF00)  # NTP era rollover half a second later
    ntp_now, rtp_now = m.map(0x00000000_80000000, 0x200)
    assert ntp_now == 0x80000000
    assert rtp_now == (0xFFFFFF00 + 0x200 + 48000) & 0xFFFFFFFF


def test_mapper_keeps_audio_and_video_of_one_publisher_in_sync() -> None:
    """A frame's capture time recovered from the subscriber's SRs equals the publisher's."""
    pub_ntp0 = 0xE100_0000_0000_0000  # the publisher's clock; the relay's is 37.25 s ahead
    video, audio = SenderReportMapper(90000), SenderReportMapper(48000)
    video.on_sender_report(pub_ntp0, 500_000)  # video SR at t=0
    audio.on_sender_report(pub_ntp0 + NTP_SECOND // 3, 77_777)  # audio SR 1/3 s later
    relay_now = pub_ntp0 + 37 * NTP_SECOND + NTP_SECOND // 4
    v_off, a_off = 0x7000_0000, 0x1234_5678
    v_ntp, v_rtp = video.map(relay_now, v_off)
    a_ntp, a_rtp = audio.map(relay_now + NTP_SECOND // 10, a_off)

    def capture_time(ts_out: int, sr_ntp: int, sr_rtp: int, rate: int) -> float:
        delta = (ts_out - sr_rtp) & 0xFFFFFFFF
        if delta >= 1 << 31:
            delta -= 1 << 32
        return sr_ntp / NTP_SECOND + delta / rate

    # a video frame at publisher time pub_ntp0 + 2 s, an audio frame at the same instant
    v_ts = (500_000 + 2 * 90000 + v_off) & 0xFFFFFFFF
    a_ts = (77_777 + round((2 - 1 / 3) * 48000) + a_off) & 0xFFFFFFFF
    tv = capture_time(v_ts, v_ntp, v_rtp, 90000)
    ta = capture_time(a_ts, a_ntp, a_rtp, 48000)
    assert abs(tv - ta) < 1e-4
    assert abs(tv - (pub_ntp0 / NTP_SECOND + 2)) < 1e-4  # the publisher's NTP time exactly


@given(
    st.integers(0, (1 << 64) - 1),
    st.integers(0, 0xFFFFFFFF),
    st.integers(-(1 << 40), 1 << 40),
    st.integers(-(1 << 33), 1 << 33),
    st.sampled_from([8000, 48000, 90000]),
)
def test_mapper_property(ntp_pub: int, rtp_pub: int, elapsed: int, offset: int, rate: int) -> None:
    m = SenderReportMapper(rate)
    m.on_sender_report(ntp_pub, rtp_pub)
    ntp_now, rtp_now = m.map((ntp_pub + elapsed) % (1 << 64), offset)
    ticks = round(elapsed * rate / NTP_SECOND)
    diff = (rtp_now - rtp_pub - offset - ticks) & 0xFFFFFFFF
    assert diff in (0, 1, 0xFFFFFFFF)  # exact up to the rounding of a half tick
    assert 0 <= rtp_now <= 0xFFFFFFFF and ntp_now == (ntp_pub + elapsed) % (1 << 64)


def test_mapper_rejects_a_zero_clock_rate() -> None:
    with pytest.raises(ValueError):
        SenderReportMapper(0)
