"""``python -m bench.cluster_gossip``: the relay cluster's gossip layer against SWIM's expectations.

For 3, 10 and 30 relays (cluster layers only, one process, loopback, the ``local`` preset) it measures:
steady-state and churn bandwidth per relay, failure-detection time after a crash (no goodbye), and the
time for room state to converge after a partition into halves heals. The SWIM paper (Das et al. 2002)
predicts a detection time and a per-member message load that do not grow with the cluster: each member
sends one ping and answers one per probe period, whatever n. memberlist's refinements add a
log10(n) factor to the suspicion timeout and to retransmits, and push-pull carries the whole member list
(O(n) bytes, every push-pull interval). Results: a rich table and ``bench/results/cluster.json``.
Full run under 3 minutes on 2 shared cores; ``--sizes 3,10`` for a shorter one.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edge_relay.cluster.members import State
from edge_relay.cluster.node import Cluster
from edge_relay.cluster.testing import LocalCluster, wait_until

RESULTS = Path(__file__).resolve().parent / "results" / "cluster.json"
UDP_IP_OVERHEAD = 28  # IPv4 + UDP headers per datagram: part of what a relay really puts on the wire


def traffic(nodes: list[Cluster]) -> list[tuple[int, int, int]]:
    """Per node: (UDP bytes incl. headers, UDP packets, TCP bytes) sent so far."""
    out = []
    for n in nodes:
        s = n.swim.transport.stats
        out.append(
            (
                s["udp_bytes_out"] + UDP_IP_OVERHEAD * s["udp_packets_out"],
                s["udp_packets_out"],
                s["tcp_bytes_out"],
            )
        )
    return out


async def measure_rate(nodes: list[Cluster], seconds: float, churn: bool) -> dict[str, float]:
    before, cpu0, t0 = traffic(nodes), time.process_time(), time.monotonic()
    if churn:  # every relay records one participant change per second (join, then leave)
        for step in range(int(seconds)):
            for i, n in enumerate(nodes):
                pid = f"churn-{i}"
                if step % 2 == 0:
                    n.join("churn", pid, f"C{i}", "guest")
                else:
                    n.leave("churn", pid)
            await asyncio.sleep(1.0)
    else:
        await asyncio.sleep(seconds)
    elapsed, after = time.monotonic() - t0, traffic(nodes)
    udp = [(a[0] - b[0]) / elapsed for a, b in zip(after, before, strict=True)]
    pkts = [(a[1] - b[1]) / elapsed for a, b in zip(after, before, strict=True)]
    tcp = [(a[2] - b[2]) / elapsed for a, b in zip(after, before, strict=True)]
    return {
        "udp_bytes_per_s": statistics.mean(udp), "udp_bytes_per_s_max": max(udp),
        "packets_per_s": statistics.mean(pkts), "tcp_bytes_per_s": statistics.mean(tcp),
        "total_bytes_per_s": statistics.mean(udp) + statistics.mean(tcp),
        "cpu_ms_per_node_per_s": 1000 * (time.process_time() - cpu0) / elapsed / len(nodes),
    }  # fmt: skip


async def crash_once(lc: LocalCluster, victim: Cluster) -> dict[str, float]:
    """Crash ``victim`` (no goodbye), time its suspicion and death at every survivor, bring it back."""
    survivors = [n for n in lc.nodes if n is not victim]
    suspected: list[float] = []
    dead_at: dict[str, float] = {}
    t0 = time.monotonic()

    def watch(kind: str, m: Any, n: Cluster) -> None:
        if m.id == victim.node_id and kind == "suspect":
            suspected.append(time.monotonic() - t0)
        if m.id == victim.node_id and kind == "dead":
            dead_at.setdefault(n.node_id, time.monotonic() - t0)

    for n in survivors:
        n.on_member_change(functools.partial(watch, n=n))
    await victim.stop(leave=False)
    bound = victim.config.detection_bound_s(len(lc.nodes))
    await wait_until(lambda: lc.state_of(survivors, victim.node_id, State.DEAD), bound * 3)
    states = [n.member(m.node_id) for n in survivors for m in survivors if m is not n]
    false = sum(1 for st in states if st is None or st.state != State.ALIVE)
    for n in survivors:
        n._member_callbacks.clear()
    times = list(dead_at.values())
    fresh = await lc.restart(victim)
    ids = {n.node_id for n in lc.nodes}
    rejoin = await wait_until(lambda: lc.sees(lc.nodes, ids), 30)
    assert fresh.swim.local.incarnation > 0  # it refuted its own death
    return {
        "first_suspect_s": min(suspected, default=math.nan), "dead_mean_s": statistics.mean(times),
        "dead_max_s": max(times), "false_positives": false, "rejoin_s": rejoin,
    }  # fmt: skip


async def detection(lc: LocalCluster, rng: random.Random, trials: int) -> dict[str, Any]:
    samples = [await crash_once(lc, rng.choice(lc.nodes[1:])) for _ in range(trials)]
    return {
        "trials": samples, "bound_s": lc.nodes[0].config.detection_bound_s(len(lc.nodes)),
        **{k: statistics.mean(s[k] for s in samples) for k in ("first_suspect_s", "dead_mean_s", "rejoin_s")},
        "dead_max_s": max(s["dead_max_s"] for s in samples),
        "false_positives": sum(s["false_positives"] for s in samples),
    }  # fmt: skip


async def partition_heal(lc: LocalCluster) -> dict[str, float]:
    nodes = lc.nodes
    half = len(nodes) // 2
    left, right = nodes[:half], nodes[half:]
    lc.partition(left, right)
    cfg = nodes[0].config
    # Both sides declare the other dead (the realistic case for a partition longer than the timeout).
    await wait_until(
        lambda: lc.state_of(left, right[0].node_id, State.DEAD), cfg.detection_bound_s(len(nodes)) * 3
    )
    for i, n in enumerate(nodes):  # each side keeps working: joins, chat, an end on one side
        n.join("shared", f"during-{i}", f"D{i}", "guest")
        n.add_chat("shared", f"chat-{i}", f"during-{i}", f"hello from {n.node_id}")
    right[0].end_meeting(f"own-{right[0].node_id}", "host ended")
    left[0].leave("shared", "before-0")
    lc.heal()
    t0 = time.monotonic()
    bound = cfg.convergence_bound_s(len(nodes))
    rooms = await wait_until(lambda: lc.rooms_identical(nodes), bound * 4)
    ids = {n.node_id for n in nodes}
    members = await wait_until(lambda: lc.sees(nodes, ids), bound * 6) + rooms
    assert time.monotonic() - t0 >= members - 0.1
    return {"rooms_s": rooms, "members_s": members, "bound_s": bound}


async def run_size(n: int, measure_s: float, trials: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    started = time.monotonic()
    # Gossip to the dead for 1 s only: the partition lasts longer, so healing takes the reconnect path
    # (push-pull with a dead member), as after any cut longer than gossip_to_dead_s in production.
    async with LocalCluster(n, gossip_to_dead_s=1.0) as lc:
        ids = {node.node_id for node in lc.nodes}
        join_s = await wait_until(lambda: lc.sees(lc.nodes, ids), 30) + (time.monotonic() - started)
        for i, node in enumerate(lc.nodes):  # one shared meeting plus one meeting per relay
            node.join("shared", f"before-{i}", f"B{i}", "guest")
            node.publish_track("shared", f"before-{i}", f"cam-{i}", "video", "camera")
            node.join(f"own-{node.node_id}", f"host-{i}", f"H{i}", "host")
        await wait_until(lambda: lc.rooms_identical(lc.nodes), 30)
        await asyncio.sleep(1.0)  # let the initial gossip drain
        steady = await measure_rate(lc.nodes, measure_s, churn=False)
        churn = await measure_rate(lc.nodes, measure_s, churn=True)
        detect = await detection(lc, rng, trials)
        heal = await partition_heal(lc)
        cfg = lc.nodes[0].config
    q = 1 - (1 - 1 / (n - 1)) ** (n - 1)  # chance that some member probes a given one in a period
    return {
        "n": n, "join_s": join_s, "steady": steady, "churn": churn, "detection": detect, "heal": heal,
        "swim_expected": {
            # the first probe comes after T/q on average (T/2 of it before the crash), and takes one T
            "first_suspect_s": cfg.probe_interval_s / q + cfg.probe_interval_s / 2,
            "detection_s": cfg.probe_interval_s / q + cfg.probe_interval_s / 2 + cfg.suspicion_timeout_s(n),
            "packets_per_s": 2 / cfg.probe_interval_s,
            "suspicion_timeout_s": cfg.suspicion_timeout_s(n),
        },
    }  # fmt: skip


def tables(results: list[dict[str, Any]]) -> list[Table]:
    title = "local preset: probe 0.5 s (timeout 0.2 s), suspicion x4, gossip 0.1 s to 3, push-pull 5 s"
    det = Table(title=f"Failure detection and healing ({title})")
    for col in (
        "relays", "join s", "1st suspect s", "SWIM: 1st suspect s", "dead mean / max s", "SWIM: dead s",
        "bound s", "false +", "rejoin s", "heal: rooms s", "heal: members s", "heal bound s",
    ):  # fmt: skip
        det.add_column(col, justify="right")
    bw = Table(title="Gossip load per relay (IP+UDP headers included; TCP is push-pull)")
    for col in (
        "relays", "steady UDP B/s", "steady TCP B/s", "pkts/s sent", "SWIM: pkts/s", "churn B/s",
        "churn B per update", "CPU ms/s",
    ):  # fmt: skip
        bw.add_column(col, justify="right")
    for r in results:
        d, h, s, c, e = r["detection"], r["heal"], r["steady"], r["churn"], r["swim_expected"]
        det.add_row(
            str(r["n"]),
            f"{r['join_s']:.2f}",
            f"{d['first_suspect_s']:.2f}",
            f"{e['first_suspect_s']:.2f}",
            f"{d['dead_mean_s']:.2f} / {d['dead_max_s']:.2f}",
            f"{e['detection_s']:.2f}",
            f"{d['bound_s']:.2f}",
            str(d["false_positives"]),
            f"{d['rejoin_s']:.2f}",
            f"{h['rooms_s']:.2f}",
            f"{h['members_s']:.2f}",
            f"{h['bound_s']:.2f}",
        )
        bw.add_row(
            str(r["n"]),
            f"{s['udp_bytes_per_s']:.0f}",
            f"{s['tcp_bytes_per_s']:.0f}",
            f"{s['packets_per_s']:.1f}",
            f"{e['packets_per_s']:.1f}",
            f"{c['total_bytes_per_s']:.0f}",
            f"{c['total_bytes_per_s'] / r['n']:.0f}",
            f"{c['cpu_ms_per_node_per_s']:.1f}",
        )
    return [det, bw]


async def main_async(sizes: list[int], measure_s: float, trials: int, out: Path) -> list[dict[str, Any]]:
    console = Console(width=max(Console().width, 150))
    results = []
    for i, n in enumerate(sizes):
        t0 = time.monotonic()
        results.append(await run_size(n, measure_s, trials, seed=i))
        console.print(f"[dim]{n} relays measured in {time.monotonic() - t0:.1f} s[/dim]")
    for t in tables(results):
        console.print(t)
    report = {
        "benchmark": "cluster_gossip", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "preset": "local", "results": results,
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    console.print(f"written to {out}")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster_gossip", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--sizes", default="3,10,30", help="comma-separated cluster sizes")
    parser.add_argument("--measure-s", type=float, default=5.0, help="seconds per bandwidth measurement")
    parser.add_argument("--trials", type=int, default=3, help="crashes (and restarts) per cluster size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    asyncio.run(main_async(sizes, args.measure_s, args.trials, args.out))


if __name__ == "__main__":
    main()
