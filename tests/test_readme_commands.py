"""The README's ``meet`` command lines, as written, parse with the real command line (and a meeting ID
is accepted the way ``meet create`` prints it: ``123 456 7890``, unquoted)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from client_sdk.cli.main import app
from client_sdk.cli.meetings import meeting_id_of, split_meeting_id
from tests.client_sdk.test_cli import logged_in, run

try:  # typer 0.2x+ carries its own copy of click: its exceptions are not the click package's
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - an older typer, on the click package
    from click.exceptions import UsageError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[list[str]]:
    """Every ``meet ...`` command in README.md's code blocks: ``# comments`` dropped, ``a ; b`` split,
    each as the shell would split it."""
    commands = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", README.read_text(), flags=re.M | re.S):
        for line in block.splitlines():
            if not line.startswith("meet "):
                continue  # not a command line (a tree, prose): the shell would not read it either
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
            lexer.whitespace_split, lexer.commenters = True, "#"
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token != ";":
                    words.append(token)
                elif words:
                    if words[0] == "meet":
                        commands.append(words)
                    words = []
    return commands


def parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """``meet argv`` through the real click command tree, every command's callback replaced by one that
    records what it would have been called with: parsed (options, arguments, their callbacks), never run.
    A line that does not parse raises click's UsageError (or BadParameter)."""
    root = typer.main.get_command(app)  # a fresh tree: the patched callbacks go nowhere else
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(command: Any, path: str) -> None:
        command.callback = lambda **params: calls.append((path, params))
        for name, sub in getattr(command, "commands", {}).items():
            record(sub, f"{path} {name}")

    record(root, "meet")
    root.main(argv, prog_name="meet", standalone_mode=False)
    return calls[-1]


def test_the_readme_has_meet_commands() -> None:
    commands = readme_commands()
    assert len(commands) >= 9, commands
    assert commands[2][:7] == ["meet", "join", "123", "456", "7890", "--passcode", "K7P2QX9M"]
    assert ["meet", "chat", "1234567890", "hello"] in commands and ["meet", "chat", "1234567890"] in commands


@pytest.mark.parametrize("argv", readme_commands(), ids=shlex.join)
def test_every_readme_command_parses(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEETUP_PASSWORD", "not-prompted-for")  # `meet register` would prompt
    name, params = parse(argv[1:])
    assert name == " ".join(["meet", argv[1]])
    for key in ("meeting_id", "id_and_message", "id_and_emoji"):
        if key in params:
            assert split_meeting_id(params[key])[0] == "1234567890", params


def test_a_line_that_does_not_parse_fails() -> None:
    with pytest.raises(UsageError):
        parse(["join", "123", "456", "7890", "--no-such-option"])
    with pytest.raises(UsageError):
        parse(["end", "123", "456", "789"])  # nine digits


@pytest.mark.parametrize(
    ("args", "meeting_id", "rest"),
    [
        (["1234567890"], "1234567890", []),
        (["123 456 7890"], "1234567890", []),
        (["123-456-7890"], "1234567890", []),
        (["123", "456", "7890"], "1234567890", []),
        (["123", "456-7890", "hello"], "1234567890", ["hello"]),
        (["123", "456", "7890", "42"], "1234567890", ["42"]),  # ten digits are the ID; then the message
        (["1234567890", "123 456"], "1234567890", ["123 456"]),
        (["123", "456", "7890", "👏"], "1234567890", ["👏"]),
    ],
)
def test_the_meeting_id_is_the_leading_ten_digits(args: list[str], meeting_id: str, rest: list[str]) -> None:
    assert split_meeting_id(args) == (meeting_id, rest)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["123", "456", "789"],
        ["123", "456", "78901"],
        ["12345", "hello"],
        ["１２３４５６７８９０"],
        ["-"],
        ["hello"],
    ],
)
def test_anything_but_ten_digits_is_refused(args: list[str]) -> None:
    with pytest.raises(typer.BadParameter):
        split_meeting_id(args)


@pytest.mark.parametrize(
    "argv",
    [
        ["chat", "123", "456", "7890", "hello", "world"],  # a message is one argument
        ["react", "123", "456", "7890"],
        ["react", "123", "456", "7890", "👏", "🎉"],
        ["info", "1234567890", "5"],
        ["join", "12345", "67890", "1"],
    ],
)
def test_left_over_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(typer.BadParameter):
        parse(argv)


def test_the_id_as_meet_create_prints_it_works_unquoted(stack, api, tmp_path: Path) -> None:
    host, guest = api.new_user("Host"), api.new_user("Guest")
    as_host = logged_in(tmp_path / "host", stack.api_url, host)
    as_guest = logged_in(tmp_path / "guest", stack.api_url, guest)
    created = run("create", "--title", "Pieces", env=as_host)
    assert created.returncode == 0, created.stdout + created.stderr
    found = re.search(r"meeting\s+(\d{3} \d{3} \d{4})\npasscode\s+(\w+)", created.stdout)
    assert found, created.stdout
    pieces, passcode = found.group(1).split(), found.group(2)  # as a shell splits it, unquoted

    joined = run(
        "join", *pieces, "--passcode", passcode, "--publish", "none", "--duration", "1", env=as_guest
    )
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "joined via ws://" in joined.stdout
    assert run("chat", *pieces, "hello in pieces", env=as_guest).returncode == 0
    assert run("react", *pieces, "👏", env=as_host).returncode == 0
    history = run("chat", *pieces, env=as_host)
    assert history.returncode == 0 and "Guest: hello in pieces" in history.stdout, history.stdout
    info = run("info", found.group(1).replace(" ", "-"), env=as_host)
    assert info.returncode == 0 and "Pieces: active" in info.stdout, info.stdout
    assert meeting_id_of(pieces) == "".join(pieces)
