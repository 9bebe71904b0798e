"""Local recording: files written by the SDK's file writer, opened and decoded again with PyAV.

Tracks are fed straight into the recorder (no relay): the test pattern and tone from the SDK's sources,
and solid colours / constant PCM from tests.client_sdk.fake_tracks where a test needs to recognise what
went where.
"""

from __future__ import annotations

import asyncio
import fractions
from pathlib import Path

import av
import numpy as np
import pytest

from client_sdk.media.recorder import (
    AudioMixer,
    GridCompositor,
    MeetingRecorder,
    grid_layout,
    letterbox,
    mix_pcm,
)
from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from tests.client_sdk.fake_tracks import ConstAudioTrack, SilentTrack, SolidVideoTrack

RED, GREEN, BLUE, WHITE = (220, 30, 30), (30, 200, 30), (30, 30, 220), (235, 235, 235)


def decode(path: Path) -> tuple[list[av.VideoFrame], np.ndarray, dict[str, str]]:
    """Every video frame, the audio as mono float samples, and the codec of each stream kind."""
    with av.open(str(path)) as container:
        codecs: dict[str, str] = {s.type: s.codec_context.name for s in container.streams}
        video = list(container.decode(video=0))
    to_mono = av.AudioResampler(format="flt", layout="mono", rate=48000)
    with av.open(str(path)) as container:
        audio = [out.to_ndarray() for f in container.decode(audio=0) for out in to_mono.resample(f)]
    return video, np.concatenate(audio, axis=1).ravel(), codecs


