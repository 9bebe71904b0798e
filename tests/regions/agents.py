"""Drive participant agents (agent.py) from a test: spawn one in a site, read its status, send commands.

with Agent(wan, 2, api=cp.api_url, user=user, meeting_id=mid, passcode=pc, region="r2") as bob:
    status = bob.wait_for(lambda s: s["participants"], 20)
    bob.send("chat hello")
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.regions.netns import Wan

Status = dict[str, Any]


class AgentFailed(AssertionError):
    """The agent exited, or its status never satisfied the predicate; carries its last status and stderr."""


class Agent:
    def __init__(
        self,
        wan: Wan,
        site: int,
        *,
        api: str,
        access_token: str,
        refresh_token: str,
        meeting_id: str,
        passcode: str | None = None,
        region: str | None = None,
        name: str = "agent",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        argv = [sys.executable, "-m", "tests.regions.agent", "--api", api, "--meeting", meeting_id]
        argv += ["--name", name, *(["--passcode", passcode] if passcode else [])]
        argv += [*(["--region", region] if region else []), *args]
        env = {
            **os.environ,
            "MEETUP_AGENT_ACCESS_TOKEN": access_token,
            "MEETUP_AGENT_REFRESH_TOKEN": refresh_token,
            **(env or {}),
        }
        self.name = name
        self.site = site
        self._status: Status = {}
        self._changed = threading.Condition()
        self.stderr: collections.deque[str] = collections.deque(maxlen=200)
        self.proc = wan.run_in(
            site,
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read_status, daemon=True, name=f"{name}-status").start()
        threading.Thread(target=self._read_stderr, daemon=True, name=f"{name}-stderr").start()

    @classmethod
    def for_user(cls, wan: Wan, site: int, user: Any, **kwargs: Any) -> Agent:
        """With a tests.conftest ``User``'s tokens."""
        return cls(wan, site, access_token=user.access_token, refresh_token=user.refresh_token, **kwargs)

    def _read_status(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                status = json.loads(line)
            except ValueError:
                self.stderr.append(f"(stdout) {line.rstrip()}")
                continue
            with self._changed:
                self._status = status
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()  # EOF: waiters look at the exit code

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def latest(self) -> Status:
        """The most recent status line (``{}`` before the first)."""
        with self._changed:
            return self._status

    def wait_for(self, predicate: Callable[[Status], Any], timeout_s: float = 20.0) -> Status:
        """The first status (the latest included) for which ``predicate`` is true; raises AgentFailed
        when the time runs out or the agent exits first."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                status = self._status
                if status and "error" not in status:
                    try:
                        if predicate(status):
                            return status
                    except (KeyError, TypeError, IndexError):
                        pass
                left = deadline - time.monotonic()
                if "error" in status or left <= 0 or self.proc.poll() is not None:
                    what = "could not join" if "error" in status else "exited" if left > 0 else "timed out"
                    raise AgentFailed(self._describe(what))
                self._changed.wait(min(left, 0.5))

    def _describe(self, what: str) -> str:
        tail = "\n".join(list(self.stderr)[-20:])
        head = f"agent {self.name} (site {self.site}) {what}: exit={self.proc.poll()}"
        return f"{head} status={self._status}\n{tail}"

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def frames_from(self, participant_id: str, kind: str) -> int:
        return self.latest().get("frames", {}).get(participant_id, {}).get(kind, 0)

    def stop(self, timeout_s: float = 15.0) -> int:
        """``quit`` (leave the meeting and exit), then EOF; killed if it does not exit in time."""
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.stdin.close()  # type: ignore[union-attr]
            except OSError:  # it is exiting already
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
