"""``python -m bench --turn [--quick]``: what each media path costs, TURN against direct in the same run.

The real pieces, on loopback: the relay as its own process (``bench.relay_harness.RelayUnderTest``),
Debian's coturn started by ``local_stack.turn.TurnServer`` (TURN/UDP and TURN/TCP on one port, TURN/TLS on
another, ``use-auth-secret``), and the SDK's own connection forced onto one path at a time
(``client_sdk.rtc.paths.force_path``; relay candidates only for a TURN path, as ``Meeting.join`` does).
Credentials are made as the API makes them (``meetup_protocol.turn.turn_credentials``). One publisher
replays a VP8 clip (~1 Mbps, ~110 packets/s) into the relay over a direct path; only subscribers change
path, so the TURN hop measured is relay -> coturn -> subscriber.

1. **Join to first decoded frame**: a subscriber opens the signalling socket, connects media through the
   path and decodes (aiortc's VP8 decoder) the publisher's first frame (the relay asks the publisher for a
   key frame). Paths take turns, round after round, in a rotating order, so drift of the machine's load
   hits each alike. For the TURN paths the allocation check that ``Meeting.join`` makes first
   (``paths.probe_turn``) is timed apart.
2. **Per stream, steady state**: N subscribers on one path receive the stream for a window; counted are
   the CPU time (``/proc``; coturn's per thread in ns, ``threads_cpu_seconds``: it spends too little for
   10 ms ticks) of the relay, of coturn and of this process (publisher and subscribers: the
   client side), and each packet's one-way delay (abs-send-time, which the relay stamps as it sends each
   copy, read by the subscriber as the datagram arrives, one clock: the delay from the relay on).
   Subscribers count RTP without decrypting or
   decoding (``bench.rtp_sink``), so the client CPU is the transport's (ICE, TURN framing, TCP, TLS) plus
   a fixed publisher share, alike for every path. Windows also take turns per round.

Everything is reported as a ratio to direct (and an extra per stream), medians over rounds with their
spread, plus the machine's load average: absolute numbers on a shared 2-core machine move.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.common import RESULTS_DIR, percentile, threads_cpu_seconds
from bench.relay_harness import Participant, RelayUnderTest, Window, join, settle, wait_until
from bench.relay_latency import relay_join
from bench.rtp_media import Clip, Scheduler, encode_video_clip
from bench.rtp_sink import CountingSink, SinkPool
from client_sdk.rtc.paths import PathPlan, force_path, plan_paths, probe_turn
from local_stack.turn import TurnServer, turnserver_binary
from meetup_protocol.schemas.meetings import IceServer
from meetup_protocol.turn import PATH_ORDER, turn_credentials

MEETING = "turn-paths"
RESULTS = RESULTS_DIR / "turn-paths.json"
#: A join this much slower than direct's median counts as slow: through TURN, a relay's first ICE check
#: that reaches coturn before the client's permission is dropped, and aioice resends it only after its
#: 500 ms retransmission timeout (it ignores the client's check as a trigger while its own is in flight).
SLOW_JOIN_MS = 250.0


@dataclass(frozen=True)
class Plan:
    rounds: int  # join samples per path
    window_rounds: int  # steady-state windows per path
    streams: int  # subscribers per path in a window
    window_s: float
    settle_s: float
    clip_s: float


FULL = Plan(rounds=9, window_rounds=3, streams=8, window_s=5.0, settle_s=1.0, clip_s=3.0)
QUICK = Plan(rounds=2, window_rounds=1, streams=2, window_s=1.5, settle_s=0.3, clip_s=1.0)


def path_plans(turn: TurnServer) -> dict[str, PathPlan]:
    """One plan per path, as the SDK makes them from a join's ICE servers (credentials as the API's)."""
    username, credential = turn_credentials(turn.secret, "bench", int(time.time()) + 3600)
    servers = [IceServer(urls=turn.urls, username=username, credential=credential)]
    plans = plan_paths(servers)
    return {path: force_path(plans, path)[0] for path in PATH_ORDER}


def rotated(round_no: int) -> list[str]:
    """The paths in a different order each round (direct is not always first, nor TLS last)."""
    shift = round_no % len(PATH_ORDER)
    return [*PATH_ORDER[shift:], *PATH_ORDER[:shift]]


def spread(values: list[float]) -> dict[str, float]:
    """Median, quartiles and extremes (NaN-free values; NaN all round for none)."""
    values = [v for v in values if v == v]
    if not values:
        nan = float("nan")
        return {"n": 0, "median": nan, "p25": nan, "p75": nan, "min": nan, "max": nan}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p25": percentile(values, 25),
        "p75": percentile(values, 75),
        "min": min(values),
        "max": max(values),
    }


async def join_samples(
    relay: RelayUnderTest, plans: dict[str, PathPlan], rounds: int, console: Console
) -> dict[str, list[dict[str, float]]]:
    rows: dict[str, list[dict[str, float]]] = {path: [] for path in PATH_ORDER}
    for r in range(rounds):
        console.print(f"[dim]join round {r + 1}/{rounds}[/dim]")
        for path in rotated(r):
            plan = plans[path]
            probe_ms = float("nan")
            if plan.relay_only:
                t = time.monotonic()
                why = await probe_turn(plan)
                if why is not None:
                    raise RuntimeError(f"{path}: the TURN allocation failed: {why}")
                probe_ms = (time.monotonic() - t) * 1000
            row = await asyncio.wait_for(relay_join(relay, MEETING, f"join-{path}-{r}", plan), 40)
            rows[path].append({**row, "allocation_check_ms": probe_ms})
            await asyncio.sleep(0.2)  # the relay and coturn let go of the last one
    return rows


async def window(
    relay: RelayUnderTest,
    turn: TurnServer,
    pool: SinkPool,
    plan: PathPlan,
    label: str,
    streams: int,
    p: Plan,
) -> dict[str, float]:
    """``streams`` subscribers on ``plan``'s path: CPU per stream and one-way delay over one window."""
    subs: list[Participant] = []
    try:
        for i in range(streams):  # one at a time: joins are CPU-heavy (DTLS) on a 2-core machine
            sink = CountingSink(pool, f"{label}-{i}")
            subs.append(await join(relay, MEETING, f"{label}-{i}", sink=sink, path=plan))
        sinks = [s.sink for s in subs if s.sink is not None]
        if not await wait_until(lambda: all(s.streams for s in sinks), 15):
            raise RuntimeError(f"{plan.path}: the stream did not reach every subscriber")
        settled_s = await settle(pool, sinks, p.settle_s, 8.0)
        assert turn.proc is not None
        pool.clear_latencies()
        pool.recording = True
        c0, w0, r0 = threads_cpu_seconds(turn.proc.pid), Window.now(relay.pid), pool.totals(sinks)
        await asyncio.sleep(p.window_s)
        c1, w1, r1 = threads_cpu_seconds(turn.proc.pid), Window.now(relay.pid), pool.totals(sinks)
        pool.recording = False
        delays = [x for s in sinks for x in s.latencies_ms]
    finally:
        for s in subs:
            await s.close()
            if s.sink in pool.sinks:
                pool.sinks.remove(s.sink)
    w, received = w1 - w0, r1 - r0
    per_stream = 1000 / (streams * w.wall)  # CPU seconds -> CPU ms per stream-second
    out = {
        "relay_ms_per_stream_s": w.relay_cpu * per_stream,
        "coturn_ms_per_stream_s": (c1 - c0) * per_stream,
        "client_ms_per_stream_s": w.bench_cpu * per_stream,
        "received_pps_per_stream": received.unique / w.wall / streams,
        "loss_pct": received.gap_loss_pct,
        "delay_p50_ms": percentile(delays, 50),
        "delay_p99_ms": percentile(delays, 99),
        "other_cores": w.other_cores,  # the machine's busy time that is none of ours: other work
        "settled_s": settled_s,
        "coturn_us_per_packet": (c1 - c0) * 1e6 / received.unique if received.unique else float("nan"),
    }
    out["total_ms_per_stream_s"] = (
        out["relay_ms_per_stream_s"] + out["coturn_ms_per_stream_s"] + out["client_ms_per_stream_s"]
    )
    return out


