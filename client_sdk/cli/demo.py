"""``meet demo``: a whole meeting of bots on the local stack, narrated, with a summary at the end.

Three bots register and meet: Alice hosts, Bob and Carol join with the passcode (after a wrong guess is
refused). Alice and Bob take the nearest relay; Carol joins "from Europe", pinned to the eu-west-1
relay, so the two relays cascade the meeting (each track crosses between them once). Everyone publishes
a camera (a generated pattern stamped with its capture time) and a microphone (a tone); Carol shares a
screen; they chat (one send is retried with the same key and stored once) and react; Bob records
everyone into one file and uploads it; Alice ends the meeting.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import av
import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from client_sdk.cli.common import require_checkout, run, user_text
from client_sdk.cli.join import Observer
from client_sdk.client import Client, new_idempotency_key
from client_sdk.errors import MeetingEnded, WrongPasscode
from client_sdk.media.recorder import MeetingRecorder
from client_sdk.media.sources import PatternVideoTrack, ToneAudioTrack
from client_sdk.meeting import Meeting, NoRelayReachable
from client_sdk.relay_select import health_url
from meetup_protocol.metrics import parse as parse_metrics

#: The demo's second region: Carol joins there (the local stack starts one relay per region).
FAR_REGION = "eu-west-1"

console = Console()


class Narrator:
    """Prints the steps; their text holds what the API and the relays answered, so it is never markup."""

    def __init__(self) -> None:
        self.n = 0

    def step(self, text: str) -> None:
        self.n += 1
        console.print(Text.assemble((f"{self.n:>2}.", "bold cyan"), " ", user_text(text)))

    def ok(self, text: str) -> None:
        console.print(Text.assemble("    ", ("✓", "green"), " ", user_text(text)))


async def _bot(api_url: str, name: str, tag: str) -> Client:
    client = Client(api_url)
    email, password = f"{name.lower()}-{tag}@example.com", secrets.token_urlsafe(12)
    await client.register(email, password, name)
    await client.login(email, password)
    return client


async def run_scenario(api_url: str, seconds: float = 8.0) -> dict[str, Any]:
    """The demo meeting; returns what happened (for the summary and the tests)."""
    say, tag = Narrator(), secrets.token_hex(3)
    result: dict[str, Any] = {}
    say.step("Three bots register and log in")
    alice, bob, carol = [await _bot(api_url, n, tag) for n in ("Alice", "Bob", "Carol")]
    meetings: list[Meeting] = []
    observers: dict[str, Observer] = {}
    try:
        say.ok("Alice, Bob and Carol have access and refresh tokens")
        say.step("Alice creates a meeting")
        created = await alice.create_meeting("Demo standup", max_participants=10, max_duration_minutes=30)
        mid = created.meeting_id
        result["meeting_id"] = mid
        say.ok(f"meeting {mid[:3]} {mid[3:6]} {mid[6:]}, passcode {created.passcode}")

        say.step(
            f"Bob guesses the passcode wrong; then Alice and Bob join the nearest relay, Carol one in "
            f"{FAR_REGION}, each with camera and mic"
        )
        try:
            await bob.join_meeting(mid, "WRONGPASS")
        except WrongPasscode as exc:
            say.ok(f"wrong passcode refused ({exc.code})")
        for client, name, (w, h), hz in (
            (alice, "Alice", (640, 480), 440),
            (bob, "Bob", (512, 384), 330),
            (carol, "Carol", (512, 384), 550),
        ):
            publish = {"camera": PatternVideoTrack(w, h, fps=15), "microphone": ToneAudioTrack(hz)}
            passcode = None if client is alice else created.passcode
            meeting = await _join(client, mid, passcode, publish, FAR_REGION if client is carol else None)
            meetings.append(meeting)
            say.ok(f"{name} joined as {meeting.role} via {meeting.relay_url}, media {meeting.media_path}")
        a, b, c = meetings
        recording = Path(tempfile.mkdtemp(prefix="meetup-demo-")) / "demo-meeting.mp4"
        recorder = MeetingRecorder(recording, grid=True, fps=15)
        for name, meeting in zip(("Alice", "Bob", "Carol"), meetings, strict=True):
            observers[name] = Observer(meeting, recorder if meeting is b else None, quiet=True)
            await observers[name].start()

        say.step("Carol shares her screen; Bob records everyone")
        await c.publish("screen", PatternVideoTrack(1280, 720, fps=5))
        say.ok("screen share published; recording to a grid of every video and a mix of every voice")

        say.step(f"They talk for {seconds:.0f} s, chat and react")
        a.send_chat("Morning! Shall we start?")
        key = new_idempotency_key()
        first = await bob.send_chat(mid, "Ready when you are.", idempotency_key=key)
        again = await bob.send_chat(mid, "Ready when you are.", idempotency_key=key)  # a retry: stored once
        c.send_chat("Sharing the roadmap now.")
        a.react("👍")
        c.react("🎉")
        await asyncio.sleep(seconds)
        for meeting in meetings:
            await meeting.outbox.flush()
        result["relays"] = await _relays(
            {name: m.relay_url for name, m in zip(("Alice", "Bob", "Carol"), meetings, strict=True)}
        )
        links = sum(r["links"] for r in result["relays"])
        if links:
            pairs = links // 2  # each link is counted by the relays at both of its ends
            say.ok(
                f"the relays cascade the meeting: {len(result['relays'])} relays, {pairs} link between them"
            )
        history = [m async for m in alice.chat_history(mid)]
        result["duplicate_refused"] = first.message_id == again.message_id
        result["messages"] = [(m.sender_name, m.text) for m in history]
        result["reactions"] = [(r.sender_name, r.emoji) for r in (await alice.reactions_page(mid)).items]
        say.ok(
            f"{len(history)} messages stored (the retried send once), {len(result['reactions'])} reactions"
        )

        say.step("Bob stops recording and uploads it; Alice ends the meeting")
        await recorder.stop()
        rec = await bob.upload_recording(mid, recording, "video/mp4")
        result["recording"] = _probe_recording(recording, rec.size)
        frames = result["recording"]["video_frames"]
        say.ok(f"recording {rec.recording_id}: {rec.size / 1e6:.1f} MB, {frames} video frames")
        await a.end()
        await asyncio.wait_for(asyncio.gather(b.ended.wait(), c.ended.wait()), 10)
        say.ok(f"Bob and Carol were told: {b.end_reason}")
        try:
            await carol.join_meeting(mid, created.passcode)
        except MeetingEnded:
            say.ok("a later join is refused: the meeting has ended")
        result["received"] = {
            name: {
                (stats.name, stats.source): (stats.frames, stats.latency_ms) for stats in obs.tracks.values()
            }
            for name, obs in observers.items()
        }
        return result
    finally:
        for obs in observers.values():
            obs.stop()
        for meeting in meetings:
            if not meeting.ended.is_set():
                await meeting.leave()
        for client in (alice, bob, carol):
            await client.aclose()


async def _join(
    client: Client, mid: str, passcode: str | None, publish: dict[str, Any], region: str | None
) -> Meeting:
    """Pinned to ``region`` when given; a stack without a relay there (``--api``) gets the nearest."""
    if region is not None:
        try:
            return await Meeting.join(client, mid, passcode, publish=publish, region=region, pin_region=True)
        except NoRelayReachable:
            pass
    return await Meeting.join(client, mid, passcode, publish=publish)


async def _relays(where: dict[str, str]) -> list[dict[str, Any]]:
    """Per relay used: who is on it, and what crosses its cascade links (from its /metrics)."""

    rows = []
    async with httpx.AsyncClient(timeout=5) as http:
        for url in dict.fromkeys(where.values()):
            metrics_url = health_url(url).removesuffix("/healthz") + "/metrics"
            values = parse_metrics((await http.get(metrics_url)).text)

            def total(prefix: str, values: dict[str, float] = values) -> int:
                return int(sum(v for k, v in values.items() if k.startswith(prefix)))

            rows.append(
                {
                    "url": url,
                    "participants": [name for name, used in where.items() if used == url],
                    "links": int(values.get("relay_cascade_links", 0)),
                    "tracks_out": total("relay_cascade_tracks_out"),
                    "tracks_in": total("relay_cascade_tracks_in"),
                }
            )
    return rows


def _probe_recording(path: Path, size: int) -> dict[str, Any]:
    """What the uploaded recording holds. One with no video stream (no frame reached the recorder
    before it stopped: a slow start on a loaded machine) is reported as such, not a crash."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            return {"bytes": size, "video_frames": 0, "size": "no video"}
        video = sum(1 for _ in container.decode(video=0))
        stream = container.streams.video[0]
        return {"bytes": size, "video_frames": video, "size": f"{stream.width}x{stream.height}"}


