"""The benchmarks still run: ``bench/`` drives the relay through the SDK's connection and the protocol, so
a change there can break it without any other test noticing (the relay benchmark once could not join).
A few seconds of the relay benchmark's smallest part, asserting that media flowed, not how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_the_transport_cc_cost_benchmark_runs() -> None:
    from bench.twcc_cost import measure

    result = measure(2000)
    assert result["baseline_us"] > 0 and result["ratios"]["stamp_vs_baseline"] > 1, result