def summarize(joins: dict[str, list[dict[str, float]]], windows: dict[str, list[dict[str, float]]]) -> dict:
    """Per path: spreads of the join phases and of each window figure, and ratios/extras against direct.
    Window ratios are taken round by round (each round's windows ran back to back), then the median."""
    out: dict[str, Any] = {}
    direct_join = spread([r["first_frame_ms"] for r in joins["direct"]])["median"]
    for path in PATH_ORDER:
        rows = joins[path]
        s: dict[str, Any] = {
            "join_first_frame_ms": spread([r["first_frame_ms"] for r in rows]),
            "join_connected_ms": spread([r["connected_ms"] for r in rows]),
            "allocation_check_ms": spread([r["allocation_check_ms"] for r in rows]),
        }
        s["join_x_direct"] = s["join_first_frame_ms"]["median"] / direct_join
        # Joins come in two modes through TURN (see bench/README.md): count the slow one apart.
        fast = [r["first_frame_ms"] for r in rows if r["first_frame_ms"] <= direct_join + SLOW_JOIN_MS]
        s["join_slow"] = len(rows) - len(fast)
        s["join_fast_x_direct"] = spread(fast)["median"] / direct_join
        slow = [r["first_frame_ms"] for r in rows if r["first_frame_ms"] > direct_join + SLOW_JOIN_MS]
        s["join_slow_extra_ms"] = spread(slow)["median"] - direct_join
        s["join_extra_ms"] = s["join_first_frame_ms"]["median"] - direct_join
        wins, base = windows[path], windows["direct"]
        for key in wins[0] if wins else []:
            s[key] = spread([w[key] for w in wins])
        for key in ("total_ms_per_stream_s", "client_ms_per_stream_s", "relay_ms_per_stream_s"):
            s[f"{key}_x_direct"] = spread([w[key] / b[key] for w, b in zip(wins, base, strict=True)])
        s["extra_cpu_ms_per_stream_s"] = spread(
            [w["total_ms_per_stream_s"] - b["total_ms_per_stream_s"] for w, b in zip(wins, base, strict=True)]
        )
        for q in ("p50", "p99"):
            s[f"added_delay_{q}_ms"] = spread(
                [w[f"delay_{q}_ms"] - b[f"delay_{q}_ms"] for w, b in zip(wins, base, strict=True)]
            )
        out[path] = s
    return out


