"""``meet demo``: a meeting from start to end against the local stack, narrated step by step."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, field
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from client_sdk.client import Client, new_idempotency_key
from client_sdk.errors import MeetingEnded, WrongPasscode

console = Console()


@dataclass
class DemoResult:
    meeting_id: str = ""
    participants: list[str] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    reactions: list[tuple[str, str]] = field(default_factory=list)
    duplicate_refused: bool = False
    wrong_passcode_refused: bool = False
    join_after_end_refused: bool = False
    relays: list[str] = field(default_factory=list)


class Narrator:
    def __init__(self) -> None:
        self.n = 0

    def step(self, text: str) -> None:
        self.n += 1
        console.print(f"[bold cyan]{self.n:>2}.[/] {text}")

    def ok(self, text: str) -> None:
        console.print(f"    [green]✓[/] {text}")


async def run_scenario(api_url: str) -> DemoResult:
    """Register two users, meet, chat, react, end; every step over HTTP against ``api_url``."""
    say, result, tag = Narrator(), DemoResult(), secrets.token_hex(3)
    async with Client(api_url) as alice, Client(api_url) as bob:
        say.step("Register two users and log in")
        for api, name in ((alice, "Alice"), (bob, "Bob")):
            email, password = f"{name.lower()}-{tag}@example.com", secrets.token_urlsafe(12)
            await api.register(email, password, name)
            user = await api.login(email, password)
            say.ok(f"{user.display_name} <{user.email}> has an access token and a refresh token")

        say.step("Alice creates a meeting")
        meeting = await alice.create_meeting("Demo standup", max_participants=10, max_duration_minutes=30)
        result.meeting_id = meeting.meeting_id
        mid = meeting.meeting_id
        say.ok(
            f"meeting {mid[:3]} {mid[3:6]} {mid[6:]}, passcode {meeting.passcode}, "
            f"ends {meeting.ends_at:%H:%M} UTC"
        )

        say.step("Bob tries a wrong passcode, then the right one; Alice (the host) joins without one")
        try:
            await bob.join_meeting(mid, "WRONGPASS")
        except WrongPasscode as exc:
            result.wrong_passcode_refused = True
            say.ok(f"wrong passcode refused ({exc.code})")
        for api, passcode in ((alice, None), (bob, meeting.passcode)):
            joined = await api.join_meeting(mid, passcode)
            result.relays = [r.url for r in joined.relays]
            say.ok(
                f"{api.user.display_name if api.user else '?'} joined as {joined.role}: join token for "
                f"{len(joined.relays)} relay(s), valid {joined.expires_in} s"
            )
        result.participants = [p.display_name for p in await alice.participants(mid) if p.active]
        say.ok(f"participants: {', '.join(result.participants)}")

        say.step("They chat; Bob's client retries a send with the same idempotency key")
        await alice.send_chat(mid, "Morning! Shall we start?")
        key = new_idempotency_key()
        first = await bob.send_chat(mid, "Ready when you are.", idempotency_key=key)
        again = await bob.send_chat(mid, "Ready when you are.", idempotency_key=key)
        result.duplicate_refused = first.message_id == again.message_id
        await alice.react(mid, "👍")
        await bob.react(mid, "🎉")
        page = await bob.chat_page(mid)
        result.messages = [(m.sender_name, m.text) for m in page.items]
        result.reactions = [(r.sender_name, r.emoji) for r in (await alice.reactions_page(mid)).items]
        say.ok(
            f"{len(result.messages)} messages stored (the retry was not duplicated), "
            f"{len(result.reactions)} reactions"
        )

        say.step("Alice ends the meeting for everyone")
        ended = await alice.end_meeting(mid)
        say.ok(f"status {ended.status} ({ended.end_reason})")
        try:
            await bob.join_meeting(mid, meeting.passcode)
        except MeetingEnded:
            result.join_after_end_refused = True
            say.ok("a later join is refused: the meeting has ended")
    return result


def _print_summary(result: DemoResult) -> None:
    table = Table(title=f"Chat of meeting {result.meeting_id}")
    table.add_column("from")
    table.add_column("message")
    for sender, text in result.messages:
        table.add_row(sender, text)
    for sender, emoji in result.reactions:
        table.add_row(sender, emoji)
    console.print(table)


def demo(
    api: Annotated[
        str | None, typer.Option(help="Use a running API (from 'meet local up') instead of starting one.")
    ] = None,
) -> None:
    """Start the local stack and run a meeting scenario against it, printing each step."""
    stack = None
    if api is None:
        from local_stack import LocalStack

        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        with console.status("starting the local stack (moto for DynamoDB + S3, the API under uvicorn) ..."):
            stack = LocalStack().start()
        api = stack.api_url
        console.print(f"[bold green]local stack up[/]: API {api}, AWS endpoint {stack.aws_url}")
    try:
        result = asyncio.run(run_scenario(api))
    finally:
        if stack is not None:
            stack.stop()
    _print_summary(result)
    console.print("[bold green]demo finished.[/]")
