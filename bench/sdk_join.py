"""``python -m bench.sdk_join``: how long from ``Meeting.join()`` to the first decoded frame of someone else.

A publisher bot sends a camera through the local stack's relay; a second participant joins again and again
and we time each phase: the API's join (passcode check, token), the relay RTT probe, the signalling
handshake, ICE + DTLS, and the first decoded frame (the relay asks the publisher for a keyframe). The
baseline, measured in the same run, is a bare relay connection with a token obtained beforehand: the
difference is what the SDK's conveniences (API call, probing) cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "sdk_join.json"


async def _first_frame(meeting_or_conn, owner_id: str) -> float:
    """Wait for the owner's camera to arrive, then for its first decoded frame; return the time."""
    while True:
        remote = next(
            (r for r in meeting_or_conn.remote_tracks.values() if r.info.participant_id == owner_id), None
        )
        if remote is not None:
            await remote.track.recv()
            return time.perf_counter()
        await asyncio.sleep(0.005)


async def measure(api_url: str, runs: int) -> dict[str, list[float]]:
    from client_sdk.client import Client
    from client_sdk.media.sources import PatternVideoTrack
    from client_sdk.meeting import Meeting
    from client_sdk.rtc.connection import RelayConnection

    async def bot(name: str) -> Client:
        client = Client(api_url)
        email, password = f"{name}-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
        await client.register(email, password, name)
        await client.login(email, password)
        return client

    host = await bot("host")
    created = await host.create_meeting(max_participants=runs + 5)
    publisher = await Meeting.join(host, created.meeting_id, publish={"camera": PatternVideoTrack(640, 480)})
    times: dict[str, list[float]] = {"sdk_join_to_first_frame": [], "baseline_relay_only": [], "api_join": []}
    try:
        for _ in range(runs):
            guest = await bot("guest")
            started = time.perf_counter()
            meeting = await Meeting.join(guest, created.meeting_id, created.passcode, background=False)
            first = await asyncio.wait_for(_first_frame(meeting, publisher.participant_id), 10)
            times["sdk_join_to_first_frame"].append((first - started) * 1000)
            await meeting.leave()

            t0 = time.perf_counter()
            admission = await guest.join_meeting(created.meeting_id)
            times["api_join"].append((time.perf_counter() - t0) * 1000)
            conn = RelayConnection(admission.relays[0].url, admission.join_token)
            started = time.perf_counter()
            await conn.connect()
            first = await asyncio.wait_for(_first_frame(conn, publisher.participant_id), 10)
            times["baseline_relay_only"].append((first - started) * 1000)
            await conn.close()
            await guest.leave_meeting(created.meeting_id)
            await guest.aclose()
    finally:
        await publisher.leave()
        await host.aclose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    from local_stack import LocalStack

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    console = Console()
    with LocalStack() as stack:
        times = asyncio.run(measure(stack.api_url, runs))
    baseline = statistics.median(times["baseline_relay_only"])
    table = Table(title=f"Join to first decoded frame (ms, {runs} runs, loopback)")
    for column in ("path", "p50", "max", "x relay-only"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for name, values in times.items():
        p50 = statistics.median(values)
        table.add_row(name, f"{p50:.0f}", f"{max(values):.0f}", f"{p50 / baseline:.2f}")
    console.print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(times, indent=2))


if __name__ == "__main__":
    main()