async def run(p: Plan, console: Console) -> dict[str, Any]:
    if turnserver_binary() is None:
        raise SystemExit("no turnserver: apt-get install coturn (./dev setup installs it)")
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": asdict(p),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": os.getloadavg(),
        },
    }
    started = time.perf_counter()
    clip: Clip = encode_video_clip(p.clip_s)
    report["clip"] = {"kbps": clip.kbps, "packets_per_s": clip.packets_per_s, "fps": clip.fps}
    relay, turn = RelayUnderTest().start(), TurnServer().start()
    old_cert = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = str(turn.cert_path)  # aiortc checks turns: with the default context
    scheduler, pool = Scheduler(), SinkPool()
    background = [asyncio.ensure_future(scheduler.run()), asyncio.ensure_future(pool.run())]
    publisher: Participant | None = None
    try:
        plans = path_plans(turn)
        publisher = await join(relay, MEETING, "publisher", {"camera": clip})
        stream = publisher.streams["camera"]
        scheduler.add([stream])
        await wait_until(lambda: stream.frames > 0, 10)
        joins = await join_samples(relay, plans, p.rounds, console)
        windows: dict[str, list[dict[str, float]]] = {path: [] for path in PATH_ORDER}
        for r in range(p.window_rounds):
            for path in rotated(r):
                console.print(f"[dim]window round {r + 1}/{p.window_rounds}: {path}[/dim]")
                got = await window(relay, turn, pool, plans[path], f"w{r}-{path}", p.streams, p)
                windows[path].append(got)
                await asyncio.sleep(0.5)
        report["joins"], report["windows"] = joins, windows
        report["summary"] = summarize(joins, windows)
    finally:
        for task in background:
            task.cancel()
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.close()
        relay.stop()
        turn.stop()
        if old_cert is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = old_cert
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["duration_s"] = round(time.perf_counter() - started, 1)
    return report


def main(argv: list[str] | None = None) -> None:
    from bench import turn_report

    parser = argparse.ArgumentParser(prog="python -m bench.turn_paths", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: 2 joins and 1 window per path")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--compare", type=Path, help="an earlier run's JSON: show its ratios beside this run's"
    )
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    previous = json.loads(args.compare.read_text()) if args.compare else None
    report = asyncio.run(run(QUICK if args.quick else FULL, console))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    turn_report.show(report, console, previous)
    console.print(f"Wrote {args.out} ({report['duration_s']} s)")


if __name__ == "__main__":
    main()
