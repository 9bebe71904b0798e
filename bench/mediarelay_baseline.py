"""The baseline to beat: an aiortc server relaying with ``MediaRelay`` (decode once, encode per subscriber).

``python -m bench.mediarelay_baseline --port N`` is the server: the publisher offers its video, the server
answers and keeps the decoded track; each subscriber offers ``recvonly`` and gets
``MediaRelay().subscribe(track)`` added to its own peer connection (default, buffered proxies), as in
aiortc's examples. Signalling is one JSON message each way over a WebSocket, nothing more, so the
server's CPU is the media path. The publisher is the very same clip replay as for the forwarding relay,
and the subscribers are the same packet-counting sinks; they send REMB at 1 Mbps so the server's VP8
encoders aim at the publisher's bitrate (aiortc would otherwise start them at 500 kbps).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
from typing import Any

import websockets
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from rich.progress import Progress

from bench.common import ROOT
from bench.relay_fanout import fanout_row
from bench.relay_harness import measure, stop_process, wait_until
from bench.rtp_media import Clip, OutStream, Scheduler
from bench.rtp_sink import CountingSink, SinkPool
from edge_relay.sfu.seams import SilentTrack, use_ice_host_addresses
from local_stack.aws import free_port


def _vp8_only(transceiver: Any) -> None:
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    )


# --- the server (its own process) -----------------------------------------------------------------------


async def serve(port: int) -> None:
    use_ice_host_addresses(["127.0.0.1"])
    relay = MediaRelay()
    source: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    pcs: set[RTCPeerConnection] = set()

    def on_track(track: MediaStreamTrack) -> None:
        if not source.done():
            source.set_result(track)

    async def session(ws: Any) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pcs.add(pc)
            offer = RTCSessionDescription(sdp=msg["sdp"], type="offer")
            if msg["op"] == "publish":
                pc.on("track", on_track)
                await pc.setRemoteDescription(offer)
            else:
                await pc.setRemoteDescription(offer)
                pc.addTrack(relay.subscribe(await source))
            await pc.setLocalDescription(await pc.createAnswer())
            await ws.send(json.dumps({"sdp": pc.localDescription.sdp}))

    async with websockets.serve(session, "127.0.0.1", port):
        print("ready", flush=True)
        await asyncio.get_running_loop().create_future()


# --- the client side ------------------------------------------------------------------------------------


class BaselineServer:
    """The MediaRelay server as a child process (so its CPU is its own)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._sockets: list[Any] = []

    def start(self, timeout_s: float = 20.0) -> BaselineServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.mediarelay_baseline", "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        line = self.proc.stdout.readline()  # "ready" once it listens
        if b"ready" not in line or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError("the MediaRelay baseline server did not start")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _exchange(self, op: str, pc: RTCPeerConnection) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        ws = await websockets.connect(self.url, max_size=2**22)
        self._sockets.append(ws)
        await ws.send(json.dumps({"op": op, "sdp": pc.localDescription.sdp}))
        answer = json.loads(await ws.recv())
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def publish(self, clip: Clip, scheduler: Scheduler) -> tuple[RTCPeerConnection, OutStream]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        transceiver = pc.addTransceiver(SilentTrack("video"), direction="sendonly")
        _vp8_only(transceiver)
        await self._exchange("publish", pc)
        stream = OutStream(transceiver, clip)
        if not await wait_until(lambda: stream.connected, 20):
            raise TimeoutError("the baseline publisher did not connect")
        scheduler.add([stream])
        return pc, stream

    async def subscribe(self, sink: CountingSink) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        _vp8_only(pc.addTransceiver("video", direction="recvonly"))
        await self._exchange("subscribe", pc)
        sink.attach(pc)
        if not await wait_until(lambda: pc.connectionState == "connected", 20):
            raise TimeoutError("a baseline subscriber did not connect")
        return pc

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        self._sockets.clear()

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


async def run(
    clip: Clip,
    levels: list[int],
    window_s: float,
    settle_s: float,
    estimate_at: list[int],
    progress: Progress,
) -> dict[str, Any]:
    """Measure the MediaRelay server at each number of subscribers (0 = the publisher alone: decoding)."""
    task = progress.add_task("MediaRelay baseline: starting", total=len(levels) + 1)
    server = BaselineServer().start()
    scheduler, pool = Scheduler(), SinkPool(remb_bps=1_000_000)
    background = [asyncio.ensure_future(scheduler.run()), asyncio.ensure_future(pool.run())]
    pcs: list[RTCPeerConnection] = []
    sinks: list[CountingSink] = []
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    try:
        pub, stream = await server.publish(clip, scheduler)
        pcs.append(pub)
        base_cores = 0.0
        for subs in [0, *levels]:
            progress.update(task, description=f"MediaRelay baseline: {subs} subscribers joining")
            while len(sinks) < subs:
                sink = CountingSink(pool)
                pcs.append(await server.subscribe(sink))
                sinks.append(sink)
            await wait_until(lambda: all(any(s.unique for s in k.streams.values()) for k in sinks), 20)
            await asyncio.sleep(settle_s + 1.0)  # encoders start on a key frame; rate control settles
            progress.update(task, description=f"MediaRelay baseline: {subs} subscribers, measuring")
            m = await measure(server.pid, pool, window_s, sinks, [stream])
            row = fanout_row(subs, m, base_cores, clip.fps, forwarded=m.received.packets)
            if subs == 0:
                base_cores = row["relay_cores"]
                result["publisher_only"] = row
            else:
                rows.append(row)
            progress.advance(task)
    finally:
        for t in background:
            t.cancel()
        await server.close()
        for pc in pcs:
            await pc.close()
        server.stop()
    result["levels"] = rows
    result["estimates"] = [
        estimate(rows, base_cores, subs, clip.fps) for subs in estimate_at if subs > rows[-1]["subs"]
    ]
    return result


def estimate(rows: list[dict[str, Any]], base_cores: float, subs: int, fps: float) -> dict[str, Any]:
    """Extrapolate MediaRelay's CPU to ``subs`` subscribers each getting every frame.

    Each subscriber costs its own encoder and the decode is paid once, so CPU is the publisher-only
    cost plus a per-subscriber cost, taken from the largest measured step per frame actually delivered
    (a starved server delivers fewer frames and must not look cheaper per subscriber for it).
    """
    top = rows[-1]
    delivered = top["fps_per_sub"] / fps if top["fps_per_sub"] == top["fps_per_sub"] else 1.0
    per_sub = (top["relay_cores"] - base_cores) / (top["subs"] * max(delivered, 1e-3))
    cores = base_cores + per_sub * subs
    return {
        "subs": subs,
        "estimated": True,
        "from_subs": top["subs"],
        "relay_cores": cores,
        "cpu_per_stream_s": cores / subs,
        "cpu_per_delivered_stream_s": cores / subs,
        "marginal_per_stream_s": per_sub,
        "fps_per_sub": fps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="aiortc MediaRelay server (benchmark baseline)")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port))


if __name__ == "__main__":
    main()
