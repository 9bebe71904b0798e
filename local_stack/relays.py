"""Relays of the local stack: one ``python -m edge_relay`` process per region, on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from local_stack.aws import free_port


class RelayProcess:
    def __init__(
        self,
        region: str,
        join_public_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        probe_delay_ms: float = 0.0,
        netns: str | None = None,
        env: dict[str, str] | None = None,
        command_prefix: list[str] | None = None,
    ) -> None:
        self.region = region
        #: Run the relay under this (e.g. ``faketime -f +600s``: a relay whose wall clock is wrong).
        self.command_prefix = list(command_prefix or [])
        #: Run inside this network namespace (``ip netns exec``): the multi-region tests.
        self.netns = netns
        self.host = host
        self.port = port or (free_port(host) if netns is None else 7001)
        #: The relay's TLS endpoint for links from other relays (see edge_relay/cluster/link_tls.py).
        self.cascade_port = free_port(host) if netns is None else 7443
        self.url = f"ws://{host}:{self.port}/ws"
        self.http_url = f"http://{host}:{self.port}"
        self._env = {
            **os.environ,
            "MEETUP_JOIN_PUBLIC_KEY": join_public_key,
            "MEETUP_RELAY_HOST": host,
            "MEETUP_RELAY_PORT": str(self.port),
            "MEETUP_RELAY_REGION": region,
            "MEETUP_RELAY_ICE_ADDRESSES": "127.0.0.1",
            "MEETUP_RELAY_DRAIN_GRACE_S": os.environ.get("MEETUP_RELAY_DRAIN_GRACE_S", "2"),
            "MEETUP_RELAY_PROBE_DELAY_MS": str(probe_delay_ms),
            # Registry heartbeats go to the same (moto) DynamoDB as the API, when the stack set one up.
            "MEETUP_RELAY_REGISTRY": "true" if "AWS_ENDPOINT_URL" in os.environ else "false",
            # One cluster (gossip, cascades) when the stack shares a secret: seeds come from the registry.
            "MEETUP_RELAY_CLUSTER": "true" if os.environ.get("MEETUP_CLUSTER_SECRET") else "false",
            "MEETUP_RELAY_CLUSTER_PRESET": "local",
            "MEETUP_RELAY_CLUSTER_PORT": "0",
            "MEETUP_RELAY_CASCADE_PORT": str(self.cascade_port),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        log_level = os.environ.get("MEETUP_RELAY_LOG_LEVEL")
        stderr = None if log_level else subprocess.DEVNULL
        command = [*self.command_prefix, sys.executable, "-m", "edge_relay"]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        self.proc = subprocess.Popen(command, env=self._env, stderr=stderr)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay {self.region} exited with code {self.proc.returncode}")
            try:
                # Up once it answers: 503 is an answer too (a relay that found its clock wrong).
                if httpx.get(f"{self.http_url}/healthz", timeout=1).status_code in (200, 503):
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"relay {self.region} did not answer within {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL: the relay vanishes without a word (no drain, no deregistration)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(signal.SIGINT)  # immediate stop; SIGTERM would drain first
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
