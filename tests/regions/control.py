"""The control plane of a multi-region test: the API and moto in site 0, relays in region namespaces.

The local stack runs in its own process (``python -m tests.regions.control --host IP``), not in the test
process: ``LocalStack`` configures the functions through ``os.environ`` (AWS endpoint, JWT secret, join
key), which would repoint the session-wide ``stack`` fixture of tests/conftest.py if both lived in one
process. The child prints one JSON line (``api_url``, ``aws_url``, ``join_public_key``, ``aws_env``), then
answers ``wait_registered URL`` lines with ``ok`` or ``error ...`` and stops on stdin EOF.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from typing import Any

from tests.regions.netns import REPO, Wan


class ControlPlane:
    """``with ControlPlane(wan) as cp: cp.add_relay(1, "r1"); api = cp.api()``."""

    def __init__(self, wan: Wan, timeout_s: float = 60.0, turn_tls_port: int = 0) -> None:
        self.wan = wan
        #: coturn's TLS port (0: a free one); 443, as deployed, where a test needs it.
        self.turn_tls_port = turn_tls_port
        self.timeout_s = timeout_s
        self.info: dict[str, Any] = {}
        self.relays: list[Any] = []  # local_stack.relays.RelayProcess
        self.proc: subprocess.Popen[str] | None = None

    @property
    def api_url(self) -> str:
        return self.info["api_url"]

    @property
    def turn(self) -> dict[str, Any] | None:
        """The control plane's coturn: ``{"urls", "cert_path", "secret"}``, or None (not installed)."""
        return self.info.get("turn")

    def start(self) -> ControlPlane:
        argv = [sys.executable, "-m", "tests.regions.control", "--host", self.wan.site_ip(0)]
        argv += ["--turn-tls-port", str(self.turn_tls_port)]
        self.proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the stack starts in a few seconds, or the child exits
        if not line.startswith("{"):
            self.stop()
            raise RuntimeError(f"the control plane did not start: {line!r}")
        self.info = json.loads(line)
        return self

    def _ask(self, line: str) -> str:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def add_relay(self, site: int, region: str, env: dict[str, str] | None = None) -> Any:
        """A relay in ``site``'s namespace, on the site's address (ICE host candidates included), heart-
        beating into this control plane's registry; returns once the API can offer it."""
        from local_stack.relays import RelayProcess

        ip = self.wan.site_ip(site)
        relay_env = {
            **self.info["aws_env"],
            "MEETUP_RELAY_REGISTRY": "true",
            "MEETUP_RELAY_ICE_ADDRESSES": ip,  # RelayProcess defaults to 127.0.0.1
            "MEETUP_RELAY_CLUSTER": "false",
            "MEETUP_RELAY_METRICS_FROM": "0.0.0.0/0",  # the test scrapes from the control site
            **(env or {}),
        }
        relay = RelayProcess(
            region, self.info["join_public_key"], host=ip, netns=self.wan.netns(site), env=relay_env
        )
        relay.start()
        self.relays.append(relay)
        answer = self._ask(f"wait_registered {relay.url}")
        if answer != "ok":
            raise RuntimeError(f"relay {relay.url} did not register: {answer}")
        return relay

    def api(self) -> Any:
        """tests/conftest.py's ``Api`` (users, meetings) against this control plane."""
        from tests.conftest import Api

        return Api(self.api_url, source_ip=self.wan.site_ip(0))

    def stop(self) -> None:
        for relay in self.relays:
            relay.stop()
        self.relays = []
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_registered(url: str, timeout_s: float = 20.0) -> None:
    """Until the relay at ``url`` is in the registry, and the API's registry cache has expired."""
    from functions.models import RelayModel
    from functions.services.relays import CACHE_S

    deadline = time.monotonic() + timeout_s
    while not any(r.url == url for r in RelayModel.scan(consistent_read=True)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"relay {url} did not register within {timeout_s} s")
        time.sleep(0.05)
    time.sleep(CACHE_S + 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description="The local stack (API, moto) for multi-region tests.")
    parser.add_argument("--host", required=True)
    parser.add_argument("--turn-tls-port", type=int, default=0, help="coturn's TLS port (0: a free one)")
    args = parser.parse_args()
    from local_stack.stack import MANY_USERS_FROM_ONE_ADDRESS, LocalStack

    stack = LocalStack(
        host=args.host,
        relay_regions=[],
        settings=MANY_USERS_FROM_ONE_ADDRESS,
        turn_tls_port=args.turn_tls_port,
    ).start()
    try:
        aws_env = {k: v for k, v in stack.env.items() if k.startswith("AWS_")}
        info = {"api_url": stack.api_url, "aws_url": stack.aws_url, "join_public_key": stack.join_public_key}
        # coturn (where installed) on this site's address: its URLs, its certificate, and its secret (the
        # TURN tests make expired credentials with it; it goes to the parent test only, over this pipe).
        turn = stack.turn_server
        info["turn"] = (
            {"urls": turn.urls, "cert_path": str(turn.cert_path), "secret": turn.secret} if turn else None
        )
        print(json.dumps({**info, "aws_env": aws_env}), flush=True)
        for line in sys.stdin:
            verb, _, arg = line.strip().partition(" ")
            try:
                if verb == "wait_registered":
                    wait_registered(arg)
                    print("ok", flush=True)
                else:
                    print(f"error unknown command {verb}", flush=True)
            except Exception as exc:
                print(f"error {exc!r}", flush=True)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
