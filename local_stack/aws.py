"""moto's server as a child process: the local DynamoDB + S3 endpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """moto's server (serialised: see moto_serial) on a free loopback port; ``url`` is what
    ``AWS_ENDPOINT_URL`` points at. ``module`` is the server to run: ``local_stack.moto_iam`` for one
    that authorises DynamoDB per table (tests/infra/test_iam_enforced.py)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, module: str = "local_stack.moto_serial"
    ) -> None:
        self.module = module
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--host", self.host, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MOTO_PORT": str(self.port)},
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._proc.returncode}")
            try:
                httpx.get(f"{self.url}/moto-api/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"moto server did not answer on {self.url} within {timeout_s} s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
