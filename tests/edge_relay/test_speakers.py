"""Active speakers: audio levels read from RTP (RFC 6464), smoothed per track, ranked per room."""

from __future__ import annotations

import struct

import pytest

from edge_relay.rooms.speakers import DOMINANT_HOLD_S, SpeakerDetector
from edge_relay.sfu.audio_level import ACTIVE_THRESHOLD, OBSERVE_MS, AudioLevel, linear
from edge_relay.sfu.rtp import find_extension, parse_header

CLOCK = 48000
FRAME = 960  # 20 ms


def feed(level: AudioLevel, values: list[int], start_ms: float = 0.0, ts: int = 0) -> float:
    """One 20 ms packet per value; returns the time after the last."""
    now = start_ms
    for value in values:
        level.observe(value, ts, CLOCK, now)
        ts += FRAME
        now += 20
    return now


def test_a_steady_talker_is_active_and_silence_is_not() -> None:
    talker, quiet = AudioLevel(), AudioLevel()
    end = feed(talker, [20] * 50)
    feed(quiet, [127] * 50)
    value, active = talker.level(end)
    assert active and value == pytest.approx(linear(20), rel=0.3)
    assert quiet.level(end) == (0.0, False)


def test_a_cough_is_not_speech() -> None:
    level = AudioLevel()
    end = feed(level, [10] * 3 + [127] * 47)  # 60 ms loud in a second
    assert level.level(end)[1] is False


def test_the_voice_activity_bit_is_ignored_and_the_level_read() -> None:
    level = AudioLevel()
    end = feed(level, [0x80 | 20] * 50)
    assert level.level(end)[1] is True


def test_a_track_that_stops_sending_reads_as_silent() -> None:
    level = AudioLevel()
    end = feed(level, [20] * 50)
    assert level.level(end)[1]
    assert level.level(end + 2 * OBSERVE_MS) == (0.0, False)


def test_frame_durations_come_from_timestamps_even_across_the_wrap() -> None:
    level = AudioLevel()
    # 40 ms frames across the 32-bit wrap: the first counts 20 ms, ten more fill the 400 ms window
    for i in range(11):
        level.observe(20, (0xFFFFFFFF - 3 * 1920 + i * 1920) & 0xFFFFFFFF, CLOCK, i * 40.0)
    assert level.level(440.0)[1] is True
    short = AudioLevel()
    end = feed(short, [20] * 11)  # 20 ms frames: the same packets are only half a window
    assert short.level(end)[1] is False


def test_absurd_timestamps_count_as_one_default_frame() -> None:
    level = AudioLevel()
    for i in range(25):
        level.observe(20, i * 10_000_000, CLOCK, i * 20.0)  # jumps of minutes: not minutes of speech
    assert level.level(500.0)[1] is True
    assert level._observed_ms < OBSERVE_MS


def speakers_of(detector: SpeakerDetector, levels: dict[str, float], now: float):
    return detector.update({pid: (v, v >= ACTIVE_THRESHOLD) for pid, v in levels.items()}, now)


def test_speakers_are_ranked_loudest_first_and_told_only_on_change() -> None:
    detector = SpeakerDetector()
    first = speakers_of(detector, {"a": 0.1, "b": 0.3, "c": 0.0}, 0.0)
    assert first is not None and first.ids == ["b", "a"] and first.dominant == "b"
    assert speakers_of(detector, {"a": 0.12, "b": 0.31, "c": 0.0}, 0.2) is None  # same ranking
    swapped = speakers_of(detector, {"a": 0.4, "b": 0.3, "c": 0.0}, 0.4)
    assert swapped is not None and swapped.ids == ["a", "b"] and swapped.dominant == "b"


def test_the_dominant_speaker_changes_only_after_the_hold_and_stays_through_pauses() -> None:
    detector = SpeakerDetector()
    speakers_of(detector, {"a": 0.3, "b": 0.0}, 0.0)
    assert detector.current.dominant == "a"
    speakers_of(detector, {"a": 0.0, "b": 0.0}, 1.0)  # a pauses
    assert detector.current.dominant == "a" and detector.current.ids == []
    speakers_of(detector, {"a": 0.0, "b": 0.3}, 2.0)
    assert detector.current.dominant == "a"  # b must hold the floor first
    speakers_of(detector, {"a": 0.3, "b": 0.31}, 2.5)  # still b loudest
    changed = speakers_of(detector, {"a": 0.0, "b": 0.3}, 2.0 + DOMINANT_HOLD_S)
    assert changed is not None and changed.dominant == "b"


def test_an_interruption_shorter_than_the_hold_does_not_take_the_stage() -> None:
    detector = SpeakerDetector()
    speakers_of(detector, {"a": 0.3, "b": 0.0}, 0.0)
    speakers_of(detector, {"a": 0.1, "b": 0.5}, 1.0)
    speakers_of(detector, {"a": 0.3, "b": 0.0}, 1.0 + DOMINANT_HOLD_S / 2)
    speakers_of(detector, {"a": 0.1, "b": 0.5}, 1.0 + DOMINANT_HOLD_S * 0.9)  # b again: the wait restarts
    assert detector.current.dominant == "a"


def test_a_dominant_speaker_who_leaves_hands_the_stage_on() -> None:
    detector = SpeakerDetector()
    speakers_of(detector, {"a": 0.3, "b": 0.0}, 0.0)
    changed = speakers_of(detector, {"b": 0.0}, 0.5)
    assert changed is not None and changed.dominant is None
    changed = speakers_of(detector, {"b": 0.2}, 0.7)
    assert changed is not None and changed.dominant == "b"  # an empty stage is taken at once


def packet(extension: bytes, profile: int = 0xBEDE) -> bytes:
    words = len(extension) // 4
    return (
        struct.pack("!BBHII", 0x90, 111, 1, 960, 0x1234)
        + struct.pack("!HH", profile, words)
        + extension
        + b"\xfc\xff"  # payload
    )


@pytest.mark.parametrize(
    ("extension", "profile", "expected"),
    [
        (bytes([0x10, 0x9E, 0x00, 0x00]), 0xBEDE, b"\x9e"),  # id 1, one byte
        (bytes([0x21, 0x61, 0x62, 0x00, 0x10, 0x14, 0, 0]), 0xBEDE, b"\x14"),  # after a MID "ab"
        (bytes([0x30, 0x14, 0x00, 0x00]), 0xBEDE, None),  # only id 3
        (bytes([0x01, 0x01, 0x14, 0x00]), 0x1000, b"\x14"),  # two-byte form
        (bytes([0x1F, 0x14, 0x00, 0x00]), 0xBEDE, None),  # claims 16 bytes in a 4-byte block
        (bytes([0xF0, 0x10, 0x14, 0x00]), 0xBEDE, None),  # id 15 ends the list
        (bytes([0x01, 0xFF, 0x14, 0x00]), 0x1000, None),  # two-byte length beyond the block
        (bytes([0x00, 0x00, 0x00, 0x00]), 0xBEDE, None),  # all padding
        (bytes([0x10, 0x14, 0x00, 0x00]), 0xABCD, None),  # unknown profile
    ],
)
def test_reading_one_extension_survives_hostile_blocks(extension: bytes, profile: int, expected) -> None:
    data = packet(extension, profile)
    assert find_extension(data, parse_header(data), 1) == expected


def test_a_packet_without_extensions_has_no_level() -> None:
    data = struct.pack("!BBHII", 0x80, 111, 1, 960, 0x1234) + b"\xfc"
    assert find_extension(data, parse_header(data), 1) is None
