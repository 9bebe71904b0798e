"""``meet load-test``: the operator's check after a deploy. Rendering only: the run itself is
``client_sdk.loadtest``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from client_sdk.cli import credentials
from client_sdk.cli.common import ApiOption, console, err_console, run, user_text
from client_sdk.client import Client
from client_sdk.loadtest.accounts import (
    LoadTestError,
    RegistrationRefused,
    read_accounts,
    register_accounts,
    write_accounts,
)
from client_sdk.loadtest.engine import STAMP_MIN_WIDTH, LoadTest, LoadTestConfig
from client_sdk.loadtest.report import METRICS, build_report

_VIDEO = re.compile(r"(\d+)x(\d+)(?:@(\d+(?:\.\d+)?))?")
HELP = "\n\n".join(
    [
        "Load-test a stack: N publishers and M subscribers, each a real participant (own account, WebRTC "
        "through the relays) in this process, for --duration seconds. Reports join times and, per received "
        "track, bitrate, frame rate, packet loss, jitter and glass-to-glass latency (p50/p95/worst).",
        "Exits 1 if any participant could not join, or anyone decoded nothing from a publisher.",
        "The operator's account (logged in, or --email) creates the meeting and ends it afterwards. The "
        "participants' accounts are registered for the run unless --accounts gives them: a deployed API "
        "registers few accounts per address (MEETUP_REGISTRATIONS_PER_IP, 20 per 300 s by default), so "
        "keep them (--save-accounts) and reuse them.",
        "Every received video is decoded here, which is what limits a run: the defaults (2+2, 512x288 at "
        "10 fps) suit a 2-core laptop. A realistic post-deploy run from an 8-16 core machine is e.g. "
        "--publishers 4 --subscribers 20 --video 640x360@15 --duration 60. Check the load average in the "
        "report: a saturated load generator measures itself, not the stack.",
    ]
)
MAX_TRACK_ROWS = 24  # more tracks than this: the per-track numbers are in --json only


def parse_video(value: str) -> tuple[int, int, float]:
    """``WxH@FPS`` (``@FPS`` optional, 10 by default)."""
    match = _VIDEO.fullmatch(value.strip())
    if not match:
        raise typer.BadParameter(f"--video is WxH@FPS, e.g. 512x288@10 (got {value!r})")
    width, height, fps = int(match[1]), int(match[2]), float(match[3] or 10)
    if not (64 <= width <= 3840 and 64 <= height <= 2160 and width % 2 == 0 and height % 2 == 0):
        raise typer.BadParameter("--video: width and height are even, 64..3840 x 64..2160")
    if not 1 <= fps <= 60:
        raise typer.BadParameter("--video: 1 to 60 frames per second")
    return width, height, fps


def load_test(
    publishers: Annotated[
        int, typer.Option(min=1, max=100, help="Participants sending video (+ audio).")
    ] = 2,
    subscribers: Annotated[int, typer.Option(min=0, max=250, help="Participants only receiving.")] = 2,
    duration: Annotated[
        float, typer.Option(min=1, help="Seconds to measure, once everyone has joined.")
    ] = 10,
    video: Annotated[
        str, typer.Option(help="Each publisher's pattern: WxH@FPS. Latency needs a width of 512 or more.")
    ] = "512x288@10",
    audio: Annotated[bool, typer.Option("--audio/--no-audio", help="Publishers also send a tone.")] = True,
    region: Annotated[str | None, typer.Option(help="Region hint for the relay choice.")] = None,
    accounts: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Log the participants in with these accounts (email:password lines) instead of "
            "registering new ones.",
        ),
    ] = None,
    save_accounts: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Write the accounts registered for this run here (0600)."),
    ] = None,
    email: Annotated[
        str | None, typer.Option(help="Operator account (default: the session of 'meet login').")
    ] = None,
    password: Annotated[
        str | None, typer.Option(envvar="MEETUP_PASSWORD", help="With --email; prompted for if left out.")
    ] = None,
    join_concurrency: Annotated[int, typer.Option(min=1, max=64, help="Joins at a time.")] = 4,
    json_file: Annotated[
        Path | None, typer.Option("--json", dir_okay=False, help="Write the raw numbers here.")
    ] = None,
    api: ApiOption = None,
) -> None:
    """Load-test a stack: see :data:`HELP` (what ``meet load-test --help`` shows)."""
    width, height, fps = parse_video(video)
    if email and not password:
        password = typer.prompt("Password", hide_input=True)
    config = LoadTestConfig(
        publishers, subscribers, duration, width, height, fps, audio, region, join_concurrency
    )
    report = run(_go(config, api, email, password, accounts, save_accounts))
    if json_file is not None:
        json_file.write_text(json.dumps(report, indent=2))
        console.print(user_text(f"raw numbers written to {json_file}", "dim"))
    if report["failures"]:
        for reason in report["failures"]:
            err_console.print(Text.assemble(("fail:", "red"), " ", user_text(reason)))
        raise typer.Exit(1)
    console.print(Text("passed: everyone joined and received every publisher", style="green"))


async def _go(
    config: LoadTestConfig,
    api: str | None,
    email: str | None,
    password: str | None,
    accounts_file: Path | None,
    save_accounts: Path | None,
) -> dict[str, Any]:
    load_start = os.getloadavg()
    run_id = secrets.token_hex(4)
    needed = config.publishers + config.subscribers
    async with _operator(api, email, password) as operator:
        if accounts_file is not None:
            accounts = read_accounts(accounts_file)
            if len(accounts) < needed:
                raise LoadTestError(
                    f"{accounts_file} has {len(accounts)} accounts; {needed} are needed",
                    code="not_enough_accounts",
                )
        else:
            with console.status(f"registering {needed} accounts"):
                try:
                    accounts = await register_accounts(
                        operator, needed, run_id=run_id, concurrency=config.join_concurrency
                    )
                except RegistrationRefused as exc:
                    if save_accounts is not None and exc.registered:
                        write_accounts(save_accounts, exc.registered)
                    raise
            if save_accounts is not None:
                write_accounts(save_accounts, accounts)
        if config.width < STAMP_MIN_WIDTH:
            console.print(
                Text(f"latency unavailable: the time stamp needs frames at least {STAMP_MIN_WIDTH} wide")
            )
        test = LoadTest(operator.base_url, config, accounts)
        with _progress(test) as shown:
            ticker = asyncio.ensure_future(shown())
            try:
                await test.run(operator, run_id)
            finally:
                ticker.cancel()
    report = build_report(test, run_id=run_id, load_start=load_start)
    _print_report(report)
    return report


@contextlib.asynccontextmanager
async def _operator(api: str | None, email: str | None, password: str | None) -> Any:
    """The operator's API session: a fresh login with --email, else the saved one of ``meet login``."""
    if email:
        async with Client(credentials.api_url(api)) as client:
            await client.login(email, password or "")
            yield client
    else:
        async with credentials.client(api) as client:
            yield client


