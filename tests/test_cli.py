"""The ``meet`` command as users run it: a subprocess, its output and its exit code."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from local_stack.aws import free_port

MEET = str(Path(sys.executable).with_name("meet"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MEETUP_", "AWS_"))}  # a fresh shell's view


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MEET, *args], capture_output=True, text=True, timeout=timeout, env={**ENV, "COLUMNS": "200"}
    )


def test_help_everywhere() -> None:
    for args in ((), ("--help",), ("local", "--help"), ("local", "up", "--help"), ("demo", "--help")):
        result = run(*args)
        assert "Usage: meet" in result.stdout, (args, result.stdout, result.stderr)
    assert result.returncode == 0


def test_demo_runs_a_whole_meeting_on_the_local_stack() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for expected in (
        "local stack up",
        "wrong passcode refused",
        "Alice joined as host",
        "Bob joined as guest",
        "2 messages stored (the retry was not duplicated), 2 reactions",
        "status ended (host_ended)",
        "a later join is refused",
        "demo finished",
    ):
        assert expected in out, (expected, out)
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
    aws = re.search(r"AWS\s+(http://127\.0\.0\.1:\d+)", out)
    assert aws, out
    try:
        httpx.get(aws.group(1), timeout=2)
        raise AssertionError("moto is still running after Ctrl-C")
    except httpx.TransportError:
        pass
