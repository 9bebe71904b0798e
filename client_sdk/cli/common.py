"""Shared CLI plumbing: run a coroutine, turn SDK errors into a message and exit code 1, and print what
other people (or a server) wrote as plain terminal text."""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from client_sdk.errors import MeetupError

console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")

ApiOption = Annotated[
    str | None, typer.Option("--api", envvar="MEETUP_API_URL", help="API base URL (default: the saved one).")
]

# Terminal escape sequences, 7-bit (ESC ...) and 8-bit (C1) forms: removed whole, parameters and all.
_ESCAPES = re.compile(
    r"""
      (?:\x1b\[|\x9b) [0-?]* [ -/]* [@-~]                        # CSI: cursor moves, erase, SGR colours
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|\Z)  # OSC (hyperlinks, titles), DCS,
                                                               # SOS, PM, APC: up to their terminator
    | \x1b [ -/]* [0-~]                                          # the other ESC sequences (ESC c: reset)
    """,
    re.VERBOSE | re.DOTALL,
)
# What is left of the C0 and C1 controls (and DEL) once line breaks and tabs are dealt with, and the bidi
# embedding/override/isolate characters that make text display in another order than it is stored
# (U+202A-202E, U+2066-2069).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029]")


def terminal_text(value: object, *, multiline: bool = False) -> str:
    """``value`` as text that is safe to show in a terminal: escape sequences (ANSI/OSC, 7- and 8-bit)
    and the remaining C0/C1 control characters are removed, bidi overrides are dropped, a tab becomes a
    space. Line breaks (``\\r``, ``\\r\\n``, U+2028/9 count as ``\\n``) are kept only when ``multiline``
    (chat text), otherwise each becomes a space. Ordinary Unicode, emoji included, is untouched.

    The result is still a plain string: print it through :func:`user_text` (or ``Text``), never as Rich
    markup."""
    text = _LINE_BREAKS.sub("\n", str(value))
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text).replace("\t", " ")
    return text if multiline else text.replace("\n", " ")


def user_text(value: object, style: str = "", *, multiline: bool = False) -> Text:
    """Anything a user, a peer or a server wrote (names, chat, titles, reactions, file names, error
    messages) as a Rich ``Text``: printed as it is, never read as markup (``[link=...]``, ``[/]``) or as
    emoji codes, with :func:`terminal_text`'s cleaning."""
    return Text(terminal_text(value, multiline=multiline), style=style)


def chat_line(name: object, text: object, at: str | None = None) -> Text:
    """One chat message as ``meet chat`` and ``meet join`` print it: ``[time] name: text``. A message's
    own line breaks are kept, with its continuation lines indented, so that it cannot draw a line that
    looks like another message (another sender's name at the start of a line)."""
    line = Text()
    if at:
        line.append(at, style="dim").append(" ")
    line.append_text(user_text(name, "bold")).append(": ")
    return line.append(terminal_text(text, multiline=True).replace("\n", "\n    "))


_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]+")


def local_file_name(*parts: object, default: str = "file") -> str:
    """A file name for this machine made of names the server sent: one path component (no ``/``, no
    ``..``, no leading dot), portable characters only, at most 200 long."""
    name = _UNSAFE_IN_FILE_NAMES.sub("_", "-".join(str(p) for p in parts)).lstrip(".-")
    return name[:200] or default


def require_checkout(command: str, *modules: str) -> None:
    """Exit with a clear message unless ``modules`` import: the local stack (moto's server, the API, the
    relays) comes with meetup-edge's development checkout, not with the meetup-edge-sdk package."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            err_console.print(
                Text.assemble(
                    ("error:", "red"),
                    f" `meet {command}` runs the local stack (moto's server, the API, relays as processes), "
                    "which comes with meetup-edge's development checkout, not with the meetup-edge-sdk "
                    f"package (missing: {exc.name}). Clone the meetup-edge repository and run "
                    f"`./dev {'up' if command == 'local up' else 'demo'}` there: it sets up everything.",
                )
            )
            raise typer.Exit(1) from None


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except MeetupError as exc:
        err_console.print(
            Text.assemble(("error:", "red"), " ", user_text(exc), " ", user_text(f"({exc.code})", "dim"))
        )
        raise typer.Exit(1) from None
