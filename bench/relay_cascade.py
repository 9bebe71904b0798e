"""``python -m bench.relay_cascade [--quick]``: what a cascade costs, against one relay in the same run.

Two relay processes on loopback form a cluster (gossip on, one join key, one cluster secret). One
publisher replays the VP8 clip into relay A. At each level N, N subscribers join either

- **single**: on relay A, the baseline (one relay serves everyone), or
- **cascaded**: on relay B, so the track crosses the A-B link once and B fans it out,

and the window counts both relays' CPU (from /proc), what the subscribers received, and the packets
A sent over the link (``relay_cascade_packets_out``). The claims checked: the link carries the track
once whatever N (link packets per second / publisher packets per second ~ 1), and the cascade's cost
is one extra hop for the track, not one per subscriber (cascaded/single CPU falls towards 1 as N grows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import RESULTS_DIR, proc_cpu_seconds
from bench.relay_harness import Participant, RelayUnderTest, gather_limited, join, settle, wait_until
from bench.rtp_media import Clip, Scheduler, encode_video_clip
from bench.rtp_sink import CountingSink, SinkPool
from local_stack.aws import free_port
from meetup_protocol.tokens import generate_join_keypair

MEETING = "cascade"


@dataclass(frozen=True)
class Plan:
    levels: list[int]
    window_s: float
    settle_s: float
    clip_s: float


FULL = Plan(levels=[1, 4, 16, 32], window_s=6.0, settle_s=1.0, clip_s=3.0)
QUICK = Plan(levels=[1, 8], window_s=2.5, settle_s=0.5, clip_s=2.0)


def start_pair() -> tuple[RelayUnderTest, RelayUnderTest]:
    keys, secret = generate_join_keypair(), secrets.token_urlsafe(32)
    ports = [free_port(), free_port()]
    relays = []
    for i, port in enumerate(ports):
        env = {
            "MEETUP_RELAY_CLUSTER": "true",
            "MEETUP_CLUSTER_SECRET": secret,
            "MEETUP_RELAY_CLUSTER_PRESET": "local",
            "MEETUP_RELAY_CLUSTER_PORT": str(port),
            "MEETUP_RELAY_CLUSTER_SEEDS": f"127.0.0.1:{ports[1 - i]}",
            "MEETUP_RELAY_RELAY_ID": f"bench-{'ab'[i]}",  # a < b: relay A dials the links
        }
        relays.append(RelayUnderTest(keys, env).start())
    return relays[0], relays[1]


async def measure(
    a: RelayUnderTest, b: RelayUnderTest, pool: SinkPool, sinks: list[CountingSink], window_s: float
) -> dict[str, float]:
    m0 = await a.metrics()
    t0, ca0, cb0, w0 = (
        pool.totals(sinks),
        proc_cpu_seconds(a.pid),
        proc_cpu_seconds(b.pid),
        time.perf_counter(),
    )
    await asyncio.sleep(window_s)
    t1, ca1, cb1, w1 = (
        pool.totals(sinks),
        proc_cpu_seconds(a.pid),
        proc_cpu_seconds(b.pid),
        time.perf_counter(),
    )
    m1 = await a.metrics()
    wall = w1 - w0
    link = '{peer="bench-b"}'
    link_packets = m1.get(f"relay_cascade_packets_out{link}", 0.0) - m0.get(
        f"relay_cascade_packets_out{link}", 0.0
    )
    received = t1 - t0
    return {
        "relay_a_cores": (ca1 - ca0) / wall,
        "relay_b_cores": (cb1 - cb0) / wall,
        "total_cores": (ca1 - ca0 + cb1 - cb0) / wall,
        "received_pps": received.unique / wall,
        "loss_pct": received.gap_loss_pct,
        "link_pps": link_packets / wall,
    }


async def run(plan: Plan, console: Console) -> dict[str, Any]:
    clip: Clip = encode_video_clip(plan.clip_s)
    a, b = start_pair()
    scheduler, pool = Scheduler(), SinkPool()
    background = [asyncio.ensure_future(scheduler.run()), asyncio.ensure_future(pool.run())]
    closers: list[Any] = []
    rows = []
    try:
        for _ in range(100):  # the two relays find each other (gossip) before anyone joins
            if (await a.metrics()).get("relay_cluster_live_peers") == 1:
                break
            await asyncio.sleep(0.1)
        publisher = await join(a, MEETING, "publisher", {"camera": clip})
        closers.append(publisher.close)
        stream = publisher.streams["camera"]
        scheduler.add([stream])
        await wait_until(lambda: stream.frames > 0, 10)
        for n in plan.levels:
            row: dict[str, Any] = {"subs": n}
            for mode, relay in (("single", a), ("cascaded", b)):
                console.print(f"[dim]{n} subscribers, {mode}[/dim]")
                jobs = [
                    partial(join, relay, MEETING, f"{mode}-{n}-{i}", sink=CountingSink(pool))
                    for i in range(n)
                ]
                subs: list[Participant] = await gather_limited(jobs, limit=8)
                sinks = [p.sink for p in subs if p.sink is not None]
                flowing = await wait_until(lambda sinks=sinks: all(_video(s) for s in sinks), 20)
                await settle(pool, sinks, plan.settle_s, 8.0)
                got = await measure(a, b, pool, sinks, plan.window_s)
                got["flowing"] = flowing
                row[mode] = got
                await gather_limited([p.close for p in subs], limit=16)
                for sink in sinks:
                    pool.sinks.remove(sink)
                await asyncio.sleep(1.0)  # links close, relays calm down
            row["cpu_ratio"] = row["cascaded"]["total_cores"] / row["single"]["total_cores"]
            row["extra_cores"] = row["cascaded"]["total_cores"] - row["single"]["total_cores"]
            row["link_per_publisher"] = row["cascaded"]["link_pps"] / clip.packets_per_s
            rows.append(row)
    finally:
        for t in background:
            t.cancel()
        for close in closers:
            await close()
        a.stop()
        b.stop()
    return {"clip_packets_per_s": clip.packets_per_s, "levels": rows}


def _video(sink: CountingSink) -> bool:
    return any(s.kind == "video" and s.unique > 0 for s in sink.streams.values())


def show(result: dict[str, Any], console: Console) -> None:
    table = Table(title="Cascade: N subscribers on the far relay vs on the publisher's relay (CPU time)")
    for col in (
        "subs",
        "single cores",
        "cascaded cores (A + B)",
        "ratio",
        "extra cores",
        "link pkt/s / publisher pkt/s",
        "loss % (cascaded)",
    ):
        table.add_column(col, justify="right")
    for r in result["levels"]:
        s, c = r["single"], r["cascaded"]
        table.add_row(
            str(r["subs"]),
            f"{s['total_cores']:.3f}",
            f"{c['total_cores']:.3f} ({c['relay_a_cores']:.3f} + {c['relay_b_cores']:.3f})",
            f"{r['cpu_ratio']:.2f}",
            f"{r['extra_cores']:+.3f}",
            f"{r['link_per_publisher']:.2f}",
            f"{c['loss_pct']:.2f}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    console = Console()
    result = asyncio.run(run(QUICK if args.quick else FULL, console))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "relay-cascade.json").write_text(json.dumps(result, indent=2))
    show(result, console)


if __name__ == "__main__":
    main()
