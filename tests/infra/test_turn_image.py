"""The TURN image (infra/turn): its Dockerfile is hadolint-clean and says what the TURN service relies on,
and its entrypoint, run here as the container runs it (the same script, the same Debian coturn, the same
secret sync), accepts credentials signed with the current and the previous TURN secret and refuses one
signed with a retired secret, across rotations made by the real rotation function while it runs.

Only AWS is mocked (moto's Secrets Manager server); coturn and the TURN allocations (aioice) are real.
The entrypoint's addresses are given (TURN_PRIVATE_IP / TURN_PUBLIC_IP = 127.0.0.1): the ECS metadata and
public STUN servers it asks in a task are not reachable here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_stack.turn import free_udp_tcp_port, turnserver_binary
from meetup_protocol.turn import turn_credentials
from tests.infra.synth import REPO
from tests.infra.test_dockerfile import _hadolint
from tests.infra.turn_rotation import REGION, rotate
from tests.local_stack.test_turn import allocate

IMAGE = REPO / "infra" / "turn"
NAME = "meetup-edge/turn-auth-key"
REALM = "turn.meetup.test"
SYNC_S = 0.3

needs_coturn = pytest.mark.skipif(
    turnserver_binary() is None, reason="no turnserver (Debian: apt-get install coturn; ./dev installs it)"
)


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(IMAGE / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_the_entrypoint_as_a_fixed_non_root_user_with_a_health_check() -> None:
    text = re.sub(r"\\\n\s*", " ", (IMAGE / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    by_kind: dict[str, list[str]] = {}
    for line in lines:
        kind, args = line.split(None, 1)
        by_kind.setdefault(kind, []).append(args)
    assert by_kind["FROM"] == ["debian:bookworm-slim"]
    assert by_kind["USER"] == ["10002:10002"]
    assert "coturn=" in by_kind["RUN"][0]  # Debian's coturn, pinned: the one these tests run
    assert by_kind["ENTRYPOINT"] == ['["/opt/meetup-turn/entrypoint.sh"]']
    assert by_kind["HEALTHCHECK"][0].endswith('CMD ["/opt/meetup-turn/healthcheck.sh"]')
    assert {"3478/udp", "3478/tcp"} <= set(by_kind["EXPOSE"])
    copied = by_kind["COPY"][0].split()[:-1]
    assert {IMAGE / name for name in copied} == {p for p in IMAGE.iterdir() if p.name != "Dockerfile"}
    for script in ("entrypoint.sh", "healthcheck.sh"):
        assert os.access(IMAGE / script, os.X_OK), script


@pytest.fixture
def secrets_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, dict[str, str]]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto's backends are the process's: start from none of an earlier test's secrets
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"))
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for key, value in {**env, "TURN_SYNC_WAIT_S": "0"}.items():
        monkeypatch.setenv(key, value)
    try:
        yield boto3.client("secretsmanager", region_name=REGION), env
    finally:
        server.stop()


class Entrypoint:
    """infra/turn/entrypoint.sh as a process group (coturn and the sync loop it leaves running)."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.port = free_udp_tcp_port("127.0.0.1")
        self.log = tmp / "turn.log"
        self.env = {
            **os.environ,
            **env,
            "TURN_REALM": REALM,
            "TURN_SECRET_ID": NAME,
            "TURN_PORT": str(self.port),
            "TURN_MIN_PORT": "49700",
            "TURN_MAX_PORT": "49799",
            "TURN_DB": str(tmp / "turndb"),
            "TURN_HOME": str(IMAGE),
            "TURN_PYTHON": sys.executable,
            "TURN_SYNC_S": str(SYNC_S),
            "TURN_PRIVATE_IP": "127.0.0.1",
            "TURN_PUBLIC_IP": "127.0.0.1",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """For entrypoints that must fail: their exit, bounded (generously: boto3 alone takes seconds to
        import on a loaded machine)."""
        return subprocess.run(
            [str(IMAGE / "entrypoint.sh")], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )

    def start(self, timeout_s: float = 30.0) -> Entrypoint:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(IMAGE / "entrypoint.sh")], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if b"Total General servers" in self.log.read_bytes() or self._listening():
                return self
            time.sleep(0.05)
        raise TimeoutError(self.log.read_text())

    def _listening(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.3):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the sync loop, if still there

    def accepts(self, secret: str, transport: str = "udp") -> bool:
        username, credential = turn_credentials(secret, "p_test", int(time.time()) + 60)
        url = f"turn:127.0.0.1:{self.port}?transport={transport}"
        result = asyncio.run(allocate(url, username, credential))
        assert result == "relayed 127.0.0.1" or "401" in result, result
        return result == "relayed 127.0.0.1"