@contextlib.contextmanager
def _progress(test: LoadTest) -> Any:
    """A live view (joined, measuring, frames flowing); yields the coroutine that keeps it current."""
    total = len(test.participants)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        console=console,
        transient=True,
    ) as bar:
        joining = bar.add_task("joining", total=total, info="")
        measuring = bar.add_task("measuring", total=test.config.duration_s, info="", start=False)

        async def refresh() -> None:
            while True:
                flowing = f"{test.flowing}/{test.expected_tracks} tracks flowing, {test.frames} frames"
                bar.update(
                    joining,
                    completed=test.joined + test.failed,
                    info=f"{test.joined} joined, {test.failed} failed; {flowing}",
                )
                if test.window_started_at is not None:
                    bar.start_task(measuring)
                    elapsed = min(test.config.duration_s, time.monotonic() - test.window_started_at)
                    bar.update(measuring, completed=elapsed, info=f"{test.phase}; {flowing}")
                await asyncio.sleep(0.25)

        yield refresh


def _print_report(report: dict[str, Any]) -> None:
    for p in report["participants"]:
        if p["error"]:
            console.print(user_text(f"{p['name']} ({p['role']}) could not join: {p['error']}", "red"))
    tracks = report["tracks"]
    if tracks and len(tracks) <= MAX_TRACK_ROWS:
        table = Table(
            "receiver", "from", "kind", "frames", "fps", "kbit/s", "loss", "jitter", "latency p50/p95"
        )
        for t in sorted(tracks, key=lambda t: (t["receiver"], t["publisher"], t["kind"])):
            latency = t["latency_ms"]
            table.add_row(
                t["receiver"],
                user_text(t["publisher"]),
                user_text(t["kind"]),
                str(t["frames"]),
                _num(t["fps"]),
                _num(t["kbps"]),
                f"{_num(t['loss_pct'])} %",
                f"{_num(t['jitter_ms'])} ms",
                f"{_num(latency['p50'])}/{_num(latency['p95'])} ms" if latency["p50"] is not None else "-",
            )
        console.print(table)
    elif tracks:
        console.print(Text(f"{len(tracks)} received tracks: per-track numbers with --json"))
    c = report["config"]
    summary = Table(
        "metric",
        "n",
        "p50",
        "p95",
        "worst",
        title=(
            f"{c['publishers']} publishers x {c['subscribers']} subscribers, {report['window_s']:.1f} s, "
            f"{c['video']['width']}x{c['video']['height']}@{c['video']['fps']:g}"
        ),
    )
    for key, label, unit, _ in METRICS:
        row = report["summary"][key]
        if row["n"]:
            summary.add_row(
                f"{label} ({unit})", str(row["n"]), _num(row["p50"]), _num(row["p95"]), _num(row["worst"])
            )
    console.print(summary)
    m = report["machine"]
    console.print(
        Text(
            f"load average {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f} on {m['cpus']} CPUs",
            "dim",
        )
    )


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