def _summary(result: dict[str, Any]) -> None:
    table = Table(title="What each participant received")
    table.add_column("participant")
    table.add_column("from")
    table.add_column("track")
    table.add_column("frames", justify="right")
    table.add_column("latency p50", justify="right")
    for name, received in result["received"].items():
        for (sender, source), (frames, latency) in sorted(received.items()):
            table.add_row(
                user_text(name),
                user_text(sender),
                user_text(source),
                str(frames),
                f"{latency:.0f} ms" if latency is not None else "-",
            )
    console.print(table)
    relays = Table(title="Relays (each track crosses a relay pair once)")
    for column in ("relay", "participants", "cascade links", "tracks sent over links", "tracks received"):
        relays.add_column(column)
    for r in result["relays"]:
        relays.add_row(
            user_text(urlparse(r["url"]).netloc),
            user_text(", ".join(r["participants"])),
            str(r["links"]),
            str(r["tracks_out"]),
            str(r["tracks_in"]),
        )
    console.print(relays)
    chat = Table(title=user_text(f"Stored for meeting {result['meeting_id']}"))
    chat.add_column("from")
    chat.add_column("chat / reaction")
    for sender, text in result["messages"] + result["reactions"]:
        chat.add_row(user_text(sender), user_text(text, multiline=True))
    rec = result["recording"]
    chat.add_row(
        "Bob",
        user_text(f"recording {rec['size']}, {rec['video_frames']} frames, {rec['bytes'] / 1e6:.1f} MB"),
    )
    console.print(chat)