def _wait_until(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@needs_coturn
def test_coturn_accepts_current_and_previous_secrets_and_refuses_retired_ones_across_rotations(
    secrets_server: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    client, env = secrets_server
    client.create_secret(Name=NAME, SecretString="first" + "x" * 40)
    retired = client.get_secret_value(SecretId=NAME)["SecretString"]
    previous = rotate(client, NAME)
    current = rotate(client, NAME)
    turn = Entrypoint(env, tmp_path).start()
    try:
        for transport in ("udp", "tcp"):
            assert turn.accepts(current, transport)
            assert turn.accepts(previous, transport)
            assert not turn.accepts(retired, transport)
        # A rotation while coturn runs: no restart, the sync brings the new secret in and the retired out.
        newest = rotate(client, NAME)
        assert _wait_until(lambda: turn.accepts(newest) and not turn.accepts(previous))
        assert turn.accepts(current)
        assert turn.proc is not None and turn.proc.poll() is None
        # The health check the container runs passes (STUN answered on the port, sync fresh).
        health = subprocess.run(
            [str(IMAGE / "healthcheck.sh")], env=turn.env, capture_output=True, text=True, timeout=10
        )
        assert health.returncode == 0, health.stderr
    finally:
        turn.stop()
    log = turn.log.read_text()
    assert "TURN secrets updated" in log and retired not in log and current not in log  # never a value


@needs_coturn
def test_the_entrypoint_refuses_to_start_without_its_secret(
    secrets_server: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    """No secret (wrong name, no access): the task exits at once with the reason, never serves TURN
    that refuses everyone, never hangs."""
    _, env = secrets_server
    turn = Entrypoint(env, tmp_path)
    result = turn.run()
    assert result.returncode != 0
    assert "ResourceNotFoundException" in result.stderr
    result = Entrypoint({**env, "TURN_SECRET_ID": ""}, tmp_path)
    result.env["TURN_SECRET_ID"] = ""
    failed = result.run()
    assert failed.returncode != 0 and "TURN_SECRET_ID is required" in failed.stderr


@needs_coturn
def test_the_entrypoint_learns_its_addresses_from_task_metadata_and_stun(
    secrets_server: tuple[Any, dict[str, str]], tmp_path: Path
) -> None:
    """As in a task: no address given. The private one comes from the ECS task metadata endpoint (a local
    HTTP server answering as Fargate's does: AWS mocked), the public one from the first STUN server that
    answers (a silent one is skipped within its bound; a real coturn answers), and coturn advertises it."""
    import http.server
    import threading

    from local_stack.turn import TurnServer

    class Metadata(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["127.0.0.1"]}]})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    client, env = secrets_server
    client.create_secret(Name=NAME, SecretString="s" * 48)
    metadata = http.server.HTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=metadata.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    stun = TurnServer().start()
    silent = free_udp_tcp_port("127.0.0.1")
    turn = Entrypoint(env, tmp_path)
    for name in ("TURN_PRIVATE_IP", "TURN_PUBLIC_IP"):
        del turn.env[name]
    turn.env["ECS_CONTAINER_METADATA_URI_V4"] = f"http://127.0.0.1:{metadata.server_port}/v4/task-1"
    turn.env["TURN_STUN_SERVERS"] = f"localhost:{silent} 127.0.0.1:{stun.port}"
    try:
        turn.start(timeout_s=40)
        assert turn.accepts("s" * 48)
        assert turn.proc is not None  # the entrypoint exec'd coturn: its command line is this process's
        argv = Path(f"/proc/{turn.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--external-ip=127.0.0.1/127.0.0.1" in argv and b"--listening-ip=127.0.0.1" in argv
    finally:
        turn.stop()
        stun.stop()
        metadata.shutdown()
        metadata.server_close()
    log = turn.log.read_text()
    assert "turn: public address 127.0.0.1, private address 127.0.0.1" in log
