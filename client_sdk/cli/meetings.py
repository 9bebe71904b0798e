"""``meet create``, ``meet info``, ``meet end``, ``meet chat``, ``meet react``, ``meet recordings``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from client_sdk.cli import credentials
from client_sdk.cli.common import (
    ApiOption,
    chat_line,
    console,
    local_file_name,
    run,
    terminal_text,
    user_text,
)

#: Digits in a meeting ID (functions/core/security.py makes them); ``meet create`` prints them 3 3 4.
MEETING_ID_DIGITS = 10
_ID_PIECE = re.compile(r"[0-9 -]*[0-9][0-9 -]*")  # digits, with the spaces and dashes people type
ID_RULE = (
    "The meeting ID as 'meet create' prints it: 123 456 7890 (quoted or not), 1234567890 or 123-456-7890."
)


def split_meeting_id(args: Sequence[str]) -> tuple[str, list[str]]:
    """The meeting ID at the start of ``args``, and the arguments after it.

    The ID may come in pieces (``123 456 7890`` unquoted is three arguments): it is the shortest run of
    leading arguments made only of digits, spaces and dashes that holds exactly ten digits. Since an ID
    always has ten digits, what follows is never part of it, even when it is a number (``meet chat
    123 456 7890 42`` sends "42"); a run that skips past ten digits or stops short is an error, never
    guessed at."""
    digits = ""
    for i, arg in enumerate(args):
        if not _ID_PIECE.fullmatch(arg):
            break
        digits += re.sub(r"[ -]", "", arg)
        if len(digits) >= MEETING_ID_DIGITS:
            if len(digits) == MEETING_ID_DIGITS:
                return digits, list(args[i + 1 :])
            break
    raise typer.BadParameter(f"a meeting ID has {MEETING_ID_DIGITS} digits. {ID_RULE}")


def _id_then(*names: str, optional: bool = False) -> Callable[[Sequence[str] | None], Sequence[str] | None]:
    """A click callback for ``MEETING_ID`` followed by ``names`` (the last one ``optional``): checks the
    pieces when the command line is parsed, so a bad ID is a usage error (exit code 2)."""

    def check(value: Sequence[str] | None) -> Sequence[str] | None:
        _, rest = split_meeting_id(value or ())
        if len(rest) > len(names) or len(rest) < len(names) - optional:
            wanted = " ".join(f"[{n}]" if optional and n == names[-1] else n for n in names)
            got = " ".join(repr(r) for r in rest) or "nothing"
            raise typer.BadParameter(
                f"after the meeting ID comes {wanted or 'nothing'} (got {got}); quote text with spaces"
            )
        return value

    return check


def meeting_id_of(args: Sequence[str]) -> str:
    """The ID of a command line that :data:`MeetingId` checked (it holds nothing else)."""
    return split_meeting_id(args)[0]


MeetingId = Annotated[
    list[str], typer.Argument(metavar="MEETING_ID", help=ID_RULE, callback=_id_then(), show_default=False)
]


def create(
    title: Annotated[str, typer.Option(help="What the meeting is about.")] = "Meeting",
    max_participants: Annotated[int, typer.Option(min=2, max=300)] = 100,
    duration: Annotated[int, typer.Option(min=1, max=1440, help="Maximum duration in minutes.")] = 60,
    passcode: Annotated[
        str | None, typer.Option(help="6-16 letters/digits; generated when left out.")
    ] = None,
    waiting_room: Annotated[bool, typer.Option(help="Guests wait until you admit them.")] = False,
    api: ApiOption = None,
) -> None:
    """Create a meeting you host; prints its ID and passcode."""

    async def go() -> None:
        options: dict[str, object] = {"max_participants": max_participants, "max_duration_minutes": duration}
        options["waiting_room"] = waiting_room
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
            meeting = await client.get_meeting(meeting_id_of(meeting_id))
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
            meeting = await client.end_meeting(meeting_id_of(meeting_id))
        console.print(user_text(f"meeting {meeting.meeting_id} {meeting.status} ({meeting.end_reason})"))

    run(go())


def chat(
    id_and_message: Annotated[
        list[str],
        typer.Argument(
            metavar="MEETING_ID [MESSAGE]",
            help=f"{ID_RULE} Then the text to send, as one argument (quote it); left out: show the history.",
            callback=_id_then("MESSAGE", optional=True),
            show_default=False,
        ),
    ],
    api: ApiOption = None,
) -> None:
    """Send a chat message (stored exactly once, even if retried), or show the history.

    The meeting ID is the first arguments that hold its ten digits, so 'meet chat 123 456 7890 "hello"'
    sends "hello", and so does 'meet chat 1234567890 hello'; a message is one argument (quote it)."""
    meeting_id, rest = split_meeting_id(id_and_message)
    message = rest[0] if rest else None

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
    id_and_emoji: Annotated[
        list[str],
        typer.Argument(
            metavar="MEETING_ID EMOJI",
            help=f"{ID_RULE} Then one of 👍 👎 👏 🎉 😂 😮 ❤️ 🙌 🤔 ✋",
            callback=_id_then("EMOJI"),
            show_default=False,
        ),
    ],
    api: ApiOption = None,
) -> None:
    """Send a reaction."""
    meeting_id, (emoji,) = split_meeting_id(id_and_emoji)

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
            items = await client.recordings(meeting_id_of(meeting_id))
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
                    name = local_file_name(rec.recording_id, rec.filename, default="recording")
                    path = await client.download(rec.download_url, download / name)
                    console.print(user_text(f"downloaded {path}"))

    run(go())