def peak_hz(samples: np.ndarray, count: int, rate: int = 48000) -> list[float]:
    """Frequencies of the spectrum's ``count`` strongest peaks (at least 50 Hz apart), strongest first."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    peaks = []
    for _ in range(count):
        i = int(spectrum.argmax())
        peaks.append(float(freqs[i]))
        spectrum[np.abs(freqs - freqs[i]) < 50] = 0
    return peaks


def rgb_at(frame: av.VideoFrame, x: int, y: int) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3).mean(axis=0)


async def test_records_one_video_and_one_audio(tmp_path: Path) -> None:
    path = tmp_path / "chosen.mp4"
    recorder = MeetingRecorder(path)
    recorder.add_track(PatternVideoTrack(320, 240, fps=30))
    recorder.add_track(ToneAudioTrack(440))
    assert not path.exists(), "the file is opened by start()"
    async with recorder:
        await asyncio.sleep(2.0)
    video, audio, codecs = decode(path)
    assert codecs == {"video": "h264", "audio": "aac"}
    assert len(video) > 45, "~60 frames for 2 s at 30 fps"
    assert (video[0].width, video[0].height) == (320, 240)
    assert 1.8 < audio.size / 48000 < 2.3
    assert abs(peak_hz(audio[4800:], 1)[0] - 440) < 5, "the tone, not noise"


async def test_grid_recording_places_every_participant(tmp_path: Path) -> None:
    path = tmp_path / "grid.mp4"
    recorder = MeetingRecorder(path, grid=True, size=(640, 360), fps=15)
    videos = [
        SolidVideoTrack(RED, 320, 240, fps=15),  # 4:3
        SolidVideoTrack(GREEN, 320, 180, fps=15),  # 16:9
        SolidVideoTrack(BLUE, 180, 320, fps=15),  # portrait phone
        SolidVideoTrack(WHITE, 160, 120, fps=15),
    ]
    for track in [*videos, ToneAudioTrack(440), ToneAudioTrack(1000)]:
        recorder.add_track(track)
    async with recorder:
        await asyncio.sleep(1.5)
    video, audio, codecs = decode(path)
    assert codecs == {"video": "h264", "audio": "aac"}
    assert len(video) >= 15
    last = video[-1]
    assert (last.width, last.height) == (640, 360)
    tiles = grid_layout(4, 640, 360)
    for track, tile, colour in zip(videos, tiles, (RED, GREEN, BLUE, WHITE), strict=True):
        size = track._image.shape[1], track._image.shape[0]
        x, y, w, h = letterbox(*size, tile)
        assert np.abs(rgb_at(last, x + w // 2, y + h // 2) - colour).max() < 25, f"{colour} in its tile"
    bx, by, bw, bh = letterbox(180, 320, tiles[2])  # the portrait tile has bars left and right
    assert rgb_at(last, (tiles[2][0] + bx) // 2, by + bh // 2).max() < 25, "letterbox bars are black"
    peaks = sorted(peak_hz(audio[9600:], 2))
    assert abs(peaks[0] - 440) < 5 and abs(peaks[1] - 1000) < 5, "both voices are in the mix"
    for track in videos:
        assert track.readyState == "live", "the recorder does not stop the meeting's tracks"


def test_grid_layout_tiles_fit_and_do_not_overlap() -> None:
    for n in range(1, 10):
        tiles = grid_layout(n, 1280, 720)
        assert len(tiles) == n
        canvas = np.zeros((720, 1280), int)
        for x, y, w, h in tiles:
            assert x % 2 == y % 2 == w % 2 == h % 2 == 0
            canvas[y : y + h, x : x + w] += 1
        assert canvas.max() == 1 and canvas.sum() == sum(w * h for _, _, w, h in tiles)
    assert grid_layout(3, 1280, 720)[2] == (320, 360, 640, 360), "a short last row is centred"
    x, y, w, h = letterbox(640, 480, (0, 0, 640, 360))
    assert (w, h) == (480, 360) and x == 80 and abs(w / h - 4 / 3) < 0.01


async def frame_with(compositor: GridCompositor, check, attempts: int = 60) -> av.VideoFrame:
    for _ in range(attempts):
        frame = await compositor.recv()
        if check(frame):
            return frame
    raise AssertionError("the grid never showed the expected picture")


async def test_compositor_follows_participants_joining_and_leaving() -> None:
    red, green, blue = SolidVideoTrack(RED), SolidVideoTrack(GREEN), SolidVideoTrack(BLUE)
    grid = GridCompositor([red, green], width=640, height=360, fps=30)

    def shows(frame: av.VideoFrame, layout: list[tuple[int, int, int, int]], colours) -> bool:
        return all(
            np.abs(rgb_at(frame, x + w // 2, y + h // 2) - c).max() < 20
            for (x, y, w, h), c in zip(layout, colours, strict=True)
        )

    frame = await frame_with(grid, lambda f: shows(f, grid_layout(2, 640, 360), [RED, GREEN]))
    assert frame.format.name == "yuv420p" and frame.time_base == fractions.Fraction(1, 90000)
    grid.add_track(blue)
    await frame_with(grid, lambda f: shows(f, grid_layout(3, 640, 360), [RED, GREEN, BLUE]))
    grid.remove_track(red)
    await frame_with(grid, lambda f: shows(f, grid_layout(2, 640, 360), [GREEN, BLUE]))
    green.stop()  # the track ended: its tile goes black
    await frame_with(grid, lambda f: shows(f, grid_layout(2, 640, 360), [(16, 16, 16), BLUE]))
    grid.stop()
    blue.stop()
    red.stop()


def test_mix_pcm_sums_clips_and_pads() -> None:
    a = np.array([1000, -1000, 30000, -30000], np.int16)
    b = np.array([2000, -2000, 30000, -30000], np.int16)
    assert mix_pcm([a, b], 4).tolist() == [3000, -3000, 32767, -32768]
    assert mix_pcm([a, b[:2]], 4).tolist() == [3000, -3000, 30000, -30000]
    assert mix_pcm([], 3).tolist() == [0, 0, 0]


async def test_mixer_mixes_and_a_missing_or_late_input_is_silence() -> None:
    late = ConstAudioTrack(300, delay_s=0.3)
    mixer = AudioMixer([ConstAudioTrack(1000), ConstAudioTrack(2000), SilentTrack("audio"), late])
    values = []
    for _ in range(30):  # 0.6 s
        frame = await mixer.recv()
        assert (frame.format.name, frame.layout.name, frame.sample_rate, frame.samples) == (
            "s16",
            "stereo",
            48000,
            960,
        )
        pcm = frame.to_ndarray().ravel()
        values.append(int(pcm[0]) if (pcm == pcm[0]).all() else None)
    mixer.stop()
    assert 3000 in values[:12], "the two live inputs, summed; the silent one adds nothing"
    assert values[-5:].count(3300) >= 3, "the late input joins the mix once it delivers"
    assert late.readyState == "live"


async def test_mixer_clips_instead_of_wrapping() -> None:
    mixer = AudioMixer([ConstAudioTrack(30000), ConstAudioTrack(30000)])
    peaks = [int(np.abs((await mixer.recv()).to_ndarray()).max()) for _ in range(8)]
    mixer.stop()
    assert max(peaks) == 32767


async def test_chosen_mode_rules(tmp_path: Path) -> None:
    recorder = MeetingRecorder(tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="nothing to record"):
        await recorder.start()
    recorder.add_track(SolidVideoTrack(RED))
    with pytest.raises(ValueError, match="grid=True"):
        recorder.add_track(SolidVideoTrack(GREEN))
    with pytest.raises(RuntimeError, match="grid"):
        recorder.remove_track(SolidVideoTrack(GREEN))
    await recorder.stop()  # before start: nothing to do
    assert not (tmp_path / "x.mp4").exists()


async def record_frames(recorder: MeetingRecorder, tracks: list, seconds: float) -> dict[str, int]:
    """Record ``tracks`` for ``seconds``; the frames decoded per stream kind of the file."""
    for track in tracks:
        recorder.add_track(track)
    await recorder.start()
    await asyncio.sleep(seconds)
    await recorder.stop()
    return stream_frames(recorder.path)


def stream_frames(path: Path) -> dict[str, int]:
    """Frames decoded per stream kind (a stream that is missing from the file counts as absent)."""
    with av.open(str(path)) as container:
        kinds = {s.type for s in container.streams}
    counts = {}
    for kind in kinds:
        with av.open(str(path)) as container:
            counts[kind] = sum(1 for _ in container.decode(**{kind: 0}))
    return counts


@pytest.mark.parametrize("suffix", ["mp4", "webm"])
async def test_a_late_first_video_frame_still_makes_a_video_stream(tmp_path: Path, suffix: str) -> None:
    # The audio's first packets are ready before the video's first frame: aiortc's MediaRecorder
    # muxed them at once and the file lost its video stream without an error (seen in a demo run).
    late = SolidVideoTrack(RED, fps=15, delay_s=0.5)
    counts = await record_frames(
        MeetingRecorder(tmp_path / f"late.{suffix}"), [late, ConstAudioTrack(1000)], 1.5
    )
    assert counts.get("video", 0) >= 8, counts
    assert counts.get("audio", 0) >= 40, counts


async def test_a_video_track_that_never_delivers_leaves_a_valid_file_with_the_audio(tmp_path: Path) -> None:
    tracks = [SilentTrack("video"), ConstAudioTrack(1000)]
    counts = await record_frames(MeetingRecorder(tmp_path / "silent.mp4"), tracks, 1.0)
    # MP4 has no empty tracks: the video stream is one black frame
    assert counts == {"video": 1, "audio": counts["audio"]} and counts["audio"] >= 30, counts


async def test_a_grid_recording_has_video_even_when_its_first_frame_is_slow(tmp_path: Path) -> None:
    # The grid's size is known up front, so the file starts with the mixer's first packet.
    recorder = MeetingRecorder(tmp_path / "grid.mp4", grid=True, size=(320, 240), fps=10)
    counts = await record_frames(recorder, [SilentTrack("video"), ConstAudioTrack(1000)], 1.0)
    assert counts.get("video", 0) >= 5 and counts.get("audio", 0) >= 30, counts
