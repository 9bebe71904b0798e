"""The WAN router (wan.py) from tests: ``with Wan() as wan: wan.delay(1, 2, 40); wan.run_in(2, argv)``.

Sites: 0 is this (root) namespace, 1..N are region namespaces. Every site has one address,
``wan.site_ip(n)``; any site reaches any other through the router, with the delays and cuts set here.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.regions.wan import kill_namespace_processes

REPO = Path(__file__).resolve().parents[2]
IP = shutil.which("ip") or "/usr/sbin/ip"


def wan_available() -> tuple[bool, str]:
    """(True, "") where the router can run; else (False, why), for ``pytest.skip``."""
    if sys.platform != "linux":
        return False, "network namespaces and TUN devices need Linux"
    if os.geteuid() != 0:
        return False, "the WAN router needs root (TUN devices, network namespaces)"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return False, "no /dev/net/tun"
    if shutil.which("ip") is None:
        return False, "no `ip` binary (Debian: iproute2)"
    return True, ""


def free_prefix() -> str:
    """A ``10.X`` /16 no route of this machine covers yet, so parallel runs do not collide. Each pytest-xdist
    worker searches its own range (two workers checking at the same moment would pick the same one)."""
    routes = subprocess.run([IP, "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    addrs = subprocess.run([IP, "-4", "-o", "addr"], capture_output=True, text=True)
    used = set(re.findall(r"\b10\.(\d+)\.", routes.stdout + addrs.stdout))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    start = 77 + 12 * (worker % 4)
    for second in [*range(start, 127), *range(77, start)]:
        if str(second) not in used:
            return f"10.{second}"
    raise RuntimeError("no free 10.X.0.0/16 for the WAN")


class Wan:
    """The router subprocess. Use as a context manager; ``close()`` removes its namespaces (and ends any
    process left in them)."""

    def __init__(
        self,
        sites: int = 3,
        delay_ms: float = 20.0,
        control_delay_ms: float = 0.0,
        name: str | None = None,
        prefix: str | None = None,
        ready_timeout_s: float = 20.0,
    ) -> None:
        self.sites = sites
        self.delay_ms = delay_ms
        self.control_delay_ms = control_delay_ms
        self.name = name or f"meet-{secrets.token_hex(3)}"
        self.prefix = prefix
        self.ready_timeout_s = ready_timeout_s
        self.info: dict[str, Any] = {}
        self.proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._lines: queue.Queue[str] = queue.Queue()

    def start(self) -> Wan:
        ok, why = wan_available()
        if not ok:
            raise RuntimeError(why)
        for attempt in range(3):  # another run may take the same /16 between the check and the route
            prefix = self.prefix or free_prefix()
            argv = [sys.executable, "-m", "tests.regions.wan", "--sites", str(self.sites)]
            argv += ["--prefix", prefix, "--name", self.name, "--delay-ms", str(self.delay_ms)]
            argv += ["--control-delay-ms", str(self.control_delay_ms)]
            self.proc = subprocess.Popen(
                argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
            )
            self._lines = queue.Queue()
            threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True).start()
            line = self._readline(self.ready_timeout_s)
            if line.startswith("ready "):
                self.prefix = prefix
                self.info = json.loads(line[len("ready ") :])
                return self
            self.close()
            if self.prefix is not None or attempt == 2:
                break
        raise RuntimeError(f"the WAN router did not start (last line: {line!r}; see its stderr)")

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put("")  # EOF

    def _readline(self, timeout_s: float) -> str:
        """The router's next stdout line, or "" on EOF or timeout."""
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return ""

    def command(self, line: str, timeout_s: float = 5.0) -> str:
        """Send one control line; returns the ``ok ...`` answer (raises on ``error ...``)."""
        with self._lock:
            if self.proc is None or self.proc.stdin is None:
                raise RuntimeError("the WAN router is not running")
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self._readline(timeout_s)
        if not answer.startswith("ok"):
            raise RuntimeError(f"WAN router: {line!r} -> {answer!r}")
        return answer

    def delay(self, a: int, b: int, ms: float, oneway: bool = False) -> None:
        """One-way delay from a to b (and b to a unless ``oneway``): RTT between them is twice that."""
        self.command(f"delay {a} {b} {ms}" + (" oneway" if oneway else ""))

    def loss(self, a: int, b: int, percent: float, oneway: bool = False) -> None:
        self.command(f"loss {a} {b} {percent}" + (" oneway" if oneway else ""))

    def cut(self, a: int, b: int, oneway: bool = False) -> None:
        """Partition: every packet between a and b is dropped (including those in flight)."""
        self.command(f"cut {a} {b}" + (" oneway" if oneway else ""))

    def heal(self, a: int, b: int, oneway: bool = False) -> None:
        self.command(f"heal {a} {b}" + (" oneway" if oneway else ""))

    def stats(self) -> dict[str, Any]:
        """``{"pairs": {"A>B": {"forwarded", "bytes", "dropped", "queued"}}, "ignored": n}``."""
        return json.loads(self.command("stats")[len("ok ") :])

    def site_ip(self, n: int) -> str:
        return f"{self.prefix}.{n}.1"

    def netns(self, n: int) -> str | None:
        """The namespace of site n (None for site 0, the root namespace)."""
        self._check_site(n)
        return None if n == 0 else f"{self.name}-r{n}"

    def _check_site(self, n: int) -> None:
        if not 0 <= n <= self.sites:
            raise ValueError(f"no site {n} (sites are 0..{self.sites})")

    def command_in(self, n: int, argv: list[str]) -> list[str]:
        """``argv`` run in site n's namespace (``ip netns exec``; as is for site 0)."""
        ns = self.netns(n)
        return [IP, "netns", "exec", ns, *argv] if ns else list(argv)

    def run_in(self, n: int, argv: list[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in site n; ``ip netns exec`` execs it, so the Popen's pid is the process."""
        popen_kwargs.setdefault("cwd", REPO)
        return subprocess.Popen(self.command_in(n, argv), **popen_kwargs)

    def close(self, timeout_s: float = 15.0) -> None:
        """Stop the router: on stdin EOF it removes its namespaces and ends what was left in them."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # The router cleans up after itself; should it have died (SIGKILL), do it here.
        listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout.split()
        left = [ns for n in range(1, self.sites + 1) if (ns := f"{self.name}-r{n}") in listed]
        kill_namespace_processes(left)
        for ns in left:
            subprocess.run([IP, "netns", "del", ns], capture_output=True)

    def __enter__(self) -> Wan:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
