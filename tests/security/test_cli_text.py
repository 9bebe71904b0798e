"""What other people write reaches the ``meet`` user's terminal as text: never as Rich markup (a stored
``[/bold]`` must not crash everyone's ``meet chat``, ``[link=...]`` must not hide a URL), never as terminal
escape sequences (OSC 8 hyperlinks, screen clears), never reordered by bidi overrides."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from client_sdk.cli import common, join
from client_sdk.cli.common import chat_line, terminal_text, user_text
from client_sdk.errors import MeetupError
from client_sdk.meeting import MeetingEvent
from tests.client_sdk.test_cli import logged_in, run

MARKUP_NAME = "[bold red]x[/] [link=https://evil.example]click[/link]"
HOSTILE_CHAT = [
    "hello [/bold] world",
    "\x1b]8;;https://evil\x07click here\x1b]8;;\x07",
    "\x1b[2Jwiped",
    "8-bit \x9b2J csi and \x9d8;;https://evil\x9c osc",
    "\u202egnp.exe",
    "first line\n12:00:00 Host: a forged line",
    ":thumbs_up: stays a code",
]
# Every escape sequence a terminal-rendering Console may emit for its own styles: SGR only.
SGR = re.compile(r"\x1b\[[0-9;]*m")


def terminal(**options: Any) -> tuple[Console, io.StringIO]:
    """A Console that believes it writes to a colour terminal (so styles and links would be emitted)."""
    out = io.StringIO()
    return Console(file=out, force_terminal=True, color_system="truecolor", width=200, **options), out


def assert_safe(out: str) -> None:
    assert "\x1b]" not in out and "\x9d" not in out, repr(out)  # no OSC (hyperlinks, window titles)
    assert SGR.sub("", out).count("\x1b") == 0, repr(out)  # nothing but colours and bold
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", SGR.sub("", out)), repr(
        out
    )


# --- the helper ------------------------------------------------------------------------------------------


def test_terminal_text_removes_escapes_and_controls_but_keeps_unicode() -> None:
    assert terminal_text("\x1b]8;;https://evil\x07click\x1b]8;;\x07") == "click"
    assert terminal_text("\x1b]8;;https://evil\x1b\\click\x1b]8;;\x1b\\") == "click"
    assert terminal_text("\x1b[2J\x1b[H\x1b[31mred\x1b[0m") == "red"
    assert terminal_text("a\x9b2Jb\x9d0;title\x9cc") == "abc"
    assert terminal_text("\x1b]0;unterminated title") == ""
    assert terminal_text("bell\x07 back\x08space nul\x00 del\x7f esc\x1b") == "bell backspace nul del esc"
    assert terminal_text("\u202egnp.exe \u2066iso\u2069 \u202aemb\u202c") == "gnp.exe iso emb"
    unicode = "Zoë 👍🏽 👨‍👩‍👧 ❤️ 日本語 مرحبا"
    assert terminal_text(unicode) == unicode
    assert terminal_text(42) == "42"


def test_terminal_text_line_breaks_only_in_multiline_text() -> None:
    assert terminal_text("a\tb") == "a b"
    assert terminal_text("one\ntwo\r\nthree\rfour\u2028five") == "one two three four five"
    assert terminal_text("one\ntwo\r\nthree\rfour", multiline=True) == "one\ntwo\nthree\nfour"


def test_user_text_is_never_markup() -> None:
    console, out = terminal()
    for text in [MARKUP_NAME, *HOSTILE_CHAT, "ends in a backslash \\", "[/]"]:
        console.print(user_text(text, "bold"))
    printed = out.getvalue()
    assert_safe(printed)
    plain = SGR.sub("", printed)
    assert MARKUP_NAME in plain and "hello [/bold] world" in plain and ":thumbs_up: stays a code" in plain
    assert "ends in a backslash \\" in plain and "\n[/]\n" in plain


def test_chat_line_keeps_line_breaks_indented() -> None:
    console, out = terminal()
    console.print(chat_line(MARKUP_NAME, "first line\n12:00:00 Host: a forged line", at="12:00:01"))
    plain = SGR.sub("", out.getvalue())
    assert plain == f"12:00:01 {MARKUP_NAME}: first line\n    12:00:00 Host: a forged line\n"


def test_errors_echoing_server_text_are_printed_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    console, out = terminal(stderr=True)
    monkeypatch.setattr(common, "err_console", console)

    async def fail() -> None:
        raise MeetupError("no such meeting [link=https://evil.example]x[/link] [/] \x1b[2J", code="[/bold]")

    with pytest.raises(common.typer.Exit):
        common.run(fail())
    printed = out.getvalue()
    assert_safe(printed)
    assert "error: no such meeting [link=https://evil.example]x[/link] [/]  ([/bold])" in SGR.sub("", printed)


# --- what `meet join` prints (its Observer), fed the same hostile strings ----------------------------------


class FakeMeeting:
    def __init__(self) -> None:
        self.participants = {"p1": {"name": MARKUP_NAME}}
        self.remote_tracks: dict[str, Any] = {}

    def on(self, event_type: str, callback: Any) -> None:
        pass


async def test_meet_join_prints_names_chat_and_reactions_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    console, out = terminal()
    monkeypatch.setattr(join, "console", console)
    observer = join.Observer(FakeMeeting(), recorder=None)  # type: ignore[arg-type]
    for text in HOSTILE_CHAT:
        await observer._on_event(MeetingEvent("chat", {"name": MARKUP_NAME, "text": text}))
    await observer._on_event(MeetingEvent("reaction", {"name": MARKUP_NAME, "emoji": "[/]\x1b[2J"}))
    who = {"participant": {"name": MARKUP_NAME}, "reason": "[link=https://evil.example]gone[/link]\x07"}
    await observer._on_event(MeetingEvent("participant_left", who))
    observer.tracks["t1"] = join.TrackStats(MARKUP_NAME, "[/]camera\x1b]8;;https://evil\x07")
    console.print(observer.table())
    printed = out.getvalue()
    assert_safe(printed)
    plain = SGR.sub("", printed)
    assert f"{MARKUP_NAME}: hello [/bold] world" in plain
    assert f"{MARKUP_NAME}: click here" in plain and f"{MARKUP_NAME}: wiped" in plain
    assert "first line\n    12:00:00 Host: a forged line" in plain
    assert f"{MARKUP_NAME} reacted [/]" in plain
    assert f"participant left {MARKUP_NAME} [link=https://evil.example]gone[/link]" in plain
    assert "[/]camera" in plain


# --- `meet chat` and `meet info` over the real stack --------------------------------------------------------


def test_meet_chat_history_and_info_print_hostile_text_as_text(stack, api, tmp_path) -> None:
    host, guest = api.new_user("Host"), api.new_user("Guest")
    # The API refuses control characters and bidi overrides in display names; markup gets through.
    for refused in ("x\x1b[2J", "x\x9b2J", "x\u202egnp.exe"):
        assert api.patch("/settings", guest, json={"display_name": refused}).status_code == 422
    name = shown_name = MARKUP_NAME
    r = api.patch("/settings", guest, json={"display_name": name})
    assert r.status_code == 200, r.text
    meeting = api.new_meeting(host)
    mid = meeting["meeting_id"]
    assert api.join(meeting, host).status_code == 200 and api.join(meeting, guest).status_code == 200
    for i, text in enumerate(HOSTILE_CHAT):
        r = api.post(f"/meetings/{mid}/chat", guest, json={"text": text, "idempotency_key": f"k-{i:04d}-x"})
        assert r.status_code == 201, r.text

    env = logged_in(tmp_path / "host", stack.api_url, host)
    for terminal_env in ({}, {"TTY_COMPATIBLE": "1", "TERM": "xterm-256color", "COLORTERM": "truecolor"}):
        history = run("chat", mid, env={**env, **terminal_env})
        assert history.returncode == 0, history.stdout + history.stderr
        assert_safe(history.stdout)
        if not terminal_env:
            assert "\x1b" not in history.stdout
        plain = SGR.sub("", history.stdout)
        assert f"{shown_name}: hello [/bold] world" in plain, plain
        for shown in ("click here", "wiped", "8-bit  csi and  osc", "gnp.exe", ":thumbs_up: stays a code"):
            assert f"{shown_name}: {shown}" in plain, (shown, plain)
        assert f"{shown_name}: first line\n    12:00:00 Host: a forged line" in plain, plain
        info = run("info", mid, env={**env, **terminal_env})
        assert info.returncode == 0, info.stdout + info.stderr
        assert_safe(info.stdout)
        assert f"{shown_name} (guest)" in SGR.sub("", info.stdout), info.stdout
