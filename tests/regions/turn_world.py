"""The world of the TURN tests: coturn with the control plane, a relay, and clients behind firewalls.

Sites (tests/regions/netns.py; 2 ms one way between any two): 0 the control plane (API, moto, coturn on
the site's address, started by the local stack, TLS on 443), 1 the relay and the direct participant, 2
and 3 the clients behind UDP-dropping firewalls (3 drops TCP to the TURN port too: only TLS is left), 4 a
client that may send TCP to port 443 only. Module-scoped: each test module that uses ``world`` gets one.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
import pytest

from meetup_protocol.metrics import parse as parse_metrics
from tests.conftest import Api
from tests.regions.agents import Agent
from tests.regions.control import ControlPlane
from tests.regions.netns import Wan
from tests.regions.world import needs_namespaces, start_agent

#: ``pytestmark`` of every module in this world.
needs_turn_world = [
    needs_namespaces,
    pytest.mark.skipif(
        shutil.which("iptables") is None, reason="no iptables (Debian: apt-get install iptables)"
    ),
    pytest.mark.skipif(
        shutil.which("turnserver") is None, reason="no turnserver (Debian: apt-get install coturn)"
    ),
]


@dataclass
class TurnWorld:
    wan: Wan
    control: ControlPlane
    api: Api
    turn: dict[str, Any]
    relay: Any

    def relay_metrics(self) -> dict[str, float]:
        return parse_metrics(httpx.get(f"{self.relay.http_url}/metrics", timeout=5).text)


@pytest.fixture(scope="module")
def world() -> Iterator[TurnWorld]:
    with ExitStack() as stack:
        wan = stack.enter_context(Wan(sites=4, delay_ms=2))
        # coturn's TLS listener on 443, as deployed: site 4 reaches nothing else (below).
        control = stack.enter_context(ControlPlane(wan, turn_tls_port=443))
        assert control.turn is not None, "the local stack started no coturn"
        relay = control.add_relay(1, "r1")
        api = control.api()
        stack.callback(api.close)
        # Sites 2 and 3 drop every UDP packet they send (DNS, STUN, RTP, TURN over UDP alike).
        for site in (2, 3):
            firewall(wan, site, "-A", "OUTPUT", "-p", "udp", "-j", "DROP")
        # Site 3 also drops TCP to the TURN port: only TURN over TLS is left to it.
        port = control.turn["urls"][1].split(":")[2].split("?")[0]
        firewall(wan, 3, "-A", "OUTPUT", "-p", "tcp", "--dport", port, "-j", "DROP")
        only_tcp_443(wan, 4, [urlsplit(control.api_url), urlsplit(relay.url)])
        yield TurnWorld(wan, control, api, control.turn, relay)


def firewall(wan: Wan, site: int, *rule: str) -> None:
    done = subprocess.run(wan.command_in(site, ["iptables", *rule]), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def only_tcp_443(wan: Wan, site: int, platform: list[SplitResult]) -> None:
    """``site`` sends nothing but TCP to port 443: no UDP at all, no other TCP port. Only the platform's
    own HTTPS endpoints are let through besides (the API and the relay's signalling, on 443 in the cloud,
    on test ports here): what is tested is media, which then has TURN over TLS on 443 alone."""
    firewall(wan, site, "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT")
    firewall(wan, site, "-A", "OUTPUT", "-p", "tcp", "--dport", "443", "-j", "ACCEPT")
    for url in platform:
        where = ("-d", str(url.hostname), "--dport", str(url.port))
        firewall(wan, site, "-A", "OUTPUT", "-p", "tcp", *where, "-j", "ACCEPT")
    firewall(wan, site, "-A", "OUTPUT", "-j", "DROP")


@contextmanager
def rule_while(wan: Wan, site: int, action: str, *rule: str) -> Iterator[None]:
    """A firewall change in ``site`` for the duration only (the world is shared by the module):
    ``action`` -I adds ``rule`` first in OUTPUT, -D deletes an existing one; undone on exit."""
    firewall(wan, site, action, "OUTPUT", *rule)
    try:
        yield
    finally:
        firewall(wan, site, "-D" if action == "-I" else "-A", "OUTPUT", *rule)


def turn_port(world: TurnWorld) -> str:
    return str(world.turn["urls"][1].split(":")[2].split("?")[0])


def spawn(
    world: TurnWorld,
    stack: ExitStack,
    site: int,
    meeting: dict,
    user: Any,
    name: str,
    args: tuple[str, ...] = (),
    **env: str,
) -> Agent:
    """A participant in ``site`` (no region hint), not waited for: a refused one never gets admitted."""
    # aiortc verifies turns: with the default context: the stack's self-signed certificate.
    env = {"SSL_CERT_FILE": world.turn["cert_path"], **env}
    return start_agent(world, stack, site, user, meeting, name, args=args, env=env)
