"""``python -m bench [--api | --relay | --cluster | --turn] [--quick]``: the benchmarks, as tables + JSON.

``--api``: API load and Lambda cold starts on the local stack, to ``bench/results/latest.json``.
``--relay``: the edge relay's media plane (``bench.relay_bench``), to ``bench/results/relay.json``.
``--cluster``: the relays as one cluster: gossip detection, healing and load at 3/10/30 relays against
SWIM's expectations (``bench.cluster_gossip``), and a cascade against one relay (``bench.relay_cascade``).
``--turn``: each media path (direct, TURN over UDP, TCP, TLS through coturn): join to first decoded frame,
delay and CPU per stream against direct (``bench.turn_paths``), to ``bench/results/turn-paths.json``.
No flag runs the API and relay benchmarks. Every figure comes with a ratio against a baseline measured
in the same run (``GET /healthz`` for load, a warm invocation for cold starts, aiortc's MediaRelay and a
direct aiortc path for the relay, one relay for the cascade), since absolute numbers on a shared 2-core
machine move from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import api_load, cold_start
from bench.common import RESULTS_DIR, BenchStack


@dataclass(frozen=True)
class Plan:
    concurrency: list[int]
    warmup_s: float
    measure_s: float
    cold_repeats: int
    warm_requests: int
    import_profile: bool
    argon2_samples: int


FULL = Plan([1, 8], 1.0, 4.0, cold_repeats=2, warm_requests=20, import_profile=True, argon2_samples=20)
QUICK = Plan([8], 0.4, 1.2, cold_repeats=1, warm_requests=5, import_profile=False, argon2_samples=5)


def argon2_verify_ms(samples: int) -> dict[str, float]:
    """One password verification with the configured parameters, in this process (as the API does it)."""
    from functions.core.config import get_settings
    from functions.core.security import hash_secret, verify_secret

    hashed = hash_secret("benchmark-password")
    walls, cpus = [], []
    for _ in range(samples):
        t, c = time.perf_counter(), time.process_time()
        verify_secret(hashed, "benchmark-password")
        walls.append((time.perf_counter() - t) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    s = get_settings()
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "time_cost": s.argon2_time_cost,
        "memory_kib": s.argon2_memory_kib,
    }


LOAD_COLUMNS = (
    "endpoint|clients|requests|req/s|p50 ms|p99 ms|"
    "API CPU ms/req|moto CPU ms/req|p50 x hz|API CPU x hz|errors"
)
COLD_COLUMNS = (
    "handler|request|import|of which resolve|1st request|warm request|1st x warm|cold x warm|process wall"
)


def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:,.{digits}f}"  # NaN -> "-"


def load_table(results: list[dict[str, Any]]) -> Table:
    table = Table(
        title="API under load (closed loop over loopback; x hz = ratio to /healthz at the same clients)"
    )
    for col in LOAD_COLUMNS.split("|"):
        table.add_column(col, justify="left" if col in ("endpoint", "errors") else "right")
    for r in results:
        ratios = r["ratios"]
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0"
        if r["pool_exhausted"]:
            errors += " (pool ran out)"
        table.add_row(
            r["endpoint"],
            str(r["concurrency"]),
            str(r["requests"]),
            _fmt(r["rps"]),
            _fmt(r["p50_ms"]),
            _fmt(r["p99_ms"]),
            _fmt(r["api_cpu_ms"], 2),
            _fmt(r["aws_cpu_ms"], 2),
            _fmt(ratios.get("p50", float("nan"))),
            _fmt(ratios.get("api_cpu", float("nan"))),
            errors,
        )
    return table


def cold_table(cold: dict[str, Any]) -> Table:
    table = Table(title="Lambda cold start per handler (wall / CPU ms; baseline: a warm invocation)")
    for col in COLD_COLUMNS.split("|"):
        table.add_column(col, justify="left" if col in ("handler", "request") else "right")

    def pair(p: dict[str, float]) -> str:
        return f"{p['wall']:.0f} / {p['cpu']:.0f}" if p["wall"] >= 10 else f"{p['wall']:.1f} / {p['cpu']:.1f}"

    for h in cold["handlers"]:
        table.add_row(
            h["concern"] + (" +X-Ray" if h.get("xray") else ""),
            h["request"],
            pair(h["import_ms"]),
            pair(h["handler_resolve_ms"]),
            pair(h["first_request_ms"]),
            pair(h["warm_request_ms"]),
            _fmt(h["ratios"]["first_vs_warm_wall"]),
            _fmt(h["ratios"]["cold_vs_warm_wall"]),
            _fmt(h["process_wall_ms"], 0),
        )
    return table


def notes(report: dict[str, Any]) -> list[str]:
    out = []
    argon = report.get("argon2_verify_ms")
    load = {(r["endpoint"], r["concurrency"]): r for r in report.get("api_load", [])}
    if argon:
        line = (
            f"argon2id verify (t={argon['time_cost']}, m={argon['memory_kib']} KiB) takes "
            f"{argon['wall']:.1f} ms wall / {argon['cpu']:.1f} ms CPU here"
        )
        top = max((c for e, c in load if e == "login"), default=None)
        if top is not None:
            share = argon["cpu"] / load[("login", top)]["api_cpu_ms"] * 100
            line += f": about {share:.0f} % of a login's API CPU; it dominates login (and a first join)."
        out.append(line)
    base = [r for (e, _), r in load.items() if e == api_load.BASELINE and r["api_cpu_ms"] > 0]
    if base:
        ratio = max(r["client_cpu_ms"] / r["api_cpu_ms"] for r in base)
        out.append(
            f"The load generator spends up to {ratio:.1f}x the API's CPU on a healthz: cheap endpoints' "
            f"req/s are bounded by client, API and moto sharing {os.cpu_count()} cores "
            "(CPU ms/req is the steadier figure)."
        )
    if load:
        out.append(
            "moto's CPU stands in for DynamoDB/S3 work that AWS does elsewhere; it competes for the cores."
        )
    cold = report.get("cold_start")
    if cold:
        one = statistics.median(h["one_app_build_ms"]["wall"] for h in cold["handlers"])
        out.append(
            f"python -c pass takes {cold['python_startup_ms']:.0f} ms. Import = importing "
            "functions.handlers (bare) + resolving the handler, which imports FastAPI, Powertools and only "
            f"that concern's routes, and builds its one app (building alone: {one:.1f} ms). +X-Ray: as in "
            "Lambda with active tracing (the X-Ray SDK loaded and patching)."
        )
        extra = [
            h["first_request_ms"]["wall"] - h["warm_request_ms"]["wall"]
            for h in cold["handlers"]
            if h["concern"] != "recordings"  # its warm requests are mostly quota refusals (409)
        ]
        out.append(
            f"A first request costs {min(extra):.0f}-{max(extra):.0f} ms more than a warm one: the first "
            "table builds the DynamoDB client (~40 ms; the other tables share its botocore session, ~2 ms "
            "each), plus the S3 client, the argon2 hasher and lazily loaded keys."
        )
        if cold.get("import_profile"):
            top = ", ".join(f"{p['package']} {p['self_ms']:.0f}" for p in cold["import_profile"][:6])
            out.append(f"Import self-time by package (ms): {top}.")
    return out


async def run(plan: Plan, console: Console, skip_load: bool, skip_cold: bool) -> dict[str, Any]:
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": plan.__dict__,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": os.getloadavg(),
        },
    }
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        boot = progress.add_task("Starting moto + API server", total=None)
        with BenchStack() as stack:
            progress.update(boot, description="Stack up (moto + API server process)", total=1, completed=1)
            report["argon2_verify_ms"] = argon2_verify_ms(plan.argon2_samples)
            if not skip_load:
                results = await api_load.run(stack, plan.concurrency, plan.warmup_s, plan.measure_s, progress)
                report["api_load"] = api_load.to_json(results)
            if not skip_cold:
                report["cold_start"] = await cold_start.run(
                    stack, plan.cold_repeats, plan.warm_requests, progress, profile=plan.import_profile
                )
    report["machine"]["loadavg_after"] = os.getloadavg()
    return report


def media_main(console: Console, packets: int) -> None:
    """Per-packet CPU of simulcast forwarding and of transport-cc, against single-stream forwarding and
    the plain per-subscriber rewrite measured in the same run (in process: SRTP and sendto left out)."""
    from bench import simulcast_forwarding, twcc_cost

    simulcast = asyncio.run(simulcast_forwarding.measure())
    twcc = twcc_cost.measure(packets)
    table = Table(title="Adaptive media: relay CPU per packet (us), against its baseline in the same run")
    for col in ("what", "baseline", "with it", "x baseline"):
        table.add_column(col, justify="left" if col == "what" else "right")
    table.add_row(
        "simulcast forwarding (8 subscribers)",
        f"{simulcast['single_stream_us_per_forwarded_packet']:.2f}",
        f"{simulcast['simulcast_us_per_forwarded_packet']:.2f}",
        f"{simulcast['simulcast_x_single_stream']:.2f}",
    )
    base, ratios = f"{twcc['baseline_us']:.2f}", twcc["ratios"]
    stamp, feedback = f"{twcc['stamp_us']:.2f}", f"{twcc['feedback_us_per_packet']:.2f}"
    table.add_row("rewrite + transport-cc stamp", base, stamp, f"{ratios['stamp_vs_baseline']:.2f}")
    table.add_row(
        "transport-cc feedback + estimator", base, feedback, f"{ratios['feedback_vs_baseline']:.2f}"
    )
    console.print(table)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "media.json").write_text(json.dumps({"simulcast": simulcast, "twcc": twcc}, indent=2))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a short run (API < 30 s, relay < 1 min): fewer clients, subscribers and samples",
    )
    parser.add_argument("--api", action="store_true", help="only the control-plane benchmark")
    parser.add_argument("--relay", action="store_true", help="only the media relay benchmark")
    parser.add_argument(
        "--cluster", action="store_true", help="only the cluster benchmarks (gossip, cascade)"
    )
    parser.add_argument(
        "--turn", action="store_true", help="only the TURN benchmark: each media path against direct"
    )
    parser.add_argument(
        "--turn-out", type=Path, help="where to write the TURN JSON (default bench/results/turn-paths.json)"
    )
    parser.add_argument("--compare", type=Path, help="with --turn: an earlier run's JSON to set beside")
    parser.add_argument(
        "--media",
        action="store_true",
        help="only the adaptive-media costs (simulcast forwarding, transport-cc), each x its baseline",
    )
    parser.add_argument(
        "--concurrency", help="comma-separated client counts, e.g. 1,8 (default: 1,8; quick: 8)"
    )
    parser.add_argument("--skip-load", action="store_true", help="skip the API load benchmark")
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold-start benchmark")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json", help="where to write JSON")
    parser.add_argument(
        "--relay-parts",
        default="fanout,mediarelay,rooms",
        help="comma-separated relay parts: fanout (with capacity, py-spy, latency), mediarelay, rooms",
    )
    parser.add_argument(
        "--relay-out", type=Path, default=RESULTS_DIR / "relay.json", help="where to write the relay JSON"
    )
    args = parser.parse_args(argv)
    console = Console()
    if not console.is_terminal:  # CI logs and pipes: wide enough for the tables instead of 80 columns
        console = Console(width=160)
    if args.cluster:
        from bench import cluster_gossip, relay_cascade

        cluster_gossip.main(["--sizes", "3,10"] if args.quick else [])
        relay_cascade.main(["--quick"] if args.quick else [])
        return
    if args.media:
        media_main(console, 20_000 if args.quick else 200_000)
        return
    if args.turn:
        from bench import turn_paths

        turn_args = ["--quick"] if args.quick else []
        turn_args += ["--out", str(args.turn_out)] if args.turn_out else []
        turn_args += ["--compare", str(args.compare)] if args.compare else []
        turn_paths.main(turn_args)
        return
    if args.api or not args.relay:
        api_main(args, console)
    if args.relay or not args.api:
        relay_main(args, console)


def api_main(args: argparse.Namespace, console: Console) -> None:
    plan = QUICK if args.quick else FULL
    if args.concurrency:
        plan = Plan(**{**plan.__dict__, "concurrency": [int(c) for c in args.concurrency.split(",")]})
    started = time.perf_counter()
    report = asyncio.run(run(plan, console, args.skip_load, args.skip_cold))
    report["duration_s"] = round(time.perf_counter() - started, 1)

    if "api_load" in report:
        console.print(load_table(report["api_load"]))
        legend = {r["endpoint"]: r["what"] for r in report["api_load"]}
        console.print("\n".join(f"  {name}: {what}" for name, what in legend.items()), highlight=False)
    if "cold_start" in report:
        console.print(cold_table(report["cold_start"]))
    for line in notes(report):
        console.print(f"- {line}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    console.print(f"Wrote {args.out} ({report['duration_s']} s)")


def relay_main(args: argparse.Namespace, console: Console) -> None:
    from bench import relay_bench  # aiortc and friends load only when the relay part runs

    parts = tuple(p.strip() for p in args.relay_parts.split(",") if p.strip())
    unknown = set(parts) - set(relay_bench.PARTS)
    if unknown:
        raise SystemExit(
            f"unknown relay parts: {', '.join(sorted(unknown))} (choose from {relay_bench.PARTS})"
        )
    plan = relay_bench.QUICK if args.quick else relay_bench.FULL
    report = asyncio.run(relay_bench.run(plan, console, parts))
    args.relay_out.parent.mkdir(parents=True, exist_ok=True)
    args.relay_out.write_text(json.dumps(report, indent=2, default=float))
    relay_bench.show(report, console)
    console.print(f"Wrote {args.relay_out} ({report['duration_s']} s)")


if __name__ == "__main__":
    main()
