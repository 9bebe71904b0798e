"""The engine of ``meet load-test``: N publishers and M subscribers as real SDK meetings in this process.

Every virtual participant is its own account, ``Client`` and :class:`~client_sdk.meeting.Meeting` (API
admission, relay probe, WebRTC through the relays), so the run exercises exactly what users do. What is
measured, per received track (receiver x publisher x kind):

* frames decoded (aiortc decodes before ``recv()`` returns) and the time to the first one;
* bytes: RTP payload bytes counted as packets reach the track's receiver (aiortc's inbound-rtp stats
  carry no byte counts; ``client_sdk.rtc.seams.on_receiver_rtp``);
* packets received / lost and jitter: ``RTCRtpReceiver.getStats()`` (inbound-rtp; the relays retransmit
  on the media SSRC, so there is one stream per receiver);
* glass-to-glass latency: :class:`PatternVideoTrack` stamps its capture time into frames at least 512
  wide, read back from the decoded picture. Everyone runs in this process, so one clock serves both ends.
  It includes one frame interval: aiortc's jitter buffer hands a frame to the decoder when the next
  frame's first packet arrives (125 ms at 8 fps, 33 ms at 30 fps).

Rates and loss cover the measurement window only (after every join finished): set-up is not averaged in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamTrack

from client_sdk.client import Client
from client_sdk.errors import MeetupError
from client_sdk.loadtest.accounts import Account
from client_sdk.media.sources import STAMP_BITS, STAMP_BLOCK, PatternVideoTrack, ToneAudioTrack, read_stamp
from client_sdk.meeting import Meeting, MeetingEvent
from client_sdk.rtc import seams
from client_sdk.rtc.connection import RemoteTrack

#: Narrowest video that carries PatternVideoTrack's capture-time stamp (so latency can be measured).
STAMP_MIN_WIDTH = STAMP_BITS * STAMP_BLOCK
_CLOCK_RATE = {"video": 90000, "audio": 48000}  # RTP clock of VP8/H.264 and Opus: jitter units


@dataclass
class LoadTestConfig:
    publishers: int
    subscribers: int
    duration_s: float
    width: int = 512
    height: int = 288
    fps: float = 10
    audio: bool = True
    region: str | None = None
    join_concurrency: int = 4
    join_timeout_s: float = 30


class _TimedClient(Client):
    """A Client that remembers how long the API took to admit it (the first join only)."""

    api_join_s: float | None = None

    async def join_meeting(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        admission = await super().join_meeting(*args, **kwargs)
        if self.api_join_s is None:
            self.api_join_s = time.perf_counter() - started
        return admission


@dataclass
class Participant:
    """One virtual participant; ``name`` (p1.., s1..) is ours, never a server's."""

    name: str
    role: str  # publisher | subscriber
    account: Account
    client: _TimedClient | None = None
    meeting: Meeting | None = None
    local: list[MediaStreamTrack] = field(default_factory=list)
    login_s: float | None = None
    join_s: float | None = None  # Meeting.join: API admission + relay probe + signalling + ICE/DTLS
    joined_at: float | None = None  # monotonic
    error: str = ""
    code: str = ""
    reconnects: int = 0


@dataclass
class TrackStats:
    receiver: Participant
    publisher_id: str
    kind: str
    source: str
    frames: int = 0
    bytes: int = 0
    first_frame_at: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    rtp_receiver: RTCRtpReceiver | None = None
    packets: tuple[int, int, float] = (0, 0, 0.0)  # received, lost, jitter (ms), as last read
    packets_base: tuple[int, int] = (0, 0)  # from receivers replaced by a reconnect
    at_window_start: tuple[int, int, int, int] | None = None  # frames, bytes, received, lost
    at_window_end: tuple[int, int, int, int] | None = None

    def snapshot(self) -> tuple[int, int, int, int]:
        return (
            self.frames,
            self.bytes,
            self.packets_base[0] + self.packets[0],
            self.packets_base[1] + self.packets[1],
        )


