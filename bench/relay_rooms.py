"""Many small meetings on one relay: rooms of 4, everyone publishing camera + microphone.

Each participant is one SDK connection that publishes a replayed VP8 clip and an Opus tone (synthetic:
encoding 2 x rooms x 4 live tracks would take the cores from the relay) and counts the other three
participants' six tracks. Reported: the relay's CPU, what it forwarded, and loss two ways: packets the
publishers sent (times the room's 3 receivers) against packets the subscribers got within the window,
and sequence numbers the subscribers never got (after NACK repair). A relay that keeps up shows neither;
a relay short of CPU queues packets (they arrive late: the first figure grows) before it loses any.

Twenty rooms need most of one core for the relay plus most of another for the load generator, which a
shared 2-core machine does not always have: when the run shows a starved relay (median delay over
50 ms, or more than 2 % of packets not delivered in time), it is repeated once with half the rooms, and
both rows are reported.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from rich.progress import Progress

from bench.common import percentile
from bench.relay_harness import (
    Participant,
    RelayUnderTest,
    gather_limited,
    join,
    measure,
    settle,
    wait_until,
)
from bench.rtp_media import Clip, Scheduler
from bench.rtp_sink import CountingSink, SinkPool

PER_ROOM = 4
STARVED_P50_MS = 50.0
STARVED_UNDELIVERED_PCT = 2.0


async def run(
    video: Clip,
    audio: Clip,
    rooms: int,
    window_s: float,
    progress: Progress,
    max_settle_s: float = 6.0,
    min_rooms: int = 5,
) -> dict[str, Any]:
    runs = [await run_once(video, audio, rooms, window_s, max_settle_s, progress)]
    if starved(runs[0]) and rooms // 2 >= min_rooms:
        runs.append(await run_once(video, audio, rooms // 2, window_s, max_settle_s, progress))
    return {"runs": runs, "stepped_down": len(runs) > 1}


def starved(row: dict[str, Any]) -> bool:
    return bool(row["latency_p50_ms"] > STARVED_P50_MS or row["loss_pct"] > STARVED_UNDELIVERED_PCT)


async def run_once(
    video: Clip, audio: Clip, rooms: int, window_s: float, max_settle_s: float, progress: Progress
) -> dict[str, Any]:
    task = progress.add_task(f"Rooms: {rooms} x {PER_ROOM} joining", total=rooms * PER_ROOM + 1)
    relay = RelayUnderTest().start()
    scheduler, pool = Scheduler(), SinkPool()
    background = [asyncio.ensure_future(scheduler.run()), asyncio.ensure_future(pool.run())]
    people: list[Participant] = []
    try:
        clips = {"camera": video, "microphone": audio}

        async def one(room: int, n: int) -> Participant:
            p = await join(relay, f"room-{room}", f"r{room}-p{n}", clips, CountingSink(pool), scheduler)
            progress.advance(task)
            return p

        # Rooms fill up side by side, as meetings start at the same time of day.
        order = [(r, n) for n in range(PER_ROOM) for r in range(rooms)]
        people = await gather_limited([partial(one, r, n) for r, n in order], limit=6)
        expected_streams = 2 * (PER_ROOM - 1)

        def all_flowing() -> bool:
            return all(
                p.sink is not None
                and len(p.sink.streams) >= expected_streams
                and all(s.unique > 0 for s in p.sink.streams.values())
                for p in people
            )

        progress.update(task, description=f"Rooms: {rooms} x {PER_ROOM}, waiting for every track")
        flowing = await wait_until(all_flowing, 30)
        sinks = [p.sink for p in people if p.sink is not None]
        settled = await settle(pool, sinks, 1.0, max_settle_s)
        progress.update(task, description=f"Rooms: {rooms} x {PER_ROOM}, measuring {window_s:.0f} s")
        scheduler.late_s = 0.0
        streams = [s for p in people for s in p.streams.values()]
        m = await measure(relay.pid, pool, window_s, sinks, streams, relay)
        threads = relay.threads()
        progress.advance(task)
    finally:
        for t in background:
            t.cancel()
        await gather_limited([p.close for p in people], limit=16)
        relay.stop()

    expected = m.sent * (PER_ROOM - 1)
    received = m.received.unique
    wall = m.window.wall
    video_streams = rooms * PER_ROOM * (PER_ROOM - 1)
    nan = float("nan")
    return {
        "rooms": rooms,
        "participants": rooms * PER_ROOM,
        "settle_s": settled,
        "all_tracks_flowing": flowing,
        "window_s": wall,
        "relay_cpu_s": m.window.relay_cpu,
        "relay_cores": m.window.relay_cpu / wall,
        "bench_cores": m.window.bench_cpu / wall,
        "other_cores": m.window.other_cores,
        "sent_pps": m.sent / wall,
        "forwarded_pps": m.forwarded / wall,
        "received_pps": received / wall,
        "loss_pct": max(0.0, (expected - received) / expected * 100) if expected else nan,
        "gap_loss_pct": m.received.gap_loss_pct,
        "us_per_forwarded": m.window.relay_cpu / m.forwarded * 1e6 if m.forwarded else nan,
        "forwarded_per_core_s": m.forwarded / m.window.relay_cpu if m.window.relay_cpu else nan,
        "video_streams_forwarded": video_streams,
        "cpu_per_video_stream_s": m.window.relay_cpu / (video_streams * wall),
        "latency_p50_ms": percentile(m.latencies_ms, 50),
        "latency_p99_ms": percentile(m.latencies_ms, 99),
        "generator_late_ms": scheduler.late_s * 1000,
        "retransmissions": m.retransmissions,
        "relay_threads": threads,
    }
