"""``meet remove``, ``meet mute``, ``meet promote``, ``meet lock``, ``meet admit``: a host's or co-host's
controls.

A participant is named by its display name (as ``meet info`` lists them) or its participant id. Raised
hands live with a participant's relay session, so they are part of ``meet join --hand`` (raise it while
in the meeting, see everyone's in raise order).
"""

from __future__ import annotations

from typing import Annotated

import typer

from client_sdk.cli import credentials
from client_sdk.cli.common import ApiOption, console, run, user_text
from client_sdk.cli.meetings import ID_RULE, _id_then, split_meeting_id
from client_sdk.client import Client
from client_sdk.errors import ParticipantNotFound

Who = Annotated[
    list[str],
    typer.Argument(
        metavar="MEETING_ID PARTICIPANT",
        help=f"{ID_RULE} Then the participant: its display name (quoted) or participant id.",
        callback=_id_then("PARTICIPANT"),
        show_default=False,
    ),
]
MaybeWho = Annotated[
    list[str],
    typer.Argument(
        metavar="MEETING_ID [PARTICIPANT]",
        help=f"{ID_RULE} Then the participant (display name or id); left out: every guest (mute) or "
        "the list of who waits (admit).",
        callback=_id_then("PARTICIPANT", optional=True),
        show_default=False,
    ),
]


async def participant_id(client: Client, meeting_id: str, who: str) -> str:
    """The participant id of ``who`` (an id, or exactly one active participant's display name)."""
    people = await client.participants(meeting_id)
    if any(p.participant_id == who for p in people):
        return who
    named = [p for p in people if p.display_name == who and p.active]
    if len(named) != 1:
        many = "several participants are" if named else "nobody in the meeting is"
        raise ParticipantNotFound(
            f"{many} called {who!r}: use the participant id", code="participant_not_found"
        )
    return named[0].participant_id


def remove(meeting_and_who: Who, api: ApiOption = None) -> None:
    """Remove a participant: dropped at once, and it cannot join this meeting again."""
    meeting_id, (who,) = split_meeting_id(meeting_and_who)

    async def go() -> None:
        async with credentials.client(api) as client:
            pid = await participant_id(client, meeting_id, who)
            done = await client.remove_participant(meeting_id, pid)
        console.print(user_text(f"removed {who} ({pid}); {done.relays_told} relay(s) told"))

    run(go())


def mute(
    meeting_and_who: MaybeWho,
    camera: Annotated[bool, typer.Option(help="Mute the camera instead of the microphone.")] = False,
    unmute: Annotated[bool, typer.Option(help="Lift a mute: the participant may unmute itself.")] = False,
    api: ApiOption = None,
) -> None:
    """Mute a participant's microphone (or camera), or every guest's microphone; the relay stops
    forwarding it whatever the participant's client does."""
    meeting_id, rest = split_meeting_id(meeting_and_who)
    if camera and not rest:
        raise typer.BadParameter("--camera needs a participant: 'mute all' is for microphones")

    async def go() -> None:
        async with credentials.client(api) as client:
            pid = await participant_id(client, meeting_id, rest[0]) if rest else None
            source = "camera" if camera else "microphone"
            await client.mute_participant(meeting_id, pid, source, not unmute)
        what = f"{rest[0]}'s {source}" if rest else "every guest's microphone"
        console.print(user_text(f"{'unmuted' if unmute else 'muted'} {what}"))

    run(go())


def promote(
    meeting_and_who: Who,
    role: Annotated[
        str, typer.Option(help="co_host, guest (demote), or host (hand the host role over).")
    ] = "co_host",
    api: ApiOption = None,
) -> None:
    """Make a participant a co-host (or a guest again), or hand it the host role."""
    meeting_id, (who,) = split_meeting_id(meeting_and_who)
    if role not in ("co_host", "guest", "host"):
        raise typer.BadParameter("--role is co_host, guest or host")

    async def go() -> None:
        async with credentials.client(api) as client:
            pid = await participant_id(client, meeting_id, who)
            if role == "host":
                await client.hand_over(meeting_id, pid)
            else:
                await client.set_role(meeting_id, pid, role)
        console.print(user_text(f"{who} is now {role.replace('_', '-')}"))

    run(go())


def lock(
    meeting_id: Annotated[
        list[str],
        typer.Argument(metavar="MEETING_ID", help=ID_RULE, callback=_id_then(), show_default=False),
    ],
    unlock: Annotated[bool, typer.Option(help="Admit newcomers again.")] = False,
    api: ApiOption = None,
) -> None:
    """Lock a meeting (nobody new gets in, passcode or not), or unlock it."""
    mid, _ = split_meeting_id(meeting_id)

    async def go() -> None:
        async with credentials.client(api) as client:
            meeting = await client.lock_meeting(mid, not unlock)
        console.print(user_text(f"meeting {meeting.meeting_id} {'locked' if meeting.locked else 'unlocked'}"))

    run(go())


def admit(meeting_and_who: MaybeWho, deny: bool = False, api: ApiOption = None) -> None:
    """Admit a guest from the waiting room (or --deny it); without one, list who waits."""
    meeting_id, rest = split_meeting_id(meeting_and_who)

    async def go() -> None:
        async with credentials.client(api) as client:
            waiting = await client.waiting(meeting_id)
            if not rest:
                for w in waiting:
                    console.print(user_text(f"  {w.display_name} ({w.participant_id})"))
                console.print(user_text(f"{len(waiting)} waiting"))
                return
            who = rest[0]
            named = [w.participant_id for w in waiting if who in (w.participant_id, w.display_name)]
            if len(named) != 1:
                raise ParticipantNotFound(
                    f"{who!r} is not (only once) in the waiting room", code="participant_not_found"
                )
            await client.admit(meeting_id, named[0], not deny)
        console.print(user_text(f"{'denied' if deny else 'admitted'} {who}"))

    run(go())
