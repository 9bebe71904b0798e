"""The relay under test and how the benchmark's synthetic participants join it.

The relay runs as it does in production, ``python -m edge_relay`` in its own process, so its CPU is
read from ``/proc/<pid>/stat`` alone and the load generator cannot hide in it. Join tokens are minted
here with a fresh Ed25519 key (the relay verifies them offline, as it does tokens from the API), so no
control plane is needed. Participants use the SDK's ``RelayConnection`` (the real signalling, offers
and renegotiation); only their media is synthetic: ``rtp_media.OutStream`` for what they publish and
``rtp_sink.CountingSink`` for what they receive.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.common import _CLK_TCK, ROOT, percentile, proc_cpu_seconds
from bench.rtp_media import Clip, OutStream, Scheduler
from bench.rtp_sink import CountingSink, SinkPool, Totals
from client_sdk.rtc.connection import RelayConnection
from client_sdk.rtc.paths import PathPlan
from local_stack.aws import free_port
from meetup_protocol.metrics import parse as parse_metrics
from meetup_protocol.signalling import Offer, PublishSlot
from meetup_protocol.tokens import JoinClaims, generate_join_keypair, issue_join_token, load_private_key

SOURCE_KIND = {"camera": "video", "microphone": "audio"}
T = TypeVar("T")


class RelayUnderTest:
    """One relay process on loopback (``python -m edge_relay``), plus the key that signs its tokens.

    Started directly rather than through local_stack, so the benchmark sets exactly the relay's
    environment (no registry heartbeats to a moto left by the API benchmark, nothing else running).
    """

    def __init__(self, keys: tuple[str, str] | None = None, env: dict[str, str] | None = None) -> None:
        """``keys``: the (private, public) join key pair, to share one among relays of a cluster;
        ``env``: more relay settings (the cluster's)."""
        private_pem, public_pem = keys or generate_join_keypair()
        self._key = load_private_key(private_pem)
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        self.http_url = f"http://127.0.0.1:{self.port}"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MEETUP_", "AWS_ENDPOINT"))}
        self._env = {
            **inherited,
            "MEETUP_JOIN_PUBLIC_KEY": public_pem,
            "MEETUP_RELAY_HOST": "127.0.0.1",
            "MEETUP_RELAY_PORT": str(self.port),
            "MEETUP_RELAY_REGION": "bench",
            "MEETUP_RELAY_ICE_ADDRESSES": "127.0.0.1",
            "MEETUP_RELAY_MAX_PARTICIPANTS": "1000",
            "MEETUP_RELAY_REGISTRY": "false",
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> RelayUnderTest:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_relay"],
            cwd=ROOT,
            env=self._env,
            stderr=None if os.environ.get("MEETUP_RELAY_LOG_LEVEL") else subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the relay exited with code {self.proc.returncode}")
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the relay did not answer within {timeout_s} s")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def threads(self) -> int:
        """OS threads of the relay process (aiortc starts one per receiver, even when never used)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        return 0

    def token(self, meeting_id: str, participant_id: str, role: str = "guest") -> str:
        now = int(time.time())
        claims = JoinClaims(
            meeting_id=meeting_id,
            participant_id=participant_id,
            user_id=f"user-{participant_id}",
            display_name=participant_id,
            role=role,  # type: ignore[arg-type]
            expires_at=now + 3600,
            meeting_ends_at=now + 7200,
            max_participants=1000,
        )
        return issue_join_token(claims, self._key)

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient(timeout=10) as http:
            return parse_metrics((await http.get(f"{self.http_url}/metrics")).text)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGINT (the relay then closes at once, without draining), SIGKILL if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class SilentSource(MediaStreamTrack):
    """A local track that never yields a frame (the media goes out as replayed RTP), and ends on stop().

    Unlike the relay's ``SilentTrack`` it ends when stopped: the SDK reads local tracks through its own
    MediaRelay, whose reading task would otherwise outlive the connection.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        await asyncio.shield(self._ended)
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if not self._ended.done():
            self._ended.set_result(None)


class _Discard:
    """Stands in for a connection's event queue: nobody reads the events of a synthetic participant."""

    async def put(self, item: Any) -> None:
        return None

    def put_nowait(self, item: Any) -> None:
        return None


class BenchConnection(RelayConnection):
    """The SDK's connection with a hook after each answer (to attach sinks and streams in time)."""

    def __init__(self, *args: Any, on_answered: Callable[[BenchConnection], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_answered = on_answered
        self.publish_mids: dict[str, str] = {}  # source -> mid of the m-line it is published on
        self.events = _Discard()  # type: ignore[assignment]

    async def _answer(self, offer: Offer) -> None:
        # Publish m-lines are found from the protocol (the offer's ``{"publish": source}`` slots), not
        # from which track the SDK put on which sender: that is the SDK's business and may change.
        for mid, slot in offer.tracks.items():
            if isinstance(slot, PublishSlot):
                self.publish_mids[slot.publish] = mid
        await super()._answer(offer)
        self.on_answered(self)


@dataclass
class Participant:
    """A synthetic participant: what it publishes (streams) and what it receives (sink)."""

    conn: BenchConnection
    sink: CountingSink | None
    clips: dict[str, Clip]
    streams: dict[str, OutStream] = field(default_factory=dict)

    def bind(self, conn: BenchConnection) -> None:
        if self.sink is not None:
            self.sink.attach(conn.pc)
        for source, mid in conn.publish_mids.items():
            transceiver = next((t for t in conn.pc.getTransceivers() if t.mid == mid), None)
            if transceiver is not None and source in self.clips and source not in self.streams:
                self.streams[source] = OutStream(transceiver, self.clips[source])

    @property
    def connected(self) -> bool:
        return self.conn.pc.connectionState == "connected"

    async def close(self) -> None:
        await self.conn.close()
        for track in self.conn.local_tracks.values():
            track.stop()


async def join(
    relay: RelayUnderTest,
    meeting_id: str,
    participant_id: str,
    clips: dict[str, Clip] | None = None,
    sink: CountingSink | None = None,
    scheduler: Scheduler | None = None,
    timeout_s: float = 20.0,
    path: PathPlan | None = None,
) -> Participant:
    """Join with the real signalling; publish ``clips`` (source -> clip) and count what arrives.
    ``path``: how its media goes (client_sdk/rtc/paths.py; default direct)."""
    clips = clips or {}
    tracks: dict[str, MediaStreamTrack] = {source: SilentSource(SOURCE_KIND[source]) for source in clips}
    holder: dict[str, Participant] = {}
    conn = BenchConnection(
        relay.url,
        relay.token(meeting_id, participant_id),
        tracks,
        on_answered=lambda c: holder["p"].bind(c),
        path=path,
    )
    participant = holder["p"] = Participant(conn, sink, clips)
    await conn.connect()
    if not await wait_until(
        lambda: participant.connected and len(participant.streams) == len(clips), timeout_s
    ):
        raise TimeoutError(f"{participant_id} did not connect ({conn.pc.connectionState})")
    if scheduler is not None:
        for stream in participant.streams.values():
            scheduler.add([stream], phase_s=random.random() * stream.clip.frame_s)
    return participant


async def wait_until(
    condition: Callable[[], bool], timeout_s: float = 10.0, interval_s: float = 0.02
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(interval_s)
    return bool(condition())


async def gather_limited(jobs: Sequence[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run coroutine factories with at most ``limit`` in flight (joins are CPU-heavy: DTLS, SDP)."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def settle(
    pool: SinkPool, sinks: list[CountingSink], min_s: float, max_s: float, p50_ms: float = 20.0
) -> float:
    """Wait until the backlog left by joining has drained: the median delay over the last half second
    is under ``p50_ms`` (joins cost DTLS handshakes on both sides; packets queue meanwhile). Returns
    the seconds waited, or NaN if the delay never came down within ``max_s``."""
    started = time.monotonic()
    await asyncio.sleep(min_s)
    while True:
        pool.clear_latencies()
        pool.recording = True
        await asyncio.sleep(0.5)
        pool.recording = False
        delays = [x for sink in sinks for x in sink.latencies_ms]
        waited = time.monotonic() - started
        if not delays or percentile(delays, 50) < p50_ms:
            return waited
        if waited > max_s:
            return float("nan")


def system_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _CLK_TCK


@dataclass
class Window:
    """CPU seconds and wall time across a measurement window: the relay, this process, everything.

    ``other`` is the machine's busy time that is neither the relay's nor this process's: other work on a
    shared machine (and the baseline's own helpers). When it is high, wall-clock figures (loss,
    latency) suffer while CPU-time ratios stay meaningful.
    """

    relay_cpu: float
    bench_cpu: float
    system: float
    wall: float

    @classmethod
    def now(cls, relay_pid: int) -> Window:
        return cls(
            proc_cpu_seconds(relay_pid), time.process_time(), system_busy_seconds(), time.perf_counter()
        )

    def __sub__(self, other: Window) -> Window:
        return Window(
            self.relay_cpu - other.relay_cpu,
            self.bench_cpu - other.bench_cpu,
            self.system - other.system,
            self.wall - other.wall,
        )

    @property
    def other_cores(self) -> float:
        return max(0.0, self.system - self.relay_cpu - self.bench_cpu) / self.wall


@dataclass
class Measured:
    """Raw counts over one measurement window (derived figures are computed by each part)."""

    window: Window
    received: Totals  # by the sinks measured
    forwarded: float  # relay counters: packets out + retransmissions (NaN for the baseline server)
    retransmissions: float
    nacks_received: float
    sent: int  # by the publishers' streams
    latencies_ms: list[float]
    direct_latencies_ms: list[float]
    sink_p50_ms: list[float]  # each subscriber's median delay, in the order they joined
    loop_lag_max_s: float = float("nan")


async def measure(
    pid: int,
    pool: SinkPool,
    window_s: float,
    sinks: list[CountingSink],
    streams: list[OutStream],
    relay: RelayUnderTest | None = None,
    direct: CountingSink | None = None,
) -> Measured:
    """Count everything across ``window_s``: the relay's CPU, what was sent, forwarded and received.

    The relay's /metrics are read just outside the CPU window, so scraping them is not billed to it.
    """
    m0 = await relay.metrics() if relay else {}
    pool.clear_latencies()
    pool.recording = True
    sent0, t0, w0 = sum(s.packets for s in streams), pool.totals(sinks), Window.now(pid)
    await asyncio.sleep(window_s)
    sent1, t1, w1 = sum(s.packets for s in streams), pool.totals(sinks), Window.now(pid)
    pool.recording = False
    m1 = await relay.metrics() if relay else {}

    def delta(name: str) -> float:
        return m1[name] - m0[name] if relay else float("nan")

    return Measured(
        window=w1 - w0,
        received=t1 - t0,
        forwarded=delta("relay_rtp_packets_out_total") + delta("relay_retransmissions_total"),
        retransmissions=delta("relay_retransmissions_total"),
        nacks_received=delta("relay_nacks_received_total"),
        sent=sent1 - sent0,
        latencies_ms=[x for sink in sinks for x in sink.latencies_ms],
        direct_latencies_ms=list(direct.latencies_ms) if direct else [],
        sink_p50_ms=[percentile(sink.latencies_ms, 50) for sink in sinks if sink.latencies_ms],
        loop_lag_max_s=m1.get("relay_event_loop_lag_max_seconds", float("nan")),
    )
