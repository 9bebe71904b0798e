"""One publisher to many subscribers through the forwarding relay: CPU per stream, capacity, latency.

One relay process, one meeting, one publisher replaying the VP8 clip; subscribers are added in steps
(1, 4, 16, 64 ...) and each step is measured over a fixed window once every subscriber receives video:
relay CPU per forwarded stream-second (the figure compared with ``MediaRelay``), packets forwarded per
CPU-second, and per-packet delay against a direct aiortc path fed the same frames at the same instants.

Then the capacity steps: subscribers drop a share of packets on purpose and NACK them, so the relay
answers retransmissions from its history while it forwards, rewrites sender reports and relays RTCP
(RTCP, NACK and SR all running); py-spy samples the relay at the step named ``profile_at``.

The join latency samples (real SDK clients decoding video) run first, on the same publisher.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any

from rich.progress import Progress

from bench import relay_latency, relay_profile
from bench.common import RESULTS_DIR
from bench.relay_harness import (
    Measured,
    Participant,
    RelayUnderTest,
    Window,
    gather_limited,
    join,
    measure,
    settle,
    wait_until,
)
from bench.rtp_media import Clip, Scheduler
from bench.rtp_sink import CountingSink, SinkPool

MEETING = "fanout"


@dataclass(frozen=True)
class FanoutPlan:
    levels: list[int]  # subscribers, without deliberate loss
    capacity_levels: list[int]  # subscribers, with ``drop`` and NACKs
    drop: float
    window_s: float
    settle_s: float  # at least this long between a step's joins and its window
    max_settle_s: float  # at most this long waiting for the delay to come down (the backlog to drain)
    join_samples: int
    profile_at: int | None
    profile_s: float


def fanout_row(
    subs: int, m: Measured, base_cores: float, fps: float, forwarded: float | None = None
) -> dict[str, Any]:
    """Derived figures of one step. ``forwarded``: packets out (default: the relay's own counters).

    ``cpu_per_delivered_stream_s`` counts stream-seconds by frames actually delivered (``fps`` frames
    make one): a relay too slow to deliver every frame does not look cheaper for it.
    """
    wall = m.window.wall
    cpu = m.window.relay_cpu
    out = m.forwarded if forwarded is None else forwarded
    expected = m.sent * subs
    nan = float("nan")
    row = {
        "subs": subs,
        "window_s": wall,
        "relay_cpu_s": cpu,
        "relay_cores": cpu / wall,
        "cpu_per_stream_s": cpu / (subs * wall) if subs else nan,
        "cpu_per_delivered_stream_s": cpu / (m.received.frames / fps) if m.received.frames else nan,
        "marginal_per_stream_s": (cpu / wall - base_cores) / subs if subs else nan,
        "forwarded_pps": out / wall,
        "us_per_forwarded": cpu / out * 1e6 if out else nan,
        "forwarded_per_core_s": out / cpu if cpu else nan,
        "fps_per_sub": m.received.frames / subs / wall if subs else nan,
        "kbps_per_sub": m.received.octets * 8 / 1000 / subs / wall if subs else nan,
        "loss_pct": m.received.gap_loss_pct,
        "delivered_pct": m.received.unique * 100 / expected if expected else nan,
        "dropped": m.received.dropped,
        "recovered": m.received.recovered,
        "retransmissions": m.retransmissions,
        "nacks_received": m.nacks_received,
        "bench_cores": m.window.bench_cpu / wall,
        "other_cores": m.window.other_cores,
    }
    row.update(relay_latency.latency_summary(m.latencies_ms, m.direct_latencies_ms))
    if m.sink_p50_ms:  # the relay serves subscriptions in join order: the first and the last one
        row["first_sub_p50_ms"], row["last_sub_p50_ms"] = m.sink_p50_ms[0], m.sink_p50_ms[-1]
    return row


async def run(clip: Clip, plan: FanoutPlan, progress: Progress) -> dict[str, Any]:
    steps = 2 + len(plan.levels) + len(plan.capacity_levels) + (1 if plan.profile_at else 0)
    task = progress.add_task("Fan-out: starting the relay", total=steps)
    relay = RelayUnderTest().start()
    scheduler, pool = Scheduler(), SinkPool()
    background = [asyncio.ensure_future(scheduler.run()), asyncio.ensure_future(pool.run())]
    subscribers: list[Participant] = []
    closers: list[Any] = []
    result: dict[str, Any] = {"levels": [], "capacity": []}
    try:
        idle = Window.now(relay.pid)
        await asyncio.sleep(plan.window_s / 2)
        idle = Window.now(relay.pid) - idle
        result["idle_relay_cores"] = idle.relay_cpu / idle.wall
        publisher = await join(relay, MEETING, "publisher", {"camera": clip})
        closers.append(publisher.close)
        direct_sink = CountingSink(pool, "direct")
        dpub, dsub, dstream = await relay_latency.direct_pair(clip, direct_sink)
        closers += [dpub.close, dsub.close]
        stream = publisher.streams["camera"]
        scheduler.add([stream, dstream])  # the same frame, at the same instant, on both paths
        await wait_until(lambda: dstream.connected and stream.frames > 0, 10)

        progress.update(task, description=f"Join latency: {plan.join_samples} joins via relay and direct")
        result["join"] = await relay_latency.join_samples(relay, MEETING, clip, scheduler, plan.join_samples)
        progress.advance(task)

        settled: dict[int, float] = {}

        async def step(subs: int, label: str) -> Measured:
            progress.update(task, description=f"{label}: {subs} subscribers joining")
            new = [
                partial(join, relay, MEETING, f"sub-{i}", sink=CountingSink(pool))
                for i in range(len(subscribers), subs)
            ]
            subscribers.extend(await gather_limited(new, limit=8))
            sinks = [p.sink for p in subscribers if p.sink is not None]
            flowing = await wait_until(lambda: all(_video_flowing(s) for s in sinks), 20)
            if not flowing:
                result.setdefault("warnings", []).append(f"{label} {subs}: not every subscriber got video")
            progress.update(task, description=f"{label}: {subs} subscribers, settling")
            settled[subs] = await settle(pool, sinks, plan.settle_s, plan.max_settle_s)
            progress.update(task, description=f"{label}: {subs} subscribers, measuring {plan.window_s:.0f} s")
            m = await measure(relay.pid, pool, plan.window_s, sinks, [stream], relay, direct_sink)
            progress.advance(task)
            return m

        base = await step(0, "Fan-out")
        base_cores = base.window.relay_cpu / base.window.wall
        result["publisher_only"] = fanout_row(0, base, base_cores, clip.fps)
        for subs in plan.levels:
            result["levels"].append(fanout_row(subs, await step(subs, "Fan-out"), base_cores, clip.fps))
            result["levels"][-1]["settle_s"] = settled[subs]
        pool.drop = plan.drop
        for subs in plan.capacity_levels:
            m = await step(subs, f"Capacity ({plan.drop:.0%} dropped, NACKed)")
            row = fanout_row(subs, m, base_cores, clip.fps)
            row["settle_s"] = settled[subs]
            result["capacity"].append(row)
            if subs == plan.profile_at:
                progress.update(task, description=f"py-spy on the relay at {subs} subscribers")
                keep = RESULTS_DIR / "relay-pyspy.txt"
                result["profile"] = await relay_profile.record(relay.pid, plan.profile_s, keep=keep)
                result["profile"]["subs"] = subs
                progress.advance(task)
        result["relay_metrics"] = {
            k: v for k, v in (await relay.metrics()).items() if not k.startswith("relay_rejects")
        }
    finally:
        for t in background:
            t.cancel()
        await gather_limited([p.close for p in subscribers], limit=16)
        for close in closers:
            await close()
        relay.stop()
    return result


def _video_flowing(sink: CountingSink) -> bool:
    return any(s.kind == "video" and s.unique > 0 for s in sink.streams.values())
