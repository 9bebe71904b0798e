"""Tables, ratios and notes of the relay benchmark (``bench.relay_bench``), from its JSON report alone.

Everything is derived from the report dict, so a saved ``bench/results/relay.json`` can be re-rendered.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

NAN = float("nan")


def _f(value: float | None, digits: int = 1, suffix: str = "") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def _div(a: float | None, b: float | None) -> float:
    return a / b if a is not None and b and a == a and b == b else NAN


def _by_subs(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["subs"]: r for r in rows}


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """Every ratio against a baseline measured in the same run (the figures the issue asks for)."""
    out: dict[str, Any] = {}
    fan = report.get("fanout", {})
    base = report.get("mediarelay", {})
    edge = _by_subs(fan.get("levels", []))
    mr = _by_subs(base.get("levels", []) + base.get("estimates", []))
    out["mediarelay_over_edge_cpu_per_stream"] = {
        str(n): {
            "ratio": _div(mr[n]["cpu_per_stream_s"], edge[n]["cpu_per_stream_s"]),
            "ratio_delivered": _div(
                mr[n]["cpu_per_delivered_stream_s"], edge[n]["cpu_per_delivered_stream_s"]
            ),
            "mediarelay_estimated": bool(mr[n].get("estimated")),
        }
        for n in edge
        if n in mr
    }
    mr_measured = base.get("levels", [])
    mr_top = mr_measured[-1] if mr_measured else None
    livekit = report.get("livekit_packets_per_core", 56_000)
    out["capacity"] = [
        {
            "subs": row["subs"],
            "per_core": row["forwarded_per_core_s"],
            "over_livekit": _div(row["forwarded_per_core_s"], livekit),
            "over_no_loss": _div(
                row["forwarded_per_core_s"], edge.get(row["subs"], {}).get("forwarded_per_core_s")
            ),
            "over_mediarelay": _div(
                row["forwarded_per_core_s"], mr_top["forwarded_per_core_s"] if mr_top else None
            ),
        }
        for row in fan.get("capacity", [])
    ]
    top = max(edge.values(), key=lambda r: r["subs"], default=None)
    out["rooms"] = [
        {
            "rooms": run["rooms"],
            "us_per_packet_over_fanout": _div(
                run["us_per_forwarded"], top["us_per_forwarded"] if top else None
            ),
            "fanout_subs": top["subs"] if top else None,
            "mediarelay_over_rooms_cpu_per_video_stream": _div(
                mr_top["cpu_per_delivered_stream_s"] if mr_top else None, run["cpu_per_video_stream_s"]
            ),
        }
        for run in report.get("rooms", {}).get("runs", [])
    ]
    join = fan.get("join")
    if join:
        out["join_first_frame_over_direct"] = _div(
            join["relay"]["first_frame_ms_median"], join["direct"]["first_frame_ms_median"]
        )
    return out


def tables(report: dict[str, Any]) -> list[Table]:
    out = []
    fan, base, rooms = report.get("fanout"), report.get("mediarelay"), report.get("rooms")
    if fan or base:
        out.append(_fanout_table(report))
    if fan and fan.get("capacity"):
        out.append(_capacity_table(report))
    if fan and fan.get("profile", {}).get("stages"):
        out.extend(_profile_tables(fan["profile"]))
    if rooms:
        out.append(_rooms_table(report))
    if fan:
        out.extend(_latency_tables(fan))
    return out


def _table(title: str, columns: str, left: int = 1) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns.split("|")):
        table.add_column(col, justify="left" if i < left else "right")
    return table


def _fanout_table(report: dict[str, Any]) -> Table:
    clip = report["clip"]
    t = _table(
        "1. Relay CPU per forwarded video stream-second: one publisher, 640x480 "
        f"~{clip['video_kbps']:.0f} kbps "
        f"VP8 at {clip['video_fps']:.0f} fps. ms = CPU ms per stream-second delivered (frames delivered / "
        "30 fps); x = MediaRelay / edge relay; raw x = per subscriber-second regardless of frames delivered",
        "subscribers|edge ms|MediaRelay ms|x|raw x|edge cores|MediaRelay cores|fps/sub edge / MR|"
        "marginal ms edge / MR|other load edge / MR",
    )
    fan, base = report.get("fanout", {}), report.get("mediarelay", {})
    edge = _by_subs(fan.get("levels", []))
    mr = _by_subs(base.get("levels", []) + base.get("estimates", []))
    ratio = report["ratios"]["mediarelay_over_edge_cpu_per_stream"]
    e0, m0 = fan.get("publisher_only") or {}, base.get("publisher_only") or {}
    t.add_row(
        "0 (publisher only)",
        *[""] * 4,
        _f(e0.get("relay_cores"), 3),
        _f(m0.get("relay_cores"), 3),
        "",
        "",
        f"{_f(e0.get('other_cores'), 2)} / {_f(m0.get('other_cores'), 2)}",
    )
    for n in sorted(set(edge) | set(mr)):
        e, m = edge.get(n, {}), mr.get(n, {})
        est = "≈" if m.get("estimated") else ""
        r = ratio.get(str(n), {})
        t.add_row(
            str(n) + (" (MediaRelay estimated)" if est else ""),
            _f(e.get("cpu_per_delivered_stream_s", NAN) * 1000, 2),
            est + _f(m.get("cpu_per_delivered_stream_s", NAN) * 1000, 1),
            est + _f(r.get("ratio_delivered"), 1, "x"),
            est + _f(r.get("ratio"), 1, "x"),
            _f(e.get("relay_cores"), 3),
            est + _f(m.get("relay_cores"), 2),
            f"{_f(e.get('fps_per_sub'))} / {est}{_f(m.get('fps_per_sub'))}",
            f"{_f(e.get('marginal_per_stream_s', NAN) * 1000, 2)} / "
            f"{est}{_f(m.get('marginal_per_stream_s', NAN) * 1000, 1)}",
            f"{_f(e.get('other_cores'), 2)} / {_f(m.get('other_cores'), 2)}",
        )
    return t


def _capacity_table(report: dict[str, Any]) -> Table:
    fan = report["fanout"]
    plan = report["plan"]["fanout"]
    t = _table(
        "2. Forwarding capacity with RTCP, NACK and SR running "
        f"({plan['drop']:.0%} of packets dropped at the "
        "subscribers and NACKed); packets/s per core = forwarded packets / relay CPU seconds",
        "subscribers|forwarded pkt/s|relay cores|µs CPU/pkt|pkt/s per core|x LiveKit 56k|x no-loss step|"
        "x MediaRelay|retransmits/s|NACKs/s|loss after repair|other load (cores)",
    )
    for row, r in zip(fan["capacity"], report["ratios"]["capacity"], strict=True):
        w = row["window_s"]
        t.add_row(
            str(row["subs"]),
            _f(row["forwarded_pps"], 0),
            _f(row["relay_cores"], 3),
            _f(row["us_per_forwarded"], 1),
            _f(row["forwarded_per_core_s"], 0),
            _f(r["over_livekit"], 2, "x"),
            _f(r["over_no_loss"], 2, "x"),
            _f(r["over_mediarelay"], 1, "x"),
            _f(row["retransmissions"] / w, 0),
            _f(row["nacks_received"] / w, 0),
            _f(row["loss_pct"], 2, " %"),
            _f(row["other_cores"], 2),
        )
    return t


def _profile_tables(profile: dict[str, Any]) -> list[Table]:
    title = (
        f"py-spy on the relay at {profile['subs']} subscribers: {profile['samples']} non-idle samples at "
        f"{profile['rate_hz']} Hz, by stage (the innermost frame decides). 'of work' leaves out epoll_wait: "
        "py-spy counts a thread woken from epoll but waiting for a core as busy"
    )
    stages = _table(title, "stage|% of samples|% of work")
    polling = sum(s["pct"] for s in profile["stages"] if s["stage"].startswith("event loop: epoll"))
    for s in profile["stages"]:
        work = "" if s["stage"].startswith("event loop: epoll") else _f(s["pct"] * 100 / (100 - polling), 1)
        stages.add_row(s["stage"], _f(s["pct"], 1), work)
    funcs = _table("Top functions by self time (C calls count to their Python caller)", "function|% self")
    for s in profile["self"]:
        funcs.add_row(s["function"], _f(s["pct"], 1))
    return [stages, funcs]


def _rooms_table(report: dict[str, Any]) -> Table:
    t = _table(
        "3. Rooms of 4, everyone publishing camera (VP8 clip) + microphone (Opus). Not delivered = packets "
        "the subscribers got in the window vs packets sent x 3 receivers (late counts as not delivered); "
        "lost = sequence gaps left after NACK repair",
        "rooms|participants|relay cores|sent pkt/s|forwarded pkt/s|µs CPU/pkt|pkt/s per core|not delivered|"
        "lost|delay p50/p99 ms|x µs/pkt of fan-out|MediaRelay x per video stream|generator / other cores",
    )
    for r, ratio in zip(report["rooms"]["runs"], report["ratios"]["rooms"], strict=True):
        t.add_row(
            str(r["rooms"]),
            str(r["participants"]),
            _f(r["relay_cores"], 2),
            _f(r["sent_pps"], 0),
            _f(r["forwarded_pps"], 0),
            _f(r["us_per_forwarded"], 1),
            _f(r["forwarded_per_core_s"], 0),
            _f(r["loss_pct"], 2, " %"),
            _f(r["gap_loss_pct"], 2, " %"),
            f"{_f(r['latency_p50_ms'], 2)} / {_f(r['latency_p99_ms'], 1)}",
            _f(ratio.get("us_per_packet_over_fanout"), 2, "x"),
            _f(ratio.get("mediarelay_over_rooms_cpu_per_video_stream"), 1, "x"),
            f"{_f(r['bench_cores'], 2)} / {_f(r['other_cores'], 2)}",
        )
    return t


def _latency_tables(fan: dict[str, Any]) -> list[Table]:
    out = []
    join = fan.get("join")
    if join:
        t = _table(
            f"4a. Join to first decoded remote frame ({join['samples']} joins each; median / max ms)",
            "path|WebSocket to welcome|to media connected|to first decoded frame",
        )
        for name, key in (
            ("via the relay (SDK client)", "relay"),
            ("direct aiortc peer (baseline)", "direct"),
        ):
            s = join[key]
            t.add_row(
                name,
                *(
                    f"{_f(s[f'{k}_median'], 0)} / {_f(s[f'{k}_max'], 0)}"
                    for k in ("welcome_ms", "connected_ms", "first_frame_ms")
                ),
            )
        t.add_row("added by the relay (median)", "", "", _f(join["added_median_ms"], 0))
        out.append(t)
    t = _table(
        "4b. One-way packet delay, relayed vs direct (same frames, same instants; ms)",
        "subscribers|relayed p50|relayed p99|direct p50|direct p99|added p50|added p99|"
        "p50 first / last subscriber|packets|other load",
    )
    for row in fan.get("levels", []) + [
        dict(r, subs=f"{r['subs']} (+loss)") for r in fan.get("capacity", [])
    ]:
        t.add_row(
            str(row["subs"]),
            *(_f(row[k], 2) for k in ("relayed_p50_ms", "relayed_p99_ms", "direct_p50_ms", "direct_p99_ms")),
            *(_f(row[k], 2) for k in ("added_p50_ms", "added_p99_ms")),
            f"{_f(row.get('first_sub_p50_ms'), 2)} / {_f(row.get('last_sub_p50_ms'), 2)}",
            str(row["samples"]),
            _f(row["other_cores"], 2),
        )
    out.append(t)
    return out


def notes(report: dict[str, Any]) -> list[str]:
    out = []
    fan, base, rooms = report.get("fanout", {}), report.get("mediarelay", {}), report.get("rooms")
    out.append(
        "Measured: relay CPU is utime+stime of the relay process from /proc/<pid>/stat over each window "
        "(10 ms ticks); subscribers are packet counters at the ICE layer (no SRTP unprotect, no decode) in "
        "the benchmark's process; publishers replay a pre-encoded clip, so no encoder competes for the cores."
    )
    for est in base.get("estimates", []):
        out.append(
            f"Estimated: MediaRelay at {est['subs']} subscribers ({est['relay_cores']:.1f} cores) is the "
            f"publisher-only cost plus {est['subs']} x the per-subscriber cost measured at "
            f"{est['from_subs']} (one encoder each, per frame delivered); not run: past ~16 encoders this "
            "machine's 2 shared cores "
            "cannot deliver 30 fps."
        )
    edge_rows, mr_rows = fan.get("levels", []), base.get("levels", [])
    if edge_rows and mr_rows:
        out.append(
            "Same bitrate both ways: the edge relay forwarded the publisher's "
            f"~{edge_rows[-1]['kbps_per_sub']:.0f} kbps per subscriber; MediaRelay's encoders, held at "
            "1 Mbps by the sinks' REMB, sent "
            f"~{mr_rows[-1]['kbps_per_sub']:.0f} kbps per subscriber."
        )
    for row in base.get("levels", []):
        if row["fps_per_sub"] < 27:
            out.append(
                f"MediaRelay delivered only {row['fps_per_sub']:.1f} fps per subscriber at {row['subs']}: "
                "the 'per delivered frame' ratio charges it per frame actually sent."
            )
    pub = fan.get("publisher_only")
    if pub and report["clip"]["video_packets_per_s"]:
        per_packet = pub["relay_cores"] / report["clip"]["video_packets_per_s"] * 1e6
        out.append(
            f"Fixed cost: the relay idles at {fan.get('idle_relay_cores', NAN):.3f} cores; "
            "a publisher with no "
            f"subscriber costs it {pub['relay_cores']:.3f} cores, ~{per_packet:.0f} µs per incoming packet, "
            "mostly one event-loop wake-up (epoll_wait, a queue hop to the DTLS task) per packet. "
            "That is why "
            "1 subscriber costs far more per stream than 16; under load the wake-ups are shared."
        )
    profile = fan.get("profile", {})
    if profile.get("stages"):
        shares = {s["stage"]: s["pct"] for s in profile["stages"]}
        polling = sum(v for k, v in shares.items() if k.startswith("event loop: epoll"))
        send = sum(v for k, v in shares.items() if k.startswith(("UDP sendto", "SRTP protect", "aioice")))
        work = send * 100 / (100 - polling) if polling < 100 else NAN
        out.append(
            f"Next big win: sending is {work:.0f} % of the relay's work at {profile['subs']} subscribers "
            "(the sendto syscall, which on loopback also delivers to the receiver, SRTP protect, aioice's "
            "three coroutines per packet). Batching each packet's copies for all subscribers into one "
            "sendmmsg call (or UDP GSO per subscriber), with protect + send called directly instead of "
            "through aioice's chain, attacks most of it; per-packet Python work (rewrite, fan-out loop) "
            "is already small."
        )
    if profile.get("error"):
        out.append(f"py-spy: {profile['error']}")
    for row in fan.get("levels", []) + fan.get("capacity", []):
        if row.get("settle_s", 0) != row.get("settle_s", 0):  # NaN: never settled
            out.append(
                f"At {row['subs']} subscribers the median delay never fell under 20 ms before the window "
                f"(other load {row['other_cores']:.2f} cores): packets queued while subscribers joined had "
                "not drained, so that step's delays measure a queue, not forwarding."
            )
    for run in (rooms or {}).get("runs", []):
        if run.get("relay_threads"):
            out.append(
                f"The relay ran {run['relay_threads']} OS threads with {run['participants']} participants: "
                "aiortc starts a decoder thread per receiver though the relay's tap means none ever decodes."
            )
    for w in fan.get("warnings", []):
        out.append(f"Warning: {w}")
    for run in (rooms or {}).get("runs", []):
        if run["other_cores"] > 0.3:
            out.append(
                f"Rooms ({run['rooms']}): other work used {run['other_cores']:.1f} cores of this "
                "machine during "
                "the window; delivery and delay there reflect a shared machine (CPU per packet is steadier)."
            )
        if not run["all_tracks_flowing"]:
            out.append(f"Rooms ({run['rooms']}): not every track was flowing before the window started.")
    if rooms and rooms.get("stepped_down"):
        first, second = rooms["runs"][0], rooms["runs"][1]
        out.append(
            f"Rooms: {first['rooms']} rooms starved the relay here (median delay "
            f"{first['latency_p50_ms']:.0f} ms, {first['loss_pct']:.1f} % not delivered in time) with "
            f"{first['relay_cores']:.2f} cores for the relay, {first['bench_cores']:.2f} for the load "
            f"generator and {first['other_cores']:.2f} for other work; "
            f"repeated with {second['rooms']}. The relay queues without bound when short of CPU (aioice's "
            "receive queue), so an overloaded relay shows seconds of delay before it shows loss."
        )
    return out