class LoadTest:
    """Runs one load test. The CLI reads ``phase`` and the counters while it runs, to show progress."""

    def __init__(self, api_url: str, config: LoadTestConfig, accounts: list[Account]) -> None:
        needed = config.publishers + config.subscribers
        if len(accounts) < needed:
            raise ValueError(f"{needed} accounts needed, {len(accounts)} given")
        self.api_url = api_url
        self.config = config
        self.participants = [
            Participant(f"p{i + 1}", "publisher", accounts[i]) for i in range(config.publishers)
        ] + [
            Participant(f"s{i + 1}", "subscriber", accounts[config.publishers + i])
            for i in range(config.subscribers)
        ]
        self.tracks: dict[tuple[str, str, str], TrackStats] = {}  # (receiver, publisher id, kind)
        self.phase = "starting"
        self.meeting_id = ""
        self.window_started_at: float | None = None
        self.window_s = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: set[MediaStreamTrack] = set()

    # --- progress --------------------------------------------------------------------------------------

    @property
    def joined(self) -> int:
        return sum(1 for p in self.participants if p.meeting is not None)

    @property
    def failed(self) -> int:
        return sum(1 for p in self.participants if p.error)

    @property
    def frames(self) -> int:
        return sum(t.frames for t in self.tracks.values())

    @property
    def flowing(self) -> int:
        return sum(1 for t in self.tracks.values() if t.frames)

    @property
    def expected_tracks(self) -> int:
        kinds = 2 if self.config.audio else 1
        p, n = self.config.publishers, len(self.participants)
        return kinds * (p * (n - 1))  # every participant receives every other publisher

    # --- the run ---------------------------------------------------------------------------------------

    async def run(self, operator: Client, run_id: str) -> None:
        """The operator's account creates the meeting (it does not join it) and ends it afterwards."""
        needed = len(self.participants)
        self.phase = "creating the meeting"
        created = await operator.create_meeting(
            title=f"load test {run_id}",
            max_participants=max(2, min(300, needed + 1)),
            max_duration_minutes=int(self.config.duration_s // 60) + 10,
        )
        self.meeting_id = created.meeting_id
        try:
            self.phase = "joining"
            gate = asyncio.Semaphore(self.config.join_concurrency)
            await asyncio.gather(*(self._join(p, created.passcode, gate) for p in self.participants))
            self.phase = "measuring"
            await self._measure()
        finally:
            self.phase = "leaving"
            await self._leave_all()
            with contextlib.suppress(MeetupError):
                await operator.end_meeting(self.meeting_id)
            self.phase = "done"

    async def _join(self, p: Participant, passcode: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            p.client = _TimedClient(self.api_url)
            try:
                started = time.perf_counter()
                await p.client.login(p.account.email, p.account.password)
                p.login_s = time.perf_counter() - started
                if p.role == "publisher":
                    c = self.config
                    p.local = [PatternVideoTrack(c.width, c.height, c.fps)]
                    p.local += [ToneAudioTrack(440 + 40 * len(p.name))] if c.audio else []
                publish = {("camera" if t.kind == "video" else "microphone"): t for t in p.local}
                started = time.perf_counter()
                meeting = await asyncio.wait_for(
                    Meeting.join(
                        p.client,
                        self.meeting_id,
                        passcode,
                        publish=publish,
                        region=self.config.region,
                        background=False,  # the account's background effect would load mediapipe
                    ),
                    self.config.join_timeout_s,
                )
                p.join_s = time.perf_counter() - started
            except MeetupError as exc:
                p.error, p.code = f"{p.account.email}: {exc}", exc.code
                return
            except TimeoutError:
                p.error, p.code = f"no join within {self.config.join_timeout_s:.0f} s", "join_timeout"
                return
            p.joined_at = time.monotonic()
            p.meeting = meeting
            self._spawn(self._watch(p, meeting))

    async def _watch(self, p: Participant, meeting: Meeting) -> None:
        """Every event of one participant's meeting, from the moment it joined (the SDK queues them)."""
        async for event in meeting.events():
            if event.type == "track_added" and event.track is not None:
                self._take(p, meeting, event)
            elif event.type == "reconnected":
                p.reconnects += 1

    def _take(self, p: Participant, meeting: Meeting, event: MeetingEvent) -> None:
        remote: RemoteTrack = event.track  # type: ignore[assignment]
        if remote.track in self._seen:
            return
        self._seen.add(remote.track)
        info = remote.info
        key = (p.name, info.participant_id, info.kind)
        stats = self.tracks.setdefault(key, TrackStats(p, info.participant_id, info.kind, info.source))
        receiver = _receiver_of(meeting, remote.track)
        if receiver is not None and receiver is not stats.rtp_receiver:
            if stats.rtp_receiver is not None:  # a reconnect: keep what the old receiver counted
                stats.packets_base = (
                    stats.packets_base[0] + stats.packets[0],
                    stats.packets_base[1] + stats.packets[1],
                )
                stats.packets = (0, 0, stats.packets[2])
            stats.rtp_receiver = receiver
            seams.on_receiver_rtp(receiver, lambda packet: _add_bytes(stats, packet))
        self._spawn(self._consume(meeting.media(remote), stats))

    async def _consume(self, track: MediaStreamTrack, stats: TrackStats) -> None:
        with contextlib.suppress(Exception):  # MediaStreamError when the track ends
            while True:
                frame = await track.recv()
                stats.frames += 1
                if stats.first_frame_at is None:
                    stats.first_frame_at = time.monotonic()
                if isinstance(frame, av.VideoFrame) and self.window_started_at is not None:
                    stamp = read_stamp(frame)
                    delay_ms = (time.time_ns() // 1000 - stamp) / 1000 if stamp is not None else -1.0
                    if 0 <= delay_ms < 60_000:  # else not a stamp (a corrupt frame): not a latency
                        stats.latencies_ms.append(delay_ms)

    async def _measure(self) -> None:
        await self._read_packet_stats()
        self.window_started_at = time.monotonic()
        for stats in self.tracks.values():
            stats.at_window_start = stats.snapshot()
        deadline = self.window_started_at + self.config.duration_s
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(1.0, left))
            await self._read_packet_stats()
            for stats in self.tracks.values():  # a track that arrived during the window starts at 0
                if stats.at_window_start is None:
                    stats.at_window_start = (0, 0, 0, 0)
        self.window_s = time.monotonic() - self.window_started_at
        for stats in self.tracks.values():
            stats.at_window_end = stats.snapshot()

    async def _read_packet_stats(self) -> None:
        for stats in self.tracks.values():
            if stats.rtp_receiver is None:
                continue
            with contextlib.suppress(Exception):  # a receiver being torn down
                report = await stats.rtp_receiver.getStats()
                for entry in report.values():
                    if entry.type == "inbound-rtp":
                        jitter_ms = entry.jitter / _CLOCK_RATE[stats.kind] * 1000
                        stats.packets = (entry.packetsReceived, max(0, entry.packetsLost), jitter_ms)

    async def _leave_all(self) -> None:
        async def leave(p: Participant) -> None:
            if p.meeting is not None and not p.meeting.ended.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(p.meeting.leave(), 10)
            for track in p.local:
                track.stop()
            if p.client is not None:
                await p.client.aclose()

        await asyncio.gather(*(leave(p) for p in self.participants))
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _receiver_of(meeting: Meeting, track: MediaStreamTrack) -> RTCRtpReceiver | None:
    if meeting.connection is None:
        return None
    for transceiver in meeting.connection.pc.getTransceivers():
        if transceiver.receiver.track is track:
            return transceiver.receiver
    return None


def _add_bytes(stats: TrackStats, packet: Any) -> None:
    stats.bytes += len(packet.payload)
