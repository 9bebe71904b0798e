"""Hostile input at the media plane, in the TURN world (tests/regions/turn_world.py):

* garbage datagrams (not WebRTC, broken STUN, DTLS and RTP from a stranger) at every ICE socket of the
  relay, and garbage over UDP, TCP and TLS at coturn's ports: refused; the relay counts each by reason
  in /metrics (edge_relay/sfu/ice_guard.py; tests/edge_relay/test_ice_guard.py checks its log lines).
  Both go on serving: a participant connected directly and one through TURN keep seeing each other,
  and coturn still grants allocations.
* a TURN credential issued for a participant of another meeting: TURN credentials are transport only
  (coturn knows nothing of meetings; the username names the participant for its logs). What admits to a
  meeting is the relay's join token, scoped to meeting and participant: so the credential carries a
  client's media through TURN into the meeting its own token admits it to, and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
import subprocess
import time
from contextlib import ExitStack

from client_sdk.rtc.paths import PathPlan, plan_paths, probe_turn
from meetup_protocol.schemas.meetings import IceServer
from meetup_protocol.turn import turn_credentials
from tests.regions.turn_world import TurnWorld, needs_turn_world, spawn, world
from tests.regions.world import receiving, still_receiving

pytestmark = needs_turn_world
__all__ = ["world"]  # the module's fixture

GARBAGE = [
    b"\xff" * 200,  # not WebRTC
    b"GET / HTTP/1.1\r\n\r\n",
    b"\x00\x01\x00\x08" + b"\x00" * 4,  # STUN header announcing attributes that are not there
    b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"\x00" * 13,
    b"\x16\xfe\xfd" + b"\x00" * 60,  # a DTLS record from nobody the relay has a pair with
    b"\x80\x60" + b"\x01" * 100,  # RTP, likewise
    b"\x81\xc8" + b"\x00" * 26,  # RTCP
]


def relay_udp_ports(world: TurnWorld) -> list[int]:
    """The relay process's UDP sockets in its namespace (its ICE sockets: one per connection here)."""
    pid = world.relay.proc.pid
    listed = subprocess.run(
        world.wan.command_in(1, ["ss", "-uanpH"]), capture_output=True, text=True, check=True
    ).stdout
    return [int(line.split()[3].rsplit(":", 1)[1]) for line in listed.splitlines() if f"pid={pid}," in line]


def turn_ports(world: TurnWorld) -> tuple[str, int, int]:
    host, port = re.match(r"turn:([^:]+):(\d+)", world.turn["urls"][0]).groups()  # type: ignore[union-attr]
    tls = int(world.turn["urls"][2].split(":")[2].split("?")[0])
    return host, int(port), tls


def spray_coturn(host: str, port: int, tls_port: int) -> None:
    """Garbage at coturn over UDP, over TCP (after which it may hang up), and inside a TLS session."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for datagram in GARBAGE * 5:
            udp.sendto(datagram, (host, port))
    for datagram in GARBAGE:
        with socket.create_connection((host, port), timeout=2) as tcp:
            try:
                tcp.sendall(datagram)
                tcp.settimeout(0.3)
                tcp.recv(100)
            except OSError:
                pass
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, tls_port), timeout=2) as raw, context.wrap_socket(raw) as tls:
        try:
            tls.sendall(b"".join(GARBAGE))
            tls.settimeout(0.3)
            tls.recv(100)
        except OSError:
            pass


def test_garbage_at_the_relay_and_at_coturn_is_refused_counted_and_both_keep_serving(
    world: TurnWorld,
) -> None:
    host = world.api.new_user("Direct")
    meeting = world.api.new_meeting(host)
    with ExitStack() as stack:
        direct = spawn(world, stack, 1, meeting, host, "direct")
        direct.wait_for(lambda s: s["media_path"], 30)
        tcp = spawn(world, stack, 2, meeting, world.api.new_user("Tcp"), "tcp")
        assert tcp.wait_for(lambda s: s["media_path"], 40)["media_path"] == "turn/tcp"
        tcp.wait_for(receiving(tcp, [direct]), 40)
        direct.wait_for(receiving(direct, [tcp]), 40)
        before = world.relay_metrics()
        ports = relay_udp_ports(world)
        assert ports, "the relay has no UDP socket"
        relay_ip = world.wan.site_ip(1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:  # from site 0
            for port in ports:
                for datagram in GARBAGE:
                    stranger.sendto(datagram, (relay_ip, port))
        spray_coturn(*turn_ports(world))
        time.sleep(0.5)
        after = world.relay_metrics()

        def dropped(reason: str) -> float:
            series = f'relay_ice_datagrams_dropped_total{{reason="{reason}"}}'
            return after.get(series, 0.0) - before.get(series, 0.0)

        print(
            f"relay: {len(ports)} ICE sockets sprayed; dropped "
            + ", ".join(f"{r}: {dropped(r):g}" for r in ("not_webrtc", "malformed_stun", "unknown_source"))
        )
        assert dropped("not_webrtc") == 2 * len(ports), after
        assert dropped("malformed_stun") == 2 * len(ports), after
        assert dropped("unknown_source") == 3 * len(ports), after
        # Both go on serving: media both ways between the direct and the TURN participant ...
        assert still_receiving(tcp, direct) and still_receiving(direct, tcp)
        # ... and coturn still grants an allocation over each transport.
        username, credential = turn_credentials(
            world.turn["secret"], "p_after_garbage", int(time.time()) + 60
        )
        servers = [IceServer(urls=world.turn["urls"], username=username, credential=credential)]
        plans: list[PathPlan] = [p for p in plan_paths(servers) if p.relay_only]
        assert [p.path for p in plans] == ["turn/udp", "turn/tcp", "turn/tls"]
        for plan in plans:
            if plan.path == "turn/tls":
                continue  # the test process does not trust the stack's certificate; TCP proves it lives
            assert asyncio.run(probe_turn(plan)) is None, plan.path


def test_a_turn_credential_of_another_meeting_carries_media_only_into_the_clients_own_meeting(
    world: TurnWorld,
) -> None:
    """Credentials the API issued to a participant of meeting A, used by a client admitted to meeting
    B: coturn relays for it (transport only), and the client lands in B, with B's participants, never
    in A."""
    host_a, host_b = world.api.new_user("HostA"), world.api.new_user("HostB")
    meeting_a, meeting_b = world.api.new_meeting(host_a), world.api.new_meeting(host_b)
    other = world.api.join(meeting_a, world.api.new_user("InA"))
    assert other.status_code == 200, other.text
    servers = other.json()["ice_servers"]
    assert servers and servers[0]["username"].endswith(other.json()["participant_id"])
    with ExitStack() as stack:
        a = spawn(world, stack, 1, meeting_a, host_a, "a")
        b = spawn(world, stack, 1, meeting_b, host_b, "b")
        for agent in (a, b):
            agent.wait_for(lambda s: s["media_path"], 30)
        borrower = spawn(
            world,
            stack,
            2,
            meeting_b,
            world.api.new_user("Borrower"),
            "borrower",
            MEETUP_AGENT_ICE_SERVERS=json.dumps(servers),
        )
        status = borrower.wait_for(lambda s: s["media_path"], 40)
        assert status["media_path"] == "turn/tcp", status
        borrower.wait_for(receiving(borrower, [b]), 40)
        assert status["participants"] == [b.latest()["participant_id"]], status
        assert a.latest()["participant_id"] not in borrower.latest()["frames"]
        assert borrower.latest()["participant_id"] not in a.latest()["participants"]
