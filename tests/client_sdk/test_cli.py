"""The ``meet`` command as users run it: subprocesses, their output, their exit codes, their files."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from local_stack.aws import free_port

MEET = str(Path(sys.executable).with_name("meet"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MEETUP_", "AWS_"))}  # a fresh shell's view


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MEET, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ENV, "COLUMNS": "200", **(env or {})},
    )


def logged_in(home: Path, api_url: str, user: Any) -> dict[str, str]:
    """The environment of a shell where ``user`` (a conftest ``User``) is logged in: the session file
    ``meet login`` writes, without running another login."""
    (home / "meetup-edge").mkdir(parents=True)
    session = {"api_url": api_url, "email": user.email}
    session |= {"access_token": user.access_token, "refresh_token": user.refresh_token}
    (home / "meetup-edge" / "session.json").write_text(json.dumps(session))
    return {"MEETUP_API_URL": api_url, "XDG_CONFIG_HOME": str(home)}


def test_help_everywhere() -> None:
    commands = [
        "register",
        "login",
        "logout",
        "whoami",
        "settings",
        "create",
        "info",
        "join",
        "chat",
        "react",
        "recordings",
        "end",
        "remove",
        "mute",
        "promote",
        "lock",
        "admit",
        "demo",
        "local",
        "load-test",
    ]
    for args in [(), ("--help",), *[(c, "--help") for c in commands], ("local", "up", "--help")]:
        result = run(*args)
        assert "Usage: meet" in result.stdout, (args, result.stdout, result.stderr)


def test_every_command_against_the_local_stack(stack, tmp_path: Path) -> None:
    alice = {"MEETUP_API_URL": stack.api_url, "XDG_CONFIG_HOME": str(tmp_path / "alice")}
    bob = {"MEETUP_API_URL": stack.api_url, "XDG_CONFIG_HOME": str(tmp_path / "bob")}
    tag = str(time.time_ns())[-8:]

    r = run(
        "register",
        "--email",
        f"alice{tag}@example.com",
        "--name",
        "Alice",
        env={**alice, "MEETUP_PASSWORD": "alice-pass-1"},
    )
    assert r.returncode == 0 and "registered and logged in as Alice" in r.stdout, r.stderr
    session = tmp_path / "alice" / "meetup-edge" / "session.json"
    assert stat.S_IMODE(session.stat().st_mode) == 0o600 and "alice-pass-1" not in session.read_text()
    assert (
        run(
            "register",
            "--email",
            f"bob{tag}@example.com",
            "--name",
            "Bob",
            env={**bob, "MEETUP_PASSWORD": "bob-pass-12"},
        ).returncode
        == 0
    )

    assert "Alice <alice" in run("whoami", env=alice).stdout
    r = run("settings", "--name", "Alice A", "--background", "blur", env=alice)
    assert r.returncode == 0 and "Alice A" in r.stdout and "blur" in r.stdout

    r = run("create", "--title", "CLI test", "--duration", "30", env=alice)
    digits = re.search(r"meeting\s+(\d{3}) (\d{3}) (\d{4})", r.stdout)
    passcode = re.search(r"passcode\s+(\w+)", r.stdout)
    assert digits and passcode, r.stdout
    meeting_id = "".join(digits.groups())

    wrong = run("join", meeting_id, "--passcode", "WRONGPASS", "--duration", "1", env=bob)
    assert wrong.returncode == 1 and "wrong_meeting_or_passcode" in wrong.stderr

    host = subprocess.Popen(
        [MEET, "join", meeting_id, "--duration", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**ENV, "COLUMNS": "200", **alice},
    )
    recording = tmp_path / "bob.mp4"
    r = run(
        "join",
        meeting_id,
        "--passcode",
        passcode.group(1),
        "--duration",
        "6",
        "--screen",
        "testsrc",
        "--record",
        str(recording),
        env=bob,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "joined via ws://" in r.stdout and "stored as recording" in r.stdout
    assert re.search(r"media\s+path:\s+direct", r.stdout), r.stdout  # the path is printed
    assert re.search(r"Alice A\s+│\s+camera\s+│\s+\d{2,}", r.stdout), r.stdout  # Bob decoded Alice's camera
    host_out, _ = host.communicate(timeout=60)
    assert re.search(r"Bob\s+│\s+screen\s+│\s+\d+", host_out), host_out  # Alice saw Bob's screen share

    assert run("chat", meeting_id, "hello from the command line", env=bob).returncode == 0
    assert run("react", meeting_id, "👏", env=alice).returncode == 0
    assert "Bob: hello from the command line" in run("chat", meeting_id, env=alice).stdout
    info = run("info", meeting_id, env=alice).stdout
    assert "CLI test" in info and "Bob (guest)" in info

    r = run("recordings", meeting_id, "--download", str(tmp_path / "dl"), env=alice)
    assert r.returncode == 0 and "bob.mp4" in r.stdout
    downloaded = next((tmp_path / "dl").iterdir())
    with av.open(str(downloaded)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 30  # it plays

    r = run("end", meeting_id, env=bob)
    assert r.returncode == 1 and "not_host" in r.stderr
    assert "ended (host_ended)" in run("end", meeting_id, env=alice).stdout
    assert run("logout", env=alice).returncode == 0 and not session.exists()
    assert run("whoami", env=alice).returncode != 0
    r = run("login", "--email", f"alice{tag}@example.com", env={**alice, "MEETUP_PASSWORD": "alice-pass-1"})
    assert r.returncode == 0 and session.exists()


def test_demo_runs_a_whole_meeting_on_the_local_stack() -> None:
    result = run("demo", "--seconds", "4", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in (
        "local stack up",
        "wrong passcode refused",
        "Alice joined as host",
        "3 messages stored (the retried send once), 2 reactions",
        "Bob and Carol were told: host_ended",
        "the relays cascade the meeting: 2 relays, 1 link between them",
        "a later join is refused",
        "demo finished",
    ):
        assert expected in out, (expected, out)
    for viewer, sender, track in (
        ("Alice", "Bob", "camera"),
        ("Bob", "Carol", "screen"),
        ("Carol", "Alice", "microphone"),  # Carol is on the other relay: across the cascade
    ):
        assert re.search(rf"{viewer}\s+│\s+{sender}\s+│\s+{track}\s+│\s+[1-9]\d*", out), (
            viewer,
            sender,
            track,
            out,
        )
    assert "Traceback" not in result.stderr


def test_local_up_serves_until_interrupted_and_cleans_up() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [MEET, "local", "up", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**ENV, "COLUMNS": "200"},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        r = httpx.post(
            f"http://127.0.0.1:{port}/auth/register",
            json={"email": "cli@example.com", "password": "password-1", "display_name": "Cli"},
        )
        assert r.status_code == 201
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}" in out and "stopped." in out
    urls = re.findall(r"(?:AWS|relay)\s+(\S+)", out)
    assert len(urls) == 2, out  # moto and one relay
    for url in urls:
        health = url.replace("ws://", "http://").replace("/ws", "/healthz")
        try:
            httpx.get(health, timeout=2)
            raise AssertionError(f"{url} still answers after Ctrl-C")
        except httpx.TransportError:
            pass


async def test_meet_join_prints_a_media_path_change(capsys: pytest.CaptureFixture[str]) -> None:
    """What ``meet join`` shows when the meeting reports a move (the event itself: test_turn_failover)."""
    from client_sdk.cli.join import Observer
    from client_sdk.client import Client
    from client_sdk.meeting import Meeting, MeetingEvent

    client = Client("http://127.0.0.1:9")  # never called: nothing here talks to the API
    meeting = Meeting(client, "m", {}, None, "video/VP8")
    Observer(meeting, None)
    change = {"path": "turn/tls", "previous": "turn/tcp", "relay": "ws://r/ws [bold]x[/]"}
    await meeting._emit(MeetingEvent("media_path_changed", change))
    await client.aclose()
    assert "media path: turn/tcp -> turn/tls (via ws://r/ws [bold]x[/])" in capsys.readouterr().out
