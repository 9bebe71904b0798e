"""``meet create``, ``meet info``, ``meet end``, ``meet chat``, ``meet react``, ``meet recordings``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from client_sdk.cli import credentials
from client_sdk.cli.common import ApiOption, chat_line, console, run, terminal_text, user_text

MeetingId = Annotated[str, typer.Argument(help="The meeting ID (spaces and dashes are fine).")]


def create(
    title: Annotated[str, typer.Option(help="What the meeting is about.")] = "Meeting",
    max_participants: Annotated[int, typer.Option(min=2, max=300)] = 100,
    duration: Annotated[int, typer.Option(min=1, max=1440, help="Maximum duration in minutes.")] = 60,
    passcode: Annotated[
        str | None, typer.Option(help="6-16 letters/digits; generated when left out.")
    ] = None,
    api: ApiOption = None,
) -> None:
    """Create a meeting you host; prints its ID and passcode."""

    async def go() -> None:
        options: dict[str, object] = {"max_participants": max_participants, "max_duration_minutes": duration}
        if passcode:
            options["passcode"] = passcode
        async with credentials.client(api) as client:
            meeting = await client.create_meeting(title, **options)
        mid = terminal_text(meeting.meeting_id)
        console.print(Text("meeting  ").append(f"{mid[:3]} {mid[3:6]} {mid[6:]}", style="bold"))
        console.print(Text("passcode ").append_text(user_text(meeting.passcode, "bold")))
        console.print(Text(f"ends     {meeting.ends_at:%Y-%m-%d %H:%M} UTC at the latest"))

    run(go())


def info(meeting_id: MeetingId, api: ApiOption = None) -> None:
    """Show a meeting you take part in, and who is in it."""

    async def go() -> None:
        async with credentials.client(api) as client:
            meeting = await client.get_meeting(meeting_id)
            people = await client.participants(meeting.meeting_id)
        count = f"{meeting.participant_count}/{meeting.max_participants}"
        console.print(user_text(f"{meeting.title}: {meeting.status}, {count} in"))
        for p in people:
            console.print(user_text(f"  {'●' if p.active else '○'} {p.display_name} ({p.role})"))

    run(go())


def end(meeting_id: MeetingId, api: ApiOption = None) -> None:
    """End a meeting you host, for everyone."""

    async def go() -> None:
        async with credentials.client(api) as client:
            meeting = await client.end_meeting(meeting_id)
        console.print(user_text(f"meeting {meeting.meeting_id} {meeting.status} ({meeting.end_reason})"))

    run(go())


def chat(
    meeting_id: MeetingId,
    message: Annotated[str | None, typer.Argument(help="Text to send; left out: show the history.")] = None,
    api: ApiOption = None,
) -> None:
    """Send a chat message (stored exactly once, even if retried), or show the history."""

    async def go() -> None:
        async with credentials.client(api) as client:
            if message is not None:
                sent = await client.send_chat(meeting_id, message)
                console.print(user_text(f"sent at {sent.created_at:%H:%M:%S} ({sent.message_id})"))
                return
            async for item in client.chat_history(meeting_id):
                console.print(chat_line(item.sender_name, item.text, at=f"{item.created_at:%H:%M:%S}"))

    run(go())


def react(
    meeting_id: MeetingId,
    emoji: Annotated[str, typer.Argument(help="One of 👍 👎 👏 🎉 😂 😮 ❤️ 🙌 🤔 ✋")],
    api: ApiOption = None,
) -> None:
    """Send a reaction."""

    async def go() -> None:
        async with credentials.client(api) as client:
            await client.react(meeting_id, emoji)
        console.print(user_text(f"reacted {emoji}"))

    run(go())


def recordings(
    meeting_id: MeetingId,
    download: Annotated[
        Path | None, typer.Option(file_okay=False, help="Download every recording here.")
    ] = None,
    api: ApiOption = None,
) -> None:
    """List a meeting's recordings, or download them."""

    async def go() -> None:
        async with credentials.client(api) as client:
            items = await client.recordings(meeting_id)
            table = Table("recording", "file", "size", "finished")
            for rec in items:
                table.add_row(
                    user_text(rec.recording_id),
                    user_text(rec.filename),
                    f"{rec.size / 1e6:.1f} MB",
                    f"{rec.completed_at:%Y-%m-%d %H:%M}",
                )
            console.print(table if items else Text("no recordings yet"))
            if download:
                download.mkdir(parents=True, exist_ok=True)
                for rec in items:
                    assert rec.download_url is not None
                    path = await client.download(
                        rec.download_url, download / f"{rec.recording_id}-{rec.filename}"
                    )
                    console.print(user_text(f"downloaded {path}"))

    run(go())
