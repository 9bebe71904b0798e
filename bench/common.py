"""Shared pieces of the benchmarks: the stack under test, CPU accounting, percentiles, set-up helpers.

The API runs in its own process (``python -m uvicorn``) so that the load generator and the server do not
share a GIL; moto (the DynamoDB + S3 stand-in) is a third process. On a shared 2-core machine wall-clock
throughput moves with whatever else runs, so every phase also reads the CPU time those processes spent
(``/proc/<pid>/stat``, Linux only) and reports it per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from local_stack import LocalStack
from local_stack.aws import free_port
from local_stack.stack import MANY_USERS_FROM_ONE_ADDRESS

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (resolution 1/CLK_TCK, usually 10 ms)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces; the fields after its closing paren are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK


def threads_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process's live threads at nanosecond resolution (``/proc/<pid>/task/*/schedstat``),
    for a process that spends too little for /proc/<pid>/stat's 10 ms ticks (coturn relaying a few
    streams). Threads that have exited are not counted: only for processes whose threads live on."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def child_pid(cmd_fragment: str) -> int | None:
    """The pid of this process's child whose command line contains ``cmd_fragment``."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if ppid == me and cmd_fragment in cmdline:
            return int(entry.name)
    return None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN for an empty list."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class CpuSnapshot:
    """CPU seconds of the processes involved in a measurement, taken at one instant."""

    api: float
    aws: float
    client: float
    wall: float

    def __sub__(self, other: CpuSnapshot) -> CpuSnapshot:
        return CpuSnapshot(
            self.api - other.api, self.aws - other.aws, self.client - other.client, self.wall - other.wall
        )


@dataclass
class BenchStack:
    """moto (via ``LocalStack.configure``) plus the API under uvicorn in a child process."""

    #: Relays the stack starts (they register themselves; the API offers them on join).
    relay_regions: list[str] = field(default_factory=lambda: ["local", "eu-west-1"])
    host: str = "127.0.0.1"
    local: LocalStack = field(init=False)
    api_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    api_pid: int = 0
    aws_pid: int = 0
    aws_url: str = ""
    _api: subprocess.Popen[bytes] | None = None
    _log: Any = None

    def start(self, timeout_s: float = 30.0) -> BenchStack:
        self.local = LocalStack(
            host=self.host, relay_regions=self.relay_regions, settings=MANY_USERS_FROM_ONE_ADDRESS
        )
        try:
            self.local.configure()  # moto and relays up, env in os.environ, tables + bucket created
        except BaseException:
            self.local.stop()  # no orphaned moto or relay processes
            raise
        self.aws_url = self.local.aws_url
        self.aws_pid = child_pid("moto") or 0
        self.env = {**os.environ, **self.local.env}
        port = free_port(self.host)
        self.api_url = f"http://{self.host}:{port}"
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the server; closed in stop())
        # stdout (Powertools' JSON request log) is discarded: writing it is part of the measured cost.
        cmd = (
            f"-m uvicorn functions.app:create_app --factory --log-level warning --no-access-log --port {port}"
        )
        self._api = subprocess.Popen(
            [sys.executable, *cmd.split(), "--host", self.host],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.api_pid = self._api.pid
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._api.poll() is not None:
                raise RuntimeError(
                    f"the API server exited with code {self._api.returncode}:\n{self.server_log()}"
                )
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"the API server did not answer on {self.api_url} within {timeout_s} s")

    def server_log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def cpu(self) -> CpuSnapshot:
        return CpuSnapshot(
            api=proc_cpu_seconds(self.api_pid),
            aws=proc_cpu_seconds(self.aws_pid) if self.aws_pid else float("nan"),
            client=time.process_time(),
            wall=time.perf_counter(),
        )

    def stop(self) -> None:
        if self._api is not None:
            self._api.terminate()
            try:
                self._api.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._api.kill()
                self._api.wait()
            self._api = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.local.stop()

    def __enter__(self) -> BenchStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- set-up over HTTP ------------------------------------------------------------------------------------


@dataclass
class Account:
    user_id: str
    email: str
    password: str
    access_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def _check(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json() if response.content else {}


async def gather_limited(jobs: Iterable[Callable[[], Awaitable[T]]], limit: int = 4) -> list[T]:
    """Run coroutine factories with at most ``limit`` in flight (set-up must not trip the throttles)."""
    gate = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def new_account(http: httpx.AsyncClient, name: str = "Bench") -> Account:
    email = f"{name.lower()}-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(12)
    body = {"email": email, "password": password, "display_name": name}
    _check(await http.post("/auth/register", json=body), 201)
    tokens = _check(await http.post("/auth/login", json={"email": email, "password": password}), 200)
    return Account(tokens["user"]["user_id"], email, password, tokens["access_token"])


async def new_meeting(http: httpx.AsyncClient, host: Account, max_participants: int = 300) -> dict[str, Any]:
    body = {"title": "Bench meeting", "max_participants": max_participants, "max_duration_minutes": 120}
    return _check(await http.post("/meetings", json=body, headers=host.auth), 201)


async def join(http: httpx.AsyncClient, meeting: dict[str, Any], who: Account) -> dict[str, Any]:
    url = f"/meetings/{meeting['meeting_id']}/join"
    return _check(await http.post(url, json={"passcode": meeting["passcode"]}, headers=who.auth), 200)


def loopback_address(index: int) -> str:
    """A distinct 127.x.y.z source address per simulated client (Linux routes all of 127/8 to lo).

    The join route throttles passcode attempts per client IP (slots are reserved while a request is in
    flight), so many concurrent clients behind one address would measure the throttle, not the API.
    """
    n = index + 10
    return f"127.0.{n // 250}.{n % 250 + 2}"
