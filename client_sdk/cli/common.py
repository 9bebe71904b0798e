"""Shared CLI plumbing: run a coroutine, turn SDK errors into a message and exit code 1."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from client_sdk.errors import MeetupError

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

ApiOption = Annotated[
    str | None, typer.Option("--api", envvar="MEETUP_API_URL", help="API base URL (default: the saved one).")
]


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except MeetupError as exc:
        err_console.print(f"[red]error:[/] {exc} [dim]({exc.code})[/]")
        raise typer.Exit(1) from None
