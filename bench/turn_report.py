"""Tables for ``bench.turn_paths``: join times and per-stream costs by path, ratios to direct, and how
they compare with an earlier run's JSON (``--compare``): ratios, not absolute numbers, since those move
with the load of a shared machine."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from meetup_protocol.turn import PATH_ORDER

#: Ratios worth comparing across runs: (summary key, label).
COMPARED = (
    ("join_x_direct", "join to first frame x direct"),
    ("join_fast_x_direct", "the same, fast joins only"),
    ("join_slow", "slow joins"),
    ("total_ms_per_stream_s_x_direct", "CPU per stream x direct"),
    ("added_delay_p50_ms", "added delay p50 ms"),
    ("coturn_us_per_packet", "coturn us/packet"),
)


def _f(value: float, digits: int = 0) -> str:
    return "-" if value != value else f"{value:,.{digits}f}"


def _med(s: dict[str, float] | float, digits: int = 0) -> str:
    return _f(s["median"] if isinstance(s, dict) else s, digits)


def _range(s: dict[str, float], digits: int = 0) -> str:
    return "-" if s["n"] == 0 else f"{_f(s['min'], digits)}-{_f(s['max'], digits)}"


def join_table(report: dict[str, Any]) -> Table:
    plan = report["plan"]
    table = Table(title=f"Join to first decoded frame by media path (ms, {plan['rounds']} joins per path)")
    for col in (
        "path",
        "median",
        "p25-p75",
        "min-max",
        "x direct",
        "extra",
        "slow",
        "fast x direct",
        "media connected",
        "+ allocation check",
    ):
        table.add_column(col, justify="left" if col == "path" else "right")
    for path in PATH_ORDER:
        s = report["summary"][path]
        ff = s["join_first_frame_ms"]
        table.add_row(
            path,
            _med(ff),
            f"{_f(ff['p25'])}-{_f(ff['p75'])}",
            _range(ff),
            _f(s["join_x_direct"], 2),
            f"{s['join_extra_ms']:+.0f}",
            f"{s['join_slow']}/{ff['n']}" + (f" +{s['join_slow_extra_ms']:.0f}" if s["join_slow"] else ""),
            _f(s["join_fast_x_direct"], 2),
            _med(s["join_connected_ms"]),
            _med(s["allocation_check_ms"]),
        )
    return table


def stream_table(report: dict[str, Any]) -> Table:
    plan = report["plan"]
    table = Table(
        title=escape(
            f"Per stream, steady state ({plan['streams']} subscribers per path, {plan['window_rounds']} "
            f"windows of {plan['window_s']:g} s; CPU ms per stream-second; medians [min-max] over windows)"
        )
    )
    for col in (
        "path",
        "delay p50",
        "p99",
        "added p50",
        "relay",
        "coturn",
        "client",
        "total",
        "x direct",
        "extra / stream",
        "coturn us/pkt",
        "loss %",
    ):
        table.add_column(col, justify="left" if col == "path" else "right")
    for path in PATH_ORDER:
        s = report["summary"][path]
        ratio = s["total_ms_per_stream_s_x_direct"]
        table.add_row(
            path,
            _med(s["delay_p50_ms"], 2),
            _med(s["delay_p99_ms"], 2),
            f"{s['added_delay_p50_ms']['median']:+.2f}",
            _med(s["relay_ms_per_stream_s"], 1),
            _med(s["coturn_ms_per_stream_s"], 1),
            _med(s["client_ms_per_stream_s"], 1),
            _med(s["total_ms_per_stream_s"], 1),
            f"{_med(ratio, 2)} [{_range(ratio, 2)}]",
            f"{s['extra_cpu_ms_per_stream_s']['median']:+.1f}",
            _med(s["coturn_us_per_packet"], 1) if path != "direct" else "-",
            _med(s["loss_pct"], 2),
        )
    return table


def compare_table(report: dict[str, Any], previous: dict[str, Any]) -> Table:
    table = Table(title=f"Against the run of {previous.get('started_at', '?')} (ratios and extras)")
    for col in ("path", "figure", "before", "now"):
        table.add_column(col, justify="left" if col in ("path", "figure") else "right")
    for path in PATH_ORDER[1:]:
        for key, label in COMPARED:
            before = previous.get("summary", {}).get(path, {}).get(key)
            now = report["summary"][path][key]
            if before is None:
                continue
            digits = 0 if isinstance(now, int) else 2
            table.add_row(path, label, _med(before, digits), _med(now, digits))
    return table


def show(report: dict[str, Any], console: Console, previous: dict[str, Any] | None = None) -> None:
    console.print(join_table(report))
    console.print(stream_table(report))
    if previous is not None:
        console.print(compare_table(report, previous))
    m, clip = report["machine"], report["clip"]
    console.print(
        f"- Publisher: VP8 {clip['kbps']:.0f} kbps, {clip['packets_per_s']:.0f} packets/s, direct to the "
        "relay; subscribers on the path shown (TURN: relay -> coturn -> subscriber, relay candidates only)."
    )
    console.print(
        "- client = this process (the publisher's share, alike on every path, plus the subscribers' "
        "transport: ICE, TURN framing, TCP, TLS); subscribers count RTP without decoding."
    )
    console.print(
        "- slow: joins over direct's median + 250 ms, and their median extra (through TURN a relay's first "
        "ICE check can reach coturn before the client's permission; aioice resends it only after 500 ms)."
    )
    other = [w["other_cores"] for ws in report["windows"].values() for w in ws]
    console.print(
        f"- Load average {m['loadavg_before'][0]:.2f} before, {m['loadavg_after'][0]:.2f} after on "
        f"{m['cpus']} cores; other work took {min(other):.2f}-{max(other):.2f} cores during the windows."
    )
