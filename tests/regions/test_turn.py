"""TURN for real: a client whose network drops outbound UDP (iptables in its namespace) joins through the
control plane's coturn and sees and hears a participant who is connected directly, and is seen and heard
by them: over TCP, and, with TCP to the TURN port dropped too (only TLS open), over TLS. An expired and a
forged TURN credential are refused by coturn and the SDK says so (TurnRefused) within its bound.
A client that may send TCP to port 443 only gets through over TLS on 443.

The sites are tests/regions/turn_world.py's. Each agent reports its media path and its time to connect
(from asking the API to join to media flowing); the test prints them.
"""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import ExitStack

import pytest

from client_sdk.rtc.paths import DIRECT_TIMEOUT_S, PROBE_TIMEOUT_S
from meetup_protocol.turn import turn_credentials
from tests.regions.turn_world import TurnWorld, needs_turn_world, spawn, world
from tests.regions.world import receiving

pytestmark = needs_turn_world
__all__ = ["world"]  # the module's fixture

#: A refused credential is reported once direct has failed (its bound) and the TURN checks answered;
#: the join itself (API, relay probe, signalling) and a loaded 2-core machine get the rest.
REFUSED_BOUND_S = DIRECT_TIMEOUT_S + PROBE_TIMEOUT_S + 5


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
