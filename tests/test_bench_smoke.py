"""The benchmarks still run: ``bench/`` drives the relay through the SDK's connection and the protocol, so
a change there can break it without any other test noticing (the relay benchmark once could not join).
A few seconds of the relay benchmark's smallest part, and of the TURN benchmark, asserting that media
flowed, not how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.turn import turnserver_binary

REPO = Path(__file__).resolve().parents[1]


def test_the_relay_benchmark_runs_and_media_flows(tmp_path: Path) -> None:
    out = tmp_path / "relay.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--relay",
            "--quick",
            "--relay-parts",
            "rooms",
            "--relay-out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] or done.stdout[-3000:]
    (run,) = json.loads(out.read_text())["rooms"]["runs"]
    assert run["forwarded_pps"] > 0 and run["received_pps"] > 0, run  # how much: the benchmark's business


@pytest.mark.skipif(
    turnserver_binary() is None, reason="no turnserver (Debian: apt-get install coturn; ./dev installs it)"
)
def test_the_turn_benchmark_joins_and_streams_through_every_path(tmp_path: Path) -> None:
    """Each path (direct, TURN over UDP, TCP, TLS through the local coturn) decodes a first frame and
    carries the stream for a window, and the JSON holds what a later run compares against."""
    out = tmp_path / "turn.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--turn", "--quick", "--turn-out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] or done.stdout[-3000:]
    report = json.loads(out.read_text())
    for path in ("direct", "turn/udp", "turn/tcp", "turn/tls"):
        assert all(j["first_frame_ms"] > 0 for j in report["joins"][path]), path
        (window,) = report["windows"][path]
        assert window["received_pps_per_stream"] > 0, (path, window)
        assert "join_x_direct" in report["summary"][path]
    assert report["windows"]["turn/tcp"][0]["coturn_ms_per_stream_s"] > 0  # coturn really relayed it


def test_the_transport_cc_cost_benchmark_runs() -> None:
    from bench.twcc_cost import measure

    result = measure(2000)
    assert result["baseline_us"] > 0 and result["ratios"]["stamp_vs_baseline"] > 1, result