def demo(
    api: Annotated[
        str | None, typer.Option(help="Use a running stack (from 'meet local up') instead of starting one.")
    ] = None,
    seconds: Annotated[float, typer.Option(min=1, help="How long the bots talk.")] = 8.0,
) -> None:
    """Start the local stack and run a meeting of bots: video, audio, screen share, chat, recording."""
    require_checkout("demo", *(["local_stack"] if api is None else []))
    stack = None
    if api is None:
        from local_stack import LocalStack

        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        started = time.monotonic()
        with console.status("starting the local stack (moto for DynamoDB + S3, two relays, the API) ..."):
            # Emulated distance (no netem): the far region's relay answers the RTT probe 40 ms later.
            stack = LocalStack(
                relay_regions=["local", FAR_REGION], relay_probe_delay_ms={FAR_REGION: 40}
            ).start()
        api = stack.api_url
        console.print(f"[bold green]local stack up[/] in {time.monotonic() - started:.1f} s: API {api}")
        turn = f"TURN {stack.turn_note}" if stack.turn_server else f"no TURN: {stack.turn_note}"
        console.print(user_text(turn, "dim"))
    try:
        result = run(run_scenario(api, seconds))  # an API that cannot be reached: an error line, exit 1
    finally:
        if stack is not None:
            stack.stop()
    _summary(result)
    console.print("[bold green]demo finished.[/]")
