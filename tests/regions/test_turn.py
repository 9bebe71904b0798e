"""TURN for real: a client whose network drops outbound UDP (iptables in its namespace) joins through the
control plane's coturn and sees and hears a participant who is connected directly, and is seen and heard
by them: over TCP, and, with TCP to the TURN port dropped too (only TLS open), over TLS. An expired and a
forged TURN credential are refused by coturn and the SDK says so (TurnRefused) within its bound.

Sites (tests/regions/netns.py; 2 ms one way between any two): 0 the control plane (API, moto, coturn on
the site's address, started by the local stack, TLS on 443), 1 the relay and the direct participant, 2
and 3 the clients behind UDP-dropping firewalls, 4 a client that may send TCP to port 443 only. Each
agent reports its media path and its time to connect (from asking the API to join to media flowing);
the test prints them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpx
import pytest

from client_sdk.meeting import PATH_SWITCH_BOUND_S
from client_sdk.rtc.paths import DIRECT_TIMEOUT_S, PROBE_TIMEOUT_S
from meetup_protocol.metrics import parse as parse_metrics
from meetup_protocol.turn import turn_credentials
from tests.conftest import Api
from tests.regions.agents import Agent
from tests.regions.control import ControlPlane
from tests.regions.netns import Wan
from tests.regions.world import needs_namespaces, receiving, start_agent, still_receiving

pytestmark = [
    needs_namespaces,
    pytest.mark.skipif(
        shutil.which("iptables") is None, reason="no iptables (Debian: apt-get install iptables)"
    ),
    pytest.mark.skipif(
        shutil.which("turnserver") is None, reason="no turnserver (Debian: apt-get install coturn)"
    ),
]

#: A refused credential is reported once direct has failed (its bound) and the TURN checks answered;
#: the join itself (API, relay probe, signalling) and a loaded 2-core machine get the rest.
REFUSED_BOUND_S = DIRECT_TIMEOUT_S + PROBE_TIMEOUT_S + 5


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


def test_udp_blocked_clients_join_through_turn_tcp_and_tls_and_exchange_media(world: TurnWorld) -> None:
    host = world.api.new_user("Direct")
    meeting = world.api.new_meeting(host)
    before = world.relay_metrics()
    with ExitStack() as stack:
        direct = spawn(world, stack, 1, meeting, host, "direct")
        direct.wait_for(lambda s: s["media_path"], 30)
        tcp = spawn(world, stack, 2, meeting, world.api.new_user("Tcp"), "tcp")
        tls = spawn(world, stack, 3, meeting, world.api.new_user("Tls"), "tls")
        paths = {}
        for a in (direct, tcp, tls):
            status = a.wait_for(lambda s: s["media_path"], 40)
            paths[a.name] = status["media_path"]
            print(
                f"{a.name}: media path {status['media_path']} in {status['connect_s']:.2f} s; "
                f"failed first: {status['path_errors']}"
            )
        assert paths == {"direct": "direct", "tcp": "turn/tcp", "tls": "turn/tls"}
        # Direct was tried first and timed out; TURN over UDP was unreachable (and TCP too, from site 3).
        assert list(tcp.latest()["path_errors"]) == ["direct", "turn/udp"]
        assert list(tls.latest()["path_errors"]) == ["direct", "turn/udp", "turn/tcp"]
        # Frames decoded both ways between the direct participant and each TURN client.
        for a, others in ((direct, [tcp, tls]), (tcp, [direct]), (tls, [direct])):
            a.wait_for(receiving(a, others), 40)
        # The firewall really dropped what the client sent over UDP.
        counters = subprocess.run(
            world.wan.command_in(2, ["iptables", "-L", "OUTPUT", "-v", "-n", "-x"]),
            capture_output=True,
            text=True,
        ).stdout
        dropped = [int(line.split()[0]) for line in counters.splitlines() if " DROP " in line]
        assert dropped and dropped[0] > 0, counters  # the direct attempt's checks, TURN over UDP
        # The relay saw it too: two participants through TURN, one direct, and the two direct attempts
        # that never connected (counted, and logged, when the clients gave up on them).
        after = world.relay_metrics()

        def grew(series: str) -> float:
            return after.get(series, 0.0) - before.get(series, 0.0)

        assert grew('relay_media_connected_total{peer="participant",path="turn"}') == 2, after
        assert grew('relay_media_connected_total{peer="participant",path="direct"}') == 1, after
        assert grew('relay_media_never_connected_total{peer="participant"}') >= 2, after


def test_only_tcp_443_open_media_goes_through_turn_over_tls_on_443(world: TurnWorld) -> None:
    tls_url = world.turn["urls"][2]
    assert tls_url.startswith("turns:") and ":443?" in tls_url, world.turn["urls"]
    host = world.api.new_user("Direct")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        direct = spawn(world, stack, 1, meeting, host, "direct")
        direct.wait_for(lambda s: s["media_path"], 30)
        narrow = spawn(world, stack, 4, meeting, world.api.new_user("Narrow"), "narrow")
        status = narrow.wait_for(lambda s: s["media_path"], 40)
        print(f"only 443: {status['media_path']} in {status['connect_s']:.2f} s; {status['path_errors']}")
        assert status["media_path"] == "turn/tls", status
        assert list(status["path_errors"]) == ["direct", "turn/udp", "turn/tcp"], status
        narrow.wait_for(receiving(narrow, [direct]), 40)
        direct.wait_for(receiving(direct, [narrow]), 40)


@pytest.mark.parametrize("kind", ["expired", "forged"])
def test_a_refused_turn_credential_is_a_clear_error_within_the_bound(world: TurnWorld, kind: str) -> None:
    host = world.api.new_user("Direct")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        direct = spawn(world, stack, 1, meeting, host, "direct")
        direct.wait_for(lambda s: s["media_path"], 30)
        guest = world.api.new_user("Refused")
        secret = world.turn["secret"] if kind == "expired" else "a-secret-coturn-does-not-know"
        expiry = int(time.time()) + (-30 if kind == "expired" else 600)
        username, credential = turn_credentials(secret, "p_refused", expiry)
        servers = [{"urls": world.turn["urls"], "username": username, "credential": credential}]
        refused = spawn(
            world, stack, 2, meeting, guest, "refused", MEETUP_AGENT_ICE_SERVERS=json.dumps(servers)
        )
        assert refused.proc.wait(REFUSED_BOUND_S + 30) == 2, refused.latest()
        status = refused.latest()
        print(f"{kind}: {status.get('code')} after {status.get('after_s')} s: {status.get('error')}")
        assert status["code"] == "turn_refused", status
        assert status["after_s"] <= REFUSED_BOUND_S, status
        attempts = status["attempts"]
        assert list(attempts) == ["direct", "turn/udp", "turn/tcp", "turn/tls"], attempts
        # UDP is dropped on the way (no answer); TCP and TLS reach coturn, which refuses: 401.
        assert "unreachable" in attempts["turn/udp"]
        assert "401" in attempts["turn/tcp"] and "401" in attempts["turn/tls"]


def test_a_blocked_client_that_joined_before_any_media_moves_to_turn_once_media_starts(
    world: TurnWorld,
) -> None:
    """Nobody published when it joined, so no path was tried then; the first offer's direct ICE fails
    within the bound, and the SDK reconnects, this time walking the paths to TURN/TCP."""
    host = world.api.new_user("Direct")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        viewer = spawn(world, stack, 2, meeting, world.api.new_user("Viewer"), "viewer", ("--no-publish",))
        joined = viewer.wait_for(lambda s: s["participant_id"], 30)
        assert joined["media_path"] is None  # nothing to connect yet
        direct = spawn(world, stack, 1, meeting, host, "direct")
        status = viewer.wait_for(lambda s: s["media_path"] == "turn/tcp", 60)
        assert status["reconnects"] == 1, status
        print(f"late media: viewer moved to turn/tcp, {status['connect_s']:.2f} s after its reconnect began")
        viewer.wait_for(receiving(viewer, [direct]), 40)


@pytest.mark.parametrize("then", ["turn/tls", "direct"])
def test_a_turn_path_that_dies_mid_meeting_moves_to_another_path_within_the_bound(
    world: TurnWorld, then: str
) -> None:
    """A client in site 2 (UDP dropped) is in the meeting through TURN over TCP; then its firewall drops
    TCP to the TURN port too (the TURN server is gone for it: no reset, segments just vanish). The SDK
    notices the silence, keeps the meeting and finds the next path: TURN over TLS (another coturn
    listener), or, when UDP was opened at the same time, direct. Media flows again both ways within the
    SDK's bound (PATH_SWITCH_BOUND_S), same participant, no rejoin by the application."""
    host = world.api.new_user("Direct")
    meeting = world.api.new_meeting(host)
    udp_drop = ("-p", "udp", "-j", "DROP")
    with ExitStack() as stack:
        direct = spawn(world, stack, 1, meeting, host, "direct")
        direct.wait_for(lambda s: s["media_path"], 30)
        moving = spawn(world, stack, 2, meeting, world.api.new_user("Moving"), "moving")
        joined = moving.wait_for(lambda s: s["media_path"], 40)
        assert joined["media_path"] == "turn/tcp", joined
        moving.wait_for(receiving(moving, [direct]), 40)
        direct.wait_for(receiving(direct, [moving]), 40)
        participant = joined["participant_id"]

        stack.enter_context(
            rule_while(world.wan, 2, "-I", "-p", "tcp", "--dport", turn_port(world), "-j", "DROP")
        )
        if then == "direct":
            stack.enter_context(rule_while(world.wan, 2, "-D", *udp_drop))
        cut = time.monotonic()
        moved = moving.wait_for(lambda s: s["media_path"] == then, PATH_SWITCH_BOUND_S + 15)
        moved_s = time.monotonic() - cut
        assert moved["reconnects"] == 1 and moved["participant_id"] == participant, moved
        assert "media_path_changed" in moved["events"], moved["events"]
        assert moved["reconnect_reasons"][0].startswith("media path lost (turn/tcp: "), moved
        # Media both ways again: frames keep arriving each way after the move.
        assert still_receiving(moving, direct) and still_receiving(direct, moving)
        resumed_s = time.monotonic() - cut
        print(f"turn/tcp cut: on {then} after {moved_s:.1f} s; frames both ways checked by {resumed_s:.1f} s")
        assert moved_s <= PATH_SWITCH_BOUND_S + 5, moved_s  # + a loaded 2-core machine
